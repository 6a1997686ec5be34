/// @brief The optimiser's step after the backward pass as one call: AdamW over the student's
/// flat parameters (decoupled weight decay on the matrices), the DINO head's last layer held
/// while frozen, and the teacher's EMA. In ATen operations these are about fifteen passes over
/// the flat fp32 buffers (45 M values at DeiT-S/16 with 65,536 classes: ~1.5 ms of a 72 ms step
/// on an H200, all memory traffic); fused (CUDA, train.fused_optimizer) one kernel that reads
/// each buffer once (adamw_cuda.h).
#pragma once

#include <torch/torch.h>

namespace mst {

/// The buffers and settings of one step. Every tensor fp32, 1-D, on one device.
struct OptimizerStep {
  torch::Tensor params;      ///< (N) the student's parameters, updated in place
  torch::Tensor grads;       ///< (N) their gradients (already clipped; zero on a frozen layer)
  torch::Tensor exp_avg;     ///< (N) Adam's m, updated in place
  torch::Tensor exp_avg_sq;  ///< (N) Adam's v, updated in place
  torch::Tensor decay_mask;  ///< (N) 1 where weight decay applies (matrices), else 0
  torch::Tensor teacher;     ///< (T ≤ N) the EMA of params' first T values, updated in place
  /// (10) the engine's schedule on the device (engine.h's sched_): [0] lr, [1] weight decay,
  /// [2] EMA momentum, [4] last layer frozen (0/1), [5] 1 − β1^t, [6] 1 − β2^t, [8], [9] the
  /// last layer's own bias corrections.
  torch::Tensor schedule;
  int64_t last_offset = 0, last_numel = 0;  ///< the head's last layer inside params
  /// optim.freeze_last_layer_epochs > 0: the last layer takes its own bias corrections and keeps
  /// its values while the schedule says frozen (its moments still take the zero gradient).
  bool freeze_last_layer = false;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;
};

/// The step: m, v ← Adam's moments; p ← p − p · mask · lr · wd − lr / bc1 · m / (√(v / bc2) + ε);
/// the frozen last layer keeps p; teacher ← teacher + (1 − momentum) (p − teacher). `fused`: one
/// kernel where fusedOptimizerApplies (else ATen's operations, counted as a fallback); ATen's
/// operations otherwise. Reads the schedule on its device: no host synchronisation, and the
/// same launches serve every replay of a captured CUDA graph.
void optimizerStep(const OptimizerStep& step, bool fused);

/// Whether optimizerStep(step, true) runs the kernel: fp32 contiguous buffers of consistent
/// sizes on one device whose kernels the build has and can run (any alignment: the kernel falls
/// back to one value per thread where a buffer does not start on 16 bytes).
bool fusedOptimizerApplies(const OptimizerStep& step);

}  // namespace mst
