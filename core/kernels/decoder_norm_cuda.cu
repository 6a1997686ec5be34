/// @brief The decoder stage's fused kernels (see decoder_norm_cuda.h). Each pass maps G = C / V
/// adjacent threads to one pixel's C channels, V per thread in one 16-byte vector (V = 8 bf16 or
/// 4 fp32), so a block of 256 threads takes 256 / G pixels at a time and strides over the rest.
/// The two statistics passes keep per-thread fp64 sums, add them across the warp's lanes that
/// share channels (shuffles), then across the block's warps (shared memory), and leave one row
/// of 2C sums per block; a one-block kernel adds the rows in a fixed order. (A thread's own
/// sums are fp32, of values centred on a sample of their channel; everything after them fp64.)
#include "core/kernels/decoder_norm_cuda.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <math.h>

#include "core/kernels/column_sums.cuh"
#include "core/kernels/cuda_status.h"
#include "core/kernels/launch.cuh"
#include "core/kernels/vec_access.cuh"

namespace mst::kernels {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;
constexpr int kMaxChannels = 256;  // 32 lanes × 8 bf16

template <typename T>
struct Vec {
  static constexpr int kN = 16 / static_cast<int>(sizeof(T));
  union {
    uint4 raw;
    T v[kN];
  };
};

/// BatchNorm's output before ReLU, as every pass computes it (the backward passes recompute
/// ReLU's mask from it).
__device__ __forceinline__ float affine(float xhat, float gamma, float beta) {
  return fmaf(xhat, gamma, beta);
}

/// The block's copy of the per-channel parameters (C ≤ kMaxChannels); the caller then waits.
__device__ __forceinline__ void loadChannels(int C, const float* __restrict__ mean, float* m,
                                             const float* __restrict__ invstd, float* is,
                                             const float* __restrict__ gamma, float* ga,
                                             const float* __restrict__ beta, float* be) {
  for (int c = threadIdx.x; c < C; c += kThreads) {
    m[c] = mean[c];
    is[c] = invstd[c];
    ga[c] = gamma[c];
    be[c] = beta[c];
  }
}

struct Geometry {
  int64_t batch;
  int H, W, C;
  __device__ __forceinline__ int64_t pixels() const { return batch * 4 * H * W; }
  /// Output pixel p's channel 0 in y: phase (a, b) of input pixel (i, j) is window (i+a, j+b)
  /// of channel block 2a + b.
  __device__ __forceinline__ int64_t source(int64_t p) const {
    const int ox = static_cast<int>(p % (2 * W));
    const int64_t rest = p / (2 * W);
    const int oy = static_cast<int>(rest % (2 * H));
    const int64_t n = rest / (2 * H);
    const int a = oy & 1, b = ox & 1;
    const int r = (oy >> 1) + a, s = (ox >> 1) + b;
    return ((n * (H + 1) + r) * (W + 1) + s) * 4 * C + (2 * a + b) * C;
  }
};

/// Adds each thread's sums (acc[k][u]: sum k of channel g·kN + u, g = threadIdx.x % G) over the
/// block and writes them to partial[blockIdx.x][k·C + channel]. Every thread must call it.
template <int kN>
__device__ __forceinline__ void writeBlockSums(double (&acc)[2][kN], int G, int C,
                                               double* __restrict__ partial) {
  __shared__ double red[kWarps][2 * kMaxChannels];
  for (int offset = G; offset < 32; offset <<= 1) {  // lanes ≡ mod G hold the same channels
#pragma unroll
    for (int k = 0; k < 2; ++k)
#pragma unroll
      for (int u = 0; u < kN; ++u) acc[k][u] += __shfl_xor_sync(0xffffffffu, acc[k][u], offset);
  }
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  if (lane < G) {
#pragma unroll
    for (int k = 0; k < 2; ++k)
#pragma unroll
      for (int u = 0; u < kN; ++u) red[warp][k * C + lane * kN + u] = acc[k][u];
  }
  __syncthreads();
  for (int e = threadIdx.x; e < 2 * C; e += kThreads) {
    double total = 0.0;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) total += red[w][e];
    partial[static_cast<int64_t>(blockIdx.x) * 2 * C + e] = total;
  }
}

/// kGrad false: Σ x and Σ x² per channel of the gathered input. kGrad true: Σ g' and Σ g'·x̂,
/// g' = dout where BatchNorm's output is positive (ReLU's mask), x̂ = (x − μ) σ⁻¹.
template <typename T, bool kGrad>
__global__ void __launch_bounds__(kThreads)
    decoderSumsKernel(const T* __restrict__ y, const T* __restrict__ dout, const float* __restrict__ mean,
               const float* __restrict__ invstd, const float* __restrict__ gamma,
               const float* __restrict__ beta, Geometry geo, double* __restrict__ partial) {
  constexpr int kN = Vec<T>::kN;
  const int G = geo.C / kN, per_block = kThreads / G;
  const int c0 = (threadIdx.x % G) * kN;
  __shared__ float m[kMaxChannels], is[kMaxChannels], ga[kMaxChannels], be[kMaxChannels];
  if (kGrad) {
    loadChannels(geo.C, mean, m, invstd, is, gamma, ga, beta, be);
    __syncthreads();
  }
  // fp32 within a thread, fp64 from the warp's sums on. The statistics sum x − x₀ (x₀: the
  // first output pixel's value, a sample of the channel), so that Σ(x − x₀)² does not dwarf
  // the variance when |μ| ≫ σ.
  float acc[2][kN], pivot[kN];
#pragma unroll
  for (int u = 0; u < kN; ++u) {
    acc[0][u] = acc[1][u] = 0.0f;
    pivot[u] = kGrad ? 0.0f : toFloat(y[c0 + u]);  // (output pixel 0 reads y's first pixel)
  }
  const int64_t pixels = geo.pixels();
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * per_block + threadIdx.x / G; p < pixels;
       p += static_cast<int64_t>(gridDim.x) * per_block) {
    Vec<T> x;
    x.raw = *reinterpret_cast<const uint4*>(y + geo.source(p) + c0);
    if (!kGrad) {
#pragma unroll
      for (int u = 0; u < kN; ++u) {
        const float v = toFloat(x.v[u]) - pivot[u];
        acc[0][u] += v;
        acc[1][u] = fmaf(v, v, acc[1][u]);
      }
    } else {
      Vec<T> d;
      d.raw = *reinterpret_cast<const uint4*>(dout + p * geo.C + c0);
#pragma unroll
      for (int u = 0; u < kN; ++u) {
        const int c = c0 + u;
        const float xhat = (toFloat(x.v[u]) - m[c]) * is[c];
        const float g = affine(xhat, ga[c], be[c]) <= 0.0f ? 0.0f : toFloat(d.v[u]);
        acc[0][u] += g;
        acc[1][u] = fmaf(g, xhat, acc[1][u]);
      }
    }
  }
  double sums[2][kN];
#pragma unroll
  for (int u = 0; u < kN; ++u) {
    sums[0][u] = acc[0][u];
    sums[1][u] = acc[1][u];
  }
  writeBlockSums<kN>(sums, G, geo.C, partial);
}

/// Channel c's two sums over the blocks' rows of partial (blocks, 2C), in block order.
__device__ __forceinline__ void addBlockRows(const double* __restrict__ partial, int blocks, int C,
                                             int c, double& first, double& second) {
  for (int b = 0; b < blocks; ++b) {
    first += partial[static_cast<int64_t>(b) * 2 * C + c];
    second += partial[static_cast<int64_t>(b) * 2 * C + C + c];
  }
}

/// μ, σ⁻¹ and the running statistics from the blocks' Σ (x − x₀) and Σ (x − x₀)².
template <typename T>
__global__ void __launch_bounds__(kThreads)
    decoderStatsKernel(const T* __restrict__ y, const double* __restrict__ partial, int blocks,
                       int C, double count,
                      double momentum, double eps, float* __restrict__ mean,
                      float* __restrict__ invstd, float* __restrict__ running_mean,
                      float* __restrict__ running_var) {
  for (int c = threadIdx.x; c < C; c += kThreads) {
    double s = 0.0, ss = 0.0;
    addBlockRows(partial, blocks, C, c, s, ss);
    const double shift = s / count;
    const double mu = toFloat(y[c]) + shift;
    double var = ss / count - shift * shift;
    if (var < 0.0) var = 0.0;
    mean[c] = static_cast<float>(mu);
    invstd[c] = static_cast<float>(1.0 / sqrt(var + eps));
    if (running_mean != nullptr) {
      const double unbiased = count > 1.0 ? var * count / (count - 1.0) : var;
      running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * mu);
      running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] + momentum * unbiased);
    }
  }
}

/// γ's and β's gradients from the blocks' Σ g'·x̂ and Σ g'.
__global__ void __launch_bounds__(kThreads)
    decoderGradSumsKernel(const double* __restrict__ partial, int blocks, int C,
                     float* __restrict__ dgamma, float* __restrict__ dbeta) {
  for (int c = threadIdx.x; c < C; c += kThreads) {
    double s = 0.0, sx = 0.0;
    addBlockRows(partial, blocks, C, c, s, sx);
    dbeta[c] = static_cast<float>(s);
    dgamma[c] = static_cast<float>(sx);
  }
}

/// out = max(0, x̂ γ + β) for every output pixel.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    decoderApplyKernel(const T* __restrict__ y, T* __restrict__ out, const float* __restrict__ mean,
                const float* __restrict__ invstd, const float* __restrict__ gamma,
                const float* __restrict__ beta, Geometry geo) {
  constexpr int kN = Vec<T>::kN;
  const int G = geo.C / kN, per_block = kThreads / G;
  const int c0 = (threadIdx.x % G) * kN;
  __shared__ float m[kMaxChannels], is[kMaxChannels], ga[kMaxChannels], be[kMaxChannels];
  loadChannels(geo.C, mean, m, invstd, is, gamma, ga, beta, be);
  __syncthreads();
  const int64_t pixels = geo.pixels();
  for (int64_t p = static_cast<int64_t>(blockIdx.x) * per_block + threadIdx.x / G; p < pixels;
       p += static_cast<int64_t>(gridDim.x) * per_block) {
    Vec<T> x, o;
    x.raw = *reinterpret_cast<const uint4*>(y + geo.source(p) + c0);
#pragma unroll
    for (int u = 0; u < kN; ++u) {
      const int c = c0 + u;
      const float v = affine((toFloat(x.v[u]) - m[c]) * is[c], ga[c], be[c]);
      o.v[u] = fromFloat<T>(v <= 0.0f ? 0.0f : v);  // (ReLU's threshold: a NaN passes, as in ATen)
    }
    *reinterpret_cast<uint4*>(out + p * geo.C + c0) = o.raw;
  }
}

/// y's gradient, row by row of y's (pixel, channel block) rows of C channels: BatchNorm's input
/// gradient where an output pixel reads the row, zeros where none does (the padding windows).
template <typename T>
__global__ void __launch_bounds__(kThreads)
    decoderGradKernel(const T* __restrict__ y, const T* __restrict__ dout, T* __restrict__ dy,
                    const float* __restrict__ mean, const float* __restrict__ invstd,
                    const float* __restrict__ gamma, const float* __restrict__ beta,
                    const float* __restrict__ dgamma, const float* __restrict__ dbeta,
                    Geometry geo) {
  constexpr int kN = Vec<T>::kN;
  const int G = geo.C / kN, per_block = kThreads / G;
  const int c0 = (threadIdx.x % G) * kN;
  const float count = static_cast<float>(geo.pixels());
  __shared__ float m[kMaxChannels], is[kMaxChannels], ga[kMaxChannels], be[kMaxChannels];
  __shared__ float k1[kMaxChannels], k2[kMaxChannels];
  loadChannels(geo.C, mean, m, invstd, is, gamma, ga, beta, be);
  for (int c = threadIdx.x; c < geo.C; c += kThreads) {
    k1[c] = dbeta[c] / count;
    k2[c] = dgamma[c] / count;
  }
  __syncthreads();
  const int64_t rows = geo.batch * (geo.H + 1) * (geo.W + 1) * 4;
  for (int64_t row = static_cast<int64_t>(blockIdx.x) * per_block + threadIdx.x / G; row < rows;
       row += static_cast<int64_t>(gridDim.x) * per_block) {
    const int blk = static_cast<int>(row & 3);
    const int64_t pixel = row >> 2;
    const int s = static_cast<int>(pixel % (geo.W + 1));
    const int64_t rest = pixel / (geo.W + 1);
    const int r = static_cast<int>(rest % (geo.H + 1));
    const int64_t n = rest / (geo.H + 1);
    const int a = blk >> 1, b = blk & 1;
    const int i = r - a, j = s - b;
    Vec<T> o;
    if (i >= 0 && i < geo.H && j >= 0 && j < geo.W) {
      Vec<T> x, d;
      x.raw = *reinterpret_cast<const uint4*>(y + row * geo.C + c0);
      const int64_t at = ((n * 2 * geo.H + 2 * i + a) * 2 * geo.W + 2 * j + b) * geo.C + c0;
      d.raw = *reinterpret_cast<const uint4*>(dout + at);
#pragma unroll
      for (int u = 0; u < kN; ++u) {
        const int c = c0 + u;
        const float xhat = (toFloat(x.v[u]) - m[c]) * is[c];
        const float g = affine(xhat, ga[c], be[c]) <= 0.0f ? 0.0f : toFloat(d.v[u]);
        o.v[u] = fromFloat<T>((g - k1[c] - xhat * k2[c]) * (is[c] * ga[c]));
      }
    } else {
#pragma unroll
      for (int u = 0; u < kN; ++u) o.v[u] = fromFloat<T>(0.0f);
    }
    *reinterpret_cast<uint4*>(dy + row * geo.C + c0) = o.raw;
  }
}

Geometry geometry(const DecoderNormArgs& a) {
  return Geometry{a.batch, a.height, a.width, a.channels};
}

template <typename T>
const char* forward(const DecoderNormArgs& a) {
  auto stream = static_cast<cudaStream_t>(a.stream);
  const Geometry geo = geometry(a);
  const double count = static_cast<double>(a.batch) * 4 * a.height * a.width;
  const T* y = static_cast<const T*>(a.y);
  MST_LAUNCH(a.blocks, kThreads, 0, stream, decoderSumsKernel<T, false>)(
      y, nullptr, nullptr, nullptr, nullptr, nullptr, geo, a.partial);
  if (const char* e = lastError()) return e;
  MST_LAUNCH(1, kThreads, 0, stream, decoderStatsKernel<T>)(y, a.partial, a.blocks, a.channels, count,
                                                        a.momentum, a.eps, a.mean, a.invstd,
                                                        a.running_mean, a.running_var);
  if (const char* e = lastError()) return e;
  MST_LAUNCH(a.blocks, kThreads, 0, stream, decoderApplyKernel<T>)(y, static_cast<T*>(a.out), a.mean,
                                                            a.invstd, a.gamma, a.beta, geo);
  return lastError();
}

template <typename T>
const char* backward(const DecoderNormArgs& a) {
  auto stream = static_cast<cudaStream_t>(a.stream);
  const Geometry geo = geometry(a);
  const T* y = static_cast<const T*>(a.y);
  const T* dout = static_cast<const T*>(a.dout);
  MST_LAUNCH(a.blocks, kThreads, 0, stream, decoderSumsKernel<T, true>)(
      y, dout, a.mean, a.invstd, a.gamma, a.beta, geo, a.partial);
  if (const char* e = lastError()) return e;
  MST_LAUNCH(1, kThreads, 0, stream, decoderGradSumsKernel)(a.partial, a.blocks, a.channels, a.dgamma,
                                                       a.dbeta);
  if (const char* e = lastError()) return e;
  MST_LAUNCH(a.blocks, kThreads, 0, stream, decoderGradKernel<T>)(
      y, dout, static_cast<T*>(a.dy), a.mean, a.invstd, a.gamma, a.beta, a.dgamma, a.dbeta, geo);
  return lastError();
}

const char* checkArgs(const DecoderNormArgs& a) {
  if (!decoderNormSupports(a.channels, a.bf16)) return "decoder norm: unsupported channel count";
  if (a.batch <= 0 || a.height <= 0 || a.width <= 0) return "decoder norm: empty input";
  if (a.blocks < 1) return "decoder norm: no blocks";
  return nullptr;
}

}  // namespace

bool decoderNormSupports(int channels, bool bf16) {
  const int bytes = channels * (bf16 ? 2 : 4);
  if (channels <= 0 || channels > kMaxChannels || bytes % 16 != 0) return false;
  const int lanes = bytes / 16;
  return lanes <= 32 && (lanes & (lanes - 1)) == 0;
}

int decoderNormBlocks(int64_t batch, int height, int width, int channels, bool bf16) {
  static const int resident_bf16 = residentBlocks(decoderSumsKernel<__nv_bfloat16, true>, kThreads);
  static const int resident_fp32 = residentBlocks(decoderSumsKernel<float, true>, kThreads);
  if (!decoderNormSupports(channels, bf16)) return 1;
  const int lanes = channels * (bf16 ? 2 : 4) / 16;
  return rowBlocks(bf16 ? resident_bf16 : resident_fp32, batch * 4 * height * width,
                   kThreads / lanes, 1);
}

const char* decoderNormForward(const DecoderNormArgs& a) {
  if (const char* e = checkArgs(a)) return e;
  return a.bf16 ? forward<__nv_bfloat16>(a) : forward<float>(a);
}

const char* decoderNormBackward(const DecoderNormArgs& a) {
  if (const char* e = checkArgs(a)) return e;
  return a.bf16 ? backward<__nv_bfloat16>(a) : backward<float>(a);
}

}  // namespace mst::kernels
