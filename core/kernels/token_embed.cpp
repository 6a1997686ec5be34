/// @brief The fused token embedding's autograd function over its CUDA kernels (see
/// token_embed.h).
#include "core/kernels/token_embed.h"

#include "core/kernels/kernel_device.h"
#include "core/kernels/residual_norm.h"

#ifdef MST_HAVE_FUSED_KERNELS
#include "core/kernels/embed_cuda.h"
#endif

namespace mst {
namespace {

#ifdef MST_HAVE_FUSED_KERNELS
kernels::EmbedArgs argsFor(const torch::Tensor& x, torch::ScalarType stream) {
  kernels::EmbedArgs a;
  a.batch = x.size(0);
  a.tokens = static_cast<int>(x.size(1) + 1);
  a.D = static_cast<int>(x.size(2));
  a.x_bf16 = x.scalar_type() == torch::kBFloat16;
  a.out_bf16 = stream == torch::kBFloat16;
  a.chunks = kernels::embedChunks(a.batch, a.tokens);
  a.stream = kernels::launchStream(x.device());
  return a;
}

class TokenEmbedFunction : public torch::autograd::Function<TokenEmbedFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& x,
                               const torch::Tensor& mask, const torch::Tensor& token,
                               const torch::Tensor& cls, const torch::Tensor& pos,
                               int64_t stream) {
    const kernels::DeviceGuard device(x.device());
    const auto stream_dtype = static_cast<torch::ScalarType>(stream);
    auto a = argsFor(x, stream_dtype);
    auto t = token.detach().contiguous(), c = cls.detach().contiguous();
    auto out = torch::empty({a.batch, a.tokens, a.D}, x.options().dtype(stream_dtype));
    a.x = x.data_ptr();
    a.mask = mask.numel() > 0 ? mask.data_ptr<bool>() : nullptr;
    a.token = t.data_ptr<float>();
    a.cls = c.data_ptr<float>();
    a.pos = pos.data_ptr<float>();
    a.out = out.data_ptr();
    const char* error = kernels::embedForward(a);
    TORCH_CHECK(error == nullptr, "fused token embedding (forward): ", error);
    ctx->save_for_backward({mask});
    ctx->saved_data["x_dtype"] = static_cast<int64_t>(x.scalar_type());
    ctx->saved_data["stream"] = stream;
    ctx->saved_data["token_sizes"] = token.sizes().vec();
    ctx->saved_data["cls_sizes"] = cls.sizes().vec();
    ctx->saved_data["pos_sizes"] = pos.sizes().vec();
    return out;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto mask = ctx->get_saved_variables()[0];
    const auto x_dtype = static_cast<torch::ScalarType>(ctx->saved_data["x_dtype"].toInt());
    const auto stream = static_cast<torch::ScalarType>(ctx->saved_data["stream"].toInt());
    auto g = grads[0].to(stream).contiguous();
    if (!aligned16(g)) g = g.clone();
    const kernels::DeviceGuard device(g.device());
    const int64_t B = g.size(0), T = g.size(1), D = g.size(2);
    auto dx = torch::empty({B, T - 1, D}, g.options().dtype(x_dtype));
    const auto f32 = g.options().dtype(torch::kFloat);
    auto dpos = torch::empty({T, D}, f32);
    auto dtoken = torch::empty({D}, f32);
    kernels::EmbedArgs a = argsFor(dx, stream);
    auto partial = torch::empty({kernels::embedPartialFloats(a.chunks, a.tokens, a.D)}, f32);
    a.gout = g.data_ptr();
    a.dx = dx.data_ptr();
    const bool masked = mask.numel() > 0;
    a.mask = masked ? mask.data_ptr<bool>() : nullptr;
    a.partial = partial.data_ptr<float>();
    a.dpos = dpos.data_ptr<float>();
    a.dtoken = masked ? dtoken.data_ptr<float>() : nullptr;
    const char* error = kernels::embedBackward(a);
    TORCH_CHECK(error == nullptr, "fused token embedding (backward): ", error);
    auto shaped = [&](const torch::Tensor& t, const char* key) {
      return t.view(ctx->saved_data[key].toIntVector());
    };
    return {dx,
            torch::Tensor(),
            masked ? shaped(dtoken, "token_sizes") : torch::Tensor(),
            shaped(dpos.select(0, 0).clone(), "cls_sizes"),
            shaped(dpos, "pos_sizes"),
            torch::Tensor()};
  }
};
#endif

bool alignedContiguous(const torch::Tensor& t) { return t.is_contiguous() && aligned16(t); }

}  // namespace

bool fusedTokenEmbedApplies(const torch::Tensor& x, const torch::Tensor& mask,
                            const torch::Tensor& token, const torch::Tensor& cls,
                            const torch::Tensor& pos, torch::ScalarType stream) {
  if (!fusedKernelsBuilt() || !x.defined() || !pos.defined() || !kernels::kernelDevice(x.device()))
    return false;
  if (x.dim() != 3 || x.size(0) < 1 || x.size(1) < 1 || x.size(2) < 4 || x.size(2) % 4 != 0)
    return false;
  if ((x.size(1) + 1) * x.size(2) >= (int64_t{1} << 30)) return false;  // (the kernels' limit)
  for (const auto* t : {&token, &cls})
    if (!t->defined() || t->scalar_type() != torch::kFloat || t->device() != x.device() ||
        t->numel() != x.size(2) || !alignedContiguous(*t))
      return false;
  if (x.scalar_type() != torch::kBFloat16 && x.scalar_type() != torch::kFloat) return false;
  if (stream != torch::kBFloat16 && stream != torch::kFloat) return false;
  if (pos.scalar_type() != torch::kFloat || pos.device() != x.device() ||
      pos.sizes() != torch::IntArrayRef{1, x.size(1) + 1, x.size(2)})
    return false;
  if (mask.defined() && (mask.scalar_type() != torch::kBool || mask.device() != x.device() ||
                         mask.sizes() != torch::IntArrayRef{x.size(0), x.size(1)} ||
                         !mask.is_contiguous()))
    return false;
  if (!alignedContiguous(x) || !alignedContiguous(pos)) return false;
#ifdef MST_HAVE_FUSED_KERNELS
  return fusedKernelsRunOn(x.device());
#else
  return false;
#endif
}

torch::Tensor tokenEmbed(const torch::Tensor& x_in, const torch::Tensor& mask,
                         const torch::Tensor& token, const torch::Tensor& cls,
                         const torch::Tensor& pos, torch::ScalarType stream, bool fused) {
  if (fused && fusedTokenEmbedApplies(x_in, mask, token, cls, pos, stream))
    return fusedTokenEmbed(x_in, mask, token, cls, pos, stream);
  if (fused) countKernelFallback("embed", x_in.device());
  const int64_t B = x_in.size(0), D = x_in.size(2);
  auto x = x_in;
  if (mask.defined()) x = torch::where(mask.unsqueeze(-1), token.to(x.scalar_type()), x);  // Eq. 6
  x = torch::cat({cls.expand({B, 1, D}).to(x.scalar_type()), x}, 1);
  if (stream != torch::kFloat) return x.to(stream) + pos.to(stream);
  return x + pos;
}

torch::Tensor fusedTokenEmbed(const torch::Tensor& x, const torch::Tensor& mask,
                              const torch::Tensor& token, const torch::Tensor& cls,
                              const torch::Tensor& pos, torch::ScalarType stream) {
  TORCH_CHECK(fusedTokenEmbedApplies(x, mask, token, cls, pos, stream),
              "fusedTokenEmbed: its kernels cannot take x ", x.sizes(), " (", x.scalar_type(),
              ", ", x.device(), ") with these tokens and position embedding");
#ifdef MST_HAVE_FUSED_KERNELS
  // (Without a mask, an empty one: LibTorch 1.13's custom functions take no undefined input.)
  const auto m = mask.defined() ? mask : torch::empty({0}, x.options().dtype(torch::kBool));
  return TokenEmbedFunction::apply(x, m, token, cls, pos, static_cast<int64_t>(stream));
#else
  return torch::Tensor();  // (unreachable: fusedTokenEmbedApplies is false in this build)
#endif
}

}  // namespace mst
