/// @brief Linear probe on frozen features (paper App. E): SGD with momentum and a cosine schedule.
#pragma once

#include <torch/torch.h>

#include "core/eval/features.h"

namespace mst {

struct LinearProbeOptions {
  int64_t epochs = 100;
  int64_t batch = 256;
  double lr = 0.1;  ///< peak learning rate at batch 256 (scaled by batch/256), cosine to 0
  double momentum = 0.9;
  double weight_decay = 0.0;
  int64_t num_classes = 10;
  uint64_t seed = 0;
};

struct LinearProbeResult {
  double train_top1 = 0;         ///< percent, on the training features
  double test_top1 = 0;          ///< percent, on the test features
  torch::Tensor test_predicted;  ///< (M) int64 on the CPU: the class predicted for each test row
};

/// Trains a linear classifier on standardised `train` features (mean/std of the training set,
/// applied to both) and reports top-1 accuracies and the test predictions. Deterministic for a
/// given seed.
LinearProbeResult linearProbe(const FeatureSet& train, const FeatureSet& test,
                              const LinearProbeOptions& options);

}  // namespace mst
