/// @brief loadProbeImages / loadImageFolder (see inspect.h).
#include "core/inspect/inspect.h"

#include <algorithm>
#include <filesystem>

#include <torch/torch.h>
#if defined(MST_HAVE_OPENCV)
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#endif

#include "core/data/dataset.h"
#include "core/util/error.h"

namespace mst {
namespace fs = std::filesystem;

torch::Tensor loadProbeImages(const Config& config, const std::vector<int64_t>& indices) {
  auto dataset = openDataset(config.data, /*train=*/true);
  const auto shape = dataset->shape();
  auto images = torch::empty(
      {static_cast<int64_t>(indices.size()), shape.channels, shape.height, shape.width},
      torch::kUInt8);
  for (size_t i = 0; i < indices.size(); ++i) {
    if (indices[i] < 0 || indices[i] >= dataset->size())
      throw MstError("image index " + std::to_string(indices[i]) + " is outside the " +
                     std::to_string(dataset->size()) + " training images of " + config.data.path);
    if (!dataset->read(indices[i], images[static_cast<int64_t>(i)].data_ptr<uint8_t>()))
      throw MstError("training image " + std::to_string(indices[i]) + " of " + config.data.path +
                     " cannot be decoded");
  }
  return images;
}

torch::Tensor loadImageFolder(const Config& config, const std::string& folder, int64_t limit) {
#if defined(MST_HAVE_OPENCV)
  if (!fs::is_directory(folder)) throw MstError(folder + ": no such folder");
  static const std::vector<std::string> kSuffixes{".png", ".jpg", ".jpeg", ".bmp",
                                                  ".tif", ".tiff", ".webp"};
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(folder)) {
    std::string ext = entry.path().extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
    if (entry.is_regular_file() &&
        std::find(kSuffixes.begin(), kSuffixes.end(), ext) != kSuffixes.end())
      files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end());
  if (files.empty()) throw MstError(folder + ": no image files (png, jpg, bmp, tif, webp)");
  if (static_cast<int64_t>(files.size()) > limit) files.resize(static_cast<size_t>(limit));
  const int64_t S = config.crops.global_size, C = config.model.channels;
  auto images = torch::empty({static_cast<int64_t>(files.size()), C, S, S}, torch::kUInt8);
  for (size_t i = 0; i < files.size(); ++i) {
    cv::Mat m = cv::imread(files[i].string(), C == 1 ? cv::IMREAD_GRAYSCALE : cv::IMREAD_COLOR);
    if (m.empty()) throw MstError(files[i].string() + ": cannot be decoded as an image");
    if (C == 3) cv::cvtColor(m, m, cv::COLOR_BGR2RGB);
    const double scale = static_cast<double>(S) / std::min(m.rows, m.cols);
    cv::Mat resized;
    cv::resize(m, resized,
               cv::Size(std::max<int>(static_cast<int>(S), static_cast<int>(m.cols * scale + 0.5)),
                        std::max<int>(static_cast<int>(S), static_cast<int>(m.rows * scale + 0.5))),
               0, 0, scale < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
    const int x0 = (resized.cols - static_cast<int>(S)) / 2, y0 = (resized.rows - static_cast<int>(S)) / 2;
    cv::Mat crop = resized(cv::Rect(x0, y0, static_cast<int>(S), static_cast<int>(S))).clone();
    // HWC → CHW
    auto hwc = torch::from_blob(crop.data, {S, S, C}, torch::kUInt8);
    images[static_cast<int64_t>(i)].copy_(hwc.permute({2, 0, 1}));
  }
  return images;
#else
  throw MstError(folder + ": reading image files needs OpenCV, which this build lacks");
#endif
}

}  // namespace mst
