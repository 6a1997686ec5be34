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

#include <map>
#include <mutex>
#include <tuple>
#include <type_traits>

namespace mst::kernels {
namespace {

constexpr int kWarp = 32;
constexpr int kWarpsPerBlock = 4;

template <typename T>
__device__ __forceinline__ float toFloat(T v);
template <>
__device__ __forceinline__ float toFloat<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ float toFloat<__nv_bfloat16>(__nv_bfloat16 v) {
  return __bfloat162float(v);
}

template <typename T>
__device__ __forceinline__ T fromFloat(float v);
template <>
__device__ __forceinline__ float fromFloat<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 fromFloat<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);  // round to nearest even, as c10::BFloat16 does
}

/// The value a T holds after rounding v to it (what the unfused ops store between kernels).
template <typename T>
__device__ __forceinline__ float roundTo(float v) {
  return toFloat<T>(fromFloat<T>(v));
}

__device__ __forceinline__ float warpSum(float v) {
#pragma unroll
  for (int offset = kWarp / 2; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  return v;
}

/// One warp per row; lane l holds channels l, l + 32, ... (coalesced), at most kPerLane of them.
template <typename TS, typename TB, typename TO, int kPerLane>
__global__ void __launch_bounds__(kWarp * kWarpsPerBlock)
    forwardKernel(const TS* __restrict__ x, const TB* __restrict__ branch,
                  const float* __restrict__ bias, const float* __restrict__ scale,
                  const float* __restrict__ gamma,
                  const float* __restrict__ beta, TS* __restrict__ y, TO* __restrict__ z,
                  float* __restrict__ mean_out, float* __restrict__ rstd_out, int64_t rows,
                  int64_t tokens, int D, float eps) {
  const int lane = threadIdx.x % kWarp;
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarp;
  if (row >= rows) return;
  const int64_t base = row * D;
  const float s = scale != nullptr ? scale[row / tokens] : 1.0f;
  float v[kPerLane];
  float sum = 0.0f;
#pragma unroll
  for (int k = 0; k < kPerLane; ++k) {
    const int c = k * kWarp + lane;
    v[k] = 0.0f;
    if (c < D) {
      float a = toFloat(x[base + c]);
      if (branch != nullptr) {
        // The unfused ops: the linear's output + bias in the branch's dtype, (branch * scale)
        // stored in the branch's dtype, then added in the stream's dtype.
        float b = toFloat(branch[base + c]);
        if (bias != nullptr) b = roundTo<TB>(b + bias[c]);
        a = roundTo<TS>(a + roundTo<TB>(b * s));
        y[base + c] = fromFloat<TS>(a);
      }
      v[k] = a;
      sum += a;
    }
  }
  const float mean = warpSum(sum) / static_cast<float>(D);
  float sq = 0.0f;
#pragma unroll
  for (int k = 0; k < kPerLane; ++k) {
    const int c = k * kWarp + lane;
    if (c < D) {
      const float d = v[k] - mean;
      sq += d * d;
    }
  }
  const float rstd = rsqrtf(warpSum(sq) / static_cast<float>(D) + eps);
#pragma unroll
  for (int k = 0; k < kPerLane; ++k) {
    const int c = k * kWarp + lane;
    if (c < D) z[base + c] = fromFloat<TO>((v[k] - mean) * rstd * gamma[c] + beta[c]);
  }
  if (lane == 0) {
    mean_out[row] = mean;
    rstd_out[row] = rstd;
  }
}

/// Grid-stride over rows, one warp per row. Each warp adds its rows' gz * x̂, gz and (sums = 3)
/// dbranch per channel into its own slice of shared memory (registers would hold 2 × kPerLane
/// more values per thread and halve the warps an SM keeps in flight); the block then leaves the
/// sum of its warps' slices in partial[blockIdx.x] (gamma's, beta's, the bias's), and
/// columnSumsKernel (column_sums.cuh) adds the blocks.
template <typename TS, typename TB, typename TO, int kPerLane>
__global__ void __launch_bounds__(kWarp * kWarpsPerBlock)
    backwardKernel(const TO* __restrict__ gz, const TS* __restrict__ gy,
                   const TS* __restrict__ y, const float* __restrict__ mean,
                   const float* __restrict__ rstd, const float* __restrict__ gamma,
                   const float* __restrict__ scale, TS* __restrict__ dx,
                   TB* __restrict__ dbranch, float* __restrict__ partial, int64_t rows,
                   int64_t tokens, int D, int sums) {
  MST_DYNAMIC_SHARED(float, shared);  // [kWarpsPerBlock][sums][D]
  const int lane = threadIdx.x % kWarp, warp = threadIdx.x / kWarp;
  const bool bias_sum = sums == 3;
  float* mine = shared + static_cast<int64_t>(warp) * sums * D;
  for (int c = lane; c < D; c += kWarp)  // the lane's own channels, which only it adds into
    for (int s = 0; s < sums; ++s) mine[s * D + c] = 0.0f;
  const float inv_d = 1.0f / static_cast<float>(D);
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + warp; row < rows;
       row += static_cast<int64_t>(gridDim.x) * kWarpsPerBlock) {
    const int64_t base = row * D;
    const float m = mean[row], r = rstd[row];
    float xhat[kPerLane], g[kPerLane];
    float sum_g = 0.0f, sum_gx = 0.0f;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int c = k * kWarp + lane;
      xhat[k] = g[k] = 0.0f;
      if (c < D) {
        const float dz = toFloat(gz[base + c]);
        xhat[k] = (toFloat(y[base + c]) - m) * r;
        mine[c] += dz * xhat[k];
        mine[D + c] += dz;
        g[k] = dz * gamma[c];
        sum_g += g[k];
        sum_gx += g[k] * xhat[k];
      }
    }
    const float mean_g = warpSum(sum_g) * inv_d, mean_gx = warpSum(sum_gx) * inv_d;
    const float s = scale != nullptr ? scale[row / tokens] : 1.0f;
#pragma unroll
    for (int k = 0; k < kPerLane; ++k) {
      const int c = k * kWarp + lane;
      if (c < D) {
        float d = r * (g[k] - mean_g - xhat[k] * mean_gx);
        if (gy != nullptr) d += toFloat(gy[base + c]);
        const TS d_stream = fromFloat<TS>(d);
        dx[base + c] = d_stream;
        const float d_branch = toFloat(d_stream) * s;
        if (dbranch != nullptr) dbranch[base + c] = fromFloat<TB>(d_branch);
        if (bias_sum) mine[2 * D + c] += d_branch;
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

template <typename TS>
const char* forwardTyped(const ResidualNormForwardArgs& a) {
  using TB = __nv_bfloat16;
  using TO = __nv_bfloat16;
  const int64_t blocks = (a.rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
  if (blocks == 0) return nullptr;
  auto stream = static_cast<cudaStream_t>(a.stream);
  const bool ok = withPerLane(a.D, [&](auto per_lane) {
    MST_LAUNCH(static_cast<unsigned>(blocks), kWarp * kWarpsPerBlock, 0, stream,
               forwardKernel<TS, TB, TO, decltype(per_lane)::value>)(
            static_cast<const TS*>(a.x), static_cast<const TB*>(a.branch), a.bias, a.scale,
            a.gamma, a.beta, static_cast<TS*>(a.y), static_cast<TO*>(a.z), a.mean, a.rstd, a.rows,
            a.tokens, a.D, a.eps);
  });
  if (!ok) return "residual norm: more than 1024 channels";
  return lastError();
}

template <typename TS>
const char* backwardTyped(const ResidualNormBackwardArgs& a) {
  using TB = __nv_bfloat16;
  using TO = __nv_bfloat16;
  if (a.sums != 2 && a.sums != 3) return "residual norm: 2 or 3 column sums";
  // At most 4 warps × 3 sums × 1024 channels × 4 bytes = 48 KiB, the most a block gets without
  // opting in to more (cudaFuncAttributeMaxDynamicSharedMemorySize).
  static_assert(kWarpsPerBlock * 3 * 1024 * sizeof(float) <= 48 * 1024,
                "the backward kernel's shared sums outgrow the default limit");
  auto stream = static_cast<cudaStream_t>(a.stream);
  const size_t shared = sizeof(float) * kWarpsPerBlock * a.sums * static_cast<size_t>(a.D);
  const bool ok = withPerLane(a.D, [&](auto per_lane) {
    MST_LAUNCH(a.blocks, kWarp * kWarpsPerBlock, shared, stream,
               backwardKernel<TS, TB, TO, decltype(per_lane)::value>)(
            static_cast<const TO*>(a.gz), static_cast<const TS*>(a.gy),
            static_cast<const TS*>(a.y), a.mean, a.rstd, a.gamma, a.scale,
            static_cast<TS*>(a.dx), static_cast<TB*>(a.dbranch), a.partial, a.rows, a.tokens,
            a.D, a.sums);
  });
  if (!ok) return "residual norm: more than 1024 channels";
  if (const char* e = lastError()) return e;
  launchColumnSums(a.partial, a.blocks, a.sums * a.D, a.affine, stream);
  return lastError();
}

}  // namespace

int residualNormBackwardBlocks(int64_t rows, int D, bool stream_bf16, int sums) {
  // As many blocks as the device holds at once (registers and the per-warp shared sums,
  // 4·sums·D bytes a warp, limit it), so that every SM keeps enough rows in flight to cover
  // memory latency; more would only lengthen the partial sums. Asked once per (device, dtype,
  // D, sums).
  static std::mutex mutex;
  static std::map<std::tuple<int, bool, int, int>, int> resident;
  int device = 0;
  if (cudaGetDevice(&device) != cudaSuccess) {
    cudaGetLastError();
    device = -1;
  }
  int per_sm = 0;
  {
    std::lock_guard<std::mutex> lock(mutex);
    const auto key = std::make_tuple(device, stream_bf16, D, sums);
    auto it = resident.find(key);
    if (it != resident.end()) {
      per_sm = it->second;
    } else {
      const size_t shared = sizeof(float) * kWarpsPerBlock * sums * static_cast<size_t>(D);
      auto query = [&](auto per_lane) {
        constexpr int kPerLane = decltype(per_lane)::value;
        const cudaError_t e =
            stream_bf16
                ? cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                      &per_sm,
                      backwardKernel<__nv_bfloat16, __nv_bfloat16, __nv_bfloat16, kPerLane>,
                      kWarp * kWarpsPerBlock, shared)
                : cudaOccupancyMaxActiveBlocksPerMultiprocessor(
                      &per_sm, backwardKernel<float, __nv_bfloat16, __nv_bfloat16, kPerLane>,
                      kWarp * kWarpsPerBlock, shared);
        if (e != cudaSuccess) {
          cudaGetLastError();  // leave no error for the next launch check; fall back below
          per_sm = 0;
        }
      };
      if (!withPerLane(D, query) || per_sm <= 0) per_sm = 4;
      resident.emplace(key, per_sm);
    }
  }
  static const int sms = multiprocessors();
  const int64_t by_rows = (rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
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
  return a.stream_bf16 ? forwardTyped<__nv_bfloat16>(a) : forwardTyped<float>(a);
}

const char* residualNormBackward(const ResidualNormBackwardArgs& a) {
  return a.stream_bf16 ? backwardTyped<__nv_bfloat16>(a) : backwardTyped<float>(a);
}

}  // namespace mst::kernels
