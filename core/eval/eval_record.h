/// @brief eval.json beside a checkpoint: the read-outs measured on it (`mst eval ... --record`,
/// the workbench's Evaluate), kept per kind of read-out, so that a run carries its own results.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace mst {

/// The record's key for a read-out: "knn" or "linear", with "_pixels", "_patches" or "_4blocks"
/// for the other feature kinds ("knn_pixels", "linear_4blocks").
std::string evalRecordKey(const std::string& readout, const std::string& features, int blocks);

/// Seconds since the epoch of the checkpoint file's last write (0 when it cannot be read). Taken
/// before the weights are loaded, it dates the weights a result was computed from.
int64_t checkpointMtime(const std::string& checkpoint);

/// What the checkpoint holds, cheaply: a hash of its zip central directory, which lists every
/// record with its CRC-32, so changed weights change it while a copy (`cp -r`, which gives the
/// file a new mtime) keeps it. Reads only the file's tail. Empty when the file cannot be read or
/// is not a plain zip (ZIP64, damaged).
std::string checkpointFingerprint(const std::string& checkpoint);

/// Throws MstError naming eval.json in the checkpoint's folder when that file exists but is not a
/// JSON object (invalid JSON, or another value): checked before a read-out is computed, so that a
/// result is never computed and then not recorded.
void checkEvalRecord(const std::string& checkpoint);

/// Merges `result` (the command's JSON line) under `key` into eval.json in the checkpoint's
/// folder, adding "recorded_at" (UTC, ISO 8601) and "checkpoint_mtime" (`mtime`, from
/// checkpointMtime before the weights were read) so that a later checkpoint shows the result as
/// stale, and "checkpoint_fingerprint" (`fingerprint`, checkpointFingerprint taken at the same
/// time, when not empty): with it, a newer checkpoint whose fingerprint is the same (a copy of the
/// run folder) is not stale. Other keys are kept; the file is replaced atomically under a lock (two evaluations of
/// one run may record at once). MstError naming the file when an existing eval.json is damaged
/// (see checkEvalRecord): it is left as it was. Returns the path written.
std::string recordEvaluation(const std::string& checkpoint, const std::string& key,
                             nlohmann::json result, int64_t mtime,
                             const std::string& fingerprint = {});

/// One read-out's results per class of the test split, as `mst eval` records them
/// (per_class_top1, confusion, classes; see class_readout.h). Empty for a record from before
/// those keys; a key of the wrong shape is left out on its own, the others still read.
struct ClassReadout {
  /// Top-1 in percent of each class; nullopt for a class without test images.
  std::vector<std::optional<double>> top1;
  /// [true][predicted] image counts (rows = truth, columns = prediction), C x C; empty above
  /// kMaxConfusionClasses classes, where `mst eval` leaves the matrix out.
  std::vector<std::vector<int64_t>> confusion;
  /// C class names; empty when the data set has none.
  std::vector<std::string> classes;
  bool empty() const { return top1.empty(); }
};

/// A run folder's read-outs for display: the teacher-CLS k-NN and linear top-1 (percent) from its
/// eval.json, else from a sweep cell's result.json.
struct RunReadouts {
  std::optional<double> knn_top1, linear_top1;
  /// Per class, from eval.json only (a sweep's result.json has none).
  ClassReadout knn_classes, linear_classes;
  /// checkpoint.pt is newer than the weights one of the shown results came from.
  bool stale = false;
  /// One of the shown results used less than the whole protocol (--train-limit, --test-limit,
  /// fewer or more than 100 probe epochs).
  bool partial = false;
  std::string source;  ///< the file the values came from
  std::string detail;  ///< how each was measured ("k-NN: k = 20, bank 60000, test 10000; ...")
  std::string error;   ///< a damaged eval.json, named (the values are then result.json's or none)
};
RunReadouts readRunReadouts(const std::string& run_dir);

}  // namespace mst
