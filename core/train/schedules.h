/// @brief Per-step schedules of METHOD.md step 8: lr, weight decay, teacher momentum, τ_t.
#pragma once

#include <cstdint>

#include "core/config/config.h"

namespace mst {

struct ScheduleValues {
  double lr = 0, weight_decay = 0, momentum = 0, teacher_temp = 0;
  bool freeze_last_layer = false;
};

/// Values at step `step` of a run of `total_steps` with `steps_per_epoch` steps per epoch.
class Schedules {
 public:
  Schedules(const Config& config, int64_t steps_per_epoch, int64_t total_steps);
  ScheduleValues at(int64_t step) const;
  int64_t totalSteps() const { return total_; }
  int64_t stepsPerEpoch() const { return per_epoch_; }
  /// Effective warm-ups in steps after the short-run caps (10% / 30% of the run).
  int64_t lrWarmupSteps() const { return lr_warmup_; }
  int64_t teacherTempWarmupSteps() const { return temp_warmup_; }
  /// Steps at the start during which the head's last layer is frozen.
  int64_t freezeSteps() const { return freeze_steps_; }

 private:
  OptimConfig optim_;
  LossConfig loss_;
  double peak_lr_;
  int64_t per_epoch_, total_, lr_warmup_, temp_warmup_, freeze_steps_;
};

/// Cosine from `start` at t = 0 to `end` at t = span (clamped beyond).
double cosineValue(double start, double end, int64_t t, int64_t span);

}  // namespace mst
