/// @brief Launchers of the fused reconstruction loss (recon_loss_cuda.cu), free of LibTorch so
/// that nvcc compiles them alone. The decoder's last upsampling convolution ends with the phase
/// gather of upsampleConv2x,
///   x[n, c, 2i+a, 2j+b] = y[n, (2a+b)C + c, i+a, j+b],
/// and the loss is the mean |x − t| over the normalised global crops t (fp32). The forward pass
/// reads y and t once and leaves one partial sum per block, which a one-block kernel adds in a
/// fixed order (fp64), so the loss does not depend on scheduling; the backward pass writes y's
/// gradient, g · sign(x − t) / N where an output pixel reads y and 0 where none does (the
/// padding windows), from y and t again. Unfused this is the gather's copy, a cast to fp32, a
/// subtraction, abs and mean, and backward abs's product, the cast back and the gather's scatter
/// into zeros: about ten passes over the crops' pixels, against three here.
/// y: channels-last (NHWC) bf16 or fp32, (B, H+1, W+1, K) with K ≥ 4C channels, of which the
/// first 4C are the phases (the decoder pads them with zero filters to a multiple of 8, where
/// cuDNN's tensor-core kernels would otherwise pad and unpad every call); the rest are not read,
/// and their gradient is 0. t: contiguous NCHW fp32, (B, C, 2H, 2W).
#pragma once

#include <cstdint>

namespace mst::kernels {

struct ReconLossArgs {
  const void* y = nullptr;          ///< (B, H+1, W+1, K): the last convolution's phases
  const float* target = nullptr;    ///< (B, C, 2H, 2W)
  int64_t batch = 0;
  int64_t height = 0, width = 0;    ///< H, W: the convolution's input size (the output is 2H × 2W)
  int64_t channels = 0;             ///< C
  int64_t phase_channels = 0;       ///< K ≥ 4C, y's channels; 0: 4C
  bool bf16 = true;                 ///< y's dtype: bf16, else fp32
  int blocks = 1;                   ///< reconLossBlocks(...): the forward's grid and workspace
  double* partial = nullptr;        ///< forward: (blocks) workspace
  float* loss = nullptr;            ///< forward: one value, mean |x − t|
  const float* grad = nullptr;      ///< backward: the loss's gradient, one value on the device
  void* dy = nullptr;               ///< backward: like y
  void* stream = nullptr;           ///< cudaStream_t
};

/// The forward pass's grid (the partial workspace's length).
int reconLossBlocks(int64_t batch, int64_t height, int64_t width, int64_t channels);
/// nullptr, or the CUDA error's text.
const char* reconLossForward(const ReconLossArgs& args);
const char* reconLossBackward(const ReconLossArgs& args);

}  // namespace mst::kernels
