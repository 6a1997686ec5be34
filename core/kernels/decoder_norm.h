/// @brief One upsampling stage of the decoder after its folded convolution, as one autograd
/// operation on CUDA (train.fused_decoder): the phase gather of upsampleConv2x, BatchNorm with
/// the batch's statistics (training mode, updating the running statistics) and ReLU
/// (decoder_norm_cuda.h has the arithmetic and the passes). The decoder calls it where
/// decoderNormApplies; elsewhere (the CPU, SyncBN, evaluation mode, other widths) it runs the
/// same three operations through ATen, which the tests compare the kernels with.
#pragma once

#include <torch/torch.h>

namespace mst {

/// Whether decoderNorm runs its kernels for y (the 2×2 convolution's output, (B, 4C, H+1, W+1))
/// and `bn`: CUDA, bf16 or fp32, channels-last and 16-byte aligned, C channels with
/// C · element size a power of two from 16 to 512 bytes (C ≤ 256), `bn` in training mode with
/// affine parameters, running statistics and a momentum, more than one value per channel, and a
/// build whose kernels run on the device.
bool decoderNormApplies(const torch::Tensor& y, int64_t C, const torch::nn::BatchNorm2dImpl& bn);

/// relu(bn(phaseGather(y, C))) for y as above, through the kernels (decoderNormApplies must
/// hold): (B, C, 2H, 2W) channels-last, y's dtype. Updates bn's running statistics and counts
/// the batch in num_batches_tracked, as BatchNorm2d's forward does. Gradients for y, γ and β;
/// it keeps y (not the gathered input, nor the output) for the backward pass. Its backward pass
/// is not differentiable again (no double backward).
torch::Tensor decoderNorm(const torch::Tensor& y, int64_t C, torch::nn::BatchNorm2dImpl& bn);

}  // namespace mst
