/// @brief Small helpers shared by the GPU checks (core/bench) and the kernels' self-checks
/// (core/train/kernel_selfcheck.cpp).
#pragma once

#include <torch/torch.h>

namespace mst::checks {

/// ‖got − ref‖ / ‖ref‖ in fp32 (a NaN anywhere gives NaN, which fails every comparison).
inline double relNorm(const torch::Tensor& got, const torch::Tensor& ref) {
  auto g = got.to(torch::kFloat), f = ref.to(torch::kFloat);
  return ((g - f).norm() / f.norm().clamp_min(1e-30)).item<double>();
}

}  // namespace mst::checks
