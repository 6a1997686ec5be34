/// @brief Global image decoder: patch tokens back to pixels through log2(P) upsampling stages.
#pragma once

#include <torch/torch.h>

#include "core/config/config.h"

namespace mst {

/// Channel widths of the decoder stages: config.decoder_widths, or 256 halving per stage.
std::vector<int64_t> decoderWidths(const ModelConfig& config);

class DecoderImpl : public torch::nn::Module {
 public:
  explicit DecoderImpl(const ModelConfig& config);
  /// patches: (B, n, D) with n = g*g → image (B, C, g*P, g*P) in normalised units.
  torch::Tensor forward(const torch::Tensor& patches);

  torch::nn::Sequential stages{nullptr};
  torch::nn::Conv2d out{nullptr};
};
TORCH_MODULE(Decoder);

}  // namespace mst
