/// @brief The fused residual junction's autograd function (see residual_norm.h): the CUDA
/// kernels where they apply, the same arithmetic in ATen operations elsewhere.
#include "core/kernels/residual_norm.h"

#include <array>
#include <atomic>
#include <mutex>

#include "core/kernels/kernel_device.h"

#ifdef MST_HAVE_FUSED_KERNELS
#include "core/kernels/residual_norm_cuda.h"
#endif

namespace mst {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

torch::ScalarType accType(const torch::Tensor& x) {
  return x.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
}

/// (B) → (B, 1, ..., 1) against x's rank.
torch::Tensor perSample(const torch::Tensor& scale, const torch::Tensor& x) {
  std::vector<int64_t> shape(x.dim(), 1);
  shape[0] = scale.numel();
  return scale.view(shape);
}

bool useKernels(const torch::Tensor& x, const torch::Tensor& branch, torch::ScalarType out) {
  return fusedNormApplies(x, branch.defined() ? branch.scalar_type() : torch::kBFloat16, out);
}

#ifdef MST_HAVE_FUSED_KERNELS
void check(const char* error, const char* what) {
  TORCH_CHECK(error == nullptr, "fused residual norm (", what, "): ", error);
}
#endif

class ResidualNormFunction : public torch::autograd::Function<ResidualNormFunction> {
 public:
  /// Outputs (y, z) with a branch, (z) without one. Without a branch, a bias or a scale, the
  /// argument is an empty placeholder (the flags say which; an empty tensor may also be a real,
  /// empty branch). A bias comes only with a branch.
  static variable_list forward(AutogradContext* ctx, const torch::Tensor& x_in,
                               const torch::Tensor& branch_in, const torch::Tensor& bias_in,
                               const torch::Tensor& scale_in, const torch::Tensor& gamma,
                               const torch::Tensor& beta, double eps, int64_t out_dtype_code,
                               bool has_branch, bool has_bias, bool has_scale) {
    const auto out_dtype = static_cast<torch::ScalarType>(out_dtype_code);
    auto x = x_in.contiguous();
    auto branch = has_branch ? branch_in.contiguous() : torch::Tensor();
    auto bias = has_bias ? bias_in.contiguous() : torch::Tensor();
    auto scale = has_scale ? scale_in.contiguous() : torch::Tensor();
    const int64_t D = x.size(-1), rows = x.numel() / D;
    torch::Tensor y, z, mean, rstd;
    // The backward pass takes the path the forward pass took (the kernels need its statistics'
    // layout no more than ATen does, but a mixed pair would hide a kernel from the checks).
    const bool use_kernels = useKernels(x, branch, out_dtype);
    if (!use_kernels) countKernelFallback("junction", x.device());
    ctx->set_materialize_grads(false);  // an unused output's gradient stays undefined, not zeros
    if (use_kernels) {
#ifdef MST_HAVE_FUSED_KERNELS
      const kernels::DeviceGuard device(x.device());
      TORCH_CHECK(gamma.scalar_type() == torch::kFloat && beta.scalar_type() == torch::kFloat &&
                      (!has_bias || bias.scalar_type() == torch::kFloat),
                  "fused residual norm: the LayerNorm's parameters and the bias must be fp32");
      auto stats = torch::empty({2, rows}, x.options().dtype(torch::kFloat));
      mean = stats[0];
      rstd = stats[1];
      y = has_branch ? torch::empty_like(x) : x;
      z = torch::empty(x.sizes(), x.options().dtype(out_dtype));
      kernels::ResidualNormForwardArgs a;
      a.x = x.data_ptr();
      a.branch = has_branch ? branch.data_ptr() : nullptr;
      a.bias = has_bias ? bias.data_ptr<float>() : nullptr;
      a.scale = scale.defined() ? scale.data_ptr<float>() : nullptr;
      a.gamma = gamma.data_ptr<float>();
      a.beta = beta.data_ptr<float>();
      a.y = y.data_ptr();
      a.z = z.data_ptr();
      a.mean = mean.data_ptr<float>();
      a.rstd = rstd.data_ptr<float>();
      a.rows = rows;
      a.tokens = rows / x.size(0);
      a.D = static_cast<int>(D);
      a.eps = static_cast<float>(eps);
      a.stream_bf16 = x.scalar_type() == torch::kBFloat16;
      a.out_fp32 = out_dtype == torch::kFloat;
      a.stream = kernels::launchStream(x.device());
      check(kernels::residualNormForward(a), "forward");
#endif
    } else {
      const auto acc = accType(x);
      y = x;
      if (has_branch) {
        // The linear's output + bias, rounded to the branch's dtype as the linear's would be.
        auto biased = has_bias ? (branch.to(acc) + bias.to(acc)).to(branch.scalar_type()) : branch;
        auto scaled = scale.defined() ? (biased.to(acc) * perSample(scale.to(acc), biased))
                                            .to(branch.scalar_type())
                                      : biased;
        y = (x.to(acc) + scaled.to(acc)).to(x.scalar_type());
      }
      auto yf = y.to(acc);
      auto m = yf.mean(-1, /*keepdim=*/true);
      auto var = (yf - m).pow(2).mean(-1, /*keepdim=*/true);
      auto r = (var + eps).rsqrt();
      z = ((yf - m) * r * gamma.to(acc) + beta.to(acc)).to(out_dtype);
      mean = m.reshape({rows});
      rstd = r.reshape({rows});
    }
    ctx->save_for_backward({y, mean, rstd, gamma, has_scale ? scale : torch::Tensor()});
    ctx->saved_data["has_branch"] = has_branch;
    ctx->saved_data["has_bias"] = has_bias;
    ctx->saved_data["has_scale"] = has_scale;
    ctx->saved_data["kernels"] = use_kernels;
    ctx->saved_data["branch_dtype"] =
        static_cast<int64_t>(has_branch ? branch.scalar_type() : x.scalar_type());
    ctx->saved_data["out_dtype"] = out_dtype_code;
    ctx->saved_data["bias_dtype"] =
        static_cast<int64_t>(has_bias ? bias.scalar_type() : x.scalar_type());
    if (has_branch) return {y, z};
    return {z};
  }

  static variable_list backward(AutogradContext* ctx, variable_list grads) {
    auto saved = ctx->get_saved_variables();
    auto y = saved[0], mean = saved[1], rstd = saved[2], gamma = saved[3];
    const bool has_branch = ctx->saved_data["has_branch"].toBool();
    const bool has_scale = ctx->saved_data["has_scale"].toBool();
    const bool has_bias = ctx->saved_data["has_bias"].toBool();
    auto scale = has_scale ? saved[4] : torch::Tensor();
    const auto branch_dtype = static_cast<torch::ScalarType>(ctx->saved_data["branch_dtype"].toInt());
    const auto out_dtype = static_cast<torch::ScalarType>(ctx->saved_data["out_dtype"].toInt());
    torch::Tensor gy = has_branch ? grads[0] : torch::Tensor();
    torch::Tensor gz = grads[has_branch ? 1 : 0];
    if (!gz.defined()) gz = torch::zeros(y.sizes(), y.options().dtype(out_dtype));
    gz = gz.to(out_dtype).contiguous();
    if (gy.defined()) gy = gy.to(y.scalar_type()).contiguous();
    // The branch's gradient only where autograd wants it (input 1).
    const bool want_branch = has_branch && ctx->needs_input_grad(1);
    const bool want_bias = has_bias && ctx->needs_input_grad(2);  // (input 2)
    [[maybe_unused]] const int64_t D = y.size(-1), rows = y.numel() / D;
    torch::Tensor dx, dbranch, dbias, dgamma, dbeta;
    if (ctx->saved_data["kernels"].toBool()) {
#ifdef MST_HAVE_FUSED_KERNELS
      const kernels::DeviceGuard device(y.device());
      dx = torch::empty_like(y);
      if (want_branch) dbranch = torch::empty(y.sizes(), y.options().dtype(branch_dtype));
      const int sums = want_bias ? 3 : 2;
      kernels::ResidualNormBackwardArgs a;
      a.gz = gz.data_ptr();
      a.gy = gy.defined() ? gy.data_ptr() : nullptr;
      a.y = y.data_ptr();
      a.mean = mean.data_ptr<float>();
      a.rstd = rstd.data_ptr<float>();
      a.gamma = gamma.data_ptr<float>();
      a.scale = has_scale ? scale.data_ptr<float>() : nullptr;
      a.dx = dx.data_ptr();
      a.dbranch = want_branch ? dbranch.data_ptr() : nullptr;
      a.sums = sums;
      a.rows = rows;
      a.tokens = rows / y.size(0);
      a.D = static_cast<int>(D);
      a.stream_bf16 = y.scalar_type() == torch::kBFloat16;
      a.out_fp32 = out_dtype == torch::kFloat;
      a.blocks = kernels::residualNormBackwardBlocks(a);
      auto partial = torch::empty({a.blocks, sums, D}, y.options().dtype(torch::kFloat));
      auto affine = torch::empty({sums, D}, y.options().dtype(torch::kFloat));
      dgamma = affine[0];
      dbeta = affine[1];
      if (want_bias) dbias = affine[2];
      a.partial = partial.data_ptr<float>();
      a.affine = affine.data_ptr<float>();
      a.stream = kernels::launchStream(y.device());
      check(kernels::residualNormBackward(a), "backward");
#endif
    } else {
      const auto acc = accType(y);
      std::vector<int64_t> stat_shape(y.sizes().begin(), y.sizes().end());
      stat_shape.back() = 1;
      auto m = mean.view(stat_shape), r = rstd.view(stat_shape);
      auto xhat = (y.to(acc) - m) * r;
      auto gzf = gz.to(acc);
      auto g = gzf * gamma.to(acc);
      auto d = r * (g - g.mean(-1, true) - xhat * (g * xhat).mean(-1, true));
      if (gy.defined()) d = d + gy.to(acc);
      dx = d.to(y.scalar_type());
      // The branch's gradient before it is rounded: what the bias's gradient sums.
      auto dbranch_acc = has_scale ? dx.to(acc) * perSample(scale.to(acc), dx) : dx.to(acc);
      if (want_branch) dbranch = dbranch_acc.to(branch_dtype);
      std::vector<int64_t> rows_dims;
      for (int64_t i = 0; i + 1 < y.dim(); ++i) rows_dims.push_back(i);
      if (want_bias) dbias = dbranch_acc.sum(rows_dims);
      dgamma = (gzf * xhat).sum(rows_dims).to(gamma.scalar_type());
      dbeta = gzf.sum(rows_dims).to(gamma.scalar_type());
    }
    if (dbias.defined()) {
      const auto bias_dtype = static_cast<torch::ScalarType>(ctx->saved_data["bias_dtype"].toInt());
      dbias = dbias.to(bias_dtype);
    }
    return {dx,     dbranch,         dbias,           torch::Tensor(), dgamma,         dbeta,
            torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

namespace {
std::mutex fallback_mutex;
std::map<std::string, int64_t> fallback_counts;  // (kernelFallbacks)
}  // namespace

void countKernelFallback(const char* family, const torch::Device& device) {
  if (!fusedKernelsBuilt() || !kernels::kernelDevice(device)) return;
  std::lock_guard<std::mutex> lock(fallback_mutex);
  ++fallback_counts[family];
}

std::map<std::string, int64_t> kernelFallbacks() {
  std::lock_guard<std::mutex> lock(fallback_mutex);
  return fallback_counts;
}

bool fusedKernelsBuilt() {
#ifdef MST_HAVE_FUSED_KERNELS
  return true;
#else
  return false;
#endif
}

std::string fusedKernelsUnavailable(const torch::Device& device) {
  if (!fusedKernelsBuilt())
    return "this build has no fused CUDA kernels (CMake found no CUDA compiler; set CUDACXX and "
           "MST_CUDA_KERNELS=ON)";
  if (!kernels::kernelDevice(device)) return "they run on CUDA devices only";
#ifdef MST_HAVE_FUSED_KERNELS
  if (const char* why = kernels::fusedKernelsLoadable(device.has_index() ? device.index() : -1))
    return std::string("they cannot run on ") + device.str() + " (" + why +
           "): the build targets other GPU architectures (CMake MST_CUDA_ARCHITECTURES)";
#endif
  return {};
}

bool fusedKernelsRunOn(const torch::Device& device) {
  if (!kernels::kernelDevice(device)) return false;
  static std::array<std::atomic<int>, 64> known{};  // 0 unknown, 1 yes, 2 no
  const int index = device.has_index() ? device.index() : 0;
  if (index < 0 || index >= static_cast<int>(known.size()))
    return fusedKernelsUnavailable(device).empty();
  int state = known[index].load(std::memory_order_relaxed);
  if (state == 0) {
    state = fusedKernelsUnavailable(device.is_cuda() ? torch::Device(torch::kCUDA, index) : device)
                    .empty()
                ? 1
                : 2;
    known[index].store(state, std::memory_order_relaxed);
  }
  return state == 1;
}

bool fusedNormApplies(const torch::Tensor& x, torch::ScalarType branch_dtype,
                      torch::ScalarType out_dtype) {
  // fp32 out: the final norm of an fp32 stream, whose output keeps the stream's dtype.
  const bool out_ok = out_dtype == torch::kBFloat16 ||
                      (out_dtype == torch::kFloat && x.scalar_type() == torch::kFloat);
  return fusedKernelsBuilt() && kernels::kernelDevice(x.device()) && x.dim() >= 2 && x.size(-1) <= 1024 &&
         x.size(0) > 0 && branch_dtype == torch::kBFloat16 && out_ok &&
         (x.scalar_type() == torch::kBFloat16 || x.scalar_type() == torch::kFloat);
}

ResidualNormOut residualLayerNorm(const torch::Tensor& x, const torch::Tensor& branch,
                                  const torch::Tensor& bias, const torch::Tensor& scale,
                                  const torch::Tensor& gamma, const torch::Tensor& beta,
                                  double eps, torch::ScalarType out_dtype) {
  TORCH_CHECK(x.dim() >= 2 && x.size(-1) > 0,
              "residualLayerNorm: x needs a sample dimension and channels");
  for (const auto* t : {&branch, &bias, &scale, &gamma, &beta})
    TORCH_CHECK(!t->defined() || t->device() == x.device(),
                "residualLayerNorm: every operand must be on the stream's device");
  TORCH_CHECK(!branch.defined() || branch.sizes() == x.sizes(),
              "residualLayerNorm: the branch's shape differs from the stream's");
  TORCH_CHECK(!scale.defined() || (scale.numel() == x.size(0) && scale.scalar_type() == torch::kFloat),
              "residualLayerNorm: the scale must hold one fp32 value per sample");
  TORCH_CHECK(gamma.numel() == x.size(-1) && beta.numel() == x.size(-1),
              "residualLayerNorm: gamma and beta must have one value per channel");
  TORCH_CHECK(!bias.defined() || (branch.defined() && bias.dim() == 1 && bias.numel() == x.size(-1)),
              "residualLayerNorm: a bias needs a branch and one value per channel");
  // LibTorch 1.13's autograd functions take no undefined tensors: an empty one stands for none.
  auto none = [&](const torch::Tensor& t, torch::ScalarType dtype) {
    return t.defined() ? t : torch::empty({0}, x.options().dtype(dtype));
  };
  auto out = ResidualNormFunction::apply(
      x, none(branch, x.scalar_type()), none(bias, gamma.scalar_type()),
      none(scale, torch::kFloat), gamma, beta, eps, static_cast<int64_t>(out_dtype),
      branch.defined(), bias.defined(), scale.defined());
  if (branch.defined()) return {out[0], out[1]};
  return {x, out[0]};
}

}  // namespace mst
