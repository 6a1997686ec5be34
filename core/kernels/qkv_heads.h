/// @brief The attention's q/k/v projection and its split into heads as one autograd operation:
/// x·Wᵀ + b (one matrix product, the bias in its epilogue) viewed as q, k and v, each
/// (B, heads, T, d). Its backward pass gathers the three per-head gradients into the
/// projection's (B·T, 3·D) layout and sums them for the bias gradient in one pass over them (the
/// kernel of heads_cuda.h; on CUDA in bf16), where autograd through linear and splitHeads stacks
/// them in one copy and reduces them again in another. Then the two matrix products of a linear's
/// backward pass. Elsewhere the same function runs in ATen operations: the tests check its
/// hand-written backward there.
#pragma once

#include <vector>

#include <torch/torch.h>

namespace mst {

/// x: (B, T, in) → {q, k, v}, each (B, heads, T, out / (3 · heads)), views of one (B, T, out)
/// product. Under CUDA autocast the weight and bias are autocast's cached bf16 copies and x is
/// cast to bf16, as autocast's linear does. fc must have a bias and out % (3 · heads) == 0.
std::vector<torch::Tensor> qkvHeads(const torch::Tensor& x, torch::nn::LinearImpl& fc,
                                    int64_t heads);

/// The gradients of `grads.size()` head views, (B, heads, T, d) each (an undefined one, an unused
/// output's, counts as zeros), laid out as the (B, T, parts·heads·d) tensor they are views of:
/// one stacking copy. The backward pass of splitHeads, and of qkvHeads without the kernel.
torch::Tensor stackHeadGradients(const std::vector<torch::Tensor>& grads, int64_t B, int64_t T,
                                 int64_t heads, int64_t d);

/// Whether the backward pass gathers these (B, heads, T, d) gradients with the kernel: CUDA,
/// bf16, d % 8 == 0, the channels contiguous and every other stride a multiple of 8 elements,
/// 16-byte aligned, a build whose kernels run on the device.
bool headsGatherKernelApplies(const std::vector<torch::Tensor>& grads);

}  // namespace mst
