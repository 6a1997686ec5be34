/// @brief ImageFolder: one subfolder per class, images decoded on demand with OpenCV.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/data/dataset.h"

namespace mst {

/// `root/train/<class>/*.{jpg,jpeg,png,bmp,webp}` and `root/val/<class>/...`; without a `train/`
/// subfolder `root` itself is the training split and there is no test split. Only the file list is
/// held (ImageNet does not fit in memory); read() decodes, resizes the shorter side to `load_size`
/// and centre-crops to load_size x load_size. read() is const and safe from any thread.
class ImageFolder : public Dataset {
 public:
  ImageFolder(const std::string& root, bool train, int64_t load_size);

  int64_t size() const override { return static_cast<int64_t>(files_.size()); }
  ImageShape shape() const override { return {3, load_size_, load_size_}; }
  int64_t numClasses() const override { return static_cast<int64_t>(classes_.size()); }
  std::vector<std::string> classNames() const override { return classes_; }
  int64_t label(int64_t index) const override;
  bool read(int64_t index, uint8_t* dst) const override;
  std::vector<double> defaultMean() const override { return {0.485, 0.456, 0.406}; }
  std::vector<double> defaultStd() const override { return {0.229, 0.224, 0.225}; }
  std::string describe() const override;

  /// Class names (sorted subfolder names of the training split); label i is classes()[i].
  const std::vector<std::string>& classes() const { return classes_; }
  /// Full path of image `index` (for error messages and tools).
  std::string filePath(int64_t index) const;

 private:
  bool train_;
  int64_t load_size_;
  std::string split_dir_;  ///< folder holding the class subfolders of this split
  std::vector<std::string> classes_;
  std::vector<std::string> files_;  ///< relative to split_dir_, sorted within each class
  std::vector<int32_t> labels_;
};

}  // namespace mst
