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

class Communicator;

/// Channel widths of the decoder stages: config.decoder_widths, or 256 halving per stage.
std::vector<int64_t> decoderWidths(const ModelConfig& config);

class DecoderImpl : public torch::nn::Module {
 public:
  explicit DecoderImpl(const ModelConfig& config);
  /// patches: (B, n, D) with n = g*g → image (B, C, g*P, g*P) in normalised units.
  torch::Tensor forward(const torch::Tensor& patches);
  /// Data parallel: in training mode, BatchNorm statistics come from every rank's rows (SyncBN,
  /// paper App. C), so N ranks normalise as one process on the global batch would. nullptr
  /// (the default) = plain BatchNorm. `comm` must outlive the decoder's use.
  void setSync(Communicator* comm) { sync_ = comm; }

  torch::nn::Sequential stages{nullptr};
  torch::nn::Conv2d out{nullptr};
  /// Each upsampling and the convolution after it as upsampleConv2x (the default); false = the
  /// literal upsample-then-convolve, kept as the reference the tests compare with.
  bool subpixel = true;

 private:
  Communicator* sync_ = nullptr;
};
TORCH_MODULE(Decoder);

}  // namespace mst
