/// @brief CUDA kernels of the fused augmentation (see augment_cuda.h): four passes over a crop
/// set instead of some sixty ATen kernels.
///   1. the luminance of the cropped, brightened pixels, summed per block (only rows with colour
///      jitter: contrast's statistic);
///   2. per row: the luminance mean, whether the blur was drawn, the hue rotation;
///   3. per pixel: bilinear crop with reflection padding, brightness, contrast, saturation, hue,
///      random grayscale, then solarisation and normalisation into the output; rows whose blur
///      was drawn go to a scratch instead;
///   4. those rows' blur, both directions per 32×32 tile in shared memory, then solarisation and
///      normalisation (two passes through global memory where a radius' tile does not fit).
/// Each step computes what MultiCrop's ATen operations compute, in the same order, in fp32. A
/// crop's pixels are computed in both passes 1 and 3 rather than stored and read back.
#include "core/kernels/augment_cuda.h"

#include <cuda_runtime.h>

#include "core/kernels/augment_pixel.h"
#include "core/kernels/cuda_status.h"
#include "core/kernels/launch.cuh"

namespace mst::kernels {
namespace {

using namespace pixel;

constexpr int kThreads = kAugmentThreads;

__device__ float blockSum(float v) {
  __shared__ float warp_sums[kThreads / 32];
  for (int offset = 16; offset > 0; offset /= 2) v += __shfl_xor_sync(0xffffffffu, v, offset);
  const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  float total = 0.0f;
  if (threadIdx.x == 0)
    for (int w = 0; w < kThreads / 32; ++w) total += warp_sums[w];
  return total;  // valid in thread 0
}

/// A row's statistics (augment_cuda.h, AugmentRowStat) after its partial sums.
__device__ __forceinline__ const float* rowStats(const AugmentArgs& a, int64_t row, int blocks) {
  return a.partial + row * (blocks + kRowStats) + blocks;
}

/// Pass 1 (rows with colour jitter): the luminance of each cropped, brightened pixel, summed per
/// block into the row's partial sums. A row without jitter has no contrast to compute, so its
/// blocks return at once (the whole block: the barrier of blockSum is never reached).
/// C (1 or 3) is a template parameter, so that a pixel's channels stay in registers.
template <int C>
__global__ void __launch_bounds__(kThreads) lumaKernel(AugmentArgs a) {
  const int64_t row = blockIdx.y;
  if (!a.jitter[row]) return;
  const int p = blockIdx.x * kThreads + threadIdx.x;
  float gray = 0.0f;
  if (p < a.S * a.S) {
    const int64_t plane = static_cast<int64_t>(a.H) * a.W;
    float v[3] = {0.0f, 0.0f, 0.0f};
    cropPixel(a.src + (row % a.src_rows) * C * plane, C, a.H, a.W, a.theta + row * 6, a.S,
              p / a.S, p % a.S, true, a.brightness[row], v);
    gray = grayOf(v, C);
  }
  const float total = blockSum(gray);
  if (threadIdx.x == 0) a.partial[row * (gridDim.x + kRowStats) + blockIdx.x] = total;
}

/// Pass 2, one thread per row: the luminance mean from the partial sums in a fixed order,
/// whether the row's blur was drawn, and the hue rotation's cosine and sine.
__global__ void rowStatsKernel(AugmentArgs a, int blocks) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row >= a.rows) return;
  float* p = a.partial + row * (blocks + kRowStats);
  const bool jitter = a.jitter[row];
  float total = 0.0f;
  if (jitter)
    for (int b = 0; b < blocks; ++b) total += p[b];
  p[blocks + kRowMean] = total / static_cast<float>(a.S * a.S);
  p[blocks + kRowBlurred] =
      a.blur != nullptr && !identityTaps(a.blur + row * (2 * a.radius + 1), a.radius) ? 1.0f : 0.0f;
  float cs = 1.0f, sn = 0.0f;
  if (jitter && a.C == 3) hueRotation(a.hue[row], &cs, &sn);
  p[blocks + kRowCos] = cs;
  p[blocks + kRowSin] = sn;
}

/// Pass 3: one thread per output pixel of row blockIdx.y, all channels: crop, colour, and either
/// the finished value into `out` or, where the row's blur was drawn, the value into `work`.
template <int C>
__global__ void __launch_bounds__(kThreads) pixelKernel(AugmentArgs a, int blocks) {
  const int64_t row = blockIdx.y;
  const int p = blockIdx.x * kThreads + threadIdx.x;
  const int SS = a.S * a.S;
  if (p >= SS) return;
  const float* st = rowStats(a, row, blocks);
  const bool jitter = a.jitter[row], gray = C == 3 && a.gray[row];
  const int64_t plane = static_cast<int64_t>(a.H) * a.W;
  float v[3] = {0.0f, 0.0f, 0.0f};
  cropPixel(a.src + (row % a.src_rows) * C * plane, C, a.H, a.W, a.theta + row * 6, a.S,
            p / a.S, p % a.S, jitter, a.brightness[row], v);
  if (jitter || gray)
    colourPixel(v, C, jitter, gray, st[kRowMean], a.contrast[row], a.saturation[row],
                st[kRowCos], st[kRowSin]);
  if (st[kRowBlurred] != 0.0f) {
#pragma unroll
    for (int c = 0; c < C; ++c) a.work[(row * C + c) * SS + p] = v[c];
    return;
  }
  const bool solarize = a.solarize != nullptr && a.solarize[row];
#pragma unroll
  for (int c = 0; c < C; ++c)
    a.out[(row * C + c) * SS + p] = finishValue(v[c], solarize, a.mean[c], a.std[c]);
}

/// Pass 4 (rows whose blur was drawn): one block per kBlurTile² tile of one channel. The tile's
/// input with a margin of `radius` on every side (reflected at the crop's edges, as blurAt
/// reflects) goes to shared memory; the blur along the rows runs over every input row the tile
/// needs, then the blur along the columns over those results, each tap sum in blurAt's order, so
/// the values are those of the separable two-pass blur. Then solarisation and normalisation.
__global__ void __launch_bounds__(kThreads) blurTileKernel(AugmentArgs a, int blocks, int tiles) {
  const int64_t row = blockIdx.z;
  if (rowStats(a, row, blocks)[kRowBlurred] == 0.0f) return;  // (the whole block)
  const int c = blockIdx.y, S = a.S, r = a.radius, k = 2 * r + 1, span = kBlurTile + 2 * r;
  const int y0 = static_cast<int>(blockIdx.x / tiles) * kBlurTile;
  const int x0 = static_cast<int>(blockIdx.x % tiles) * kBlurTile;
  const int out_rows = S - y0 < kBlurTile ? S - y0 : kBlurTile;
  const int out_cols = S - x0 < kBlurTile ? S - x0 : kBlurTile;
  const int in_rows = out_rows + 2 * r, in_cols = out_cols + 2 * r;
  MST_DYNAMIC_SHARED(float, smem);
  float* in = smem;                   // (in_rows, in_cols) of (span, span)
  float* mid = in + span * span;      // (in_rows, out_cols) of (span, kBlurTile)
  float* taps = mid + span * kBlurTile;
  const int64_t SS = static_cast<int64_t>(S) * S;
  const float* plane = a.work + (row * a.C + c) * SS;
  for (int t = threadIdx.x; t < k; t += blockDim.x) taps[t] = a.blur[row * k + t];
  for (int idx = threadIdx.x; idx < in_rows * in_cols; idx += blockDim.x) {
    const int yy = idx / in_cols, xx = idx % in_cols;
    in[yy * span + xx] =
        plane[static_cast<int64_t>(reflectIndex(y0 - r + yy, S)) * S + reflectIndex(x0 - r + xx, S)];
  }
  __syncthreads();
  for (int idx = threadIdx.x; idx < in_rows * out_cols; idx += blockDim.x) {
    const int yy = idx / out_cols, xx = idx % out_cols;
    const float* line = in + yy * span + xx;
    float total = 0.0f;
    for (int t = 0; t < k; ++t) total += taps[t] * line[t];
    mid[yy * kBlurTile + xx] = total;
  }
  __syncthreads();
  const bool solarize = a.solarize != nullptr && a.solarize[row];
  const float mean = a.mean[c], std = a.std[c];
  float* out = a.out + (row * a.C + c) * SS;
  for (int idx = threadIdx.x; idx < out_rows * out_cols; idx += blockDim.x) {
    const int yy = idx / out_cols, xx = idx % out_cols;
    const float* column = mid + yy * kBlurTile + xx;
    float total = 0.0f;
    for (int t = 0; t < k; ++t) total += taps[t] * column[t * kBlurTile];
    out[static_cast<int64_t>(y0 + yy) * S + x0 + xx] = finishValue(total, solarize, mean, std);
  }
}

/// Radii whose tile does not fit (augmentBlurTileBytes > kBlurTileMaxBytes), pass 4a: the blur
/// along the rows, work → work2, for the rows whose blur was drawn.
__global__ void __launch_bounds__(kThreads) blurRowsKernel(AugmentArgs a, int blocks) {
  const int64_t row = blockIdx.y;
  const int p = blockIdx.x * kThreads + threadIdx.x;
  const int SS = a.S * a.S;
  if (p >= SS || rowStats(a, row, blocks)[kRowBlurred] == 0.0f) return;
  const float* taps = a.blur + row * (2 * a.radius + 1);
  const int i = p / a.S, j = p % a.S;
  for (int c = 0; c < a.C; ++c) {
    const float* line = a.work + (row * a.C + c) * SS + static_cast<int64_t>(i) * a.S;
    a.work2[(row * a.C + c) * SS + p] = blurAt(line, 1, a.S, j, taps, a.radius);
  }
}

/// Pass 4b: the blur along the columns, work2 → out, solarisation and normalisation.
__global__ void __launch_bounds__(kThreads) blurColumnsKernel(AugmentArgs a, int blocks) {
  const int64_t row = blockIdx.y;
  const int p = blockIdx.x * kThreads + threadIdx.x;
  const int SS = a.S * a.S;
  if (p >= SS || rowStats(a, row, blocks)[kRowBlurred] == 0.0f) return;
  const float* taps = a.blur + row * (2 * a.radius + 1);
  const int i = p / a.S, j = p % a.S;
  const bool solarize = a.solarize != nullptr && a.solarize[row];
  for (int c = 0; c < a.C; ++c) {
    const float v = blurAt(a.work2 + (row * a.C + c) * SS + j, a.S, a.S, i, taps, a.radius);
    a.out[(row * a.C + c) * SS + p] = finishValue(v, solarize, a.mean[c], a.std[c]);
  }
}

}  // namespace

const char* augmentCrops(const AugmentArgs& a) {
  if (const char* e = augmentArgsError(a)) return e;
  if (a.rows == 0 || a.S == 0) return nullptr;
  auto stream = static_cast<cudaStream_t>(a.stream);
  const int blocks = augmentPartialBlocks(a.S);
  const dim3 grid(blocks, static_cast<unsigned>(a.rows));
  if (a.C == 3)
    MST_LAUNCH(grid, kThreads, 0, stream, lumaKernel<3>)(a);
  else
    MST_LAUNCH(grid, kThreads, 0, stream, lumaKernel<1>)(a);
  if (const char* e = lastError()) return e;
  MST_LAUNCH(static_cast<unsigned>((a.rows + 127) / 128), 128, 0, stream, rowStatsKernel)(a, blocks);
  if (const char* e = lastError()) return e;
  if (a.C == 3)
    MST_LAUNCH(grid, kThreads, 0, stream, pixelKernel<3>)(a, blocks);
  else
    MST_LAUNCH(grid, kThreads, 0, stream, pixelKernel<1>)(a, blocks);
  if (const char* e = lastError()) return e;
  if (a.blur == nullptr) return nullptr;
  if (!augmentBlurTakesTwoPasses(a.radius)) {
    const long long tile_bytes = augmentBlurTileBytes(a.radius);
    const int tiles = (a.S + kBlurTile - 1) / kBlurTile;
    const dim3 tile_grid(static_cast<unsigned>(tiles * tiles), static_cast<unsigned>(a.C),
                         static_cast<unsigned>(a.rows));
    MST_LAUNCH(tile_grid, kThreads, static_cast<size_t>(tile_bytes), stream, blurTileKernel)(
        a, blocks, tiles);
    return lastError();
  }
  MST_LAUNCH(grid, kThreads, 0, stream, blurRowsKernel)(a, blocks);
  if (const char* e = lastError()) return e;
  MST_LAUNCH(grid, kThreads, 0, stream, blurColumnsKernel)(a, blocks);
  return lastError();
}

}  // namespace mst::kernels
