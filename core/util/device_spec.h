/// @brief Parses a device option ("cpu", "cuda", "cuda:N", "cuda:0,1,...") into LibTorch devices.
#pragma once

#include <string>
#include <vector>

#include <torch/types.h>

namespace mst {

/// The devices `spec` names, each checked against the CUDA devices this build sees. MstError
/// starting with `option` (e.g. "--device") on anything else.
std::vector<torch::Device> parseDeviceSpec(const std::string& spec, const std::string& option);

}  // namespace mst
