/// @brief parseDeviceSpec (see device_spec.h).
#include "core/util/device_spec.h"

#include <sstream>

#include <torch/torch.h>

#include "core/util/error.h"

namespace mst {

std::vector<torch::Device> parseDeviceSpec(const std::string& spec, const std::string& option) {
  if (spec == "cpu") return {torch::kCPU};
  if (spec.rfind("cuda", 0) != 0)
    throw MstError(option + " must be cpu, cuda, cuda:N or cuda:0,1,... (got '" + spec + "')");
  if (!torch::cuda::is_available())
    throw MstError(option + " " + spec + ": this LibTorch build sees no CUDA device");
  const int64_t count = static_cast<int64_t>(torch::cuda::device_count());
  if (spec == "cuda") return {torch::Device(torch::kCUDA, 0)};
  std::vector<torch::Device> out;
  std::stringstream list(spec.substr(spec.find(':') + 1));
  std::string item;
  while (std::getline(list, item, ',')) {
    int64_t index = -1;
    try {
      index = std::stoll(item);
    } catch (const std::exception&) {
    }
    if (index < 0 || index >= count)
      throw MstError(option + " " + spec + ": no CUDA device '" + item + "' (this machine has " +
                     std::to_string(count) + ")");
    out.emplace_back(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
  }
  return out;
}

}  // namespace mst
