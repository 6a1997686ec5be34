/// @brief Fashion-MNIST from its gzipped IDX files, held in memory as one uint8 tensor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

#include "core/data/dataset.h"

namespace mst {

/// Reads `<folder>/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz` (or the same names without
/// `.gz`). The whole split lives in memory, so read() is a memcpy and safe from any thread.
class FashionMnist : public Dataset {
 public:
  FashionMnist(const std::string& folder, bool train);

  int64_t size() const override { return images_.size(0); }
  ImageShape shape() const override;
  int64_t numClasses() const override { return 10; }
  std::vector<std::string> classNames() const override;
  int64_t label(int64_t index) const override;
  bool read(int64_t index, uint8_t* dst) const override;
  std::vector<double> defaultMean() const override { return {0.2860}; }
  std::vector<double> defaultStd() const override { return {0.3530}; }
  std::string describe() const override;

  /// images: (N, 1, 28, 28) uint8, the whole split
  const torch::Tensor& images() const { return images_; }

 private:
  bool train_;
  torch::Tensor images_;         ///< (N, 1, H, W) uint8
  std::vector<uint8_t> labels_;  ///< N labels in 0..9
};

}  // namespace mst
