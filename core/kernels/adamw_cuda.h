/// @brief Launcher of the fused optimiser step (adamw_cuda.cu), free of LibTorch so that nvcc
/// compiles it alone. One pass over the student's flat fp32 parameters does what the engine's
/// ATen sequence does in about fifteen (fused_adamw.h): AdamW with decoupled weight decay on the
/// matrices, the DINO head's last layer held while it is frozen (its own bias corrections
/// otherwise), and the teacher's EMA of the updated prefix. Per element i, in fp32:
///   m = m β1 + (1 − β1) g;  v = v β2 + (1 − β2) g g
///   p' = p + p (mask (−lr wd)) − m / ((√(v / bc2) + ε) (bc1 / lr))
///   p' = p on the last layer while frozen;  t = lerp(t, p', 1 − momentum) for i < teacher_numel
/// The schedule's values (lr, wd, momentum, bias corrections, the frozen flag) are read on the
/// device, so that one launch serves every step of a captured CUDA graph.
#pragma once

#include <cstdint>

namespace mst::kernels {

struct FusedAdamwArgs {
  float* param = nullptr;             ///< (numel) updated in place
  const float* grad = nullptr;        ///< (numel)
  float* exp_avg = nullptr;           ///< (numel) m, updated in place
  float* exp_avg_sq = nullptr;        ///< (numel) v, updated in place
  const float* decay_mask = nullptr;  ///< (numel) 1 where weight decay applies, else 0
  float* teacher = nullptr;           ///< (teacher_numel) EMA of param's prefix, in place
  /// The engine's step schedule on the device (engine.h's sched_): [0] lr, [1] weight decay,
  /// [2] EMA momentum, [4] last layer frozen (> 0.5), [5] bc1 = 1 − β1^t, [6] bc2 = 1 − β2^t,
  /// [8], [9] the last layer's bc1 and bc2.
  const float* schedule = nullptr;
  int64_t numel = 0;
  int64_t teacher_numel = 0;                ///< ≤ numel
  int64_t last_offset = 0, last_numel = 0;  ///< the head's last layer inside param
  /// optim.freeze_last_layer_epochs > 0: the last layer takes schedule[8], [9] and is held
  /// while schedule[4] says frozen; otherwise it is updated like the rest.
  bool freeze_last_layer = false;
  /// The hyperparameters as the ATen sequence rounds them: each a double cast to fp32.
  float beta1 = 0.9f, one_minus_beta1 = 0.1f, beta2 = 0.999f, one_minus_beta2 = 0.001f;
  float eps = 1e-8f;
  void* stream = nullptr;  ///< cudaStream_t
};

/// nullptr, or the CUDA error's text.
const char* fusedAdamwEma(const FusedAdamwArgs& args);

}  // namespace mst::kernels
