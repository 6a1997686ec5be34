/// @brief The ViT's MLP, fc2(gelu(fc1(h))), as one autograd operation (train.fused_mlp). On CUDA
/// in bf16 with the tanh GELU, the first matrix product adds fc1's bias and applies GELU in its
/// cuBLASLt epilogue, also writing the pre-activation for the backward pass (cuBLASLt has no erf
/// GELU: with it the forward pass is ATen's addmm and gelu). The backward pass multiplies dY·W2
/// and then makes one pass over the activations (gelu_backward.h) for GELU's derivative, GELU's
/// output (recomputed for fc2's weight gradient, unless asked to store it) and fc1's bias
/// gradient; builds without the CUDA kernels use cuBLASLt's DGELU_BGRAD epilogue (tanh) or ATen
/// instead. Unfused, GELU's backward, its recomputation and that bias sum are each a pass over
/// the (tokens × hidden) activations, the widest in the block.
/// Elsewhere (the CPU, other dtypes) the same function runs in ATen operations: the tests check
/// its hand-written backward there.
#pragma once

#include <string>

#include <torch/torch.h>

namespace mst {

/// h: (..., in) → (..., out). Under CUDA autocast the weights are autocast's cached bf16 copies
/// and h is cast to bf16, as autocast's linear does. fc1 and fc2 must have biases.
/// `store_gelu`: keep GELU's output for the backward pass instead of recomputing it there (more
/// memory, one elementwise pass less; train.recompute_gelu off).
/// `approximate`: torch::gelu's "tanh" or "none" (erf).
/// `fc2_bias`: add fc2's bias here; false leaves it to the caller (the fused junction adds it and
/// returns its gradient), and fc2's bias gets no gradient from this function.
torch::Tensor fusedMlp(const torch::Tensor& h, torch::nn::LinearImpl& fc1,
                       torch::nn::LinearImpl& fc2, bool store_gelu,
                       const std::string& approximate, bool fc2_bias);

/// Whether this build has the cuBLASLt path (CMake option MST_CUBLASLT with CUDA's cublasLt).
bool cublasLtBuilt();

/// Fused-MLP passes with the tanh GELU on CUDA that ran the ATen path instead of cuBLASLt (no
/// algorithm found, or operands it does not take) in this process.
int64_t fusedMlpFallbacks();

/// Whether fusedMlp takes the cuBLASLt path for a (rows, in) bf16 input on CUDA with this
/// hidden width (multiple of 8, as cuBLASLt's epilogue buffer needs) and these dtypes.
bool fusedMlpApplies(const torch::Tensor& h, int64_t hidden);

}  // namespace mst
