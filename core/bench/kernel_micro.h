/// @brief `mst bench --micro`: our CUDA kernels alone, at one run's shapes, against the memory
/// bandwidth the device reaches with a plain copy. A whole-step benchmark says what a kernel
/// change gains for the step; this says which kernels are still far from the bandwidth they
/// could use, and compares variants of one kernel (the junction's 4-channel and 1-channel
/// memory accesses) that no setting switches.
#pragma once

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/config/config.h"

namespace mst {

/// Times each kernel at the shapes a `batch`-image step of `config` gives it (the global and
/// the local crops' token rows, the model's width and MLP width). Returns {"device",
/// "copy_gb_s" (a device-to-device copy of 512 MiB, read + write), "kernels": [{"kernel",
/// "crops", "rows", "width", "stream", "access", "us", "gb_s", "of_copy"}]}, where gb_s counts
/// the bytes the kernel must read and write once (for the GELU backward's ATen rows, the same
/// bytes: what its three operations achieve against that minimum). The reconstruction loss's
/// rows time its forward and backward passes together, through the host code, fused and through
/// ATen (what train.fused_loss saves there). Throws MstError without CUDA or without the kernels
/// in this build.
nlohmann::json runKernelMicro(const Config& config, const torch::Device& device, int64_t batch);

}  // namespace mst
