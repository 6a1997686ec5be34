/// @brief Launchers of the decoder's fused stage kernels (decoder_norm_cuda.cu), free of LibTorch
/// so that nvcc compiles them alone. One upsampling stage of the decoder ends with the folded
/// convolution's phase gather (decoder.cpp), BatchNorm in training mode and ReLU:
///   x[n, c, 2i+a, 2j+b] = y[n, (2a+b)C + c, i+a, j+b],   out = max(0, (x − μ_c) σ_c⁻¹ γ_c + β_c)
/// with μ, σ² the batch statistics of x. Forward: one pass over y for the statistics, one that
/// reads y and writes `out`; backward: one pass for the two column sums of BatchNorm's gradient
/// and one that writes y's gradient (zeros where no output reads y). Unfused these are a strided
/// gather, BatchNorm's two or three passes each way, ReLU's and the gather's backward scatter
/// into zeros, and two tensors kept for the backward pass where y alone is kept here.
/// y and out are channels-last (NHWC) arrays of T = bf16 or fp32, 16-byte aligned; the statistics
/// are summed in fp64 (each thread's own sums in fp32, centred on the channel's first value);
/// C · sizeof(T) is 16 bytes times a power of two up to 32
/// (decoderNormSupports).
#pragma once

#include <cstdint>

namespace mst::kernels {

struct DecoderNormArgs {
  const void* y = nullptr;   ///< (B, H+1, W+1, 4C): the 2×2 convolution over the padded input
  void* out = nullptr;       ///< (B, 2H, 2W, C) forward output
  const void* dout = nullptr;  ///< (B, 2H, 2W, C) backward: out's gradient
  void* dy = nullptr;        ///< (B, H+1, W+1, 4C) backward output
  const float* gamma = nullptr;  ///< (C)
  const float* beta = nullptr;   ///< (C)
  float* mean = nullptr;     ///< (C) forward: written; backward: read
  float* invstd = nullptr;   ///< (C) 1 / sqrt(σ² + eps), σ² biased; as mean
  float* running_mean = nullptr;  ///< (C) forward: updated in place, or nullptr
  float* running_var = nullptr;   ///< (C) unbiased σ², as running_mean
  float* dgamma = nullptr;   ///< (C) backward output
  float* dbeta = nullptr;    ///< (C) backward output
  double* partial = nullptr;  ///< (blocks, 2C) workspace
  int64_t batch = 0;
  int height = 0, width = 0;  ///< H, W: the input's size (the output is 2H × 2W)
  int channels = 0;           ///< C
  bool bf16 = true;           ///< T: bf16, or fp32
  double momentum = 0.1, eps = 1e-5;
  int blocks = 1;             ///< decoderNormBlocks(...): the partial workspace's first dimension
  void* stream = nullptr;     ///< cudaStream_t
};

/// Whether the kernels take C channels of this dtype (16-byte vectors, 1 to 32 per pixel).
bool decoderNormSupports(int channels, bool bf16);
/// The grid of the statistics passes (the partial workspace's first dimension).
int decoderNormBlocks(int64_t batch, int height, int width, int channels, bool bf16);
/// nullptr, or the CUDA error's text.
const char* decoderNormForward(const DecoderNormArgs& args);
const char* decoderNormBackward(const DecoderNormArgs& args);

}  // namespace mst::kernels
