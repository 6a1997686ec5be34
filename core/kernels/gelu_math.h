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

/// gelu(x): x Φ(x) (erf), or 0.5 x (1 + tanh(√(2/π) (x + 0.044715 x³))) (tanh).
MST_HD float value(float x, bool tanh_approx) {
  if (tanh_approx) {
    const float inner = kTanhScale * (x + kTanhCubic * x * x * x);
    return 0.5f * x * (1.0f + tanhf(inner));
  }
  return x * 0.5f * (1.0f + erff(x * kSqrtHalf));
}

/// d gelu / dx at x.
MST_HD float derivative(float x, bool tanh_approx) {
  if (tanh_approx) {
    const float x_sq = x * x;
    const float t = tanhf(kTanhScale * (x + kTanhCubic * x_sq * x));
    const float d_inner = kTanhScale * (1.0f + 3.0f * kTanhCubic * x_sq);
    return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * d_inner;
  }
  const float cdf = 0.5f * (1.0f + erff(x * kSqrtHalf));
  const float pdf = expf(-0.5f * x * x) * kInvSqrt2Pi;
  return cdf + x * pdf;
}

}  // namespace mst::kernels::gelu
