/// @brief The decoder stage's autograd function over its CUDA kernels (see decoder_norm.h).
#include "core/kernels/decoder_norm.h"

#include <limits>

#include <torch/csrc/autograd/variable.h>

#include "core/kernels/kernel_device.h"
#include "core/kernels/residual_norm.h"

#ifdef MST_HAVE_FUSED_KERNELS
#include "core/kernels/decoder_norm_cuda.h"
#endif

namespace mst {
namespace {

#ifdef MST_HAVE_FUSED_KERNELS
kernels::DecoderNormArgs argsFor(const torch::Tensor& y, int64_t C) {
  kernels::DecoderNormArgs a;
  a.batch = y.size(0);
  a.height = static_cast<int>(y.size(2) - 1);
  a.width = static_cast<int>(y.size(3) - 1);
  a.channels = static_cast<int>(C);
  a.bf16 = y.scalar_type() == torch::kBFloat16;
  a.blocks = kernels::decoderNormBlocks(a.batch, a.height, a.width, a.channels, a.bf16);
  a.stream = kernels::launchStream(y.device());
  return a;
}

class DecoderNormFunction : public torch::autograd::Function<DecoderNormFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& y,
                               const torch::Tensor& gamma, const torch::Tensor& beta,
                               const torch::Tensor& running_mean, const torch::Tensor& running_var,
                               int64_t C, double momentum, double eps) {
    const kernels::DeviceGuard device(y.device());
    auto a = argsFor(y, C);
    const auto f32 = y.options().dtype(torch::kFloat);
    auto out = torch::empty({a.batch, C, 2 * int64_t{a.height}, 2 * int64_t{a.width}},
                            y.options().memory_format(at::MemoryFormat::ChannelsLast));
    auto mean = torch::empty({C}, f32), invstd = torch::empty({C}, f32);
    auto partial = torch::empty({a.blocks, 2 * C}, y.options().dtype(torch::kDouble));
    auto g = gamma.detach().contiguous(), b = beta.detach().contiguous();
    a.y = y.data_ptr();
    a.out = out.data_ptr();
    a.gamma = g.data_ptr<float>();
    a.beta = b.data_ptr<float>();
    a.mean = mean.data_ptr<float>();
    a.invstd = invstd.data_ptr<float>();
    a.running_mean = running_mean.data_ptr<float>();
    a.running_var = running_var.data_ptr<float>();
    a.partial = partial.data_ptr<double>();
    a.momentum = momentum;
    a.eps = eps;
    const char* error = kernels::decoderNormForward(a);
    TORCH_CHECK(error == nullptr, "fused decoder stage (forward): ", error);
    ctx->save_for_backward({y, g, b, mean, invstd});
    ctx->saved_data["C"] = C;
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const auto &y = saved[0], &gamma = saved[1], &beta = saved[2], &mean = saved[3],
               &invstd = saved[4];
    const int64_t C = ctx->saved_data["C"].toInt();
    const kernels::DeviceGuard device(y.device());
    auto dout = grads[0].to(y.scalar_type()).contiguous(at::MemoryFormat::ChannelsLast);
    if (!aligned16(dout)) dout = dout.clone(at::MemoryFormat::ChannelsLast);
    auto a = argsFor(y, C);
    const auto f32 = y.options().dtype(torch::kFloat);
    auto dy = torch::empty_like(y, at::MemoryFormat::ChannelsLast);
    auto dgamma = torch::empty({C}, f32), dbeta = torch::empty({C}, f32);
    auto partial = torch::empty({a.blocks, 2 * C}, y.options().dtype(torch::kDouble));
    a.y = y.data_ptr();
    a.dout = dout.data_ptr();
    a.dy = dy.data_ptr();
    a.gamma = gamma.data_ptr<float>();
    a.beta = beta.data_ptr<float>();
    a.mean = mean.data_ptr<float>();
    a.invstd = invstd.data_ptr<float>();
    a.dgamma = dgamma.data_ptr<float>();
    a.dbeta = dbeta.data_ptr<float>();
    a.partial = partial.data_ptr<double>();
    const char* error = kernels::decoderNormBackward(a);
    TORCH_CHECK(error == nullptr, "fused decoder stage (backward): ", error);
    return {dy, dgamma, dbeta, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(),
            torch::Tensor()};
  }
};
#endif

bool floatVector(const torch::Tensor& t, int64_t C, const torch::Device& device) {
  return t.defined() && t.scalar_type() == torch::kFloat && t.dim() == 1 && t.size(0) == C &&
         t.device() == device && t.is_contiguous();
}

}  // namespace

bool decoderNormApplies(const torch::Tensor& y, int64_t C, const torch::nn::BatchNorm2dImpl& bn) {
  if (!fusedKernelsBuilt() || !y.defined() || !kernels::kernelDevice(y.device()) || y.dim() != 4) return false;
  const bool bf16 = y.scalar_type() == torch::kBFloat16;
  if (!bf16 && y.scalar_type() != torch::kFloat) return false;
  if (C <= 0 || y.size(1) != 4 * C || y.size(2) < 2 || y.size(3) < 2) return false;
  if (y.size(0) * (y.size(2) - 1) * (y.size(3) - 1) * 4 <= 1) return false;  // BatchNorm's rule
  if (y.size(2) > std::numeric_limits<int>::max() / 2 || y.size(3) > std::numeric_limits<int>::max() / 2)
    return false;
  if (!y.is_contiguous(at::MemoryFormat::ChannelsLast) || !aligned16(y)) return false;
  const auto& o = bn.options;
  if (!bn.is_training() || !o.affine() || !o.track_running_stats() || !o.momentum().has_value() ||
      o.num_features() != C)
    return false;
  for (const auto* t : {&bn.weight, &bn.bias, &bn.running_mean, &bn.running_var})
    if (!floatVector(*t, C, y.device())) return false;
#ifdef MST_HAVE_FUSED_KERNELS
  if (!kernels::decoderNormSupports(static_cast<int>(C), bf16)) return false;
  return fusedKernelsRunOn(y.device());
#else
  return false;
#endif
}

torch::Tensor decoderNorm(const torch::Tensor& y, int64_t C, torch::nn::BatchNorm2dImpl& bn) {
  TORCH_CHECK(decoderNormApplies(y, C, bn), "decoderNorm: its kernels cannot take y ", y.sizes(),
              " (", y.scalar_type(), ", ", y.device(), ") with ", C, " channels");
#ifdef MST_HAVE_FUSED_KERNELS
  {
    torch::NoGradGuard no_grad;
    bn.num_batches_tracked.add_(1);
  }
  auto out = DecoderNormFunction::apply(y, bn.weight, bn.bias, bn.running_mean, bn.running_var,
                                        C, *bn.options.momentum(), bn.options.eps());
  // The kernels updated the running statistics in place: their version counters say so, as
  // ATen's batch_norm (which declares them mutated) does.
  torch::autograd::impl::bump_version(bn.running_mean);
  torch::autograd::impl::bump_version(bn.running_var);
  return out;
#else
  return torch::Tensor();  // (unreachable: decoderNormApplies is false in this build)
#endif
}

}  // namespace mst
