/// @brief GELU and its derivative, the arithmetic of the fused GELU backward kernel
/// (gelu_cuda.cu), shared with the plain C++ loop of gelu_backward.cpp that the CPU tests compare
/// with ATen's gelu and gelu_backward: what the kernel computes is checked even without a GPU.
/// The formulas are ATen's (both approximations), in fp32.
#pragma once

#include <cmath>

#include "core/kernels/host_device.h"

namespace mst::kernels::gelu {

constexpr float kSqrtHalf = 0.70710678118654752440f;      // 1/√2
constexpr float kInvSqrt2Pi = 0.39894228040143267794f;    // 1/√(2π)
constexpr float kTanhScale = 0.79788456080286535588f;     // √(2/π)
constexpr float kTanhCubic = 0.044715f;

/// gelu(x) and its derivative at x together, the transcendental (erf, or tanh) evaluated once
/// for both: gelu(x) = x Φ(x) (erf), or 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))) (tanh).
/// Each result is what ATen's gelu and gelu_backward compute on CUDA, operation by operation
/// (x³ as (x · x) · x; halving is exact, so x · (0.5 (1 + erf)) is ATen's x · 0.5 · (1 + erf)).
MST_HD void valueAndDerivative(float x, bool tanh_approx, float& value, float& derivative) {
  if (tanh_approx) {
    const float x_sq = x * x;
    const float t = tanhf(kTanhScale * (x + kTanhCubic * (x_sq * x)));
    const float half_x = 0.5f * x;
    value = half_x * (1.0f + t);
    const float d_inner = kTanhScale * (1.0f + 3.0f * kTanhCubic * x_sq);
    derivative = 0.5f * (1.0f + t) + half_x * (1.0f - t * t) * d_inner;
    return;
  }
  const float cdf = 0.5f * (1.0f + erff(x * kSqrtHalf));
  value = x * cdf;
  derivative = cdf + x * (expf(-0.5f * x * x) * kInvSqrt2Pi);
}

}  // namespace mst::kernels::gelu
