/// @brief Frozen features of a whole data split, for k-NN and the linear probe.
#pragma once

#include <functional>

#include <torch/torch.h>

#include "core/data/dataset.h"

namespace mst {

class Engine;

struct FeatureSet {
  torch::Tensor features;  ///< (N, F) float32 on the CPU
  torch::Tensor labels;    ///< (N) int64
  int64_t corrupt = 0;     ///< images that could not be decoded: left out of both, as training does
};

/// Which representation to read out.
enum class FeatureKind {
  TeacherCls,       ///< the teacher's final-norm CLS token (k-NN, METHOD.md)
  TeacherLast4Cls,  ///< concatenated CLS of the last 4 blocks, each through the final norm (DINO)
  TeacherPatchMean, ///< mean of the teacher's final-norm patch tokens (diagnostic: what the
                    ///< reconstruction trains, against the CLS that the distillation trains)
  Pixels,           ///< the normalised raw pixels, flattened: the floor every result beats
};

/// Runs `kind` over the first `limit` images (0 = all) of `dataset` in batches of `batch`; an
/// image that cannot be decoded is skipped and counted (FeatureSet::corrupt), so N may be less.
/// `progress(done, total)` is called after each batch when given.
FeatureSet extractFeatures(Engine& engine, const Dataset& dataset, FeatureKind kind,
                           int64_t limit = 0, int64_t batch = 256,
                           const std::function<void(int64_t, int64_t)>& progress = {});

/// Rows scaled to unit L2 norm.
torch::Tensor l2Normalize(const torch::Tensor& x);

}  // namespace mst
