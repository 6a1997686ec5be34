/// @brief Batched multi-crop augmentation on the training device (METHOD.md step 1).
#pragma once

#include <vector>

#include <torch/torch.h>

#include "core/config/config.h"
#include "core/dist/batch_shard.h"

namespace mst {

struct Views {
  torch::Tensor globals;  ///< (2B, C, G, G) normalised; rows [0,B) = g1, [B,2B) = g2
  torch::Tensor locals;   ///< (N*B, C, L, L) normalised; rows [jB,(j+1)B) = local crop j
};

/// Every random choice is drawn from the generator passed in, in batches: one call per
/// augmentation per crop set, never a per-image loop. Under data parallelism `shard` says which
/// rows of the global batch the images are: parameters are drawn for the global batch and this
/// rank keeps its rows, so N ranks see exactly the crops one process would for the whole batch.
class MultiCrop {
 public:
  MultiCrop(const CropConfig& crops, const AugmentConfig& augment, int64_t channels,
            std::vector<double> mean, std::vector<double> std);

  /// images: (B, C_in, H, W) uint8 or float in [0,1] on the training device → Views.
  Views operator()(const torch::Tensor& images, at::Generator& gen,
                   const BatchShard& shard = {}) const;

  /// Channel conversion + [0,1] scaling only: (B, C_in, H, W) → (B, channels, H, W) float.
  torch::Tensor toFloat(const torch::Tensor& images) const;
  /// (x - mean) / std and its inverse, per channel.
  torch::Tensor normalize(const torch::Tensor& x) const;
  torch::Tensor denormalize(const torch::Tensor& x) const;

  /// Random-resized crops: (B, C, H, W) → (B, C, size, size), area fraction in [smin, smax],
  /// aspect ratio in [3/4, 4/3], horizontal flip with probability flip_p.
  torch::Tensor randomResizedCrop(const torch::Tensor& x, int64_t size, double smin, double smax,
                                  at::Generator& gen, const BatchShard& shard = {}) const;
  /// Per-sample Gaussian blur, applied to each row with probability p.
  torch::Tensor gaussianBlur(const torch::Tensor& x, double p, at::Generator& gen,
                             const BatchShard& shard = {}) const;
  torch::Tensor colorJitter(const torch::Tensor& x, at::Generator& gen,
                            const BatchShard& shard = {}) const;
  torch::Tensor randomGrayscale(const torch::Tensor& x, at::Generator& gen,
                                const BatchShard& shard = {}) const;
  torch::Tensor solarize(const torch::Tensor& x, double p, at::Generator& gen,
                         const BatchShard& shard = {}) const;

 private:
  CropConfig crops_;
  AugmentConfig augment_;
  int64_t channels_;
  std::vector<double> mean_, std_;
  /// (1, C, 1, 1) mean and std on the last device and dtype asked for: made once, so that a step
  /// copies nothing from the host (a CUDA-graph capture forbids such copies).
  torch::Tensor statistic(const std::vector<double>& values, torch::Tensor& cache,
                          const torch::TensorOptions& options) const;
  mutable torch::Tensor mean_cache_, std_cache_;
};

}  // namespace mst
