/// @brief Schedules implementation (see schedules.h).
#include "core/train/schedules.h"

#include <algorithm>
#include <cmath>

namespace mst {

double cosineValue(double start, double end, int64_t t, int64_t span) {
  if (span <= 0) return end;
  double x = std::clamp(static_cast<double>(t) / static_cast<double>(span), 0.0, 1.0);
  return end + 0.5 * (start - end) * (1.0 + std::cos(M_PI * x));
}

Schedules::Schedules(const Config& c, int64_t steps_per_epoch, int64_t total_steps)
    : optim_(c.optim), loss_(c.loss), per_epoch_(std::max<int64_t>(steps_per_epoch, 1)),
      total_(std::max<int64_t>(total_steps, 1)) {
  peak_lr_ = c.optim.lr * static_cast<double>(c.train.batch_size) / 256.0;
  // DINO's warm-ups are 10 of 100 epochs (lr) and 30 of 100 (τ_t): short runs keep the proportion.
  double epochs = c.train.epochs;
  lr_warmup_ = static_cast<int64_t>(std::min(c.optim.warmup_epochs, 0.1 * epochs) * per_epoch_);
  temp_warmup_ = static_cast<int64_t>(
      std::min(c.loss.teacher_temp_warmup_epochs, 0.3 * epochs) * per_epoch_);
  freeze_steps_ = static_cast<int64_t>(c.optim.freeze_last_layer_epochs * per_epoch_);
}

ScheduleValues Schedules::at(int64_t step) const {
  ScheduleValues v;
  if (step < lr_warmup_) {
    v.lr = peak_lr_ * static_cast<double>(step) / static_cast<double>(lr_warmup_);
  } else {
    v.lr = cosineValue(peak_lr_, optim_.min_lr, step - lr_warmup_, total_ - 1 - lr_warmup_);
  }
  v.weight_decay = cosineValue(optim_.weight_decay, optim_.weight_decay_end, step, total_ - 1);
  v.momentum = cosineValue(optim_.momentum_teacher, optim_.momentum_teacher_end, step, total_ - 1);
  if (step < temp_warmup_) {
    v.teacher_temp = loss_.teacher_temp_start + (loss_.teacher_temp - loss_.teacher_temp_start) *
                                                    static_cast<double>(step) /
                                                    static_cast<double>(temp_warmup_);
  } else {
    v.teacher_temp = loss_.teacher_temp;
  }
  v.freeze_last_layer = step < freeze_steps_;
  return v;
}

}  // namespace mst
