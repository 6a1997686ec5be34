/// @brief CUDA kernels of the fused augmentation (see augment_cuda.h): four passes over a crop
/// set instead of some sixty ATen kernels. (1) bilinear crop with reflection padding and the
/// brightness factor, with per-block sums of the luminance; (2) the luminance mean, then contrast,
/// saturation, hue and random grayscale; (3) the blur's horizontal pass; (4) its vertical pass,
/// solarisation and normalisation. Each step computes what MultiCrop's ATen operations compute,
/// in the same order, in fp32.
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

/// Pass 1: one thread per output pixel of row blockIdx.y, all channels; per-block luminance sums.
__global__ void __launch_bounds__(kThreads) cropKernel(AugmentArgs a) {
  const int64_t row = blockIdx.y;
  const int p = blockIdx.x * kThreads + threadIdx.x;
  const int SS = a.S * a.S;
  const bool jitter = a.jitter[row];
  float gray = 0.0f;
  if (p < SS) {
    const int i = p / a.S, j = p % a.S;
    const int64_t plane = static_cast<int64_t>(a.H) * a.W;
    float v[3] = {0.0f, 0.0f, 0.0f};
    cropPixel(a.src + (row % a.src_rows) * a.C * plane, a.C, a.H, a.W, a.theta + row * 6, a.S,
              i, j, jitter, a.brightness[row], v);
    for (int c = 0; c < a.C; ++c) a.work[(row * a.C + c) * SS + p] = v[c];
    if (jitter) gray = grayOf(v, a.C);
  }
  const float total = blockSum(gray);
  if (threadIdx.x == 0) a.partial[row * (gridDim.x + 1) + blockIdx.x] = total;
}

/// One thread per row: the luminance mean from the partial sums, in a fixed order.
__global__ void meanKernel(AugmentArgs a, int blocks) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (row >= a.rows) return;
  float* p = a.partial + row * (blocks + 1);
  float total = 0.0f;
  for (int b = 0; b < blocks; ++b) total += p[b];
  p[blocks] = total / static_cast<float>(a.S * a.S);
}

/// Pass 2, in place: contrast, saturation, hue, then random grayscale.
__global__ void __launch_bounds__(kThreads) colourKernel(AugmentArgs a, int blocks) {
  const int64_t row = blockIdx.y;
  const int p = blockIdx.x * kThreads + threadIdx.x;
  const int SS = a.S * a.S;
  const bool jitter = a.jitter[row], gray = a.C == 3 && a.gray[row];
  if (p >= SS || (!jitter && !gray)) return;
  float* px = a.work + row * a.C * SS + p;
  float v[3];
  for (int c = 0; c < a.C; ++c) v[c] = px[c * SS];
  colourPixel(v, a.C, jitter, gray, a.partial[row * (blocks + 1) + blocks], a.contrast[row],
              a.saturation[row], a.hue[row]);
  for (int c = 0; c < a.C; ++c) px[c * SS] = v[c];
}

/// Whether a row's taps are the identity (1 at the centre, 0 elsewhere: MultiCrop's taps for a
/// crop the blur was not drawn for). Such a blur leaves every (finite) value exactly as it is
/// (0 · x adds ±0), so both passes skip those rows: most local crops and the second global
/// crops (blur probability 0.5 and 0.1).
__device__ __forceinline__ bool identityTaps(const float* taps, int radius) {
  for (int t = 0; t <= 2 * radius; ++t)
    if (taps[t] != (t == radius ? 1.0f : 0.0f)) return false;
  return true;
}

/// Pass 3: the blur along the rows of each image, work → work2 (rows whose blur was drawn).
__global__ void __launch_bounds__(kThreads) blurRowsKernel(AugmentArgs a) {
  const int64_t row = blockIdx.y;
  const int p = blockIdx.x * kThreads + threadIdx.x;
  const int SS = a.S * a.S;
  const float* taps = a.blur + row * (2 * a.radius + 1);
  if (p >= SS || identityTaps(taps, a.radius)) return;
  const int i = p / a.S, j = p % a.S;
  for (int c = 0; c < a.C; ++c) {
    const float* line = a.work + (row * a.C + c) * SS + static_cast<int64_t>(i) * a.S;
    a.work2[(row * a.C + c) * SS + p] = blurAt(line, 1, a.S, j, taps, a.radius);
  }
}

/// Pass 4: the blur along the columns (when drawn), solarisation, normalisation → out.
__global__ void __launch_bounds__(kThreads) finishKernel(AugmentArgs a, const float* in) {
  const int64_t row = blockIdx.y;
  const int p = blockIdx.x * kThreads + threadIdx.x;
  const int SS = a.S * a.S;
  if (p >= SS) return;
  const int i = p / a.S, j = p % a.S;
  const bool solarize = a.solarize != nullptr && a.solarize[row];
  const float* taps = a.blur != nullptr ? a.blur + row * (2 * a.radius + 1) : nullptr;
  const bool blurred = taps != nullptr && !identityTaps(taps, a.radius);
  for (int c = 0; c < a.C; ++c) {
    const float* plane = (blurred ? in : a.work) + (row * a.C + c) * SS;
    const float v = blurred ? blurAt(plane + j, a.S, a.S, i, taps, a.radius) : plane[p];
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
  MST_LAUNCH(grid, kThreads, 0, stream, cropKernel)(a);
  if (const char* e = lastError()) return e;
  MST_LAUNCH(static_cast<unsigned>((a.rows + 127) / 128), 128, 0, stream, meanKernel)(a, blocks);
  if (const char* e = lastError()) return e;
  MST_LAUNCH(grid, kThreads, 0, stream, colourKernel)(a, blocks);
  if (const char* e = lastError()) return e;
  if (a.blur != nullptr) {
    MST_LAUNCH(grid, kThreads, 0, stream, blurRowsKernel)(a);
    if (const char* e = lastError()) return e;
  }
  MST_LAUNCH(grid, kThreads, 0, stream, finishKernel)(a, a.blur != nullptr ? a.work2 : a.work);
  return lastError();
}

}  // namespace mst::kernels
