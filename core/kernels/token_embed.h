/// @brief The ViT's token embedding after the patch projection as one autograd operation on
/// CUDA (with train.fused_norm): the [MASK] token in the masked patches' place (Eq. 6), the CLS
/// token in front and the position embedding added, into the residual stream's dtype
/// (embed_cuda.h has the passes). Elsewhere tokenEmbed runs ATen's where, cat and add.
#pragma once

#include <torch/torch.h>

namespace mst {

/// cat(cls, where(mask, token, x)) + pos in `stream` for x (B, n, D) after the patch projection:
/// through the kernels where `fused` and fusedTokenEmbedApplies, else ATen's where, cat and add
/// (the tokens cast to x's dtype first, x and pos to a bf16 stream's). mask: (B, n) bool or
/// undefined; token, cls: (1, 1, D) fp32; pos: (1, n + 1, D) fp32.
torch::Tensor tokenEmbed(const torch::Tensor& x, const torch::Tensor& mask,
                         const torch::Tensor& token, const torch::Tensor& cls,
                         const torch::Tensor& pos, torch::ScalarType stream, bool fused);

/// Whether fusedTokenEmbed runs its kernels for x (B, n, D), mask ((B, n) bool or undefined),
/// the tokens (D values each), pos ((1, n + 1, D)) and the stream's dtype: a device the kernels
/// take, x bf16 or fp32, the stream fp32 or bf16, pos and the tokens fp32, D a positive
/// multiple of 4, every operand contiguous and 16-byte aligned, and a build whose kernels run
/// on the device.
bool fusedTokenEmbedApplies(const torch::Tensor& x, const torch::Tensor& mask,
                            const torch::Tensor& token, const torch::Tensor& cls,
                            const torch::Tensor& pos, torch::ScalarType stream);

/// cat(cls, where(mask, token, x)) + pos in `stream` (B, n + 1, D), rounded as ATen's path
/// rounds it: the tokens to x's dtype, every term to a bf16 stream's. token and cls: (1, 1, D)
/// fp32 (token unused without a mask). Gradients for x (its dtype, as ATen's) and for token,
/// cls and pos (fp32): sums in fp32 of the incoming gradient, where ATen rounds each term to
/// bf16 first (the tokens' with a bf16 x, the position embedding's in a bf16 stream).
torch::Tensor fusedTokenEmbed(const torch::Tensor& x, const torch::Tensor& mask,
                              const torch::Tensor& token, const torch::Tensor& cls,
                              const torch::Tensor& pos, torch::ScalarType stream);

}  // namespace mst
