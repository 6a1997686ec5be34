/// @brief DINO projection head: 3-layer MLP, L2 normalisation, weight-normalised last layer.
#pragma once

#include <torch/torch.h>

#include "core/config/config.h"

namespace mst {

class DinoHeadImpl : public torch::nn::Module {
 public:
  explicit DinoHeadImpl(const ModelConfig& config);
  /// x: (B, D) → logits (B, K).
  torch::Tensor forward(const torch::Tensor& x);
  /// Names (within this module) of the last layer's parameters, frozen during the first epoch(s).
  static bool isLastLayer(const std::string& name);

  torch::nn::Linear fc1{nullptr}, fc2{nullptr}, fc3{nullptr};
  torch::Tensor last_v;  ///< (K, bottleneck) direction of the weight-normalised last layer
  torch::Tensor last_g;  ///< (K, 1) gain; only a parameter when norm_last_layer is false
  std::string gelu;      ///< torch::gelu's `approximate` for model.gelu
};
TORCH_MODULE(DinoHead);

}  // namespace mst
