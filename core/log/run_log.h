/// @brief The HDF5 run log (run.h5), written by the trainer and readable while written (SWMR).
///
/// Layout (DESIGN.md): `/config` attribute `json`; `/metrics/<name>`, `/metrics/step`,
/// `/metrics/epoch` (1-D, one row per logged step); `/eval/step`, `/eval/epoch`, `/eval/<name>`;
/// `/snapshots/step`, `/snapshots/{images,attention,mask_random,mask_guided,reconstruction}` (first
/// axis = snapshot); `/events/step` + `/events/message` (variable-length strings: warnings such as
/// skipped corrupt images, NaN stops).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <torch/types.h>

namespace mst {

/// Per-probe-image views that the inspector and the snapshots share.
struct ProbeViews {
  torch::Tensor images;          ///< (N, C, H, W) float, unnormalised [0,1]
  torch::Tensor attention;       ///< (N, h, w) float, teacher last-block CLS attention, mean of heads
  torch::Tensor mask_random;     ///< (N, h, w) uint8
  torch::Tensor mask_guided;     ///< (N, h, w) uint8
  torch::Tensor reconstruction;  ///< (N, C, H, W) float, unnormalised [0,1]
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
  RunLog(const std::string& path, const std::string& config_json, const RunLogShape& shape,
         bool resume, int64_t resume_step);
  ~RunLog();
  RunLog(const RunLog&) = delete;
  RunLog& operator=(const RunLog&) = delete;

  /// One row: values missing from `values` are written as NaN. Flushed for SWMR readers.
  void appendMetrics(int64_t step, double epoch, const std::map<std::string, double>& values);
  void appendEval(int64_t step, double epoch, const std::map<std::string, double>& values);
  void appendSnapshot(int64_t step, const ProbeViews& views);
  void appendEvent(int64_t step, const std::string& message);
  void flush();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Writes the `mst inspect` layout: /inspect/{images,attention,mask_random,mask_guided,
/// reconstruction} and attribute /inspect json.
void writeInspectFile(const std::string& path, const ProbeViews& views,
                      const std::string& config_json);

/// Readers (open read-only in SWMR mode, so they work on a file still being written).
std::vector<double> readLogDataset(const std::string& path, const std::string& dataset);
std::vector<std::string> listLogGroup(const std::string& path, const std::string& group);
std::string readLogAttribute(const std::string& path, const std::string& object,
                             const std::string& attribute);
/// Reads a dataset of any rank as float (uint8 converted); shape in `dims`.
std::vector<float> readLogArray(const std::string& path, const std::string& dataset,
                                std::vector<int64_t>* dims);

}  // namespace mst
