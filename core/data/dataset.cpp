/// @brief openDataset: picks the reader for data.format and applies data.limit to the train split.
#include "core/data/dataset.h"

#include <algorithm>

#include <torch/torch.h>

#include "core/config/config.h"
#include "core/data/cifar10.h"
#include "core/data/fashion_mnist.h"
#include "core/data/image_folder.h"
#include "core/util/error.h"

namespace mst {
namespace {

/// The first `limit` images of another data set. A view, not a copy, so the same indices read the
/// same images as in the full set (a limited run is a prefix of the full run's data).
class PrefixDataset : public Dataset {
 public:
  PrefixDataset(std::unique_ptr<Dataset> inner, int64_t limit)
      : inner_(std::move(inner)), limit_(limit) {}

  int64_t size() const override { return limit_; }
  ImageShape shape() const override { return inner_->shape(); }
  int64_t numClasses() const override { return inner_->numClasses(); }
  std::vector<std::string> classNames() const override { return inner_->classNames(); }
  int64_t label(int64_t index) const override {
    TORCH_CHECK(index >= 0 && index < limit_, "data.limit: index ", index, " out of range");
    return inner_->label(index);
  }
  bool read(int64_t index, uint8_t* dst) const override {
    TORCH_CHECK(index >= 0 && index < limit_, "data.limit: index ", index, " out of range");
    return inner_->read(index, dst);
  }
  std::vector<double> defaultMean() const override { return inner_->defaultMean(); }
  std::vector<double> defaultStd() const override { return inner_->defaultStd(); }
  std::string describe() const override {
    return inner_->describe() + ", first " + std::to_string(limit_) + " used (data.limit)";
  }

 private:
  std::unique_ptr<Dataset> inner_;
  int64_t limit_;
};

}  // namespace

std::unique_ptr<Dataset> openDataset(const DataConfig& config, bool train) {
  if (config.limit < 0) {
    throw MstError("data.limit must be >= 0 (0 = all images), got " + std::to_string(config.limit));
  }
  std::unique_ptr<Dataset> dataset;
  if (config.format == "fashion_mnist") {
    dataset = std::make_unique<FashionMnist>(config.path, train);
  } else if (config.format == "cifar10") {
    dataset = std::make_unique<Cifar10>(config.path, train);
  } else if (config.format == "image_folder") {
    dataset = std::make_unique<ImageFolder>(config.path, train, config.load_size);
  } else {
    throw MstError("data.format: unknown value '" + config.format +
                   "' (allowed: fashion_mnist, cifar10, image_folder)");
  }
  if (train && config.limit > 0 && config.limit < dataset->size()) {
    dataset = std::make_unique<PrefixDataset>(std::move(dataset), config.limit);
  }
  return dataset;
}

}  // namespace mst
