/// @brief The HDF5 run log (run.h5), written by the trainer and readable while written (SWMR).
///
/// Layout (DESIGN.md): `/config` attribute `json`; `/metrics/<name>`, `/metrics/step`,
/// `/metrics/epoch` (1-D, one row per logged step); `/eval/step`, `/eval/epoch`, `/eval/<name>`;
/// `/snapshots/step`, `/snapshots/{images,attention,mask_random,mask_guided,reconstruction}` (first
/// axis = snapshot); `/events/step` + `/events/message` (warnings such as skipped corrupt images,
/// NaN stops). `/events/message` and the `json` attributes are fixed-length UTF-8 strings (messages
/// are cut to 255 bytes): SWMR readers cannot follow variable-length data while it is written.
///
/// Every dataset of a group has one row per step of the group's `step` column. An append extends
/// the value columns before `step`, so a polling reader that trusts `len(step)` never reads a row
/// that is not written yet. With `probes == 0` the snapshot datasets still exist, with N = 0.
///
/// Threading: a RunLog is used by one thread (the trainer). The readers open the file per call and
/// may run on any thread or in another process.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

#include "core/log/log_reader.h"

namespace mst {

/// Per-probe-image views that the inspector and the snapshots share.
struct ProbeViews {
  torch::Tensor images;          ///< (N, C, H, W) float, unnormalised [0,1]
  torch::Tensor attention;       ///< (N, h, w) float, teacher last-block CLS attention, mean of heads
  torch::Tensor mask_random;     ///< (N, h, w) uint8
  torch::Tensor mask_guided;     ///< (N, h, w) uint8
  torch::Tensor reconstruction;  ///< (N, C, H, W) float, unnormalised [0,1]
  /// (N, heads, h, w) float, the attention per head (the inspector's head choice); may be
  /// undefined. Written to inspect files as /inspect/attention_heads, not to the run log.
  torch::Tensor attention_heads;
  /// (N, blocks, heads, h, w) float, every block's CLS attention per head, first block first
  /// (the inspector's block choice; Engine::probe with every_block); may be undefined. Written
  /// to inspect files as /inspect/attention_blocks, not to the run log.
  torch::Tensor attention_blocks;
};

struct RunLogShape {
  std::vector<std::string> metrics;  ///< names of /metrics/<name> besides step and epoch
  std::vector<std::string> evals;    ///< names of /eval/<name> besides step and epoch
  int64_t probes = 0, channels = 1, height = 28, width = 28, grid_h = 7, grid_w = 7;
};

class RunLog {
 public:
  /// Creates `path` (resume=false, an existing file is replaced only after the new one is
  /// complete) or reopens it (resume=true) and drops every row whose step is > `resume_step`, so
  /// that a resumed run appends without duplicating or losing steps. Throws MstError naming the
  /// file when it cannot be created or does not have the expected layout.
  ///
  /// Resume details: a missing file is created as new; the `/config` json is replaced by
  /// `config_json`; metric or eval names new to the file get a column whose earlier rows are NaN,
  /// and columns the file has beyond `shape` are kept and receive NaN; snapshot datasets must match
  /// the shape's probe dimensions. A file left by a killed writer (SWMR flag still set) is reopened
  /// as `h5clear -s` would, so two writers on one file are the caller's error to avoid.
  RunLog(const std::string& path, const std::string& config_json, const RunLogShape& shape,
         bool resume, int64_t resume_step);
  ~RunLog();
  RunLog(const RunLog&) = delete;
  RunLog& operator=(const RunLog&) = delete;

  /// One row: values missing from `values` are written as NaN; names that are not columns of the
  /// group are ignored. Flushed for SWMR readers.
  void appendMetrics(int64_t step, double epoch, const std::map<std::string, double>& values);
  void appendEval(int64_t step, double epoch, const std::map<std::string, double>& values);
  /// views: shapes as in ProbeViews with N = probes, C/H/W and h/w as in the RunLogShape; any
  /// device and dtype (floats stored as float32, masks as uint8).
  void appendSnapshot(int64_t step, const ProbeViews& views);
  void appendEvent(int64_t step, const std::string& message);
  void flush();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Writes the `mst inspect` layout: /inspect/{images,attention,mask_random,mask_guided,
/// reconstruction} and attribute `json` of the group /inspect/config. Written beside `path` and renamed over it, so an
/// existing file is never left half-written. views: N may be 0; masks stored as uint8.
void writeInspectFile(const std::string& path, const ProbeViews& views,
                      const std::string& config_json);

/// One column of a small table file: numbers (float64) or strings (fixed-length UTF-8).
struct TableColumn {
  std::string name;
  bool is_string = false;
  std::vector<double> numbers;
  std::vector<std::string> strings;
};

/// Writes /<group>/<column> 1-D datasets and attribute `json` on the group, to a temporary file
/// renamed into place (a reader never sees half a table). Used for sweep.h5.
void writeTableFile(const std::string& path, const std::string& group,
                    const std::vector<TableColumn>& columns, const std::string& json);

}  // namespace mst
