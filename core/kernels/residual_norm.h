/// @brief The ViT's residual junction as one operation: y = x + s ⊙ branch (s a per-sample
/// stochastic-depth scale), z = LayerNorm(y) · γ + β. Unfused, these are four to six kernels that
/// each read and write the whole (B, T, D) stream; fused (CUDA, train.fused_norm) one pass
/// forward and one backward. The CPU runs the same autograd function in ATen operations: the
/// tests check its hand-written backward against autograd there, and the GPU checks compare
/// the kernels with it.
#pragma once

#include <torch/torch.h>

namespace mst {

struct ResidualNormOut {
  torch::Tensor y;  ///< the stream after the junction (x itself when there is no branch)
  torch::Tensor z;  ///< LayerNorm(y) · γ + β
};

/// x: (B, T, D) in the stream's dtype; branch: (B, T, D) or undefined (then y = x); scale: (B)
/// fp32 or undefined (1); gamma, beta: (D) fp32. On CUDA the branch and z are bf16 and the stream
/// bf16 or fp32 (the autocast step); on the CPU any floating dtypes, z in `out_dtype`. The branch
/// is scaled in its own dtype and added in the stream's, as the unfused operations round.
ResidualNormOut residualLayerNorm(const torch::Tensor& x, const torch::Tensor& branch,
                                  const torch::Tensor& scale, const torch::Tensor& gamma,
                                  const torch::Tensor& beta, double eps,
                                  torch::ScalarType out_dtype);

/// Whether this build has the CUDA kernels (CMake found nvcc: MST_CUDA_KERNELS).
bool fusedKernelsBuilt();

/// Empty when the build's kernels can run on `device` (a CUDA device whose architecture the
/// build targets, MST_CUDA_ARCHITECTURES), else why not, in words.
std::string fusedKernelsUnavailable(const torch::Device& device);

/// Whether residualLayerNorm runs its kernels for these operands (CUDA, bf16 branch and output,
/// bf16 or fp32 stream, D ≤ 1024, a build with the kernels); otherwise callers use the
/// unfused operations.
bool fusedNormApplies(const torch::Tensor& x, torch::ScalarType branch_dtype,
                      torch::ScalarType out_dtype);

}  // namespace mst
