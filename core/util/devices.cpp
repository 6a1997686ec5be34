/// @brief listDevices(): CPU and CUDA devices.
#include "core/util/devices.h"

#include <thread>

#include <torch/torch.h>
#if defined(MST_HAVE_CUDA)
#include <ATen/cuda/CUDAContext.h>
#endif

namespace mst {

std::vector<DeviceDescription> listDevices() {
  std::vector<DeviceDescription> out;
  out.push_back({"cpu",
                 "CPU (" + std::to_string(std::thread::hardware_concurrency()) + " threads)", 0});
  if (!torch::cuda::is_available()) return out;
  const int64_t n = static_cast<int64_t>(torch::cuda::device_count());
  for (int64_t i = 0; i < n; ++i) {
    DeviceDescription d;
    d.id = "cuda:" + std::to_string(i);
    d.name = "CUDA device " + std::to_string(i);
#if defined(MST_HAVE_CUDA)
    const auto* props = at::cuda::getDeviceProperties(static_cast<int>(i));
    d.name = props->name;
    d.memory_bytes = static_cast<int64_t>(props->totalGlobalMem);
#endif
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace mst

namespace mst {

void setComputeThreads(int threads) {
  const int n = threads > 0 ? threads : static_cast<int>(std::thread::hardware_concurrency());
  at::set_num_threads(std::max(n, 1));
}

}  // namespace mst
