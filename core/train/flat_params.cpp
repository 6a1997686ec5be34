/// @brief FlatParams implementation (see flat_params.h).
#include "core/train/flat_params.h"

namespace mst {

FlatParams::FlatParams(const std::vector<std::pair<std::string, torch::Tensor>>& named,
                       bool with_grads) {
  torch::NoGradGuard guard;
  int64_t total = 0;
  for (const auto& [name, p] : named) {
    slices_.push_back({name, total, p.numel(), p.sizes().vec()});
    total += p.numel();
  }
  TORCH_CHECK(!named.empty(), "FlatParams: no parameters");
  auto options = named.front().second.options().requires_grad(false);
  values_ = torch::empty({total}, options);
  if (with_grads) grads_ = torch::zeros({total}, options);
  for (size_t i = 0; i < named.size(); ++i) {
    auto p = named[i].second;
    const auto& s = slices_[i];
    auto view = values_.narrow(0, s.offset, s.numel).view(s.shape);
    view.copy_(p);
    p.set_data(view);
    if (with_grads) p.mutable_grad() = grads_.narrow(0, s.offset, s.numel).view(s.shape);
  }
}

torch::Tensor FlatParams::decayMask() const {
  auto mask = torch::zeros({numel()}, values_.options());
  for (const auto& s : slices_) {
    bool is_token = s.name.find("cls_token") != std::string::npos ||
                    s.name.find("pos_embed") != std::string::npos ||
                    s.name.find("mask_token") != std::string::npos;
    if (s.shape.size() > 1 && !is_token) mask.narrow(0, s.offset, s.numel).fill_(1.0);
  }
  return mask;
}

}  // namespace mst
