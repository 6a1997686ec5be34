/// @brief CUDA kernels of the fused residual junction (see residual_norm.h): one pass over a
/// row of D channels adds the branch's bias, scales the branch, adds it to the residual stream
/// and layer-normalises the sum; the backward pass returns the stream's and the branch's
/// gradients in one pass and the affine parameters' and the bias's gradients through per-block
/// partial sums. No LibTorch headers: the launchers take
/// raw pointers and the caller's stream (residual_norm.cpp owns the tensors).
#include "core/kernels/residual_norm_cuda.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "core/kernels/column_sums.cuh"
#include "core/kernels/cuda_status.h"
#include "core/kernels/launch.cuh"
#include "core/kernels/vec_access.cuh"

#include <cstdint>
#include <initializer_list>
#include <map>
#include <mutex>
#include <tuple>
#include <utility>
#include <type_traits>

namespace mst::kernels {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 4;

__device__ __forceinline__ float warpSum(float v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

// (toFloat, fromFloat, roundTo, loadVec, storeVec: vec_access.cuh. V = 4 reads or writes 16
// bytes of fp32 or 8 of bf16, the pointer aligned to that; V = 1 one value, any D, any
// alignment.)

/// p[0..V) += d (shared memory: one 16-byte access per lane for V = 4, conflict-free).
__device__ __forceinline__ void addVec(float* p, const float (&d)[4]) {
  float4 r = *reinterpret_cast<float4*>(p);
  r.x += d[0];
  r.y += d[1];
  r.z += d[2];
  r.w += d[3];
  *reinterpret_cast<float4*>(p) = r;
}
__device__ __forceinline__ void addVec(float* p, const float (&d)[1]) { p[0] += d[0]; }

/// One warp per row. Lane l holds the chunks of V channels l, l + 32, ... (chunk q is channels
/// qV .. qV + V - 1: coalesced), at most kPerLane channels; D % V == 0.
template <typename TS, typename TB, typename TO, int kPerLane, int V>
__global__ void __launch_bounds__(kWarp * kWarpsPerBlock)
    forwardKernel(const TS* __restrict__ x, const TB* __restrict__ branch,
                  const float* __restrict__ bias, const float* __restrict__ scale,
                  const float* __restrict__ gamma,
                  const float* __restrict__ beta, TS* __restrict__ y, TO* __restrict__ z,
                  float* __restrict__ mean_out, float* __restrict__ rstd_out, int64_t rows,
                  int64_t tokens, int D, float eps) {
  constexpr int kChunks = kPerLane / V;
  const int lane = threadIdx.x % kWarp;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  if (row >= rows) return;
  const int64_t base = row * D;
  const int chunks = D / V;
  const float s = scale != nullptr ? scale[row / tokens] : 1.0f;
  float v[kPerLane];
  float sum = 0.0f;
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
    const int q = k * kWarp + lane;
#pragma unroll
    for (int j = 0; j < V; ++j) v[k * V + j] = 0.0f;
    if (q < chunks) {
      const int c = q * V;
      float a[V];
      loadVec(x + base + c, a);
      if (branch != nullptr) {
        // The unfused ops: the linear's output + bias in the branch's dtype, (branch * scale)
        // stored in the branch's dtype, then added in the stream's dtype.
        float b[V], bb[V];
        loadVec(branch + base + c, b);
        if (bias != nullptr) loadVec(bias + c, bb);
#pragma unroll
        for (int j = 0; j < V; ++j) {
          if (bias != nullptr) b[j] = roundTo<TB>(b[j] + bb[j]);
          a[j] = roundTo<TS>(a[j] + roundTo<TB>(b[j] * s));
        }
        storeVec(y + base + c, a);
      }
#pragma unroll
      for (int j = 0; j < V; ++j) {
        v[k * V + j] = a[j];
        sum += a[j];
      }
    }
  }
  const float mean = warpSum(sum) / static_cast<float>(D);
  float sq = 0.0f;
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
    if (k * kWarp + lane < chunks) {
#pragma unroll
      for (int j = 0; j < V; ++j) {
        const float d = v[k * V + j] - mean;
        sq += d * d;
      }
    }
  }
  const float rstd = rsqrtf(warpSum(sq) / static_cast<float>(D) + eps);
#pragma unroll
  for (int k = 0; k < kChunks; ++k) {
    const int q = k * kWarp + lane;
    if (q < chunks) {
      const int c = q * V;
      float w[V], b[V], out[V];
      loadVec(gamma + c, w);
      loadVec(beta + c, b);
#pragma unroll
      for (int j = 0; j < V; ++j) out[j] = (v[k * V + j] - mean) * rstd * w[j] + b[j];
      storeVec(z + base + c, out);
    }
  }
  if (lane == 0) {
    mean_out[row] = mean;
    rstd_out[row] = rstd;
  }
}

/// Grid-stride over rows, one warp per row, each lane holding the same chunks of V channels as
/// in the forward pass; a row's three inputs (gz, y, gy) are all read before its reductions.
/// Each warp adds its rows' gz * x̂, gz and (sums = 3) dbranch per channel into its own slice
/// of shared memory (registers would hold 2 × kPerLane more values per thread and halve the
/// warps an SM keeps in flight); the block then leaves the sum of its warps' slices in
/// partial[blockIdx.x] (gamma's, beta's, the bias's), and columnSumsKernel (column_sums.cuh)
/// adds the blocks.
template <typename TS, typename TB, typename TO, int kPerLane, int V>
__global__ void __launch_bounds__(kWarp * kWarpsPerBlock)
    backwardKernel(const TO* __restrict__ gz, const TS* __restrict__ gy,
                   const TS* __restrict__ y, const float* __restrict__ mean,
                   const float* __restrict__ rstd, const float* __restrict__ gamma,
                   const float* __restrict__ scale, TS* __restrict__ dx,
                   TB* __restrict__ dbranch, float* __restrict__ partial, int64_t rows,
                   int64_t tokens, int D, int sums) {
  MST_DYNAMIC_SHARED(float, shared);  // [kWarpsPerBlock][sums][D]
  constexpr int kChunks = kPerLane / V;
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const int chunks = D / V;
  const bool bias_sum = sums == 3;
  float* mine = shared + static_cast<int64_t>(warp) * sums * D;
  for (int q = lane; q < chunks; q += kWarp)  // the lane's own channels, which only it adds into
    for (int s = 0; s < sums; ++s)
      for (int j = 0; j < V; ++j) mine[s * D + q * V + j] = 0.0f;
  const float inv_d = 1.0f / static_cast<float>(D);
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp; row < rows;
       row += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock) {
    const int64_t base = row * D;
    const float m = mean[row], r = rstd[row];
    float dz[kPerLane], xhat[kPerLane], up[kPerLane];
#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
      const int q = k * kWarp + lane;
      float a[V], b[V], u[V];
#pragma unroll
      for (int j = 0; j < V; ++j) a[j] = b[j] = u[j] = 0.0f;
      if (q < chunks) {
        loadVec(gz + base + q * V, a);
        loadVec(y + base + q * V, b);
        if (gy != nullptr) loadVec(gy + base + q * V, u);
      }
#pragma unroll
      for (int j = 0; j < V; ++j) {
        dz[k * V + j] = a[j];
        xhat[k * V + j] = (b[j] - m) * r;
        up[k * V + j] = u[j];
      }
    }
    float sum_g = 0.0f, sum_gx = 0.0f;
#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
      const int q = k * kWarp + lane;
      if (q < chunks) {
        const int c = q * V;
        float w[V], dgamma[V], dbeta[V];
        loadVec(gamma + c, w);
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const int i = k * V + j;
          dgamma[j] = dz[i] * xhat[i];
          dbeta[j] = dz[i];
          dz[i] *= w[j];  // from here on, g = dz * gamma
          sum_g += dz[i];
          sum_gx += dz[i] * xhat[i];
        }
        addVec(mine + c, dgamma);
        addVec(mine + D + c, dbeta);
      }
    }
    const float mean_g = warpSum(sum_g) * inv_d, mean_gx = warpSum(sum_gx) * inv_d;
    const float s = scale != nullptr ? scale[row / tokens] : 1.0f;
#pragma unroll
    for (int k = 0; k < kChunks; ++k) {
      const int q = k * kWarp + lane;
      if (q < chunks) {
        const int c = q * V;
        float d_stream[V], d_branch[V];
#pragma unroll
        for (int j = 0; j < V; ++j) {
          const int i = k * V + j;
          float d = r * (dz[i] - mean_g - xhat[i] * mean_gx);
          if (gy != nullptr) d += up[i];
          d_stream[j] = roundTo<TS>(d);
          d_branch[j] = d_stream[j] * s;
        }
        storeVec(dx + base + c, d_stream);
        if (dbranch != nullptr) storeVec(dbranch + base + c, d_branch);
        if (bias_sum) addVec(mine + 2 * D + c, d_branch);
      }
    }
  }
  __syncthreads();
  const int width = sums * D;
  for (int c = threadIdx.x; c < width; c += blockDim.x) {
    float total = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarpsPerBlock; ++w) total += shared[static_cast<int64_t>(w) * width + c];
    partial[static_cast<int64_t>(blockIdx.x) * width + c] = total;
  }
}

/// Calls f with the smallest per-lane register count that holds D channels (D ≤ 1024).
template <typename F>
bool withPerLane(int D, F&& f) {
  const int need = (D + kWarp - 1) / kWarp;
  if (need <= 4) return f(std::integral_constant<int, 4>{}), true;
  if (need <= 8) return f(std::integral_constant<int, 8>{}), true;
  if (need <= 12) return f(std::integral_constant<int, 12>{}), true;
  if (need <= 16) return f(std::integral_constant<int, 16>{}), true;
  if (need <= 24) return f(std::integral_constant<int, 24>{}), true;
  if (need <= 32) return f(std::integral_constant<int, 32>{}), true;
  return false;
}

/// Whether D and every pointer allow 4 channels an access (fp32 pointers 16-byte aligned, bf16
/// ones 8-byte; nullptr passes).
bool vectorAccess(bool allowed, int D,
                  std::initializer_list<std::pair<const void*, int>> pointers) {
  bool vector = allowed && D % 4 == 0;
  for (const auto& [p, bytes] : pointers)
    vector = vector && reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(4 * bytes) == 0;
  return vector;
}

/// Calls f with std::integral_constant V = 4 or 1 as `vector` says.
template <typename F>
void withVector(bool vector, F&& f) {
  if (vector)
    f(std::integral_constant<int, 4>{});
  else
    f(std::integral_constant<int, 1>{});
}

template <typename TS, typename TO>
bool backwardVector(const ResidualNormBackwardArgs& a) {
  constexpr int kS = sizeof(TS), kO = sizeof(TO), kF = sizeof(float), kB = 2;
  return vectorAccess(!a.scalar_access, a.D,
                      {{a.gz, kO}, {a.gy, kS}, {a.y, kS}, {a.gamma, kF}, {a.dx, kS},
                       {a.dbranch, kB}});
}

template <typename TS, typename TO>
const char* forwardTyped(const ResidualNormForwardArgs& a) {
  using TB = __nv_bfloat16;
  const int64_t blocks = (a.rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (blocks == 0) return nullptr;
  auto stream = static_cast<cudaStream_t>(a.stream);
  constexpr int kS = sizeof(TS), kB = sizeof(TB), kO = sizeof(TO), kF = sizeof(float);
  const bool four = vectorAccess(!a.scalar_access, a.D,
                                 {{a.x, kS}, {a.branch, kB}, {a.bias, kF}, {a.gamma, kF},
                                  {a.beta, kF}, {a.y, kS}, {a.z, kO}});
  bool ok = true;
  withVector(four, [&](auto vector) {
    ok = withPerLane(a.D, [&](auto per_lane) {
      MST_LAUNCH(static_cast<unsigned>(blocks), kWarp * kWarpsPerBlock, 0, stream,
                 forwardKernel<TS, TB, TO, decltype(per_lane)::value, decltype(vector)::value>)(
          static_cast<const TS*>(a.x), static_cast<const TB*>(a.branch), a.bias, a.scale,
          a.gamma, a.beta, static_cast<TS*>(a.y), static_cast<TO*>(a.z), a.mean, a.rstd, a.rows,
          a.tokens, a.D, a.eps);
    });
  });
  if (!ok) return "residual norm: more than 1024 channels";
  return lastError();
}

template <typename TS, typename TO>
const char* backwardTyped(const ResidualNormBackwardArgs& a) {
  using TB = __nv_bfloat16;
  if (a.sums != 2 && a.sums != 3) return "residual norm: 2 or 3 column sums";
  // At most 4 warps × 3 sums × 1024 channels × 4 bytes = 48 KiB, the most a block gets without
  // opting in to more (cudaFuncAttributeMaxDynamicSharedMemorySize).
  static_assert(kWarpsPerBlock * 3 * 1024 * sizeof(float) <= 48 * 1024,
                "the backward kernel's shared sums outgrow the default limit");
  auto stream = static_cast<cudaStream_t>(a.stream);
  const size_t shared = sizeof(float) * kWarpsPerBlock * a.sums * static_cast<size_t>(a.D);
  bool ok = true;
  withVector(backwardVector<TS, TO>(a), [&](auto vector) {
    ok = withPerLane(a.D, [&](auto per_lane) {
      MST_LAUNCH(a.blocks, kWarp * kWarpsPerBlock, shared, stream,
                 backwardKernel<TS, TB, TO, decltype(per_lane)::value, decltype(vector)::value>)(
          static_cast<const TO*>(a.gz), static_cast<const TS*>(a.gy), static_cast<const TS*>(a.y),
          a.mean, a.rstd, a.gamma, a.scale, static_cast<TS*>(a.dx), static_cast<TB*>(a.dbranch),
          a.partial, a.rows, a.tokens, a.D, a.sums);
    });
  });
  if (!ok) return "residual norm: more than 1024 channels";
  if (const char* e = lastError()) return e;
  launchColumnSums(a.partial, a.blocks, a.sums * a.D, a.affine, stream);
  return lastError();
}

}  // namespace

namespace {

/// Blocks per SM of the backward kernel that `a` launches (its dtypes, access width and channel
/// bucket), with its shared sums; 0 if the device cannot say.
template <typename TS, typename TO>
int backwardResidency(const ResidualNormBackwardArgs& a, size_t shared) {
  int per_sm = 0;
  withVector(backwardVector<TS, TO>(a), [&](auto vector) {
    withPerLane(a.D, [&](auto per_lane) {
      if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(
              &per_sm,
              backwardKernel<TS, __nv_bfloat16, TO, decltype(per_lane)::value,
                             decltype(vector)::value>,
              kWarp * kWarpsPerBlock, shared) != cudaSuccess) {
        cudaGetLastError();  // leave no error for the next launch check; fall back below
        per_sm = 0;
      }
    });
  });
  return per_sm;
}

}  // namespace

int residualNormBackwardBlocks(const ResidualNormBackwardArgs& a) {
  // As many blocks as the device holds at once (registers and the per-warp shared sums,
  // 4·sums·D bytes a warp, limit it), so that every SM keeps enough rows in flight to cover
  // memory latency; more would only lengthen the partial sums or start a second wave. Asked
  // once per (device, dtypes, access width, D, sums): the variants' registers differ (at
  // D = 384 on sm_90, 56 to 72).
  static std::mutex mutex;
  static std::map<std::tuple<int, bool, bool, bool, int, int>, int> resident;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    cudaGetLastError();
    device = -1;
  }
  const bool vector = a.out_fp32 ? backwardVector<float, float>(a)
                      : a.stream_bf16 ? backwardVector<__nv_bfloat16, __nv_bfloat16>(a)
                                      : backwardVector<float, __nv_bfloat16>(a);
  int per_sm = 0;
  {
    std::lock_guard<std::mutex> lock(mutex);
    const auto key = std::make_tuple(device, a.stream_bf16, a.out_fp32, vector, a.D, a.sums);
    auto it = resident.find(key);
    if (it != resident.end()) {
      per_sm = it->second;
    } else {
      const size_t shared = sizeof(float) * kWarpsPerBlock * a.sums * static_cast<size_t>(a.D);
      if (a.D > 0 && a.D <= 1024 && (a.sums == 2 || a.sums == 3) && !(a.out_fp32 && a.stream_bf16))
        per_sm = a.out_fp32      ? backwardResidency<float, float>(a, shared)
                 : a.stream_bf16 ? backwardResidency<__nv_bfloat16, __nv_bfloat16>(a, shared)
                                 : backwardResidency<float, __nv_bfloat16>(a, shared);
      if (per_sm <= 0) per_sm = 4;
      resident.emplace(key, per_sm);
    }
  }
  static const int sms = multiprocessors();
  const int64_t by_rows = (a.rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
  const int64_t cap = static_cast<int64_t>(sms) * per_sm;
  return static_cast<int>(by_rows < cap ? (by_rows > 0 ? by_rows : 1) : cap);
}

const char* fusedKernelsLoadable(int device) {
  int current = 0;
  cudaError_t e = cudaGetDevice(&current);
  if (e == cudaSuccess && device >= 0 && device != current) e = cudaSetDevice(device);
  cudaFuncAttributes attributes;
  // Fails with "invalid device function" when no SASS or PTX of the build fits the device.
  if (e == cudaSuccess) e = cudaFuncGetAttributes(&attributes, columnSumsKernel<float>);
  if (device >= 0 && device != current) cudaSetDevice(current);
  if (e == cudaSuccess) return nullptr;
  cudaGetLastError();  // not sticky, but leave no error behind for the next launch check
  return cudaGetErrorString(e);
}

const char* residualNormForward(const ResidualNormForwardArgs& a) {
  if (a.out_fp32)
    return a.stream_bf16 ? "residual norm: an fp32 output needs an fp32 stream"
                         : forwardTyped<float, float>(a);
  return a.stream_bf16 ? forwardTyped<__nv_bfloat16, __nv_bfloat16>(a)
                       : forwardTyped<float, __nv_bfloat16>(a);
}

const char* residualNormBackward(const ResidualNormBackwardArgs& a) {
  if (a.out_fp32)
    return a.stream_bf16 ? "residual norm: an fp32 output needs an fp32 stream"
                         : backwardTyped<float, float>(a);
  return a.stream_bf16 ? backwardTyped<__nv_bfloat16, __nv_bfloat16>(a)
                       : backwardTyped<float, __nv_bfloat16>(a);
}

}  // namespace mst::kernels
