/// @brief Global image decoder: patch tokens back to pixels through log2(P) upsampling stages.
#pragma once

#include <torch/torch.h>

#include "core/config/config.h"

namespace mst {

/// Nearest-neighbour 2x upsampling (B, C, H, W) → (B, C, 2H, 2W) in x's dtype, keeping a
/// channels-last layout channels-last.
torch::Tensor upsampleNearest2x(const torch::Tensor& x);

/// conv(upsampleNearest2x(x)) for a 3x3, padding-1 convolution, without the upsampled tensor:
/// each output pixel of the 2x grid sees a 2x2 neighbourhood of x, so one 2x2 convolution of x
/// (padding 1) with four summed-weight kernels (4 × C_out channels) and a strided gather give the
/// same values (exactly, up to the order of floating-point sums) with a quarter of the input
/// traffic and about half the multiply-adds (4 taps per output pixel instead of 9).
torch::Tensor upsampleConv2x(const torch::Tensor& x, torch::nn::Conv2dImpl& conv);

/// upsampleConv2x's two steps: the 2×2 convolution over x padded by 1, (B, 4 C_out, H+1, W+1),
/// whose channel block 2a + b holds output phase (a, b) (its biases repeated per block); with
/// `channels` > 4 C_out, zero filters (and biases) fill the channels after the phases ...
torch::Tensor upsampleConvPhases(const torch::Tensor& x, torch::nn::Conv2dImpl& conv,
                                 int64_t channels = 0);
/// 4 C_out rounded up to a multiple of 8: the phase channels of the decoder's last convolution
/// where the kernels run (DecoderImpl::forward with gather_last false).
int64_t paddedPhaseChannels(int64_t C_out);
/// ... and the gather of those phases into (B, C, 2H, 2W), in y's memory format:
/// out[n, c, 2i+a, 2j+b] = y[n, (2a+b) C + c, i+a, j+b]. Its backward pass writes each of y's
/// elements once (zeros where no output reads it).
torch::Tensor phaseGather(const torch::Tensor& y, int64_t C);

class Communicator;

/// Channel widths of the decoder stages: config.decoder_widths, or 256 halving per stage.
std::vector<int64_t> decoderWidths(const ModelConfig& config);

class DecoderImpl : public torch::nn::Module {
 public:
  explicit DecoderImpl(const ModelConfig& config);
  /// patches: (B, n, D) with n = g*g → image (B, C, g*P, g*P) in normalised units.
  /// `gather_last` false, where endsWithPhases(): the last convolution's phases instead,
  /// (B, K, g*P/2 + 1, g*P/2 + 1), whose phaseGather(·, C) is the image (the fused
  /// reconstruction loss reads them as they are); K = 4C on the CPU, paddedPhaseChannels(C)
  /// where the kernels run (the extra channels are zeros).
  torch::Tensor forward(const torch::Tensor& patches, bool gather_last = true);
  /// Whether the decoder ends with an upsampling and its convolution, done as upsampleConv2x
  /// (subpixel): then forward(patches, false) returns that convolution's phases.
  bool endsWithPhases() const;
  /// Data parallel: in training mode, BatchNorm statistics come from every rank's rows (SyncBN,
  /// paper App. C), so N ranks normalise as one process on the global batch would. nullptr
  /// (the default) = plain BatchNorm. `comm` must outlive the decoder's use.
  void setSync(Communicator* comm) { sync_ = comm; }

  torch::nn::Sequential stages{nullptr};
  torch::nn::Conv2d out{nullptr};
  /// Each upsampling and the convolution after it as upsampleConv2x (the default); false = the
  /// literal upsample-then-convolve, kept as the reference the tests compare with.
  bool subpixel = true;
  /// train.fused_decoder (set by the engine on CUDA): each upsampling stage's phase gather,
  /// BatchNorm and ReLU as one operation (core/kernels/decoder_norm.h) where its kernels apply.
  bool fused_stages = false;
  /// The last forward pass's stages after an upsampling that BatchNorm + ReLU follow, and how
  /// many of them ran fused (a stage whose operands the kernels cannot take runs ATen's
  /// operations): what `mst bench` and `mst gpucheck` report, so that a silent fallback shows.
  int64_t norm_stages_last = 0;
  int64_t fused_stages_last = 0;

 private:
  Communicator* sync_ = nullptr;
};
TORCH_MODULE(Decoder);

}  // namespace mst
