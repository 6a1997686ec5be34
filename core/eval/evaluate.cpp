/// @brief Evaluation entry points (see evaluate.h).
#include "core/eval/evaluate.h"

#include <cmath>
#include <filesystem>
#include <functional>

#include "core/data/dataset.h"
#include "core/eval/class_readout.h"
#include "core/eval/knn.h"
#include "core/model/export.h"
#include "core/train/engine.h"
#include "core/util/error.h"

namespace mst {
namespace {

struct SplitFeatures {
  FeatureSet train, test;
  int64_t num_classes = 0;
  std::vector<std::string> class_names;  ///< the training split's; empty when unknown
};

/// Features of both splits; evaluation uses the whole training split (not data.limit) unless
/// EvalOptions limits it. `check_bank(n)` sees the bank's size before any feature is computed.
SplitFeatures splitFeatures(Engine& engine, const Config& config, FeatureKind kind,
                            const EvalOptions& o,
                            const std::function<void(int64_t)>& check_bank = {}) {
  if (o.train_limit < 0 || o.test_limit < 0)
    throw MstError("evaluation image limits must be >= 0 (0 = all), got " +
                   std::to_string(o.train_limit) + " training and " + std::to_string(o.test_limit) +
                   " test images");
  DataConfig data = config.data;
  data.limit = 0;
  auto train = openDataset(data, true);
  auto test = openDataset(data, false);
  if (check_bank)
    check_bank(o.train_limit > 0 ? std::min(o.train_limit, train->size()) : train->size());
  SplitFeatures out{extractFeatures(engine, *train, kind, o.train_limit, o.batch),
                    extractFeatures(engine, *test, kind, o.test_limit, o.batch),
                    std::max(train->numClasses(), test->numClasses()), train->classNames()};
  for (const auto& [set, split] : {std::pair{&out.train, "training"}, std::pair{&out.test, "test"}})
    if (set->labels.size(0) == 0)
      throw MstError("none of the " + std::to_string(set->corrupt) + " " + split +
                     " images read out of " + config.data.path + " could be decoded");
  return out;
}

/// Undecodable images left out of both splits, in the result line only when there were any
/// (training reports them as corrupt_images too).
void noteCorrupt(nlohmann::json& result, const SplitFeatures& splits) {
  if (const int64_t n = splits.train.corrupt + splits.test.corrupt; n > 0)
    result["corrupt_images"] = n;
}

/// The test split's per-class keys (class_readout.h) for `predicted` (M) against its labels.
nlohmann::json perClassKeys(const SplitFeatures& splits, const torch::Tensor& predicted) {
  return perClassReadout(confusionMatrix(splits.test.labels, predicted, splits.num_classes),
                         splits.class_names);
}

}  // namespace

std::string featureKindName(FeatureKind kind) {
  switch (kind) {
    case FeatureKind::TeacherCls: return "teacher_cls";
    case FeatureKind::TeacherLast4Cls: return "teacher_last4_cls";
    case FeatureKind::TeacherPatchMean: return "teacher_patch_mean";
    case FeatureKind::Pixels: return "pixels";
  }
  return "?";
}

std::string checkpointFile(const std::string& checkpoint) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::is_directory(checkpoint, ec)) return checkpoint;
  const std::string file = (fs::path(checkpoint) / "checkpoint.pt").string();
  if (!fs::exists(file, ec))
    throw MstError("checkpoint " + checkpoint + " is a folder without a checkpoint.pt: give a run "
                   "folder that holds one, or the checkpoint file itself");
  return file;
}

nlohmann::json checkpointConfig(const std::string& checkpoint) {
  return readCheckpointMeta(checkpoint).at("config");
}

std::unique_ptr<Engine> makeEvalEngine(const Config& config, const std::string& checkpoint,
                                       const torch::Device& device) {
  auto train = openDataset(config.data, true);
  EngineOptions eo;
  eo.device = device;
  eo.mean = config.data.mean.empty() ? train->defaultMean() : config.data.mean;
  eo.std = config.data.std.empty() ? train->defaultStd() : config.data.std;
  auto engine = std::make_unique<Engine>(config, eo);
  if (!checkpoint.empty()) engine->loadCheckpoint(checkpoint);
  return engine;
}

nlohmann::json evaluateKnn(Engine& engine, const Config& config, FeatureKind kind,
                           const EvalOptions& o) {
  auto splits = splitFeatures(engine, config, kind, o, [&](int64_t bank_size) {
    if (o.k_source.empty()) return;
    for (int64_t k : o.ks)
      if (k > bank_size)
        throw MstError(o.k_source + " " + std::to_string(k) + " is more than the " +
                       std::to_string(bank_size) + " training images of the k-NN bank");
  });
  const auto& bank = splits.train;
  const auto& queries = splits.test;
  KnnOptions ko;
  ko.ks = o.ks;
  ko.temperature = o.temperature;
  ko.num_classes = splits.num_classes;
  const auto predicted = knnPredict(l2Normalize(bank.features.to(o.device)), bank.labels,
                                    l2Normalize(queries.features.to(o.device)), ko);
  nlohmann::json out;
  int64_t kmax = 0;
  for (auto& [k, p] : predicted) {
    const double a = roundPercent(top1Percent(p, queries.labels));
    out["knn_top1_k" + std::to_string(k)] = a;
    if (k >= kmax) kmax = k, out["knn_top1"] = a;
  }
  out["knn_k"] = kmax;
  out.update(perClassKeys(splits, predicted.at(kmax)));  // at the k that knn_top1 reports
  out["features"] = featureKindName(kind);
  out["train"] = bank.labels.size(0);
  out["test"] = queries.labels.size(0);
  noteCorrupt(out, splits);
  return out;
}

nlohmann::json evaluateLinear(Engine& engine, const Config& config, FeatureKind kind,
                              const EvalOptions& o) {
  auto splits = splitFeatures(engine, config, kind, o);
  const auto& train = splits.train;
  const auto& test = splits.test;
  LinearProbeOptions lo = o.linear;
  lo.num_classes = splits.num_classes;
  auto r = linearProbe(train, test, lo);
  nlohmann::json out{{"linear_top1", roundPercent(r.test_top1)},
                     {"linear_train_top1", roundPercent(r.train_top1)},
                     {"features", featureKindName(kind)}, {"epochs", lo.epochs},
                     {"train", train.labels.size(0)}, {"test", test.labels.size(0)}};
  out.update(perClassKeys(splits, r.test_predicted));
  noteCorrupt(out, splits);
  return out;
}

nlohmann::json exportBackbone(const std::string& checkpoint, const std::string& out, bool teacher,
                              bool timm_names) {
  Config config = configFromJson(checkpointConfig(checkpoint), "checkpoint " + checkpoint);
  // The weights alone, on the CPU: how the run computed (bf16, fused CUDA kernels, graphs) does
  // not change them, and the data set (only its normalisation, which the export does not use)
  // need not be on this machine.
  config.train.precision = "fp32";
  config.train.cuda_graph = false;
  config.train.fused_norm = config.train.fused_augment = config.train.fused_loss = "off";
  config.train.fused_decoder = config.train.fused_optimizer = "off";
  config.train.fused_mlp = false;
  config.train.recompute_gelu = "auto";
  EngineOptions eo;
  eo.mean.assign(static_cast<size_t>(config.model.channels), 0.5);
  eo.std.assign(static_cast<size_t>(config.model.channels), 0.25);
  Engine engine(config, eo);
  engine.loadCheckpoint(checkpoint);
  auto& vit = teacher ? *engine.teacher_vit : *engine.student_vit;
  const auto tensors = backboneTensors(vit, timm_names ? ExportNames::Timm : ExportNames::Mst);
  const int64_t step = readCheckpointMeta(checkpoint).value("step", int64_t{0});
  const auto kwargs = timmKwargs(config.model);
  const std::string network = teacher ? "teacher" : "student", names = timm_names ? "timm" : "mst";
  writeSafetensors(out, tensors,
                   {{"format", "mst-export-1"},
                    {"network", network},
                    {"names", names},
                    {"step", std::to_string(step)},
                    {"model", configToJson(config)["model"].dump()},
                    {"gelu", config.model.gelu},
                    {"timm_kwargs", kwargs.dump()}});
  int64_t parameters = 0;
  for (const auto& [name, t] : tensors) parameters += t.numel();
  nlohmann::json result{{"out", out},
                        {"network", network},
                        {"names", names},
                        {"tensors", tensors.size()},
                        {"parameters", parameters},
                        {"step", step},
                        {"timm_kwargs", kwargs}};
  std::string note;
  if (config.model.gelu != "erf")
    note = "model.gelu=tanh: build the timm model with act_layer=timm.layers.activations.GELUTanh";
  // timm sizes the MLP as int(dim * mlp_ratio); the workbench rounds to nearest.
  const auto timm_hidden = static_cast<int64_t>(config.model.dim * config.model.mlp_ratio);
  const auto hidden = static_cast<int64_t>(std::llround(config.model.dim * config.model.mlp_ratio));
  if (timm_hidden != hidden)
    note += std::string(note.empty() ? "" : "; ") + "the MLP is " + std::to_string(hidden) +
            " wide where timm's mlp_ratio gives " + std::to_string(timm_hidden) +
            ": choose mlp_ratio so that int(embed_dim * mlp_ratio) is the former";
  if (!note.empty()) result["note"] = note;
  return result;
}

}  // namespace mst
