/// @brief Launchers of the fused residual-junction kernels (residual_norm_cuda.cu), free of
/// LibTorch so that nvcc compiles them alone. Dtypes: the branch is bf16; the residual stream is
/// bf16 or fp32; the normalised output is bf16, or fp32 with an fp32 stream (out_fp32: the
/// final norm, whose output keeps the stream's dtype); statistics and affine parameters are fp32. All
/// pointers are device pointers of contiguous (rows, D) arrays; `stream` is a cudaStream_t.
/// Each launcher returns nullptr, or the CUDA error's text.
#pragma once

#include <cstdint>

namespace mst::kernels {

struct ResidualNormForwardArgs {
  const void* x = nullptr;       ///< stream in (rows, D)
  const void* branch = nullptr;  ///< (rows, D) bf16, or nullptr: y = x, nothing written to y
  const float* bias = nullptr;   ///< (D) added to the branch first (its linear's), or nullptr
  const float* scale = nullptr;  ///< (rows / tokens) per-sample branch scale, or nullptr (1)
  const float* gamma = nullptr;  ///< (D)
  const float* beta = nullptr;   ///< (D)
  void* y = nullptr;             ///< stream out: x + scale * (branch + bias)
  void* z = nullptr;             ///< (rows, D) bf16 (out_fp32: fp32): LayerNorm(y) * gamma + beta
  float* mean = nullptr;         ///< (rows) saved for the backward pass
  float* rstd = nullptr;         ///< (rows)
  int64_t rows = 0, tokens = 1;  ///< tokens: rows per sample (the scale's broadcast)
  int D = 0;
  float eps = 1e-6f;
  bool stream_bf16 = false;  ///< the stream's dtype: bf16, else fp32
  bool out_fp32 = false;     ///< z is fp32 (with an fp32 stream only), else bf16
  /// One channel per memory access even where D and the pointers allow four (`mst bench
  /// --micro` compares the two).
  bool scalar_access = false;
  void* stream = nullptr;
};

struct ResidualNormBackwardArgs {
  const void* gz = nullptr;      ///< (rows, D) gradient of z, in z's dtype
  const void* gy = nullptr;      ///< (rows, D) stream-dtype gradient of y, or nullptr (0)
  const void* y = nullptr;       ///< the forward's y (its x when it had no branch)
  const float* mean = nullptr, *rstd = nullptr, *gamma = nullptr;
  const float* scale = nullptr;  ///< as in the forward pass
  void* dx = nullptr;            ///< (rows, D) stream dtype: the gradient of x (and of y)
  void* dbranch = nullptr;       ///< (rows, D) bf16, or nullptr
  float* partial = nullptr;      ///< (blocks, sums, D) workspace
  /// (sums, D): the gradients of gamma and beta, then (sums = 3) of the branch's bias, i.e. the
  /// column sums of dbranch before it is rounded to bf16.
  float* affine = nullptr;
  int sums = 2;                  ///< 2, or 3 when the forward pass added a bias
  int64_t rows = 0, tokens = 1;
  int D = 0;
  int blocks = 1;  ///< residualNormBackwardBlocks(*this), once the other fields are set
  bool stream_bf16 = false;
  bool out_fp32 = false;       ///< as in ResidualNormForwardArgs
  bool scalar_access = false;  ///< as in ResidualNormForwardArgs
  void* stream = nullptr;
};

/// nullptr when these kernels (and augment_cuda.cu's, built for the same architectures) can run
/// on CUDA device `device` (-1: the current one), else why not: the build holds no code for the
/// device's architecture (CMake MST_CUDA_ARCHITECTURES), or the device cannot be queried.
const char* fusedKernelsLoadable(int device);

/// The backward kernel's grid size (the partial workspace's first dimension) for the launch
/// `args` describes (its rows, D, dtypes, column sums and the pointers that decide its access
/// width; blocks, partial and affine are not read): the blocks of that kernel the device holds
/// at once, fewer for few rows.
int residualNormBackwardBlocks(const ResidualNormBackwardArgs& args);
const char* residualNormForward(const ResidualNormForwardArgs& args);
const char* residualNormBackward(const ResidualNormBackwardArgs& args);

}  // namespace mst::kernels
