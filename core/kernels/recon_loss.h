/// @brief The reconstruction loss L_rec (Eq. 9) straight from the decoder's last convolution
/// phases, as one autograd operation on CUDA (part of train.fused_loss): the phase gather of
/// upsampleConv2x, the mean absolute error against the fp32 target, and backward y's gradient
/// (recon_loss_cuda.h has the passes). The engine calls it through
/// reconstructionLossFromPhases (core/train/losses.h), which runs ATen's gather, cast and
/// reconstructionLoss where this does not apply.
#pragma once

#include <torch/torch.h>

namespace mst {

/// Whether fusedReconstructionLoss runs its kernels for y (B, K, H+1, W+1: the last 2×2
/// convolution's output, whose first 4C of K ≥ 4C channels are the phases), C and the target
/// (B, C, 2H, 2W): a device the kernels take, y bf16 or
/// fp32, the target fp32, and a build whose kernels run on the device. Layouts do not matter
/// (y is made channels-last, the target contiguous, where they are not).
bool fusedReconstructionApplies(const torch::Tensor& y, int64_t C, const torch::Tensor& target);

/// mean |phaseGather(y, C) − target| (fp32, a scalar) through the kernels
/// (fusedReconstructionApplies must hold). y's gradient comes back in y's dtype, channels-last,
/// 0 in the channels past the phases; the target gets none. It keeps y and the target for the backward pass; the backward pass is
/// not differentiable again.
torch::Tensor fusedReconstructionLoss(const torch::Tensor& y, int64_t C, const torch::Tensor& target);

}  // namespace mst
