/// @brief Inputs of the inspector and `mst inspect`: probe images by index or from image files.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <torch/types.h>

#include "core/config/config.h"

namespace mst {

/// Training-set images `indices` of the config's data set: (N, C, H, W) uint8. MstError naming
/// the index when it is past the end or cannot be decoded.
torch::Tensor loadProbeImages(const Config& config, const std::vector<int64_t>& indices);

/// The image files in `folder` (sorted by name; png, jpg, jpeg, bmp, tif, tiff, webp), at most
/// `limit`, decoded with OpenCV, converted to the model's channel count (gray or RGB), resized
/// (shorter side) and centre-cropped to the global crop size: (N, C, S, S) uint8. MstError naming
/// the folder when it has no images, or the file that cannot be decoded.
torch::Tensor loadImageFolder(const Config& config, const std::string& folder, int64_t limit = 64);

}  // namespace mst
