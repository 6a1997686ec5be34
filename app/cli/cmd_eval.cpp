/// @brief `mst eval knn|linear`: representation quality of a checkpoint (or of random weights).
#include <algorithm>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "app/cli/common.h"
#include "core/eval/class_readout.h"
#include "core/eval/eval_record.h"
#include "core/eval/evaluate.h"
#include "core/train/engine.h"
#include "core/util/error.h"

namespace mst::cli {
namespace {

/// --k as typed: neighbour counts "10", "10,20" or a range "5-10", each >= 1.
std::vector<int64_t> parseKs(const std::string& text) {
  std::vector<int64_t> ks;
  try {
    ks = parseIndexList(text, "--k", /*max_count=*/1000);
  } catch (const MstError&) {
    throw MstError("--k expects neighbour counts >= 1, e.g. 20 or 10,20 (got '" + text + "')");
  }
  for (int64_t k : ks)
    if (k < 1) throw MstError("--k: a neighbour count must be >= 1 (got '" + text + "')");
  return ks;
}

}  // namespace

Command registerEval(CLI::App& app) {
  struct Options {
    Common common;
    std::string checkpoint;
    std::string ks;  // empty: the config's eval.k
    std::string features = "teacher";
    int64_t train_limit = 0, test_limit = 0, epochs = 100;
    double lr = 0.1;
    int blocks = 1;
    bool record = false;
  };
  auto o = std::make_shared<Options>();
  auto* cmd = app.add_subcommand(
      "eval",
      "k-NN or linear-probe top-1 on the test split, read out against the whole training split "
      "(data.limit does not apply: that is the protocol; --train-limit shrinks it)");
  cmd->require_subcommand(1);
  auto* knn = cmd->add_subcommand(
      "knn",
      "Weighted k-NN on L2-normalised features (App. D). Prints knn_top1_k<k> for each --k and "
      "knn_top1 = the top-1 at the largest k (knn_k names it), in percent");
  auto* linear = cmd->add_subcommand("linear", "Linear classifier on frozen features (App. E)");
  for (auto* sub : {knn, linear}) {
    sub->footer(
        "Features: teacher_cls (the teacher's final CLS token), teacher_last4_cls (--blocks 4: the "
        "CLS of its last 4 blocks, concatenated), teacher_patch_mean (--features patches: its mean "
        "patch token), pixels (the normalised raw pixels). The training split is read whole "
        "whatever data.limit says (the protocol); --train-limit alone shrinks it. Undecodable "
        "images are skipped and counted (corrupt_images). Per class on the test split (for k-NN at "
        "knn_k): per_class_top1 (null for a class without test images), confusion (rows = true "
        "class, columns = predicted) and classes (their names); a table of them goes to stderr.");
    o->common.add(sub);
    sub->add_option("--checkpoint", o->checkpoint,
                    "Checkpoint, or a run folder holding checkpoint.pt (its config is the base); "
                    "without it, random weights from train.seed");
    sub->add_option("--features", o->features,
                    "teacher (CLS) | patches (mean patch token, a diagnostic) | pixels")
        ->check(CLI::IsMember({"teacher", "patches", "pixels"}));
    sub->add_option("--train-limit", o->train_limit,
                    sub == knn ? "Training images in the k-NN bank, the first N (0 = the whole "
                                 "training split, whatever data.limit says)"
                               : "The probe's training images, the first N (0 = the whole "
                                 "training split, whatever data.limit says)")
        ->check(integerAtLeast(0));
    sub->add_option("--test-limit", o->test_limit, "Test images used, the first N (0 = all)")
        ->check(integerAtLeast(0));
    sub->add_flag("--record", o->record,
                  "Also merge the result into eval.json beside the checkpoint (the workbench's "
                  "run list shows it)");
  }
  knn->add_option("--k", o->ks,
                  "Neighbour counts, e.g. 10,20 (each at most the bank's size); knn_top1 is the "
                  "largest k's")
      ->default_str("the config's eval.k");
  linear->add_option("--epochs", o->epochs, "Probe training epochs")->check(integerAtLeast(1));
  linear->add_option("--lr", o->lr, "Peak SGD learning rate at batch 256")->check(positiveNumber());
  linear->add_option("--blocks", o->blocks, "CLS of the last N blocks, concatenated (1 or 4)")
      ->check(CLI::IsMember({1, 4}));
  return {cmd, [o, knn] {
            // Every flag is checked before the checkpoint and the data are read.
            auto ks = *knn && !o->ks.empty() ? parseKs(o->ks) : std::vector<int64_t>{};
            if (o->record && o->checkpoint.empty())
              throw MstError("--record needs --checkpoint: eval.json is written beside it");
            if (!o->checkpoint.empty()) o->checkpoint = checkpointFile(o->checkpoint);
            // A damaged eval.json is named now, not after minutes of computing; the weights are
            // dated before they are read (a checkpoint written meanwhile makes the record stale).
            const int64_t weights_mtime = o->record ? checkpointMtime(o->checkpoint) : 0;
            const std::string weights_fingerprint =
                o->record ? checkpointFingerprint(o->checkpoint) : std::string();
            if (o->record) checkEvalRecord(o->checkpoint);
            nlohmann::json base = o->checkpoint.empty() ? nlohmann::json::object()
                                                        : checkpointConfig(o->checkpoint);
            auto config = o->common.config(base);
            // Without --k, the k that sweeps and the in-training k-NN use.
            const bool k_given = !ks.empty();
            if (*knn && !k_given) ks = {config.eval.k};
            o->common.applyThreads(config);
            auto device = o->common.device();
            auto engine = makeEvalEngine(config, o->checkpoint, device);
            EvalOptions eo;
            eo.device = device;
            eo.train_limit = o->train_limit;
            eo.test_limit = o->test_limit;
            eo.temperature = config.eval.temperature;
            if (*knn) eo.ks = ks;
            eo.k_source = k_given ? "--k" : "config key eval.k";
            eo.linear.epochs = o->epochs;
            eo.linear.lr = o->lr;
            eo.linear.seed = static_cast<uint64_t>(config.train.seed);
            FeatureKind kind = o->features == "pixels"    ? FeatureKind::Pixels
                               : o->features == "patches" ? FeatureKind::TeacherPatchMean
                               : o->blocks >= 4           ? FeatureKind::TeacherLast4Cls
                                                          : FeatureKind::TeacherCls;
            nlohmann::json result = *knn ? evaluateKnn(*engine, config, kind, eo)
                                         : evaluateLinear(*engine, config, kind, eo);
            // The table for people on stderr; stdout keeps its one JSON line.
            std::cerr << perClassTable(result, *knn ? "k-NN top-1 at k = " +
                                                          std::to_string(result["knn_k"].get<int64_t>())
                                                    : "linear probe top-1")
                      << std::flush;
            // Raw pixels have no weights; otherwise the checkpoint read, or fresh weights.
            result["checkpoint"] = kind == FeatureKind::Pixels ? nlohmann::json()
                                   : o->checkpoint.empty()     ? nlohmann::json("random init")
                                                               : nlohmann::json(o->checkpoint);
            if (o->record) {
              // The paper's protocol: every training and test image, 100 probe epochs.
              nlohmann::json entry = result;
              entry["full_protocol"] =
                  o->train_limit == 0 && o->test_limit == 0 && (*knn || o->epochs == 100);
              try {
                result["recorded_in"] = recordEvaluation(
                    o->checkpoint, evalRecordKey(*knn ? "knn" : "linear", o->features, o->blocks),
                    entry, weights_mtime, weights_fingerprint);
              } catch (const MstError&) {
                printResult(result);  // the computed result is not lost with the record
                throw;
              }
            }
            printResult(result);
          }};
}

}  // namespace mst::cli
