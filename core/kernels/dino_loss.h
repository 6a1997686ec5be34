/// @brief The self-distillation cross-entropy of Eq. 2 as one autograd operation
/// (train.fused_loss): from the student's logits and the teacher's probabilities, the loss, and
/// backward the logits' gradient, each in one pass over the logits (dino_loss_cuda.h) where
/// autograd makes about a dozen over their fp32 copy (cast, division by τ, log_softmax, the sum
/// over crops, and each one's backward: ~2.5 ms of a DeiT-S/16 step with 65,536 classes on an
/// H200). Elsewhere the same function runs in ATen operations, which the tests check against
/// distillationLoss's autograd arithmetic.
#pragma once

#include <torch/torch.h>

namespace mst {

/// student: (S·B, K) logits, crop-major (the two global crops first), bf16 or fp32 (or double
/// on the CPU); teacher_probs: (2·B, K) fp32, the teacher's centred, sharpened softmax (no
/// gradient). Returns Σ_i Σ_{j ∈ {0,1}, j ≠ i} mean_b H(t_{j,b}, softmax(s_{i,b} / τ)) / (2S − 2),
/// computed in fp32 from the logits as stored; the logits' gradient comes back in their dtype.
torch::Tensor fusedDistillationLoss(const torch::Tensor& student,
                                    const torch::Tensor& teacher_probs, double student_temp);

/// Whether fusedDistillationLoss runs the CUDA kernels for these operands: CUDA, bf16 or fp32
/// contiguous logits, fp32 contiguous probabilities, K % 8 == 0, 16-byte aligned, 2 ≤ S ≤ 32, a
/// build whose kernels run on the device.
bool fusedDistillationApplies(const torch::Tensor& student, const torch::Tensor& teacher_probs);

}  // namespace mst
