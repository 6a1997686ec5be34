/// @brief SyncBN implementation (see sync_batch_norm.h).
#include "core/dist/sync_batch_norm.h"

#include "core/dist/communicator.h"

namespace mst {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

/// The custom autograd function behind allReduceSumDifferentiable. The communicator travels to
/// backward as an integer: saved_data holds IValues only, and the communicator outlives the graph.
struct AllReduceSumFunction : public torch::autograd::Function<AllReduceSumFunction> {
  static torch::Tensor forward(AutogradContext* ctx, const torch::Tensor& x, Communicator* comm) {
    ctx->saved_data["comm"] = static_cast<int64_t>(reinterpret_cast<intptr_t>(comm));
    auto y = x.contiguous().clone();
    comm->allReduceSum(y);
    return y;
  }
  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto* comm =
        reinterpret_cast<Communicator*>(static_cast<intptr_t>(ctx->saved_data["comm"].toInt()));
    auto g = grads[0].contiguous().clone();
    comm->allReduceSum(g);
    return {g, torch::Tensor()};
  }
};

}  // namespace

torch::Tensor allReduceSumDifferentiable(const torch::Tensor& x, Communicator& comm) {
  return AllReduceSumFunction::apply(x, &comm);
}

torch::Tensor syncBatchNorm(const torch::Tensor& x, torch::nn::BatchNorm2dImpl& bn,
                            Communicator& comm) {
  TORCH_CHECK(x.dim() == 4, "syncBatchNorm: input must be (B, C, H, W)");
  const auto& o = bn.options;
  TORCH_CHECK(o.track_running_stats() && o.momentum().has_value(),
              "syncBatchNorm: needs running statistics with a momentum");
  const int64_t C = x.size(1);
  // Equal rows on every rank (the engine's contract), so the global count needs no message.
  const double n = static_cast<double>(x.numel() / C) * comm.worldSize();
  const auto shift = bn.running_mean.detach().to(x.scalar_type()).view({1, C, 1, 1});
  auto d = x - shift;
  auto local = torch::cat({d.sum({0, 2, 3}), (d * d).sum({0, 2, 3})});  // (2C)
  auto global = allReduceSumDifferentiable(local, comm);
  auto mean_d = global.narrow(0, 0, C) / n;
  auto var = (global.narrow(0, C, C) / n - mean_d * mean_d).clamp_min(0);  // biased, as BN
  auto invstd = (var + o.eps()).rsqrt();
  auto y = (d - mean_d.view({1, C, 1, 1})) * invstd.view({1, C, 1, 1});
  if (o.affine()) y = y * bn.weight.view({1, C, 1, 1}) + bn.bias.view({1, C, 1, 1});
  {
    torch::NoGradGuard guard;
    const double m = *o.momentum();
    auto batch_mean = (mean_d.detach() + shift.view({C})).to(bn.running_mean.scalar_type());
    auto unbiased = (var.detach() * (n / std::max(n - 1.0, 1.0))).to(bn.running_var.scalar_type());
    bn.running_mean.mul_(1.0 - m).add_(batch_mean, m);
    bn.running_var.mul_(1.0 - m).add_(unbiased, m);
    bn.num_batches_tracked.add_(1);
  }
  return y;
}

}  // namespace mst
