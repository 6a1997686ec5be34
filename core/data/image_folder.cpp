/// @brief ImageFolder: sorted class folders and file lists up front, decoding on demand with
/// OpenCV, or with libjpeg (JPEG files only) in builds without OpenCV.
#include "core/data/image_folder.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>

#include <torch/torch.h>

#ifdef MST_HAVE_OPENCV
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif

#include "core/data/jpeg_decode.h"
#include "core/util/error.h"

namespace mst {
namespace {

namespace fs = std::filesystem;

#ifdef MST_HAVE_OPENCV
constexpr bool kJpegOnly = false;
constexpr const char* kExtensions = ".jpg .jpeg .png .bmp .webp";
#else
constexpr bool kJpegOnly = true;  // libjpeg decodes JPEG alone
constexpr const char* kExtensions = ".jpg .jpeg; this build decodes with libjpeg, without OpenCV";
#endif

std::string lowerExtension(const fs::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext;
}

bool isJpegName(const fs::path& path) {
  const std::string ext = lowerExtension(path);
  return ext == ".jpg" || ext == ".jpeg";
}

bool isImageFile(const fs::path& path) {
  if (isJpegName(path)) return true;
  const std::string ext = lowerExtension(path);
  return !kJpegOnly && (ext == ".png" || ext == ".bmp" || ext == ".webp");
}

/// Sorted names of the visible subfolders: sorting makes label i the same on every machine.
std::vector<std::string> subfolderNames(const fs::path& dir) {
  std::vector<std::string> names;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    // Hidden folders (.ipynb_checkpoints, .DS_Store dirs) are tool litter, not classes.
    if (entry.is_directory() && !name.empty() && name[0] != '.') names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  return names;
}

/// Image files anywhere below `class_dir`, as paths relative to `split_dir`, sorted.
std::vector<std::string> imageFiles(const fs::path& class_dir, const fs::path& split_dir) {
  std::vector<std::string> files;
  for (const fs::directory_entry& entry : fs::recursive_directory_iterator(
           class_dir, fs::directory_options::follow_directory_symlink)) {
    if (entry.is_regular_file() && isImageFile(entry.path())) {
      files.push_back(entry.path().lexically_relative(split_dir).generic_string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

ImageFolder::ImageFolder(const std::string& root, bool train, int64_t load_size)
    : train_(train), load_size_(load_size) {
#ifndef MST_HAVE_OPENCV
  if (!jpegDecoderAvailable())
    throw MstError(
        "image_folder needs OpenCV (imgcodecs, imgproc) or libjpeg, which this build lacks; "
        "rebuild with one of them or use data.format fashion_mnist or cifar10 (data.path " +
        root + ")");
#endif
  if (load_size <= 0) {
    throw MstError("data.load_size must be positive for image_folder, got " +
                   std::to_string(load_size));
  }
  try {
    if (!fs::is_directory(root)) {
      throw MstError("image_folder: folder " + root + " does not exist (data.path)");
    }
    const fs::path train_dir = fs::path(root) / "train";
    const bool has_train = fs::is_directory(train_dir);
    const fs::path class_root = has_train ? train_dir : fs::path(root);
    classes_ = subfolderNames(class_root);
    if (classes_.empty()) {
      throw MstError("image_folder: folder " + class_root.string() +
                     " has no class subfolders (expected <class>/<image> files)");
    }

    fs::path split_dir = class_root;
    if (!train) {
      split_dir = fs::path(root) / "val";
      if (!has_train) {
        throw MstError("image_folder: no test split " + split_dir.string() + ": " + root +
                       " has no train/ subfolder, so it is itself the training split");
      }
      if (!fs::is_directory(split_dir)) {
        throw MstError("image_folder: test split folder " + split_dir.string() + " does not exist");
      }
      // Labels are indices into the training classes; a val class unknown to training has none.
      for (const std::string& name : subfolderNames(split_dir)) {
        if (!std::binary_search(classes_.begin(), classes_.end(), name)) {
          throw MstError("image_folder: " + (split_dir / name).string() +
                         " is not a class of the training split " + class_root.string());
        }
      }
    }
    split_dir_ = split_dir.string();

    for (size_t c = 0; c < classes_.size(); ++c) {
      const fs::path class_dir = split_dir / classes_[c];
      if (!fs::is_directory(class_dir)) continue;  // a val split may lack a class
      for (std::string& file : imageFiles(class_dir, split_dir)) {
        files_.push_back(std::move(file));
        labels_.push_back(static_cast<int32_t>(c));
      }
    }
  } catch (const fs::filesystem_error& error) {
    throw MstError("image_folder: " + error.path1().string() + ": " + error.code().message());
  }
  if (files_.empty()) {
    throw MstError("image_folder: folder " + split_dir_ + " has no images (" + kExtensions +
                   ") in its class subfolders");
  }
}

int64_t ImageFolder::label(int64_t index) const {
  TORCH_CHECK(index >= 0 && index < size(), "image_folder: index ", index, " out of range");
  return labels_[static_cast<size_t>(index)];
}

std::string ImageFolder::filePath(int64_t index) const {
  TORCH_CHECK(index >= 0 && index < size(), "image_folder: index ", index, " out of range");
  return (fs::path(split_dir_) / files_[static_cast<size_t>(index)]).string();
}

bool ImageFolder::read(int64_t index, uint8_t* dst) const {
#ifdef MST_HAVE_OPENCV
  const std::string path = filePath(index);
  // JPEGs through libjpeg-turbo where it is linked: the GPU machine's decoder, twice as fast per
  // image as cv::imread and the same pixels in both builds. Anything it cannot read (another
  // format under a .jpg name, CMYK) goes to OpenCV below.
  if (jpegDecoderAvailable() && isJpegName(path) &&
      decodeJpegCentreCrop(path, static_cast<int>(load_size_), dst))
    return true;
  // A corrupt file among good ones is data, not a bug: report it and let the loader replace it.
  try {
    // EXIF orientation ignored, as libjpeg and torchvision's PIL loader do: one image, one layout.
    const cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
    if (bgr.empty() || bgr.type() != CV_8UC3) return false;

    // Shorter side to load_size, then a centre crop: keeps the aspect ratio (no squashing).
    const int side = static_cast<int>(load_size_);
    const double scale = double(side) / std::min(bgr.rows, bgr.cols);
    const int height = std::max(side, static_cast<int>(std::lround(bgr.rows * scale)));
    const int width = std::max(side, static_cast<int>(std::lround(bgr.cols * scale)));
    cv::Mat resized = bgr;
    if (height != bgr.rows || width != bgr.cols) {
      // INTER_AREA averages when shrinking (no aliasing); cubic is sharper when enlarging.
      const int interpolation = scale < 1.0 ? cv::INTER_AREA : cv::INTER_CUBIC;
      cv::resize(bgr, resized, cv::Size(width, height), 0, 0, interpolation);
    }
    const cv::Mat crop = resized(cv::Rect((width - side) / 2, (height - side) / 2, side, side));

    // Splitting into the reversed planes of dst gives RGB CHW in one pass; the Mats wrap dst, so
    // split() writes in place (create() keeps a buffer of the right size and type).
    const size_t plane = size_t(side) * side;
    cv::Mat planes[3] = {cv::Mat(side, side, CV_8UC1, dst + 2 * plane),
                         cv::Mat(side, side, CV_8UC1, dst + plane),
                         cv::Mat(side, side, CV_8UC1, dst)};
    cv::split(crop, planes);
    return true;
  } catch (const cv::Exception&) {
    return false;
  }
#else
  // Shorter side to load_size and a centre crop, as above; a corrupt file reads as false.
  return decodeJpegCentreCrop(filePath(index), static_cast<int>(load_size_), dst);
#endif
}

std::string ImageFolder::describe() const {
  return std::string("image_folder ") + (train_ ? "train" : "test") + " (" +
         std::to_string(size()) + " images, " + std::to_string(numClasses()) + " classes) from " +
         split_dir_;
}

}  // namespace mst
