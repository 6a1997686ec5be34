/// @brief Vision Transformer with a learnable [MASK] token and the last block's CLS attention.
#pragma once

#include <optional>

#include <torch/torch.h>

#include "core/config/config.h"
#include "core/dist/batch_shard.h"
#include "core/model/attention_kernel.h"

namespace mst {

/// LayerNorm in x's own dtype. fp32 input: the module as is (autocast runs it in fp32). A bf16
/// residual stream (train.precision bf16_stream): normalised in bf16 with autocast bypassed and
/// the affine weights cast to bf16 (CUDA's kernel wants one dtype), so no fp32 copy is made.
torch::Tensor layerNorm(torch::nn::LayerNorm& norm, const torch::Tensor& x);

/// Multi-head self-attention with one fused qkv projection.
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(int64_t dim, int64_t heads);
  /// x: (B, T, D) → (B, T, D). If `cls_attention` is given it receives (B, heads, T-1): the CLS
  /// row of softmax(q k^T / sqrt(d)) per head with the CLS column dropped (Eq. 4 averages it).
  /// `fused` (blocks between fused junctions, train.fused_norm): q, k and v through qkvHeads
  /// (one pass gathers their gradients and sums the bias's), and the output projection without
  /// its bias, which the junction adds.
  torch::Tensor forward(const torch::Tensor& x, torch::Tensor* cls_attention = nullptr,
                        bool fused = false);
  /// The CLS token's row alone: (B, T, D) → (B, 1, D), its query against every key (the keys
  /// and values still come from all tokens). `cls_attention` as in forward.
  torch::Tensor forwardCls(const torch::Tensor& x, torch::Tensor* cls_attention = nullptr);

  torch::nn::Linear qkv{nullptr}, proj{nullptr};
  int64_t heads;
  double scale;
  /// CUDA's attention kernel for sequences of more than kShortSequence tokens and for the rest
  /// (train.attention_kernel, train.attention_kernel_short; attention_kernel.h).
  AttentionKernel kernel_long = AttentionKernel::Auto, kernel_short = AttentionKernel::Auto;
};
TORCH_MODULE(Attention);

/// Pre-norm transformer block with stochastic depth on both residual branches.
class BlockImpl : public torch::nn::Module {
 public:
  /// `gelu_kind`: model.gelu ("erf" or "tanh").
  BlockImpl(int64_t dim, int64_t heads, double mlp_ratio, const std::string& gelu_kind = "erf");
  /// x: (B, T, D) → (B, T, D). `drop_path` > 0 drops whole residual branches per sample, drawn
  /// from `gen` (training of the student only) for the global batch that `shard` places x in.
  torch::Tensor forward(const torch::Tensor& x, double drop_path, at::Generator* gen,
                        torch::Tensor* cls_attention = nullptr, const BatchShard& shard = {});

  /// The same block over a fused residual stream (train.fused_norm): `h` is norm1(x), computed
  /// by the previous junction; returns (x', next(x')) where next is the following block's norm1
  /// or the final norm, its output in `next_dtype`. Same arithmetic and random draws as forward.
  std::pair<torch::Tensor, torch::Tensor> forwardFused(
      const torch::Tensor& x, const torch::Tensor& h, double drop_path, at::Generator* gen,
      torch::Tensor* cls_attention, const BatchShard& shard, torch::nn::LayerNorm& next,
      torch::ScalarType next_dtype);

  /// The block's output at the CLS token alone, (B, 1, D), from the stream x and h = norm1(x)
  /// (all tokens): what a last block computes when only the CLS token is read afterwards. The
  /// same stochastic-depth draws as forward.
  torch::Tensor forwardCls(const torch::Tensor& x, const torch::Tensor& h, double drop_path,
                           at::Generator* gen, torch::Tensor* cls_attention,
                           const BatchShard& shard);

  /// The MLP branch fc2(gelu(fc1(h))); with `recompute_gelu`, through geluLinear; with
  /// `fused_mlp`, through fusedMlp. `fc2_bias` false: without fc2's bias (the fused junction
  /// adds it).
  torch::Tensor mlp(const torch::Tensor& h, bool fc2_bias = true);

  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr};
  Attention attn{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  /// train.recompute_gelu: the backward pass recomputes gelu(fc1(h)) instead of keeping it.
  bool recompute_gelu = false;
  /// train.fused_mlp: the MLP as one operation (core/kernels/fused_mlp), with this GELU.
  bool fused_mlp = false;
  /// torch::gelu's `approximate`: "none" (model.gelu erf) or "tanh".
  std::string gelu;
};
TORCH_MODULE(Block);

struct VitOutput {
  torch::Tensor cls;            ///< (B, D) final-norm CLS token
  torch::Tensor patches;        ///< (B, n, D) final-norm patch tokens
  torch::Tensor cls_attention;  ///< (B, n) last block's CLS attention, mean of heads (Eq. 4; only when requested)
  torch::Tensor cls_attention_heads;  ///< (B, heads, n) the same per head (only when requested)
};

class VitImpl : public torch::nn::Module {
 public:
  explicit VitImpl(const ModelConfig& config);

  /// Tokens entering the first block. images: (B, C, S, S) with S a multiple of P;
  /// mask: (B, n) bool or undefined — masked patch embeddings are replaced by the [MASK] token
  /// *before* the position embedding is added (Eq. 6). Returns (B, 1 + n, D).
  torch::Tensor embed(const torch::Tensor& images, const torch::Tensor& mask = {});
  /// Full forward; `drop_path` applies per block with the linearly increasing DeiT rule, its
  /// draws shaped by the global batch of which `shard` says these images are rows.
  /// With `want_patches` false the last block computes the CLS token alone (its query against
  /// all keys) and `patches` stays undefined: the teacher, the local crops and the k-NN features
  /// read only the CLS token, and skip 1/depth of the work.
  VitOutput forward(const torch::Tensor& images, const torch::Tensor& mask = {},
                    bool want_attention = false, double drop_path = 0.0,
                    at::Generator* gen = nullptr, const BatchShard& shard = {},
                    bool want_patches = true);
  /// (B, n_blocks * D): CLS of each of the last `n_blocks` blocks through the final norm,
  /// concatenated from the earliest to the last (DINO's linear-probe feature).
  torch::Tensor lastBlocksCls(const torch::Tensor& images, int64_t n_blocks);
  /// (B, depth, heads, n): the CLS row of every block's attention, first block first, without
  /// drop path (the inspector's choice of block; the last equals forward's cls_attention_heads).
  torch::Tensor clsAttentionPerBlock(const torch::Tensor& images);
  /// train.recompute_gelu for every block (BlockImpl::recompute_gelu).
  void setRecomputeGelu(bool on);
  /// train.fused_mlp for every block (BlockImpl::fused_mlp).
  void setFusedMlp(bool on);
  /// train.attention_kernel and train.attention_kernel_short for every block.
  void setAttentionKernels(AttentionKernel long_sequences, AttentionKernel short_sequences);
  /// Position embedding for a g×g grid: (1, 1 + g*g, D), bicubic-interpolated when g differs
  /// (upsample_bicubic2d's interpolation with align_corners false, as fp32 products by
  /// bicubicWeights along each axis).
  torch::Tensor positionEmbedding(int64_t grid);

  int64_t patch_size, dim, grid;
  /// dtype of the residual stream between the blocks: fp32, or bf16 under bf16_stream (set by the
  /// engine; then forward must run under autocast, which casts the fp32 weights of the matmuls).
  torch::ScalarType stream_dtype = torch::kFloat;
  /// train.fused_norm: residual adds and LayerNorms as one operation per junction
  /// (core/kernels/residual_norm; set by the engine on CUDA with autocast, by tests on the CPU).
  bool fused_norm = false;
  torch::nn::Linear patch_embed{nullptr};  ///< a conv with kernel = stride = P, as a matmul
  torch::Tensor cls_token, pos_embed, mask_token;
  torch::nn::ModuleList blocks{nullptr};
  torch::nn::LayerNorm norm{nullptr};
};
TORCH_MODULE(Vit);

/// x: (B, T, parts·heads·d), e.g. a fused qkv projection → `parts` tensors (B, heads, T, d),
/// views of x. The backward pass writes the gradients into x's layout in one copy.
std::vector<torch::Tensor> splitHeads(const torch::Tensor& x, int64_t parts, int64_t heads);

/// fc(gelu(a)), the second half of a transformer MLP, keeping only `a` for the backward pass,
/// which recomputes gelu(a) (one elementwise pass) instead of storing it: per block and token,
/// 4·D of the ~18·D values the autocast step stores. The same values and gradients as the
/// unfused operations; under CUDA autocast it takes autocast's cached bf16 copies of the weights.
/// `with_bias` false: fc's bias is not added (nor given a gradient) here.
torch::Tensor geluLinear(const torch::Tensor& a, torch::nn::LinearImpl& fc,
                         const std::string& approximate = "none", bool with_bias = true);

/// model.gelu ("erf" or "tanh") → torch::gelu's `approximate` ("none" or "tanh").
std::string geluApproximate(const std::string& kind);

/// (out, in) fp32: row i holds the weights with which bicubic interpolation (align_corners
/// false, A = −0.75, indices clamped at the border: upsample_bicubic2d's) makes output sample i
/// of `out` from `in` samples along one axis.
torch::Tensor bicubicWeights(int64_t in, int64_t out);

/// Truncated normal N(0, std) clipped at two standard deviations, in place.
void truncNormal_(torch::Tensor& t, double std);

}  // namespace mst
