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

/// For its lifetime, CUDA's fp32 matrix products and convolutions are exact fp32 (no TF32), so
/// that two fp32 computations compared with a tight tolerance round alike; the flags are put
/// back after (every Engine sets them for its own arithmetic anyway).
struct ExactFp32 {
  bool blas = at::globalContext().allowTF32CuBLAS(), dnn = at::globalContext().allowTF32CuDNN();
  ExactFp32() {
    at::globalContext().setAllowTF32CuBLAS(false);
    at::globalContext().setAllowTF32CuDNN(false);
  }
  ~ExactFp32() {
    at::globalContext().setAllowTF32CuBLAS(blas);
    at::globalContext().setAllowTF32CuDNN(dnn);
  }
  ExactFp32(const ExactFp32&) = delete;
  ExactFp32& operator=(const ExactFp32&) = delete;
};

}  // namespace mst::checks
