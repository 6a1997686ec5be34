/// @brief DINO projection head implementation (see dino_head.h).
#include "core/model/dino_head.h"

#include "core/model/vit.h"

namespace mst {

DinoHeadImpl::DinoHeadImpl(const ModelConfig& c) : gelu(geluApproximate(c.gelu)) {
  fc1 = register_module("fc1", torch::nn::Linear(c.dim, c.head_hidden));
  fc2 = register_module("fc2", torch::nn::Linear(c.head_hidden, c.head_hidden));
  fc3 = register_module("fc3", torch::nn::Linear(c.head_hidden, c.head_bottleneck));
  for (auto* layer : {&fc1, &fc2, &fc3}) {
    truncNormal_((*layer)->weight, 0.02);
    torch::nn::init::zeros_((*layer)->bias);
  }
  last_v = register_parameter("last_v", torch::empty({c.out_dim, c.head_bottleneck}));
  truncNormal_(last_v, 0.02);
  // norm_last_layer: the gain is a constant 1, not a parameter, so nothing can move it.
  last_g = c.norm_last_layer ? register_buffer("last_g", torch::ones({c.out_dim, 1}))
                             : register_parameter("last_g", torch::ones({c.out_dim, 1}));
}

bool DinoHeadImpl::isLastLayer(const std::string& name) {
  return name.find("last_v") != std::string::npos || name.find("last_g") != std::string::npos;
}

torch::Tensor DinoHeadImpl::forward(const torch::Tensor& x) {
  auto h = fc3(torch::gelu(fc2(torch::gelu(fc1(x), gelu)), gelu));
  h = torch::nn::functional::normalize(h, torch::nn::functional::NormalizeFuncOptions().dim(-1));
  auto weight = last_v * (last_g / last_v.norm(2, {1}, /*keepdim=*/true));
  return torch::matmul(h, weight.t());
}

}  // namespace mst
