/// @brief Evaluation entry points shared by `mst eval`, `mst sweep`, the trainer and the GUI.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/config/config.h"
#include "core/eval/features.h"
#include "core/eval/linear_probe.h"

namespace mst {

class Engine;

struct EvalOptions {
  torch::Device device = torch::kCPU;
  std::vector<int64_t> ks{10, 20};
  double temperature = 0.07;
  int64_t train_limit = 0;  ///< training images in the k-NN bank / probe set; 0 = all
  int64_t test_limit = 0;   ///< test images; 0 = all
  int64_t batch = 256;
  /// Where `ks` came from, e.g. "--k": a k above the bank's size is then an error naming it
  /// (checked before any feature is computed). Empty: such a k votes with the whole bank (the
  /// trainer's periodic k-NN must not stop a run).
  std::string k_source;
  LinearProbeOptions linear;
};

/// A --checkpoint as given: a run folder stands for its checkpoint.pt (as `mst log` takes the
/// folder for its run.h5); anything else is returned as it is. MstError for a folder without one.
std::string checkpointFile(const std::string& checkpoint);

/// The config of a checkpoint (its meta record). MstError naming the file when unreadable.
nlohmann::json checkpointConfig(const std::string& checkpoint);

/// An engine for evaluation: weights from `checkpoint`, or freshly initialised from the config's
/// seed when `checkpoint` is empty.
std::unique_ptr<Engine> makeEvalEngine(const Config& config, const std::string& checkpoint,
                                       const torch::Device& device);

/// k-NN top-1 in percent (4 decimals) on the data set of `config` (train split = bank, test split
/// = queries): {"knn_top1": top-1 at the largest k, "knn_k": that k, "knn_top1_k<k>": top-1 at
/// each k, "features": …, "train": N, "test": M, and "corrupt_images" when images of either split
/// could not be decoded (they are left out, as training leaves them out)}, and the test split's
/// per-class keys at knn_k: "per_class_top1" (percent per class, null for a class without test
/// images), "confusion" (rows = true class, columns = predicted, counts) and "classes" (the
/// names, when the data set knows them); see class_readout.h.
nlohmann::json evaluateKnn(Engine& engine, const Config& config, FeatureKind kind,
                           const EvalOptions& options);

/// Linear probe top-1 in percent (4 decimals): {"linear_top1": …, "linear_train_top1": …,
/// "features": …, "epochs": …, "train": N, "test": M, "corrupt_images" as for evaluateKnn}, and
/// the per-class keys of the test split as for evaluateKnn.
nlohmann::json evaluateLinear(Engine& engine, const Config& config, FeatureKind kind,
                              const EvalOptions& options);

std::string featureKindName(FeatureKind kind);

/// `mst export` and the workbench's File menu: the teacher's (or, with `teacher` false, the
/// student's) ViT of `checkpoint` written to `out` as safetensors with timm's names and layouts
/// (`timm_names`) or the workbench's own. Returns the result line (out, tensors, parameters, step,
/// timm_kwargs, and a note for a tanh network). MstError naming the file on bad input; an `out`
/// already there is replaced whole or left as it was.
nlohmann::json exportBackbone(const std::string& checkpoint, const std::string& out, bool teacher,
                              bool timm_names);

}  // namespace mst
