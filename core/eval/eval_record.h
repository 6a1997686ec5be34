/// @brief eval.json beside a checkpoint: the read-outs measured on it (`mst eval ... --record`,
/// the workbench's Evaluate), kept per kind of read-out, so that a run carries its own results.
#pragma once

#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace mst {

/// The record's key for a read-out: "knn" or "linear", with "_pixels", "_patches" or "_4blocks"
/// for the other feature kinds ("knn_pixels", "linear_4blocks").
std::string evalRecordKey(const std::string& readout, const std::string& features, int blocks);

/// Merges `result` (the command's JSON line) under `key` into eval.json in the checkpoint's
/// folder, adding "recorded_at" (UTC, ISO 8601) and "checkpoint_mtime" (seconds since the epoch)
/// so that a later checkpoint shows the result as stale. Other keys are kept; the file is replaced
/// atomically under a lock (two evaluations of one run may record at once). MstError naming the
/// file when an existing eval.json cannot be read as a JSON object: it is left as it was.
/// Returns the path written.
std::string recordEvaluation(const std::string& checkpoint, const std::string& key,
                             nlohmann::json result);

/// A run folder's read-outs for display: the teacher-CLS k-NN and linear top-1 (percent) from its
/// eval.json, else from a sweep cell's result.json; `stale` when checkpoint.pt is newer than the
/// record it came from. Nothing (no error) for a folder without readable results.
struct RunReadouts {
  std::optional<double> knn_top1, linear_top1;
  bool stale = false;
  std::string source;  ///< the file the values came from
};
RunReadouts readRunReadouts(const std::string& run_dir);

}  // namespace mst
