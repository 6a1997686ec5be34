/// @brief The fused optimiser step (see adamw_cuda.h). A grid-stride loop over the flat buffers,
/// four values per thread and turn (16-byte loads) where every array starts on a 16-byte
/// boundary, one value otherwise; the last numel % 4 values go to the first threads. Each
/// element's arithmetic follows the ATen sequence it replaces (fused_adamw.cpp) as ATen's CUDA
/// kernels evaluate it, operation by operation, so that on the GPU the two differ only by the
/// contractions into fused multiply-adds (ATen's CPU addcmul_ groups (value · t1) · t2: the
/// emulated tests' last bits may differ).
#include "core/kernels/adamw_cuda.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>

#include "core/kernels/column_sums.cuh"
#include "core/kernels/cuda_status.h"
#include "core/kernels/launch.cuh"

namespace mst::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kVector = 4;  // fp32 per 16-byte access

/// The step's scalars, as the ATen sequence forms them from the schedule's 0-dim tensors.
struct Step {
  float decay;                  // −lr · wd
  float factor, bc2;            // bc1 / lr and bc2, for every parameter but the last layer's
  float last_factor, last_bc2;  // the same for the last layer
  bool hold_last;               // the last layer is frozen: it keeps its values
  float weight;                 // the EMA's 1 − momentum
};

__device__ __forceinline__ Step readStep(const FusedAdamwArgs& a) {
  const float* s = a.schedule;
  const float lr = s[0];
  Step step;
  step.decay = -lr * s[1];
  step.factor = s[5] / lr;
  step.bc2 = s[6];
  step.last_factor = a.freeze_last_layer ? s[8] / lr : step.factor;
  step.last_bc2 = a.freeze_last_layer ? s[9] : step.bc2;
  step.hold_last = a.freeze_last_layer && s[4] > 0.5f;
  step.weight = 1.0f - s[2];
  return step;
}

__device__ __forceinline__ bool inLastLayer(const FusedAdamwArgs& a, int64_t i) {
  return static_cast<uint64_t>(i - a.last_offset) < static_cast<uint64_t>(a.last_numel);
}

/// One parameter's AdamW update; m and v in place, the new value returned.
__device__ __forceinline__ float adamw(const FusedAdamwArgs& a, const Step& s, float p, float g,
                                       float& m, float& v, float mask, bool last) {
  m = m * a.beta1 + a.one_minus_beta1 * g;
  v = v * a.beta2 + a.one_minus_beta2 * (g * g);  // CUDA addcmul_: self + value * (t1 * t2)
  const float decayed = p + p * (mask * s.decay);
  const float denom =
      (sqrtf(v / (last ? s.last_bc2 : s.bc2)) + a.eps) * (last ? s.last_factor : s.factor);
  const float updated = decayed - m / denom;
  return last && s.hold_last ? p : updated;
}

/// ATen's lerp: the form that keeps the end points exact on either side of w = 0.5.
__device__ __forceinline__ float lerp(float from, float to, float w) {
  return fabsf(w) < 0.5f ? from + w * (to - from) : to - (to - from) * (1.0f - w);
}

__device__ __forceinline__ void updateOne(const FusedAdamwArgs& a, const Step& s, int64_t i) {
  float m = a.exp_avg[i], v = a.exp_avg_sq[i];
  const float p = adamw(a, s, a.param[i], a.grad[i], m, v, a.decay_mask[i], inLastLayer(a, i));
  a.param[i] = p;
  a.exp_avg[i] = m;
  a.exp_avg_sq[i] = v;
  if (i < a.teacher_numel) a.teacher[i] = lerp(a.teacher[i], p, s.weight);
}

union Pack {
  float4 raw;
  float f[kVector];
};

template <bool kVectorized>
__global__ void __launch_bounds__(kThreads) fusedAdamwKernel(FusedAdamwArgs a) {
  const Step s = readStep(a);
  const int64_t first = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * kThreads;
  if (!kVectorized) {
    for (int64_t i = first; i < a.numel; i += stride) updateOne(a, s, i);
    return;
  }
  const int64_t vectors = a.numel / kVector;
  for (int64_t j = first; j < vectors; j += stride) {
    const int64_t i = j * kVector;
    Pack p, g, m, v, mask;
    p.raw = reinterpret_cast<const float4*>(a.param)[j];
    g.raw = reinterpret_cast<const float4*>(a.grad)[j];
    m.raw = reinterpret_cast<const float4*>(a.exp_avg)[j];
    v.raw = reinterpret_cast<const float4*>(a.exp_avg_sq)[j];
    mask.raw = reinterpret_cast<const float4*>(a.decay_mask)[j];
#pragma unroll
    for (int k = 0; k < kVector; ++k)
      p.f[k] = adamw(a, s, p.f[k], g.f[k], m.f[k], v.f[k], mask.f[k], inLastLayer(a, i + k));
    reinterpret_cast<float4*>(a.param)[j] = p.raw;
    reinterpret_cast<float4*>(a.exp_avg)[j] = m.raw;
    reinterpret_cast<float4*>(a.exp_avg_sq)[j] = v.raw;
    if (i + kVector <= a.teacher_numel) {
      Pack t;
      t.raw = reinterpret_cast<const float4*>(a.teacher)[j];
#pragma unroll
      for (int k = 0; k < kVector; ++k) t.f[k] = lerp(t.f[k], p.f[k], s.weight);
      reinterpret_cast<float4*>(a.teacher)[j] = t.raw;
    } else {  // the vector the teacher's prefix ends in (its buffer ends there too)
      for (int k = 0; k < kVector && i + k < a.teacher_numel; ++k)
        a.teacher[i + k] = lerp(a.teacher[i + k], p.f[k], s.weight);
    }
  }
  const int64_t tail = vectors * kVector + first;
  if (tail < a.numel) updateOne(a, s, tail);
}

bool aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; }

}  // namespace

const char* fusedAdamwEma(const FusedAdamwArgs& a) {
  if (a.teacher_numel < 0 || a.teacher_numel > a.numel)
    return "fused AdamW: the teacher's prefix is longer than the parameters";
  if (a.last_offset < 0 || a.last_numel < 0 || a.last_offset + a.last_numel > a.numel)
    return "fused AdamW: the last layer lies outside the parameters";
  if (a.numel == 0) return nullptr;
  const bool vectorized = aligned(a.param) && aligned(a.grad) && aligned(a.exp_avg) &&
                          aligned(a.exp_avg_sq) && aligned(a.decay_mask) &&
                          (a.teacher_numel == 0 || aligned(a.teacher));
  // As many blocks as the device holds at once, fewer for small buffers.
  static const int resident = residentBlocks(fusedAdamwKernel<true>, kThreads);
  const int64_t work = vectorized ? std::max<int64_t>(a.numel / kVector, 1) : a.numel;
  const int blocks =
      static_cast<int>(std::min<int64_t>((work + kThreads - 1) / kThreads, resident));
  auto stream = static_cast<cudaStream_t>(a.stream);
  if (vectorized)
    MST_LAUNCH(blocks, kThreads, 0, stream, fusedAdamwKernel<true>)(a);
  else
    MST_LAUNCH(blocks, kThreads, 0, stream, fusedAdamwKernel<false>)(a);
  return lastError();
}

}  // namespace mst::kernels
