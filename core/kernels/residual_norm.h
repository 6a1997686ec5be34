/// @brief The ViT's residual junction as one operation: y = x + s ⊙ (branch + b) (s a per-sample
/// stochastic-depth scale, b the bias of the linear layer that ends the branch, optional),
/// z = LayerNorm(y) · γ + β. Taking the bias here gives its gradient as one more column sum of
/// the backward pass, which the linear's own backward pass would compute as a separate
/// reduction over the whole (B, T, D) gradient. Unfused, these are four to six kernels that
/// each read and write the whole (B, T, D) stream; fused (CUDA, train.fused_norm) one pass
/// forward and one backward. The CPU runs the same autograd function in ATen operations: the
/// tests check its hand-written backward against autograd there, and the GPU checks compare
/// the kernels with it.
#pragma once

#include <map>
#include <string>

#include <torch/torch.h>

namespace mst {

struct ResidualNormOut {
  torch::Tensor y;  ///< the stream after the junction (x itself when there is no branch)
  torch::Tensor z;  ///< LayerNorm(y) · γ + β
};

/// x: (B, T, D) in the stream's dtype; branch: (B, T, D) or undefined (then y = x); bias: (D)
/// or undefined (only with a branch); scale: (B) fp32 or undefined (1); gamma, beta: (D) fp32.
/// On CUDA the branch and z are bf16, the bias fp32 and the stream bf16 or fp32 (the autocast
/// step); on the CPU any floating dtypes, z in `out_dtype`. The bias is added in fp32 to the
/// branch as stored and the sum rounded to the branch's dtype (a bf16 linear adds its bias
/// before its one rounding: within one bf16 step of this); the branch is scaled in its own dtype
/// and added in the stream's, as the unfused operations round. The bias's gradient is the sum of
/// the branch's gradient over the rows before that gradient is rounded to the branch's dtype
/// (more precise than a bf16 linear's bf16 sum).
ResidualNormOut residualLayerNorm(const torch::Tensor& x, const torch::Tensor& branch,
                                  const torch::Tensor& bias, const torch::Tensor& scale,
                                  const torch::Tensor& gamma, const torch::Tensor& beta,
                                  double eps, torch::ScalarType out_dtype);

/// Whether this build has the CUDA kernels (CMake found nvcc: MST_CUDA_KERNELS).
bool fusedKernelsBuilt();

/// Empty when the build's kernels can run on `device` (a CUDA device whose architecture the
/// build targets, MST_CUDA_ARCHITECTURES), else why not, in words.
std::string fusedKernelsUnavailable(const torch::Device& device);

/// fusedKernelsUnavailable(device).empty(), asked once per CUDA device (false for other devices).
bool fusedKernelsRunOn(const torch::Device& device);

/// Counts a call on `device` that ran ATen's operations because the kernels could not take its
/// operands (layout, dtype, alignment, size), where `device` is the kernels' device in a build
/// with them (elsewhere ATen is simply the path, and nothing is counted), by family:
/// "junction", "qkv_gather", "gelu_backward", "decoder_stage", "loss", "optimizer", "augment".
/// Correct, but not fused: `mst bench` reports kernelFallbacks() so that such a run does not pass
/// for fused.
void countKernelFallback(const char* family, const torch::Device& device);
/// The counts so far in this process (families with none are absent).
std::map<std::string, int64_t> kernelFallbacks();

/// Whether t's data starts on a 16-byte boundary (the kernels' vector loads).
inline bool aligned16(const torch::Tensor& t) {
  return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0;
}

/// Whether residualLayerNorm runs its kernels for these operands (CUDA, bf16 branch, bf16 or
/// fp32 stream, bf16 output or the fp32 stream's own dtype, D ≤ 1024, a build with the kernels);
/// otherwise callers use the unfused operations.
bool fusedNormApplies(const torch::Tensor& x, torch::ScalarType branch_dtype,
                      torch::ScalarType out_dtype);

}  // namespace mst
