/// @brief The fused q/k/v projection (see qkv_heads.h): the gather kernel where it applies,
/// ATen's operations elsewhere.
#include "core/kernels/qkv_heads.h"

#include <limits>

#include "core/kernels/kernel_device.h"
#include "core/kernels/residual_norm.h"
#include "core/util/torch_compat.h"

#ifdef MST_HAVE_FUSED_KERNELS
#include "core/kernels/heads_cuda.h"
#endif

namespace mst {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

class QkvHeadsFunction : public torch::autograd::Function<QkvHeadsFunction> {
 public:
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& weight, const torch::Tensor& bias,
                               int64_t heads) {
    const int64_t B = x.size(0), T = x.size(1), in = weight.size(1), out = weight.size(0);
    auto x2 = x.reshape({B * T, in}).contiguous();
    auto y = torch::addmm(bias, x2, weight.t());  // (B·T, out); the bias in the epilogue
    ctx->save_for_backward({x2, weight});
    ctx->saved_data["B"] = B;
    ctx->saved_data["T"] = T;
    ctx->saved_data["heads"] = heads;
    ctx->saved_data["bias_dtype"] = static_cast<int64_t>(bias.scalar_type());
    auto views = y.view({B, T, 3, heads, out / (3 * heads)}).permute({2, 0, 3, 1, 4}).unbind(0);
    return {views.begin(), views.end()};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &x2 = saved[0], &weight = saved[1];
    const int64_t B = ctx->saved_data["B"].toInt(), T = ctx->saved_data["T"].toInt();
    const int64_t heads = ctx->saved_data["heads"].toInt(), out = weight.size(0),
                  d = out / (3 * heads);
    torch::Tensor like;
    for (const auto& g : grads)
      if (g.defined()) like = g;
    std::vector<torch::Tensor> parts;  // an unused output's gradient is zero
    for (const auto& g : grads)
      parts.push_back(g.defined() ? g : torch::zeros({B, heads, T, d}, like.options()));
    torch::Tensor dy, dbias;
    if (headsGatherKernelApplies(parts)) {
#ifdef MST_HAVE_FUSED_KERNELS
      const kernels::DeviceGuard device(like.device());
      dy = torch::empty({B * T, out}, like.options());
      dbias = torch::empty({out}, like.options());
      kernels::HeadsGatherArgs a;
      for (int p = 0; p < 3; ++p) {
        a.part[p] = parts[p].data_ptr();
        for (int s = 0; s < 3; ++s) a.stride[p][s] = parts[p].stride(s);
      }
      a.out = dy.data_ptr();
      a.dbias = dbias.data_ptr();
      a.batch = B;
      a.tokens = T;
      a.heads = static_cast<int>(heads);
      a.d = static_cast<int>(d);
      a.row_blocks = kernels::headsGatherRowBlocks(B * T, static_cast<int>(out));
      auto partial = torch::empty({a.row_blocks, out}, like.options().dtype(torch::kFloat));
      a.partial = partial.data_ptr<float>();
      a.stream = kernels::launchStream(like.device());
      const char* error = kernels::headsGather(a);
      TORCH_CHECK(error == nullptr, "q/k/v gradient gather: ", error);
#endif
    } else {
      countKernelFallback("qkv_gather", like.device());
      dy = stackHeadGradients(parts, B, T, heads, d).view({B * T, out});
      dbias = dy.sum(0);
    }
    dbias = dbias.to(static_cast<torch::ScalarType>(ctx->saved_data["bias_dtype"].toInt()));
    // A linear's backward pass: the input's gradient, then the weight's.
    auto dx = dy.mm(weight).view({B, T, x2.size(1)});
    auto dweight = dy.t().mm(x2);
    return {dx, dweight, dbias, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor stackHeadGradients(const std::vector<torch::Tensor>& grads, int64_t B, int64_t T,
                                 int64_t heads, int64_t d) {
  torch::Tensor like;
  for (const auto& g : grads)
    if (g.defined()) like = g;
  std::vector<torch::Tensor> parts;  // each (B, T, heads, d)
  for (const auto& g : grads)
    parts.push_back(g.defined() ? g.transpose(1, 2) : torch::zeros({B, T, heads, d}, like.options()));
  return torch::stack(parts, 2).view({B, T, static_cast<int64_t>(grads.size()) * heads * d});
}

bool headsGatherKernelApplies(const std::vector<torch::Tensor>& grads) {
  if (!fusedKernelsBuilt() || grads.size() != 3) return false;
  const auto& first = grads[0];
  if (!first.defined() || !kernels::kernelDevice(first.device()) || first.dim() != 4) return false;
  const int64_t d = first.size(3);
  if (d == 0 || d % 8 != 0 || 3 * first.size(1) * d > std::numeric_limits<int>::max())
    return false;
  for (const auto& g : grads) {
    if (!g.defined() || g.scalar_type() != torch::kBFloat16 || g.sizes() != first.sizes() ||
        g.device() != first.device())
      return false;
    if (g.numel() == 0) continue;
    if (g.stride(3) != 1 || !aligned16(g)) return false;
    for (int s = 0; s < 3; ++s)
      if (g.stride(s) % 8 != 0) return false;
  }
  return fusedKernelsRunOn(first.device());
}

std::vector<torch::Tensor> qkvHeads(const torch::Tensor& x, torch::nn::LinearImpl& fc,
                                    int64_t heads) {
  TORCH_CHECK(x.dim() == 3, "qkvHeads: x must be (B, T, in), got ", x.sizes());
  TORCH_CHECK(fc.bias.defined(), "qkvHeads: the projection needs a bias");
  TORCH_CHECK(heads > 0 && fc.weight.size(0) % (3 * heads) == 0, "qkvHeads: ",
              fc.weight.size(0), " outputs are not 3 x ", heads, " heads x d");
  // The copies autocast's linear would take (the same cached bf16 weights as every other use).
  auto [weight, bias] = autocastLinearParams(fc.weight, fc.bias);
  auto input = x.scalar_type() == weight.scalar_type() ? x : x.to(weight.scalar_type());
#ifdef MST_HAVE_AUTOCAST
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCUDA);
#endif
  return QkvHeadsFunction::apply(input, weight, bias, heads);
}

}  // namespace mst
