/// @brief The fused reconstruction loss's autograd function over its CUDA kernels (see
/// recon_loss.h).
#include "core/kernels/recon_loss.h"

#include "core/kernels/kernel_device.h"
#include "core/kernels/residual_norm.h"

#ifdef MST_HAVE_FUSED_KERNELS
#include "core/kernels/recon_loss_cuda.h"
#endif

namespace mst {
namespace {

#ifdef MST_HAVE_FUSED_KERNELS
kernels::ReconLossArgs argsFor(const torch::Tensor& y, int64_t C, const torch::Tensor& target) {
  kernels::ReconLossArgs a;
  a.y = y.data_ptr();
  a.target = target.data_ptr<float>();
  a.batch = y.size(0);
  a.height = y.size(2) - 1;
  a.width = y.size(3) - 1;
  a.channels = C;
  a.phase_channels = y.size(1);
  a.bf16 = y.scalar_type() == torch::kBFloat16;
  a.blocks = kernels::reconLossBlocks(a.batch, a.height, a.width, a.channels);
  a.stream = kernels::launchStream(y.device());
  return a;
}

class ReconstructionFunction : public torch::autograd::Function<ReconstructionFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& y_in,
                               const torch::Tensor& target_in, int64_t C) {
    const kernels::DeviceGuard device(y_in.device());
    auto y = y_in.contiguous(at::MemoryFormat::ChannelsLast);
    auto target = target_in.detach().contiguous();
    auto a = argsFor(y, C, target);
    auto partial = torch::empty({a.blocks}, y.options().dtype(torch::kDouble));
    auto loss = torch::empty({}, y.options().dtype(torch::kFloat));
    a.partial = partial.data_ptr<double>();
    a.loss = loss.data_ptr<float>();
    const char* error = kernels::reconLossForward(a);
    TORCH_CHECK(error == nullptr, "fused reconstruction loss (forward): ", error);
    ctx->save_for_backward({y, target});
    ctx->saved_data["C"] = C;
    return loss;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &y = saved[0], &target = saved[1];
    const int64_t C = ctx->saved_data["C"].toInt();
    const kernels::DeviceGuard device(y.device());
    auto g = grads[0].to(torch::kFloat).contiguous();
    auto dy = torch::empty_like(y, at::MemoryFormat::ChannelsLast);
    auto a = argsFor(y, C, target);
    a.grad = g.data_ptr<float>();
    a.dy = dy.data_ptr();
    const char* error = kernels::reconLossBackward(a);
    TORCH_CHECK(error == nullptr, "fused reconstruction loss (backward): ", error);
    return {dy, torch::Tensor(), torch::Tensor()};
  }
};
#endif

}  // namespace

bool fusedReconstructionApplies(const torch::Tensor& y, int64_t C, const torch::Tensor& target) {
  if (!fusedKernelsBuilt() || !y.defined() || !target.defined() ||
      !kernels::kernelDevice(y.device()) || target.device() != y.device())
    return false;
  if (y.dim() != 4 || target.dim() != 4 || C <= 0 || y.size(1) < 4 * C || y.size(2) < 2 ||
      y.size(3) < 2)
    return false;
  if (y.scalar_type() != torch::kBFloat16 && y.scalar_type() != torch::kFloat) return false;
  if (target.scalar_type() != torch::kFloat) return false;
  if (target.sizes() != torch::IntArrayRef{y.size(0), C, 2 * (y.size(2) - 1), 2 * (y.size(3) - 1)})
    return false;
#ifdef MST_HAVE_FUSED_KERNELS
  return fusedKernelsRunOn(y.device());
#else
  return false;
#endif
}

torch::Tensor fusedReconstructionLoss(const torch::Tensor& y, int64_t C, const torch::Tensor& target) {
  TORCH_CHECK(fusedReconstructionApplies(y, C, target),
              "fusedReconstructionLoss: its kernels cannot take y ", y.sizes(), " (",
              y.scalar_type(), ", ", y.device(), ") with ", C, " channels and target ",
              target.sizes(), " (", target.scalar_type(), ")");
#ifdef MST_HAVE_FUSED_KERNELS
  return ReconstructionFunction::apply(y, target, C);
#else
  return torch::Tensor();  // (unreachable: fusedReconstructionApplies is false in this build)
#endif
}

}  // namespace mst
