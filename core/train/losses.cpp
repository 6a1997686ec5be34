/// @brief MST losses implementation (see losses.h).
#include "core/train/losses.h"

#include "core/kernels/dino_loss.h"
#include "core/kernels/recon_loss.h"
#include "core/kernels/residual_norm.h"
#include "core/model/decoder.h"

namespace mst {

namespace {

/// Shared body: `teacher_probs` (2B, K) are the centred, sharpened teacher's softmax.
torch::Tensor crossEntropyPairs(const torch::Tensor& student_in,
                                const torch::Tensor& teacher_probs, double student_temp,
                                bool fused) {
  if (fused && fusedDistillationApplies(student_in, teacher_probs))
    return fusedDistillationLoss(student_in, teacher_probs, student_temp);
  if (fused) countKernelFallback("loss", student_in.device());
  const auto dtype = student_in.scalar_type();
  const torch::Tensor student =
      dtype == torch::kDouble || dtype == torch::kFloat ? student_in : student_in.to(torch::kFloat);
  const int64_t B = teacher_probs.size(0) / 2, K = teacher_probs.size(1);
  TORCH_CHECK(teacher_probs.size(0) == 2 * B && student.size(0) % B == 0 && student.size(1) == K,
              "distillationLoss: student (S*B, K) and teacher (2B, K) disagree");
  const int64_t S = student.size(0) / B;
  TORCH_CHECK(S >= 2, "distillationLoss: the student needs both global crops");
  auto t = teacher_probs.view({2, B, K});
  auto s = (student / student_temp).log_softmax(-1).view({S, B, K});
  // Σ_i Σ_{j≠i} = Σ_i Σ_j − Σ_i (j = i): one product with the sum over crops instead of 2S pairs.
  auto all_pairs = -(t * s.sum(0, /*keepdim=*/true)).sum(-1).mean(1).sum();
  auto same_crop = -(t * s.narrow(0, 0, 2)).sum(-1).mean(1).sum();
  return (all_pairs - same_crop) / static_cast<double>(2 * S - 2);
}

}  // namespace

torch::Tensor distillationLoss(const torch::Tensor& student, const torch::Tensor& teacher,
                               const torch::Tensor& center, double student_temp,
                               double teacher_temp, bool fused) {
  return crossEntropyPairs(student, ((teacher - center) / teacher_temp).softmax(-1), student_temp,
                           fused);
}

torch::Tensor distillationLoss(const torch::Tensor& student, const torch::Tensor& teacher,
                               const torch::Tensor& center, double student_temp,
                               const torch::Tensor& teacher_temp, bool fused) {
  return crossEntropyPairs(student, ((teacher - center) / teacher_temp).softmax(-1), student_temp,
                           fused);
}

void updateCenter(torch::Tensor& center, const torch::Tensor& teacher, double momentum) {
  torch::NoGradGuard guard;
  center.mul_(momentum).add_(teacher.mean(0, /*keepdim=*/true).to(center.scalar_type()),
                             1.0 - momentum);
}

torch::Tensor reconstructionLoss(const torch::Tensor& reconstruction, const torch::Tensor& target) {
  TORCH_CHECK(reconstruction.sizes() == target.sizes(),
              "reconstructionLoss: reconstruction and target shapes differ");
  return (reconstruction - target).abs().mean();
}

torch::Tensor reconstructionLossFromPhases(const torch::Tensor& y, int64_t C,
                                           const torch::Tensor& target, bool fused) {
  if (fused && fusedReconstructionApplies(y, C, target)) return fusedReconstructionLoss(y, C, target);
  if (fused) countKernelFallback("reconstruction", y.device());
  return reconstructionLoss(phaseGather(y, C).to(torch::kFloat), target);
}

}  // namespace mst
