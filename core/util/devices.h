/// @brief The compute devices of this machine, described for device pickers and `mst doctor`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace mst {

struct DeviceDescription {
  std::string id;            ///< "cpu", "cuda:0", ...
  std::string name;          ///< "CPU (16 threads)", "NVIDIA H100 80GB HBM3"
  int64_t memory_bytes = 0;  ///< GPU memory; 0 for the CPU
};

/// The CPU first, then every CUDA device LibTorch sees (names and memory only in CUDA builds).
std::vector<DeviceDescription> listDevices();

}  // namespace mst

namespace mst {

/// Sets LibTorch's CPU threads for the calling thread and the intra-op pool (OpenMP's setting is
/// per thread: call it on the thread that trains). threads <= 0 = every core.
void setComputeThreads(int threads);

}  // namespace mst
