/// @brief The fused self-distillation cross-entropy (see dino_loss.h): the CUDA kernels where
/// they apply, the same arithmetic in ATen operations elsewhere.
#include "core/kernels/dino_loss.h"

#include "core/kernels/dino_loss_cuda.h"  // (free of CUDA: its limits serve every build)
#include "core/kernels/kernel_device.h"
#include "core/kernels/residual_norm.h"
#include "core/util/torch_compat.h"

namespace mst {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// Each student row's target, (S, B, K): the other global crop's teacher row for the global
/// crops, both for a local crop.
torch::Tensor targets(const torch::Tensor& teacher, int64_t S) {
  const int64_t B = teacher.size(0) / 2, K = teacher.size(1);
  auto t = teacher.view({2, B, K});
  std::vector<torch::Tensor> parts{t[1].unsqueeze(0), t[0].unsqueeze(0)};
  if (S > 2) parts.push_back((t[0] + t[1]).unsqueeze(0).expand({S - 2, B, K}));
  return torch::cat(parts, 0);
}

#ifdef MST_HAVE_FUSED_KERNELS
/// The kernels' shared arguments for these operands, on the logits' current stream.
kernels::DinoLossArgs kernelArgs(const torch::Tensor& student, const torch::Tensor& teacher,
                                 double temp) {
  const int64_t B = teacher.size(0) / 2, K = student.size(1);
  kernels::DinoLossArgs a;
  a.student = student.data_ptr();
  a.teacher = teacher.data_ptr<float>();
  a.batch = B;
  a.classes = K;
  a.crops = static_cast<int>(student.size(0) / B);
  a.student_bf16 = student.scalar_type() == torch::kBFloat16;
  a.inv_temp = static_cast<float>(1.0 / temp);
  a.segments = kernels::dinoLossSegments(B, K);
  a.stream = kernels::launchStream(student.device());
  return a;
}
#endif

class DistillationFunction : public torch::autograd::Function<DistillationFunction> {
 public:
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& student_in,
                               const torch::Tensor& teacher_in, double temp) {
    auto student = student_in.contiguous();
    auto teacher = teacher_in.contiguous();
    const int64_t rows = student.size(0), K = student.size(1), B = teacher.size(0) / 2;
    const int64_t S = rows / B;
    const bool kernel = fusedDistillationApplies(student, teacher);
    torch::Tensor stats;  // (3, S·B): log-sum-exp of z/τ, Σ c z/τ, Σ c
    if (kernel) {
#ifdef MST_HAVE_FUSED_KERNELS
      const kernels::DeviceGuard device(student.device());
      stats = torch::empty({3, rows}, student.options().dtype(torch::kFloat));
      auto a = kernelArgs(student, teacher, temp);
      auto partial = torch::empty({kernels::dinoLossPartialFloats(a.segments, B, a.crops)},
                                  stats.options());
      a.partial = partial.data_ptr<float>();
      a.stats = stats.data_ptr<float>();
      const char* error = kernels::dinoLossForward(a);
      TORCH_CHECK(error == nullptr, "fused distillation loss (forward): ", error);
#endif
    } else {
      const auto acc = student.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
      auto x = student.to(acc) / temp;
      auto c = targets(teacher.to(acc), S);
      stats = torch::stack({x.logsumexp(-1), (x.view({S, B, K}) * c).sum(-1).view({rows}),
                            c.sum(-1).view({rows})});
    }
    ctx->save_for_backward({student, teacher, stats});
    ctx->saved_data["temp"] = temp;
    ctx->saved_data["kernel"] = kernel;
    // −Σ_r ⟨c_r, log_softmax(z_r/τ)⟩ = −Σ_r (dot_r − csum_r · lse_r), over B (2S − 2) terms.
    return -(stats[1] - stats[2] * stats[0]).sum() / static_cast<double>(B * (2 * S - 2));
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    if (!grads[0].defined()) return {torch::Tensor(), torch::Tensor(), torch::Tensor()};
    auto saved = ctx->get_saved_variables();
    const auto &student = saved[0], &teacher = saved[1], &stats = saved[2];
    const double temp = ctx->saved_data["temp"].toDouble();
    const int64_t rows = student.size(0), K = student.size(1), B = teacher.size(0) / 2;
    const int64_t S = rows / B;
    // ∂/∂z_r = g · coef · (c_r − csum_r · softmax(z_r/τ)), coef = −1 / (τ B (2S − 2)).
    const double coef = -1.0 / (temp * static_cast<double>(B * (2 * S - 2)));
    torch::Tensor dz;
    if (ctx->saved_data["kernel"].toBool()) {
#ifdef MST_HAVE_FUSED_KERNELS
      const kernels::DeviceGuard device(student.device());
      dz = torch::empty_like(student);
      auto g = grads[0].to(torch::kFloat).contiguous();  // read on the device: no host sync
      auto a = kernelArgs(student, teacher, temp);
      a.stats = const_cast<float*>(stats.data_ptr<float>());
      a.grad = g.data_ptr<float>();
      a.coef = static_cast<float>(coef);
      a.dstudent = dz.data_ptr();
      const char* error = kernels::dinoLossBackward(a);
      TORCH_CHECK(error == nullptr, "fused distillation loss (backward): ", error);
#endif
    } else {
      const auto acc = stats.scalar_type();
      auto x = (student.to(acc) / temp).view({S, B, K});
      auto p = (x - stats[0].view({S, B, 1})).exp();
      auto c = targets(teacher.to(acc), S);
      dz = ((c - stats[2].view({S, B, 1}) * p) * (grads[0].to(acc) * coef))
               .view({rows, K})
               .to(student.scalar_type());
    }
    return {dz, torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool fusedDistillationApplies(const torch::Tensor& student, const torch::Tensor& teacher_probs) {
  if (!fusedKernelsBuilt() || !kernels::kernelDevice(student.device()) || student.dim() != 2 || teacher_probs.dim() != 2)
    return false;
  if (student.scalar_type() != torch::kBFloat16 && student.scalar_type() != torch::kFloat)
    return false;
  if (teacher_probs.scalar_type() != torch::kFloat || teacher_probs.device() != student.device())
    return false;
  const int64_t B = teacher_probs.size(0) / 2, K = student.size(1);
  if (B == 0 || B > 65535 || K == 0 || K % 8 != 0 || teacher_probs.size(1) != K) return false;
  const int64_t S = student.size(0) / B;
  if (S < 2 || S > kernels::kDinoLossMaxCrops || S * B != student.size(0)) return false;
  if (!student.is_contiguous() || !teacher_probs.is_contiguous() || !aligned16(student) ||
      !aligned16(teacher_probs))
    return false;
  return fusedKernelsRunOn(student.device());
}

torch::Tensor fusedDistillationLoss(const torch::Tensor& student,
                                    const torch::Tensor& teacher_probs, double student_temp) {
  TORCH_CHECK(student.dim() == 2 && teacher_probs.dim() == 2 &&
                  teacher_probs.size(0) % 2 == 0 && teacher_probs.size(0) > 0 &&
                  student.size(0) % (teacher_probs.size(0) / 2) == 0 &&
                  student.size(0) / (teacher_probs.size(0) / 2) >= 2 &&
                  student.size(1) == teacher_probs.size(1),
              "fusedDistillationLoss: student (S*B, K) with S >= 2 and teacher (2B, K) disagree: ",
              student.sizes(), " and ", teacher_probs.sizes());
  TORCH_CHECK(student_temp > 0, "fusedDistillationLoss: the temperature must be positive");
#ifdef MST_HAVE_AUTOCAST
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCUDA);
#endif
  return DistillationFunction::apply(student, teacher_probs.detach(), student_temp);
}

}  // namespace mst
