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

/// The random choices of one crop set (one row per crop), drawn in the order the augmentations
/// run, before any pixel is touched: the ATen operations and the fused CUDA kernels
/// (train.fused_augment) apply the same draws.
struct CropDraws {
  torch::Tensor theta;  ///< (R, 2, 3) crop and flip, as affine_grid's matrices
  torch::Tensor jitter, brightness, contrast, saturation, hue;  ///< (R): drawn?, then factors
  torch::Tensor gray;      ///< (R) random grayscale drawn
  torch::Tensor blur;      ///< (R, 2 radius + 1) taps (identity where not drawn); undefined: none
  int64_t radius = 0;
  torch::Tensor solarize;  ///< (R) drawn; undefined where the set is never solarised
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

  /// train.fused_augment: on CUDA, in builds with the kernels (core/kernels), apply each crop set
  /// in four fused passes instead of the ATen operations. Same draws, the same arithmetic.
  void setFused(bool on) { fused_ = on; }
  bool fused() const { return fused_; }

  /// The draws of `rows` crops of side `size` (what operator() draws for one crop set).
  CropDraws draw(int64_t rows, int64_t size, double smin, double smax, double blur_p,
                 double solarize_p, at::Generator& gen, const BatchShard& shard,
                 const torch::TensorOptions& options) const;
  /// Crops of `source` rows (row r from source row r % B) with `draws`, normalised, by the ATen
  /// operations; applyFused does the same with the CUDA kernels (false when it cannot: a CPU
  /// tensor, a build without them, other than 1 or 3 channels). A defined `out` on entry (a
  /// contiguous fp32 tensor of the crops' shape on the source's device, such as a slice of a
  /// larger batch) receives the crops in place; otherwise `out` is set to a new tensor.
  torch::Tensor apply(const torch::Tensor& source, const CropDraws& draws, int64_t size) const;
  bool applyFused(const torch::Tensor& source, const CropDraws& draws, int64_t size,
                  torch::Tensor& out) const;
  /// The fused passes' arithmetic on the host (CPU tensors): the kernels' per-pixel functions in
  /// plain loops, which the tests compare with apply().
  torch::Tensor applyOnHost(const torch::Tensor& source, const CropDraws& draws,
                            int64_t size) const;

  /// Channel conversion + [0,1] scaling only: (B, C_in, H, W) → (B, channels, H, W) float.
  torch::Tensor toFloat(const torch::Tensor& images) const;
  /// (x - mean) / std and its inverse, per channel.
  torch::Tensor normalize(const torch::Tensor& x) const;
  torch::Tensor denormalize(const torch::Tensor& x) const;

  /// The ATen steps, given the draws. Random-resized crop: (B, C, H, W) → (B, C, size, size),
  /// area fraction in [smin, smax], aspect ratio in [3/4, 4/3], horizontal flip with
  /// probability flip_p (bilinear, reflection padding).
  torch::Tensor crop(const torch::Tensor& x, const CropDraws& d, int64_t size) const;
  torch::Tensor colorJitter(const torch::Tensor& x, const CropDraws& d) const;
  torch::Tensor randomGrayscale(const torch::Tensor& x, const CropDraws& d) const;
  /// Per-sample Gaussian blur (rows not drawn get the identity taps).
  torch::Tensor gaussianBlur(const torch::Tensor& x, const CropDraws& d) const;
  torch::Tensor solarize(const torch::Tensor& x, const CropDraws& d) const;

 private:
  bool fused_ = false;
  struct FusedCall;
  /// `on_host`: for augmentCropsOnHost, which needs every scratch; the kernels need `work` only
  /// for a blur and `work2` only for a radius whose blur tile does not fit in shared memory.
  /// A defined `out` becomes the output (applyFused's contract), else one is allocated.
  FusedCall prepareFused(const torch::Tensor& source, const CropDraws& draws, int64_t size,
                         bool on_host, const torch::Tensor& out = {}) const;
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
