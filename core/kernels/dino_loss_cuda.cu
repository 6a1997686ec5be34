/// @brief The fused self-distillation cross-entropy (see dino_loss_cuda.h). A block takes one
/// sample b and one segment of the classes; its threads walk the segment 8 classes at a time
/// (16-byte loads of the logits, two of the teacher's fp32 rows), reading each teacher value once
/// for all S crops of the sample. Forward, each thread keeps an online log-sum-exp (running max
/// and sum) and the target dot product per crop; the block merges its threads', a second kernel
/// the segments'. Backward is one streaming pass.
#include "core/kernels/dino_loss_cuda.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>

#include "core/kernels/cuda_status.h"
#include "core/kernels/launch.cuh"

namespace mst::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kWarpSize = 32;
constexpr int kWarps = kThreads / kWarpSize;
constexpr int kVector = 8;

__device__ __forceinline__ void load8(const __nv_bfloat16* p, float* out) {
  union {
    uint4 raw;
    __nv_bfloat162 pair[4];
  } v;
  v.raw = *reinterpret_cast<const uint4*>(p);
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const float2 f = __bfloat1622float2(v.pair[k]);
    out[2 * k] = f.x;
    out[2 * k + 1] = f.y;
  }
}
__device__ __forceinline__ void load8(const float* p, float* out) {
  const float4 a = *reinterpret_cast<const float4*>(p);
  const float4 b = *reinterpret_cast<const float4*>(p + 4);
  out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w;
  out[4] = b.x, out[5] = b.y, out[6] = b.z, out[7] = b.w;
}
__device__ __forceinline__ void store8(__nv_bfloat16* p, const float* v) {
  union {
    uint4 raw;
    __nv_bfloat162 pair[4];
  } out;
#pragma unroll
  for (int k = 0; k < 4; ++k) out.pair[k] = __floats2bfloat162_rn(v[2 * k], v[2 * k + 1]);
  *reinterpret_cast<uint4*>(p) = out.raw;
}
__device__ __forceinline__ void store8(float* p, const float* v) {
  *reinterpret_cast<float4*>(p) = make_float4(v[0], v[1], v[2], v[3]);
  *reinterpret_cast<float4*>(p + 4) = make_float4(v[4], v[5], v[6], v[7]);
}

/// (m, s) ← the log-sum-exp state of both sets: max and Σ exp(x − max). An empty set has m = −∞.
__device__ __forceinline__ void mergeLse(float& m, float& s, float mo, float so) {
  if (mo == -INFINITY) return;
  if (m == -INFINITY) {
    m = mo;
    s = so;
    return;
  }
  const float top = fmaxf(m, mo);
  s = s * expf(m - top) + so * expf(mo - top);
  m = top;
}

/// The classes [v0, v1) × 8 of this block's segment.
__device__ __forceinline__ void segmentRange(int64_t classes, int segments, int64_t& v0,
                                             int64_t& v1) {
  const int64_t vectors = classes / kVector;
  v0 = vectors * blockIdx.y / segments;
  v1 = vectors * (blockIdx.y + 1) / segments;
}

/// Crop i's target: the other global crop's teacher row, or both for a local crop.
__device__ __forceinline__ float target(int i, float t0, float t1) {
  return i == 0 ? t1 : (i == 1 ? t0 : t0 + t1);
}

template <typename TZ, int kCrops>
__global__ void __launch_bounds__(kThreads) dinoLossForwardKernel(DinoLossArgs a) {
  __shared__ float shared[kWarps][kCrops * 3 + 2];
  const int64_t b = blockIdx.x, B = a.batch, K = a.classes;
  const int S = a.crops;
  const auto* z = static_cast<const TZ*>(a.student);
  const float* t0 = a.teacher + b * K;
  const float* t1 = a.teacher + (B + b) * K;
  float m[kCrops], s[kCrops], dot[kCrops];
#pragma unroll
  for (int i = 0; i < kCrops; ++i) m[i] = -INFINITY, s[i] = 0.0f, dot[i] = 0.0f;
  float sum0 = 0.0f, sum1 = 0.0f;
  int64_t v0, v1;
  segmentRange(K, a.segments, v0, v1);
  for (int64_t v = v0 + threadIdx.x; v < v1; v += kThreads) {
    const int64_t k0 = v * kVector;
    float c0[kVector], c1[kVector];
    load8(t0 + k0, c0);
    load8(t1 + k0, c1);
#pragma unroll
    for (int k = 0; k < kVector; ++k) sum0 += c0[k], sum1 += c1[k];
#pragma unroll
    for (int i = 0; i < kCrops; ++i) {
      if (i < S) {
        float x[kVector];
        load8(z + (i * B + b) * K + k0, x);
        float top = -INFINITY;
#pragma unroll
        for (int k = 0; k < kVector; ++k) {
          x[k] *= a.inv_temp;
          top = fmaxf(top, x[k]);
        }
        if (top > m[i]) {
          s[i] *= expf(m[i] - top);  // (0 · e^−∞ = 0 on the first vector)
          m[i] = top;
        }
        float e = 0.0f, d = 0.0f;
#pragma unroll
        for (int k = 0; k < kVector; ++k) {
          if (top != -INFINITY) e += expf(x[k] - m[i]);  // (all −∞ so far: nothing to add)
          d += target(i, c0[k], c1[k]) * x[k];
        }
        s[i] += e;
        dot[i] += d;
      }
    }
  }
  // Merge the block's threads: within each warp by shuffles, then the warps in shared memory.
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
#pragma unroll
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
#pragma unroll
    for (int i = 0; i < kCrops; ++i) {
      if (i < S) {
        const float mo = __shfl_xor_sync(0xffffffffu, m[i], offset);
        const float so = __shfl_xor_sync(0xffffffffu, s[i], offset);
        mergeLse(m[i], s[i], mo, so);
        dot[i] += __shfl_xor_sync(0xffffffffu, dot[i], offset);
      }
    }
    sum0 += __shfl_xor_sync(0xffffffffu, sum0, offset);
    sum1 += __shfl_xor_sync(0xffffffffu, sum1, offset);
  }
  if (lane == 0) {
#pragma unroll
    for (int i = 0; i < kCrops; ++i) {
      if (i < S) {
        shared[warp][3 * i] = m[i];
        shared[warp][3 * i + 1] = s[i];
        shared[warp][3 * i + 2] = dot[i];
      }
    }
    shared[warp][3 * kCrops] = sum0;
    shared[warp][3 * kCrops + 1] = sum1;
  }
  __syncthreads();
  // Thread i < S merges crop i over the warps; thread S adds the teacher's sums.
  const int i = threadIdx.x;
  const int64_t rows = static_cast<int64_t>(S) * B;
  float* out = a.partial + static_cast<int64_t>(blockIdx.y) * rows * 3;
  if (i < S) {
    float mm = -INFINITY, ss = 0.0f, dd = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
      mergeLse(mm, ss, shared[w][3 * i], shared[w][3 * i + 1]);
      dd += shared[w][3 * i + 2];
    }
    float* row = out + (i * B + b) * 3;
    row[0] = mm;
    row[1] = ss;
    row[2] = dd;
  } else if (i == S) {
    float a0 = 0.0f, a1 = 0.0f;
    for (int w = 0; w < kWarps; ++w) a0 += shared[w][3 * kCrops], a1 += shared[w][3 * kCrops + 1];
    float* sums = a.partial + static_cast<int64_t>(a.segments) * rows * 3 +
                  (static_cast<int64_t>(blockIdx.y) * B + b) * 2;
    sums[0] = a0;
    sums[1] = a1;
  }
}

/// One thread per row: the segments' states merged into lse, dot and the target's sum.
__global__ void __launch_bounds__(kThreads) dinoLossCombineKernel(DinoLossArgs a) {
  const int64_t B = a.batch, rows = static_cast<int64_t>(a.crops) * B;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (r >= rows) return;
  const int64_t i = r / B, b = r - i * B;
  float m = -INFINITY, s = 0.0f, dot = 0.0f, sum0 = 0.0f, sum1 = 0.0f;
  const float* t_sums = a.partial + static_cast<int64_t>(a.segments) * rows * 3;
  for (int seg = 0; seg < a.segments; ++seg) {
    const float* row = a.partial + (static_cast<int64_t>(seg) * rows + r) * 3;
    mergeLse(m, s, row[0], row[1]);
    dot += row[2];
    sum0 += t_sums[(static_cast<int64_t>(seg) * B + b) * 2];
    sum1 += t_sums[(static_cast<int64_t>(seg) * B + b) * 2 + 1];
  }
  a.stats[r] = m + logf(s);
  a.stats[rows + r] = dot;
  a.stats[2 * rows + r] = target(static_cast<int>(i), sum0, sum1);
}

template <typename TZ, int kCrops>
__global__ void __launch_bounds__(kThreads) dinoLossBackwardKernel(DinoLossArgs a) {
  const int64_t b = blockIdx.x, B = a.batch, K = a.classes;
  const int S = a.crops;
  const int64_t rows = static_cast<int64_t>(S) * B;
  const auto* z = static_cast<const TZ*>(a.student);
  auto* dz = static_cast<TZ*>(a.dstudent);
  const float* t0 = a.teacher + b * K;
  const float* t1 = a.teacher + (B + b) * K;
  const float g = *a.grad * a.coef;
  float lse[kCrops], csum[kCrops];
#pragma unroll
  for (int i = 0; i < kCrops; ++i) {
    lse[i] = i < S ? a.stats[i * B + b] : 0.0f;
    csum[i] = i < S ? a.stats[2 * rows + i * B + b] : 0.0f;
  }
  int64_t v0, v1;
  segmentRange(K, a.segments, v0, v1);
  for (int64_t v = v0 + threadIdx.x; v < v1; v += kThreads) {
    const int64_t k0 = v * kVector;
    float c0[kVector], c1[kVector];
    load8(t0 + k0, c0);
    load8(t1 + k0, c1);
#pragma unroll
    for (int i = 0; i < kCrops; ++i) {
      if (i < S) {
        const int64_t at = (i * B + b) * K + k0;
        float x[kVector];
        load8(z + at, x);
#pragma unroll
        for (int k = 0; k < kVector; ++k) {
          const float p = expf(x[k] * a.inv_temp - lse[i]);
          x[k] = g * (target(i, c0[k], c1[k]) - csum[i] * p);
        }
        store8(dz + at, x);
      }
    }
  }
}

using Kernel = void (*)(DinoLossArgs);

template <int kCrops>
Kernel pick(bool forward, bool bf16) {
  if (forward)
    return bf16 ? dinoLossForwardKernel<__nv_bfloat16, kCrops>
                : dinoLossForwardKernel<float, kCrops>;
  return bf16 ? dinoLossBackwardKernel<__nv_bfloat16, kCrops>
              : dinoLossBackwardKernel<float, kCrops>;
}

/// The instance for these logits with the smallest crop count that holds S (checkArgs: S ≤ 32).
Kernel kernelFor(const DinoLossArgs& a, bool forward) {
  if (a.crops <= 4) return pick<4>(forward, a.student_bf16);
  if (a.crops <= 12) return pick<12>(forward, a.student_bf16);
  return pick<kDinoLossMaxCrops>(forward, a.student_bf16);
}

const char* checkArgs(const DinoLossArgs& a) {
  if (a.crops < 2 || a.crops > kDinoLossMaxCrops) return "dino loss: 2 to 32 crops";
  if (a.classes % kVector != 0) return "dino loss: classes not a multiple of 8";
  if (a.batch > 65535) return "dino loss: more than 65535 samples";
  if (a.segments < 1 || a.segments > 65535) return "dino loss: bad segment count";
  return nullptr;
}

}  // namespace

int dinoLossSegments(int64_t batch, int64_t classes) {
  static const int target_blocks = 4 * multiprocessors();
  const int64_t vectors = classes / kVector;
  int64_t segments = batch > 0 ? (target_blocks + batch - 1) / batch : 1;
  // Each thread of a block should still find a few vectors of its segment.
  const int64_t most = vectors / (2 * kThreads);
  if (segments > most) segments = most;
  return static_cast<int>(segments < 1 ? 1 : segments);
}

int64_t dinoLossPartialFloats(int segments, int64_t batch, int crops) {
  return static_cast<int64_t>(segments) * batch * (3 * static_cast<int64_t>(crops) + 2);
}

const char* dinoLossForward(const DinoLossArgs& a) {
  if (const char* e = checkArgs(a)) return e;
  if (a.batch == 0) return nullptr;
  auto stream = static_cast<cudaStream_t>(a.stream);
  const dim3 grid(static_cast<unsigned>(a.batch), static_cast<unsigned>(a.segments));
  MST_LAUNCH(grid, kThreads, 0, stream, kernelFor(a, /*forward=*/true))(a);
  if (const char* e = lastError()) return e;
  const int64_t rows = static_cast<int64_t>(a.crops) * a.batch;
  MST_LAUNCH(static_cast<unsigned>((rows + kThreads - 1) / kThreads), kThreads, 0, stream,
             dinoLossCombineKernel)(a);
  return lastError();
}

const char* dinoLossBackward(const DinoLossArgs& a) {
  if (const char* e = checkArgs(a)) return e;
  if (a.batch == 0) return nullptr;
  auto stream = static_cast<cudaStream_t>(a.stream);
  const dim3 grid(static_cast<unsigned>(a.batch), static_cast<unsigned>(a.segments));
  MST_LAUNCH(grid, kThreads, 0, stream, kernelFor(a, /*forward=*/false))(a);
  return lastError();
}

}  // namespace mst::kernels
