/// @brief The two MST losses: self-distillation cross-entropy (Eq. 2) and reconstruction (Eq. 9).
#pragma once

#include <torch/torch.h>

namespace mst {

/// L_CE of Eq. 2 over every pair (teacher crop i ∈ {g1, g2}, student crop j ≠ i).
/// student: (S*B, K) logits, crop-major (g1, g2, local 1..N); teacher: (2*B, K) logits (g1, g2);
/// center: (1, K). Returns a scalar: sum over pairs of mean_b H(softmax((t_i - c)/τ_t),
/// softmax(s_j/τ_s)), divided by the number of pairs 2S - 2.
/// The student's logits in fp32 or bf16 (cast to fp32 first), the teacher's in fp32. `fused`
/// (train.fused_loss): the student's side through fusedDistillationLoss, one kernel pass each
/// way where it applies (CUDA), ATen's autograd arithmetic otherwise.
torch::Tensor distillationLoss(const torch::Tensor& student, const torch::Tensor& teacher,
                               const torch::Tensor& center, double student_temp,
                               double teacher_temp, bool fused = false);
/// The same with τ_t a 0-dim tensor on the logits' device (a CUDA-graph step reads the schedule
/// from device memory, so its value may change between replays).
torch::Tensor distillationLoss(const torch::Tensor& student, const torch::Tensor& teacher,
                               const torch::Tensor& center, double student_temp,
                               const torch::Tensor& teacher_temp, bool fused = false);

/// c ← m c + (1 − m) mean_rows(teacher), in place. teacher: (R, K), center: (1, K).
void updateCenter(torch::Tensor& center, const torch::Tensor& teacher, double momentum);

/// L_rec of Eq. 9: mean absolute error over all pixels, channels and images.
torch::Tensor reconstructionLoss(const torch::Tensor& reconstruction, const torch::Tensor& target);

/// L_rec of the decoder's output given as its last convolution's phases y (B, 4C, H+1, W+1)
/// (Decoder::forward with gather_last false) against target (B, C, 2H, 2W): `fused` (the
/// engine's train.fused_loss) through the fused kernels where fusedReconstructionApplies
/// (core/kernels/recon_loss.h), else reconstructionLoss(phaseGather(y, C) in fp32, target); the
/// same value up to the order of the sum, and the same gradient for y.
torch::Tensor reconstructionLossFromPhases(const torch::Tensor& y, int64_t C,
                                           const torch::Tensor& target, bool fused);

}  // namespace mst
