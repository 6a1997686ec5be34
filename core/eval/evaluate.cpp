/// @brief Evaluation entry points (see evaluate.h).
#include "core/eval/evaluate.h"

#include "core/data/dataset.h"
#include "core/eval/knn.h"
#include "core/model/export.h"
#include "core/train/engine.h"
#include "core/util/error.h"

namespace mst {
namespace {

struct SplitFeatures {
  FeatureSet train, test;
  int64_t num_classes = 0;
};

/// Features of both splits; evaluation uses the whole training split (not data.limit) unless
/// EvalOptions limits it.
SplitFeatures splitFeatures(Engine& engine, const Config& config, FeatureKind kind,
                            const EvalOptions& o) {
  DataConfig data = config.data;
  data.limit = 0;
  auto train = openDataset(data, true);
  auto test = openDataset(data, false);
  return {extractFeatures(engine, *train, kind, o.train_limit, o.batch),
          extractFeatures(engine, *test, kind, o.test_limit, o.batch),
          std::max(train->numClasses(), test->numClasses())};
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
  auto splits = splitFeatures(engine, config, kind, o);
  const auto& bank = splits.train;
  const auto& queries = splits.test;
  KnnOptions ko;
  ko.ks = o.ks;
  ko.temperature = o.temperature;
  ko.num_classes = splits.num_classes;
  auto acc = knnAccuracy(l2Normalize(bank.features.to(o.device)), bank.labels,
                         l2Normalize(queries.features.to(o.device)), queries.labels, ko);
  nlohmann::json out;
  int64_t kmax = 0;
  for (auto& [k, a] : acc) {
    out["knn_top1_k" + std::to_string(k)] = a;
    if (k >= kmax) kmax = k, out["knn_top1"] = a;
  }
  out["features"] = featureKindName(kind);
  out["train"] = bank.labels.size(0);
  out["test"] = queries.labels.size(0);
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
  return {{"linear_top1", r.test_top1}, {"linear_train_top1", r.train_top1},
          {"features", featureKindName(kind)}, {"epochs", lo.epochs},
          {"train", train.labels.size(0)}, {"test", test.labels.size(0)}};
}

nlohmann::json exportBackbone(const std::string& checkpoint, const std::string& out, bool teacher,
                              bool timm_names) {
  const Config config = configFromJson(checkpointConfig(checkpoint), "checkpoint " + checkpoint);
  auto engine = makeEvalEngine(config, checkpoint, torch::kCPU);
  auto& vit = teacher ? *engine->teacher_vit : *engine->student_vit;
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
  nlohmann::json result{{"out", out},           {"network", network},
                        {"names", names},       {"tensors", tensors.size()},
                        {"parameters", parameters}, {"step", step},
                        {"timm_kwargs", kwargs}};
  if (config.model.gelu != "erf")
    result["note"] =
        "model.gelu=tanh: build the timm model with act_layer=timm.layers.activations.GELUTanh";
  return result;
}

}  // namespace mst
