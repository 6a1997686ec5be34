/// @brief Vision Transformer implementation (see vit.h).
#include "core/model/vit.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "core/kernels/fused_mlp.h"
#include "core/kernels/qkv_heads.h"
#include "core/kernels/token_embed.h"
#include "core/kernels/residual_norm.h"
#include "core/util/torch_compat.h"

namespace mst {

void truncNormal_(torch::Tensor& t, double std) {
  torch::NoGradGuard guard;
  t.normal_(0.0, std).clamp_(-2.0 * std, 2.0 * std);
}

torch::Tensor layerNorm(torch::nn::LayerNorm& norm, const torch::Tensor& x) {
  if (x.scalar_type() == torch::kFloat) return norm(x);
  c10::impl::ExcludeDispatchKeyGuard no_autocast_cuda(c10::DispatchKey::AutocastCUDA);
  c10::impl::ExcludeDispatchKeyGuard no_autocast_cpu(c10::DispatchKey::AutocastCPU);
  const auto& o = norm->options;
  return torch::layer_norm(x, o.normalized_shape(), norm->weight.to(x.scalar_type()),
                           norm->bias.to(x.scalar_type()), o.eps());
}

namespace {

void initLinear(torch::nn::Linear& layer) {
  truncNormal_(layer->weight, 0.02);
  if (layer->bias.defined()) torch::nn::init::zeros_(layer->bias);
}

/// x·Wᵀ + b as ATen's linear, not the C++ frontend's (nn::Linear's forward, F::linear): that one
/// multiplies and then adds the bias in place, outside autocast. Under bf16 autocast it added
/// the fp32 bias to every bf16 (tokens × out) product with ATen's generic mixed-dtype,
/// broadcasting kernel: 23.6 ms of a 148 ms DeiT-S/16 step on an H200 (16 % of its kernel time).
/// at::linear is the op autocast casts, bias included, and turns a contiguous (B, T, in) input
/// into one addmm, where the bias add is the matrix product's epilogue.
torch::Tensor linear(const torch::Tensor& x, const torch::Tensor& weight, const torch::Tensor& bias) {
  return torch::linear(x, weight, bias);
}
torch::Tensor linear(const torch::Tensor& x, const torch::nn::Linear& fc) {
  return linear(x, fc->weight, fc->bias);
}

/// Per-sample keep mask scaled by 1/keep (stochastic depth), (B, 1, ..., 1) in the branch's
/// dtype; undefined when nothing is dropped.
torch::Tensor keepScale(const torch::Tensor& branch, double rate, at::Generator* gen,
                        const BatchShard& shard) {
  if (rate <= 0.0 || gen == nullptr) return {};
  double keep = 1.0 - rate;
  auto shape = std::vector<int64_t>(branch.dim(), 1);
  shape[0] = branch.size(0);
  auto u = shard.rand(shape, *gen, branch.options());
  return (u < keep).to(branch.scalar_type()).div_(keep);
}

torch::Tensor dropPath(const torch::Tensor& branch, double rate, at::Generator* gen,
                       const BatchShard& shard) {
  auto scale = keepScale(branch, rate, gen, shard);
  return scale.defined() ? branch * scale : branch;
}

/// stream + dropPath(branch). Under autocast the branches come out in bf16 and the residual
/// stream stays fp32: casting the branch first keeps the add a vectorised same-dtype kernel (a
/// mixed-dtype add runs the generic casting kernel, ~10x slower; the sum is the same either way).
torch::Tensor addBranch(const torch::Tensor& stream, const torch::Tensor& branch, double rate,
                        at::Generator* gen, const BatchShard& shard) {
  return stream + dropPath(branch, rate, gen, shard).to(stream.scalar_type());
}

/// The fused junction's scale: the same draws as dropPath, as one fp32 value per sample.
torch::Tensor keepScaleFp32(const torch::Tensor& branch, double rate, at::Generator* gen,
                            const BatchShard& shard) {
  auto scale = keepScale(branch, rate, gen, shard);
  return scale.defined() ? scale.to(torch::kFloat).reshape({branch.size(0)}) : scale;
}

/// fc2(gelu(a)) as one autograd operation that keeps only its input a for the backward pass,
/// which recomputes gelu(a) for fc2's weight gradient. Unfused, autograd keeps both a (for
/// GELU's derivative) and gelu(a) (for the weight gradient): the MLP's two largest activations.
/// The backward pass does what autograd does for linear: the same products, in the same order
/// and layout, so the gradients are the same numbers.
class GeluLinearFunction : public torch::autograd::Function<GeluLinearFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& a,
                               const torch::Tensor& weight, const torch::Tensor& bias,
                               const std::string& approximate) {
    // (LibTorch 1.13's Function::apply wants defined inputs: no bias comes as an empty tensor.)
    const bool has_bias = bias.numel() > 0;
    ctx->save_for_backward({a, weight});
    ctx->saved_data["has_bias"] = has_bias;
    ctx->saved_data["approximate"] = approximate;
    return linear(torch::gelu(a, approximate), weight, has_bias ? bias : torch::Tensor());
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    auto saved = ctx->get_saved_variables();
    const auto &a = saved[0], &weight = saved[1];
    const int64_t in = weight.size(1), out = weight.size(0);
    auto grad = grads[0].reshape({-1, out});
    const auto approximate = ctx->saved_data["approximate"].toStringRef();
    auto g = torch::gelu(a, approximate).reshape({-1, in});
    auto grad_weight = grad.t().mm(g);
    auto grad_a = torch::gelu_backward(grad.mm(weight).view(a.sizes()), a, approximate);
    auto grad_bias = ctx->saved_data["has_bias"].toBool() ? grad.sum(0) : torch::Tensor();
    return {grad_a, grad_weight, grad_bias, torch::Tensor()};
  }
};

/// (B, T, parts·h·d) → `parts` views (B, h, T, d). Its backward pass writes the incoming
/// gradients straight into the (B, T, parts, h, d) layout of the input, one copy: through
/// reshape, permute and unbind, autograd stacks them as (parts, B, h, T, d) and then copies
/// once more to undo the permutation.
class SplitHeadsFunction : public torch::autograd::Function<SplitHeadsFunction> {
 public:
  static torch::autograd::tensor_list forward(torch::autograd::AutogradContext* ctx,
                                              const torch::Tensor& x, int64_t parts,
                                              int64_t heads) {
    const int64_t B = x.size(0), T = x.size(1), d = x.size(2) / (parts * heads);
    ctx->saved_data["sizes"] = x.sizes().vec();
    ctx->saved_data["heads"] = heads;
    auto views = x.view({B, T, parts, heads, d}).permute({2, 0, 3, 1, 4}).unbind(0);
    return {views.begin(), views.end()};
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const auto sizes = ctx->saved_data["sizes"].toIntVector();
    const int64_t heads = ctx->saved_data["heads"].toInt();
    const int64_t B = sizes[0], T = sizes[1], d = sizes[2] / (heads * static_cast<int64_t>(grads.size()));
    return {stackHeadGradients(grads, B, T, heads, d), torch::Tensor(), torch::Tensor()};
  }
};

ResidualNormOut junction(const torch::Tensor& x, const torch::Tensor& branch,
                         const torch::Tensor& bias, const torch::Tensor& scale,
                         torch::nn::LayerNorm& norm, torch::ScalarType out_dtype) {
  return residualLayerNorm(x, branch, bias, scale, norm->weight, norm->bias, norm->options.eps(),
                           out_dtype);
}

}  // namespace

std::vector<torch::Tensor> splitHeads(const torch::Tensor& x, int64_t parts, int64_t heads) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) % (parts * heads) == 0, "splitHeads: ", x.sizes(),
              " is not (B, T, ", parts, " x ", heads, " x d)");
  return SplitHeadsFunction::apply(x.contiguous(), parts, heads);
}

torch::Tensor geluLinear(const torch::Tensor& a, torch::nn::LinearImpl& fc,
                         const std::string& approximate, bool with_bias) {
  // The copies autocast's linear would take: the same cached bf16 weights, so gradients from
  // the global and the local crops meet in the same node as they do unfused.
  auto [weight, bias] = autocastLinearParams(fc.weight, with_bias ? fc.bias : torch::Tensor());
#ifdef MST_HAVE_AUTOCAST
  c10::impl::ExcludeDispatchKeyGuard no_autocast(c10::DispatchKey::AutocastCUDA);
#endif
  TORCH_CHECK(a.scalar_type() == weight.scalar_type(), "geluLinear: input is ", a.scalar_type(),
              ", weight ", weight.scalar_type());
  return GeluLinearFunction::apply(
      a, weight, bias.defined() ? bias : torch::empty({0}, weight.options()), approximate);
}

AttentionImpl::AttentionImpl(int64_t dim, int64_t heads_)
    : heads(heads_), scale(1.0 / std::sqrt(static_cast<double>(dim / heads_))) {
  qkv = register_module("qkv", torch::nn::Linear(dim, 3 * dim));
  proj = register_module("proj", torch::nn::Linear(dim, dim));
  initLinear(qkv);
  initLinear(proj);
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, torch::Tensor* cls_attention,
                                     bool fused) {
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2);
  // (B, T, 3D) → q, k, v, each (B, h, T, d): views forward, one copy of the gradients backward;
  // fused, that copy also sums them for the projection's bias (qkv_heads.h).
  auto parts = fused ? qkvHeads(x, *qkv, heads) : splitHeads(linear(x, qkv), 3, heads);
  const auto &q = parts[0], &k = parts[1], &v = parts[2];
#if TORCH_VERSION_MAJOR >= 2
  // Fused attention (flash or memory-efficient kernels on CUDA): the (T, T) matrix is never
  // stored. The mask needs only the CLS row of the attention, computed apart: (B, h, 1, T).
  auto out = scaledDotProductAttention(q, k, v, T > kShortSequence ? kernel_long : kernel_short)
                 .transpose(1, 2)
                 .reshape({B, T, D});
  if (cls_attention) {
    auto row = torch::matmul(q.narrow(2, 0, 1) * scale, k.transpose(-2, -1)).softmax(-1);
    *cls_attention = row.squeeze(2).narrow(-1, 1, T - 1);
  }
#else
  auto attn = torch::matmul(q * scale, k.transpose(-2, -1)).softmax(-1);  // (B, h, T, T)
  // Per head (B, h, n); the Vit averages over heads (Eq. 4) and keeps the heads for inspection.
  if (cls_attention) *cls_attention = attn.select(2, 0).narrow(-1, 1, T - 1);
  auto out = torch::matmul(attn, v).transpose(1, 2).reshape({B, T, D});
#endif
  return linear(out, proj->weight, fused ? torch::Tensor() : proj->bias);
}

torch::Tensor AttentionImpl::forwardCls(const torch::Tensor& x, torch::Tensor* cls_attention) {
  const int64_t B = x.size(0), T = x.size(1), D = x.size(2), d = D / heads;
  const auto& w = qkv->weight;
  const auto& b = qkv->bias;
  // The query of the CLS token; keys and values of every token (rows D.. of the fused weight).
  auto q = linear(x.narrow(1, 0, 1), w.narrow(0, 0, D), b.narrow(0, 0, D))
               .view({B, 1, heads, d}).transpose(1, 2);  // (B, h, 1, d)
  auto kv = splitHeads(linear(x, w.narrow(0, D, 2 * D), b.narrow(0, D, 2 * D)), 2, heads);
  auto row = torch::matmul(q * scale, kv[0].transpose(-2, -1)).softmax(-1);  // (B, h, 1, T)
  if (cls_attention) *cls_attention = row.squeeze(2).narrow(-1, 1, T - 1);
  auto out = torch::matmul(row, kv[1]).transpose(1, 2).reshape({B, 1, D});
  return linear(out, proj);
}

BlockImpl::BlockImpl(int64_t dim, int64_t heads, double mlp_ratio, const std::string& gelu_kind)
    : gelu(geluApproximate(gelu_kind)) {
  const int64_t hidden = static_cast<int64_t>(std::llround(dim * mlp_ratio));
  norm1 = register_module("norm1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-6)));
  attn = register_module("attn", Attention(dim, heads));
  norm2 = register_module("norm2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(1e-6)));
  fc1 = register_module("fc1", torch::nn::Linear(dim, hidden));
  fc2 = register_module("fc2", torch::nn::Linear(hidden, dim));
  initLinear(fc1);
  initLinear(fc2);
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, double drop_path, at::Generator* gen,
                                 torch::Tensor* cls_attention, const BatchShard& shard) {
  auto residual = [&](const torch::Tensor& stream, const torch::Tensor& branch) {
    return addBranch(stream, branch, drop_path, gen, shard);
  };
  auto y = residual(x, attn(layerNorm(norm1, x), cls_attention));
  return residual(y, mlp(layerNorm(norm2, y)));
}

torch::Tensor BlockImpl::mlp(const torch::Tensor& h, bool fc2_bias) {
  if (fused_mlp) return fusedMlp(h, *fc1, *fc2, /*store_gelu=*/!recompute_gelu, gelu, fc2_bias);
  auto a = linear(h, fc1);
  if (recompute_gelu) return geluLinear(a, *fc2, gelu, fc2_bias);
  return linear(torch::gelu(a, gelu), fc2->weight, fc2_bias ? fc2->bias : torch::Tensor());
}

torch::Tensor BlockImpl::forwardCls(const torch::Tensor& x, const torch::Tensor& h,
                                    double drop_path, at::Generator* gen,
                                    torch::Tensor* cls_attention, const BatchShard& shard) {
  auto residual = [&](const torch::Tensor& stream, const torch::Tensor& branch) {
    return addBranch(stream, branch, drop_path, gen, shard);
  };
  auto y = residual(x.narrow(1, 0, 1), attn->forwardCls(h, cls_attention));
  return residual(y, mlp(layerNorm(norm2, y)));
}

std::pair<torch::Tensor, torch::Tensor> BlockImpl::forwardFused(
    const torch::Tensor& x, const torch::Tensor& h, double drop_path, at::Generator* gen,
    torch::Tensor* cls_attention, const BatchShard& shard, torch::nn::LayerNorm& next,
    torch::ScalarType next_dtype) {
  // The output projection's and fc2's biases are added by the junctions, whose backward pass
  // sums their gradients along with γ's and β's (no separate reduction over the branch's
  // gradient, as the linears' own backward passes would run).
  auto a = attn->forward(h, cls_attention, /*fused=*/true);
  auto mid = junction(x, a, attn->proj->bias, keepScaleFp32(a, drop_path, gen, shard), norm2,
                      h.scalar_type());
  auto m = mlp(mid.z, /*fc2_bias=*/false);
  auto out = junction(mid.y, m, fc2->bias, keepScaleFp32(m, drop_path, gen, shard), next,
                      next_dtype);
  return {out.y, out.z};
}

VitImpl::VitImpl(const ModelConfig& c)
    : patch_size(c.patch_size), dim(c.dim), grid(c.image_size / c.patch_size) {
  patch_embed = register_module(
      "patch_embed", torch::nn::Linear(c.channels * c.patch_size * c.patch_size, c.dim));
  initLinear(patch_embed);
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, c.dim}));
  pos_embed = register_parameter("pos_embed", torch::zeros({1, 1 + grid * grid, c.dim}));
  mask_token = register_parameter("mask_token", torch::zeros({1, 1, c.dim}));
  truncNormal_(cls_token, 0.02);
  truncNormal_(pos_embed, 0.02);
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.depth; ++i) blocks->push_back(Block(c.dim, c.heads, c.mlp_ratio, c.gelu));
  norm = register_module("norm", torch::nn::LayerNorm(torch::nn::LayerNormOptions({c.dim}).eps(1e-6)));
}

void VitImpl::setRecomputeGelu(bool on) {
  for (auto& block : *blocks) block->as<Block>()->recompute_gelu = on;
}

void VitImpl::setAttentionKernels(AttentionKernel long_sequences, AttentionKernel short_sequences) {
  for (auto& block : *blocks) {
    auto& attn = *block->as<Block>()->attn;
    attn.kernel_long = long_sequences;
    attn.kernel_short = short_sequences;
  }
}

void VitImpl::setFusedMlp(bool on) {
  for (auto& block : *blocks) {
    block->as<Block>()->fused_mlp = on;
  }
}

std::string geluApproximate(const std::string& kind) {
  TORCH_CHECK(kind == "erf" || kind == "tanh", "model.gelu: erf or tanh, got ", kind);
  return kind == "erf" ? "none" : "tanh";
}

torch::Tensor bicubicWeights(int64_t in, int64_t out) {
  TORCH_CHECK(in >= 1 && out >= 1, "bicubicWeights: sizes must be positive, got ", in, " → ",
              out);
  // upsample_bicubic2d's arithmetic: the source coordinate (i + ½)·in/out − ½, the cubic
  // convolution kernel with A = −0.75 on the four neighbours, indices clamped to the border.
  constexpr double A = -0.75;
  auto near = [](double x) { return ((A + 2) * x - (A + 3)) * x * x + 1; };  // |x| ≤ 1
  auto far = [](double x) { return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A; };  // 1 < |x| < 2
  auto w = torch::zeros({out, in}, torch::kDouble);
  auto a = w.accessor<double, 2>();
  const double scale = static_cast<double>(in) / static_cast<double>(out);
  for (int64_t i = 0; i < out; ++i) {
    const double x = scale * (static_cast<double>(i) + 0.5) - 0.5;
    const double x0 = std::floor(x), t = x - x0;
    const double c[4] = {far(t + 1), near(t), near(1 - t), far(2 - t)};
    for (int k = 0; k < 4; ++k) {
      const int64_t j = std::clamp<int64_t>(static_cast<int64_t>(x0) - 1 + k, 0, in - 1);
      a[i][j] += c[k];
    }
  }
  return w.to(torch::kFloat);
}

namespace {

/// bicubicWeights(in, out) on `device`, made once per process: a copy from the host inside a
/// CUDA graph capture would be an error, and the engine's eager warm-up steps ask first.
torch::Tensor cachedBicubicWeights(int64_t in, int64_t out, const torch::Device& device) {
  static std::mutex mutex;
  // Never destroyed: device tensors must not outlive the CUDA runtime at exit.
  static auto* cache = new std::map<std::tuple<int64_t, int64_t, std::string>, torch::Tensor>;
  std::lock_guard<std::mutex> lock(mutex);
  auto& w = (*cache)[{in, out, device.str()}];
  if (!w.defined()) w = bicubicWeights(in, out).to(device);
  return w;
}

}  // namespace

torch::Tensor VitImpl::positionEmbedding(int64_t g) {
  if (g == grid) return pos_embed;
  // Bicubic interpolation is separable: out = W · P · Wᵀ per channel. ATen's upsample_bicubic2d
  // kernel for one image gives a thread to each output pixel, which walks all channels: 0.42 ms
  // of an H200 step for 384 × 6 × 6 values. Here, broadcast products summed over the source
  // axis, in fp32: a matrix product would run in TF32 wherever the run allows it (bf16 runs).
  const auto w = cachedBicubicWeights(grid, g, pos_embed.device()).to(pos_embed.scalar_type());
  auto cls_pos = pos_embed.narrow(1, 0, 1);
  auto patch_pos = pos_embed.narrow(1, 1, grid * grid).reshape({1, grid, grid * dim});
  // Along the rows: (g, grid, 1) · (1, grid, grid·dim) summed over the source rows.
  auto rows = (w.unsqueeze(2) * patch_pos).sum(1).view({g, 1, grid, dim});
  // Along the columns: (1, g, grid, 1) · (g, 1, grid, dim) summed over the source columns.
  auto both = (w.view({1, g, grid, 1}) * rows).sum(2);  // (g, g, dim)
  return torch::cat({cls_pos, both.reshape({1, g * g, dim})}, 1);
}

torch::Tensor VitImpl::embed(const torch::Tensor& images, const torch::Tensor& mask) {
  const int64_t B = images.size(0), C = images.size(1), S = images.size(2), P = patch_size;
  TORCH_CHECK(S == images.size(3) && S % P == 0, "Vit: crop size ", S,
              " must be square and divisible by the patch ", P);
  const int64_t g = S / P;
  // (B, C, g, P, g, P) → (B, g*g, C*P*P): patch pixels in the conv weight's (C, P, P) order, in
  // one copy that also casts them to the dtype of the weights the product takes (autocast's
  // cached bf16 copies under CUDA autocast): the permuted copy and autocast's cast of the fp32
  // patches, each a pass over the crops, become one.
  auto [weight, bias] = autocastLinearParams(patch_embed->weight, patch_embed->bias);
  auto patches = torch::empty({B, g, g, C, P, P}, images.options().dtype(weight.scalar_type()));
  patches.copy_(images.reshape({B, C, g, P, g, P}).permute({0, 2, 4, 1, 3, 5}));
  auto x = linear(patches.view({B, g * g, C * P * P}), weight, bias);
  if (mask.defined())
    TORCH_CHECK(mask.sizes() == torch::IntArrayRef({B, g * g}), "Vit: mask must be (B, n)");
  // The [MASK] token (Eq. 6), the CLS token and the position embedding; with the fused
  // junctions (CUDA) in one pass forward and one backward (token_embed.h).
  return tokenEmbed(x, mask, mask_token, cls_token, positionEmbedding(g), stream_dtype, fused_norm);
}

VitOutput VitImpl::forward(const torch::Tensor& images, const torch::Tensor& mask,
                           bool want_attention, double drop_path, at::Generator* gen,
                           const BatchShard& shard, bool want_patches) {
  auto x = embed(images, mask);
  VitOutput out;
  const int64_t depth = static_cast<int64_t>(blocks->size());
  auto rateOf = [&](int64_t i) {  // DeiT rule: rates grow linearly from 0 to drop_path
    return depth > 1 ? drop_path * static_cast<double>(i) / (depth - 1) : drop_path;
  };
  // The last block on the CLS token alone, then the final norm: out.cls.
  auto clsOnly = [&](const torch::Tensor& stream, const torch::Tensor& h) {
    auto cls = blocks[depth - 1]->as<Block>()->forwardCls(
        stream, h, rateOf(depth - 1), gen, want_attention ? &out.cls_attention_heads : nullptr,
        shard);
    if (want_attention) out.cls_attention = out.cls_attention_heads.mean(1);  // Eq. 4
    out.cls = layerNorm(norm, cls).select(1, 0);
    return out;
  };
  if (fused_norm && depth > 0) {
    // Junctions between the blocks: the stream x and its normalised copy h travel together.
    // Inside the blocks h feeds matrix products (bf16 under autocast); the final norm's output
    // keeps the stream's dtype, as the unfused LayerNorm gives it.
    const auto inner = autocastActive() ? torch::kBFloat16 : x.scalar_type();
    auto h = junction(x, {}, {}, {}, blocks[0]->as<Block>()->norm1, inner).z;
    for (int64_t i = 0; i < depth; ++i) {
      const double rate = rateOf(i);
      bool last = i == depth - 1;
      if (last && !want_patches) return clsOnly(x, h);
      auto& next = last ? norm : blocks[i + 1]->as<Block>()->norm1;
      std::tie(x, h) = blocks[i]->as<Block>()->forwardFused(
          x, h, rate, gen, last && want_attention ? &out.cls_attention_heads : nullptr, shard,
          next, last ? x.scalar_type() : inner);
    }
    if (want_attention) out.cls_attention = out.cls_attention_heads.mean(1);  // Eq. 4
    out.cls = h.select(1, 0);
    out.patches = h.narrow(1, 1, h.size(1) - 1);
    return out;
  }
  for (int64_t i = 0; i < depth; ++i) {
    const double rate = rateOf(i);
    bool last = i == depth - 1;
    if (last && !want_patches) return clsOnly(x, layerNorm(blocks[i]->as<Block>()->norm1, x));
    x = blocks[i]->as<Block>()->forward(
        x, rate, gen, last && want_attention ? &out.cls_attention_heads : nullptr, shard);
  }
  if (want_attention) out.cls_attention = out.cls_attention_heads.mean(1);  // Eq. 4
  x = layerNorm(norm, x);
  out.cls = x.select(1, 0);
  out.patches = x.narrow(1, 1, x.size(1) - 1);
  return out;
}

torch::Tensor VitImpl::lastBlocksCls(const torch::Tensor& images, int64_t n_blocks) {
  auto x = embed(images);
  const int64_t depth = static_cast<int64_t>(blocks->size());
  std::vector<torch::Tensor> cls;
  for (int64_t i = 0; i < depth; ++i) {
    x = blocks[i]->as<Block>()->forward(x, 0.0, nullptr);
    if (i >= depth - n_blocks) cls.push_back(layerNorm(norm, x).select(1, 0));
  }
  return torch::cat(cls, 1);
}

torch::Tensor VitImpl::clsAttentionPerBlock(const torch::Tensor& images) {
  auto x = embed(images);
  std::vector<torch::Tensor> rows;
  for (const auto& block : *blocks) {
    torch::Tensor row;
    x = block->as<Block>()->forward(x, 0.0, nullptr, &row);
    rows.push_back(row);
  }
  return torch::stack(rows, 1);
}

}  // namespace mst
