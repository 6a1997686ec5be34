/// @brief Image data sets behind one interface: Fashion-MNIST IDX, CIFAR-10 binary, ImageFolder.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace mst {

struct DataConfig;

struct ImageShape {
  int64_t channels = 0;
  int64_t height = 0;
  int64_t width = 0;
  int64_t bytes() const { return channels * height * width; }
};

/// A labelled image set with a fixed image shape. Thread-safe for concurrent read() calls.
class Dataset {
 public:
  virtual ~Dataset() = default;
  virtual int64_t size() const = 0;
  virtual ImageShape shape() const = 0;
  virtual int64_t numClasses() const = 0;
  /// Name of each label, numClasses() of them (label i is classNames()[i]); empty when the data
  /// set does not know them.
  virtual std::vector<std::string> classNames() const { return {}; }
  virtual int64_t label(int64_t index) const = 0;
  /// Writes image `index` as uint8 CHW (shape().bytes() bytes) into `dst`. Returns false when the
  /// image cannot be decoded (a corrupt file among good ones): the loader skips and counts it.
  virtual bool read(int64_t index, uint8_t* dst) const = 0;
  /// Normalisation statistics in [0,1] units, one per channel.
  virtual std::vector<double> defaultMean() const = 0;
  virtual std::vector<double> defaultStd() const = 0;
  /// Human-readable description, e.g. "fashion_mnist train (60000 images)".
  virtual std::string describe() const = 0;
};

/// Opens the training (train=true) or test split named by `config` (format, path, limit; `limit`
/// applies to the training split only). Throws MstError naming the file or folder on a missing,
/// empty, truncated or wrongly-tagged input, before any training starts.
std::unique_ptr<Dataset> openDataset(const DataConfig& config, bool train);

}  // namespace mst
