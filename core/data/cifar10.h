/// @brief CIFAR-10 from its binary batches, held in memory as one uint8 tensor.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

#include "core/data/dataset.h"

namespace mst {

/// Reads `data_batch_1..5.bin` (train) or `test_batch.bin` (test) from `folder` or from its
/// `cifar-10-batches-bin` subfolder. Records are 1 label byte + 3072 bytes of CHW pixels (R plane
/// first), which is already our layout, so read() is a memcpy and safe from any thread.
class Cifar10 : public Dataset {
 public:
  Cifar10(const std::string& folder, bool train);

  int64_t size() const override { return images_.size(0); }
  ImageShape shape() const override { return {3, 32, 32}; }
  int64_t numClasses() const override { return 10; }
  std::vector<std::string> classNames() const override;
  int64_t label(int64_t index) const override;
  bool read(int64_t index, uint8_t* dst) const override;
  std::vector<double> defaultMean() const override { return {0.4914, 0.4822, 0.4465}; }
  std::vector<double> defaultStd() const override { return {0.2470, 0.2435, 0.2616}; }
  std::string describe() const override;

  /// images: (N, 3, 32, 32) uint8, the whole split
  const torch::Tensor& images() const { return images_; }

 private:
  bool train_;
  torch::Tensor images_;         ///< (N, 3, 32, 32) uint8
  std::vector<uint8_t> labels_;  ///< N labels in 0..9
};

}  // namespace mst
