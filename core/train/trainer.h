/// @brief The training run: data, engine, run log, checkpoints, reported through an observer.
#pragma once

#include <atomic>
#include <map>
#include <string>

#include <torch/torch.h>

#include "core/config/config.h"
#include "core/dist/dist_context.h"
#include "core/log/run_log.h"

namespace mst {

class Engine;

struct TrainProgress {
  int64_t step = 0;         ///< steps completed
  int64_t total_steps = 0;  ///< steps of the full run (schedules are laid out for it)
  int64_t target_steps = 0; ///< where this invocation stops (max-steps or the full run)
  double epoch = 0;
  double img_s = 0;  ///< images per second over the recent steps (all ranks together)
  double eta_s = 0;  ///< to target_steps
  /// Data parallel: each rank's images per second at the last logged step (index = rank).
  std::vector<double> rank_img_s;
  double loss = 0, loss_ce = 0, loss_rec = 0;
  bool has_loss = false;  ///< loss* hold a logged step's values (none before the first log row)
};

/// Plain C++ observer: the engine never talks to a UI. Called on the training thread; an
/// implementation that feeds a UI must hand the data over (queued signals), not draw.
class TrainObserver {
 public:
  virtual ~TrainObserver() = default;
  virtual void onStart(const TrainProgress&) {}
  virtual void onProgress(const TrainProgress&) {}
  virtual void onMetrics(int64_t step, double epoch, const std::map<std::string, double>&) {}
  virtual void onSnapshot(int64_t step, const ProbeViews&) {}
  /// k-NN during training (eval.every_epochs): {"knn_top1": percent}.
  virtual void onEval(int64_t step, double epoch, const std::map<std::string, double>&) {}
  virtual void onMessage(const std::string&) {}
  /// Called on the training thread before each step and every 20 ms while paused: the one moment
  /// the weights are still, e.g. for an inspector that probes the current weights. Keep it short.
  virtual void betweenSteps(Engine&) {}
};

struct TrainerOptions {
  std::string out_dir;
  bool resume = false;
  int64_t max_steps = 0;  ///< stop (with a checkpoint) once this many steps are done; 0 = run all
  /// Resume although the config changes the run's trajectory (another batch size, schedule,
  /// loss...; see config_diff.h). Without it such a resume is refused; with it every change is
  /// recorded as an event in run.h5. Operational keys (threads, arithmetic, logging) may always
  /// change and are recorded too.
  bool allow_config_change = false;
  torch::Device device = torch::kCPU;  ///< this rank's device when data-parallel
  /// This process's place in a data-parallel run; world_size 1 (the default) = one process.
  /// Rank 0 alone writes run.h5 and checkpoints, reports to the observer and reads a checkpoint
  /// to resume from; train.batch_size is per rank.
  DistContext dist;
};

struct TrainSummary {
  int64_t steps = 0, total_steps = 0;
  double epoch = 0;
  double loss = 0, loss_ce = 0, loss_rec = 0;
  double img_s = 0;
  int64_t steps_run = 0;  ///< steps this invocation ran (0: loss* and img_s mean nothing)
  bool finished = false;  ///< the full schedule is done
  bool stopped = false;   ///< stopped by the caller's flag
  int64_t corrupt_images = 0;
  std::string checkpoint, log;
};

/// The one-line error for an out-of-memory step (CUDA or host): the batch size and what to lower.
/// `step` as the log numbers it (from 1); `checkpoint` empty when none was written yet.
std::string outOfMemoryMessage(const Config& config, const torch::Device& device, int64_t step,
                               const std::string& checkpoint);

/// Names of the per-step metrics written to /metrics in run.h5.
const std::vector<std::string>& metricNames();

class Trainer {
 public:
  Trainer(Config config, TrainerOptions options, TrainObserver* observer = nullptr);
  /// Runs until the schedule ends, max_steps is reached, or `*stop` becomes true (checked between
  /// steps; a checkpoint is written either way). While `*pause` is true no step starts.
  /// Data parallel: a rank's stop is voted on and every rank stops after the same step; `pause`
  /// is ignored (a paused rank would stall its peers into their timeout).
  /// Throws MstError on bad input and on a non-finite loss (naming the step and the term; the
  /// last good checkpoint is kept).
  TrainSummary run(const std::atomic<bool>* stop = nullptr,
                   const std::atomic<bool>* pause = nullptr);

 private:
  Config config_;
  TrainerOptions options_;
  TrainObserver* observer_;
};

}  // namespace mst
