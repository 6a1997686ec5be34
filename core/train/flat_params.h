/// @brief Parameters and gradients packed into one contiguous buffer each.
///
/// The optimiser, the EMA, gradient clipping, checkpoints and (later) all-reduce then touch one
/// tensor instead of hundreds: a handful of kernels per step whatever the depth of the model.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace mst {

struct FlatSlice {
  std::string name;
  int64_t offset = 0, numel = 0;
  std::vector<int64_t> shape;
};

class FlatParams {
 public:
  FlatParams() = default;
  /// Moves every parameter's storage into one flat buffer (values kept) and, when `with_grads`,
  /// points each parameter's .grad at a slice of one flat gradient buffer, so that backward
  /// accumulates straight into it (AccumulateGrad adds in place into a defined .grad).
  FlatParams(const std::vector<std::pair<std::string, torch::Tensor>>& named, bool with_grads);

  torch::Tensor& values() { return values_; }
  torch::Tensor& grads() { return grads_; }
  const torch::Tensor& values() const { return values_; }
  const std::vector<FlatSlice>& slices() const { return slices_; }
  int64_t numel() const { return values_.defined() ? values_.numel() : 0; }
  /// 1 for parameters that get weight decay (matrices), 0 for biases, norms, tokens, positions.
  torch::Tensor decayMask() const;

 private:
  torch::Tensor values_, grads_;
  std::vector<FlatSlice> slices_;
};

}  // namespace mst
