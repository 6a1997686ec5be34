/// @brief The optimiser's step (see fused_adamw.h): the CUDA kernel where it applies, ATen's
/// operations elsewhere (the CPU's arithmetic, and the reference the kernel is checked against).
#include "core/kernels/fused_adamw.h"

#include "core/kernels/kernel_device.h"
#include "core/kernels/residual_norm.h"

#ifdef MST_HAVE_FUSED_KERNELS
#include "core/kernels/adamw_cuda.h"
#endif

namespace mst {
namespace {

torch::Tensor lastLayer(const OptimizerStep& s, const torch::Tensor& flat) {
  return flat.narrow(0, s.last_offset, s.last_numel);
}

void atenStep(const OptimizerStep& s) {
  auto lr = s.schedule[0], wd = s.schedule[1], bc1 = s.schedule[5], bc2 = s.schedule[6];
  auto frozen_flag = s.schedule[4];
  const auto& p = s.params;
  const auto& g = s.grads;
  torch::Tensor frozen;
  if (s.freeze_last_layer) frozen = lastLayer(s, p).clone();
  s.exp_avg.mul_(s.beta1).add_(g, 1.0 - s.beta1);
  s.exp_avg_sq.mul_(s.beta2).addcmul_(g, g, 1.0 - s.beta2);
  p.addcmul_(p, s.decay_mask * (-lr * wd));  // decoupled decay, matrices only
  // p -= lr / bc1 * m / (sqrt(v / bc2) + eps), with the step size folded into the denominator.
  auto denom = (s.exp_avg_sq / bc2).sqrt_().add_(s.eps).mul_(bc1 / lr);
  if (s.freeze_last_layer) {  // the last layer's moments began after its freeze
    auto v_last = lastLayer(s, s.exp_avg_sq);
    lastLayer(s, denom).copy_(
        (v_last / s.schedule[9]).sqrt_().add_(s.eps).mul_(s.schedule[8] / lr));
  }
  p.addcdiv_(s.exp_avg, denom, -1.0);
  if (s.freeze_last_layer) {
    auto last = lastLayer(s, p);
    last.copy_(torch::where(frozen_flag > 0.5f, frozen, last));
  }
  // θ_t ← m θ_t + (1 − m) θ_s over the shared (ViT + head) prefix of the flat buffers.
  s.teacher.lerp_(p.narrow(0, 0, s.teacher.numel()), 1 - s.schedule[2]);
}

bool flatFp32(const torch::Tensor& t, const torch::Device& device) {
  return t.defined() && t.device() == device && t.scalar_type() == torch::kFloat && t.dim() == 1 &&
         t.is_contiguous();
}

}  // namespace

bool fusedOptimizerApplies(const OptimizerStep& s) {
  if (!fusedKernelsBuilt() || !s.params.defined()) return false;
  const auto device = s.params.device();
  if (!kernels::kernelDevice(device)) return false;
  for (const auto* t :
       {&s.params, &s.grads, &s.exp_avg, &s.exp_avg_sq, &s.decay_mask, &s.teacher, &s.schedule})
    if (!flatFp32(*t, device)) return false;
  const int64_t n = s.params.numel();
  for (const auto* t : {&s.grads, &s.exp_avg, &s.exp_avg_sq, &s.decay_mask})
    if (t->numel() != n) return false;
  if (s.teacher.numel() > n || s.schedule.numel() < 10) return false;
  if (s.last_offset < 0 || s.last_numel < 0 || s.last_offset + s.last_numel > n) return false;
  return fusedKernelsRunOn(device);
}

void optimizerStep(const OptimizerStep& s, bool fused) {
  torch::NoGradGuard guard;
  const bool kernel = fused && fusedOptimizerApplies(s);
  if (fused && !kernel) countKernelFallback("optimizer", s.params.device());
  if (kernel) {
#ifdef MST_HAVE_FUSED_KERNELS
    const kernels::DeviceGuard device(s.params.device());
    kernels::FusedAdamwArgs a;
    a.param = s.params.data_ptr<float>();
    a.grad = s.grads.data_ptr<float>();
    a.exp_avg = s.exp_avg.data_ptr<float>();
    a.exp_avg_sq = s.exp_avg_sq.data_ptr<float>();
    a.decay_mask = s.decay_mask.data_ptr<float>();
    a.teacher = s.teacher.data_ptr<float>();
    a.schedule = s.schedule.data_ptr<float>();
    a.numel = s.params.numel();
    a.teacher_numel = s.teacher.numel();
    a.last_offset = s.last_offset;
    a.last_numel = s.last_numel;
    a.freeze_last_layer = s.freeze_last_layer;
    // (As ATen converts the sequence's double scalars for fp32 tensors.)
    a.beta1 = static_cast<float>(s.beta1);
    a.one_minus_beta1 = static_cast<float>(1.0 - s.beta1);
    a.beta2 = static_cast<float>(s.beta2);
    a.one_minus_beta2 = static_cast<float>(1.0 - s.beta2);
    a.eps = static_cast<float>(s.eps);
    a.stream = kernels::launchStream(s.params.device());
    const char* error = kernels::fusedAdamwEma(a);
    TORCH_CHECK(error == nullptr, "fused optimizer step: ", error);
    return;
#endif
  }
  atenStep(s);
}

}  // namespace mst
