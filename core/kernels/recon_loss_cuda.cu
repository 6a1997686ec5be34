/// @brief The fused reconstruction loss's kernels (see recon_loss_cuda.h). Each warp takes one
/// row at a time of the array it reads or writes whole: the forward pass a row of the target
/// (NCHW), whose outputs read one pixel row of y; the backward pass a pixel row of y (NHWC), which
/// two rows of each target channel read. Indices within a row are 32-bit.
#include "core/kernels/recon_loss_cuda.h"

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

struct Geometry {
  int64_t batch;
  int H, W, C;
  int K;  ///< y's channels (≥ 4C): the stride between its pixels
  /// The target's rows (n, c, oy) and y's rows (n, r): each warp takes one row at a time.
  __device__ __forceinline__ int64_t outputRows() const { return batch * C * 2 * H; }
  __device__ __forceinline__ int64_t phaseRows() const { return batch * (H + 1); }
};

/// The first warp of this block, and the stride between a warp's rows.
__device__ __forceinline__ int64_t firstRow() {
  return static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
}
__device__ __forceinline__ int64_t rowStride() { return static_cast<int64_t>(gridDim.x) * kWarps; }

/// The block's sum of each thread's `v`, in fp64 and a fixed order (the warps' shuffles, then
/// the warps in turn); thread 0 gets it. Every thread must call it.
__device__ __forceinline__ double blockSum(double v) {
  for (int offset = 16; offset > 0; offset >>= 1) v += __shfl_xor_sync(0xffffffffu, v, offset);
  __shared__ double warps[kWarps];
  if ((threadIdx.x & 31) == 0) warps[threadIdx.x >> 5] = v;
  __syncthreads();
  double total = 0.0;
  if (threadIdx.x == 0)
    for (int w = 0; w < kWarps; ++w) total += warps[w];
  return total;
}

/// Σ |x − t| over this block's rows of the target, in fp64 from the lanes' fp32 sums; thread 0
/// writes it to partial[blockIdx.x].
template <typename T>
__global__ void __launch_bounds__(kThreads)
    reconSumsKernel(const T* __restrict__ y, const float* __restrict__ target, Geometry geo,
                    double* __restrict__ partial) {
  const int lane = threadIdx.x & 31, W2 = 2 * geo.W, K = geo.K;
  float acc = 0.0f;
  for (int64_t row = firstRow(); row < geo.outputRows(); row += rowStride()) {
    const int oy = static_cast<int>(row % (2 * geo.H));
    const int64_t nc = row / (2 * geo.H);
    const int c = static_cast<int>(nc % geo.C);
    const int64_t n = nc / geo.C;
    const int a = oy & 1;
    // Output (oy, ox) reads y[n, (oy >> 1) + a, (ox >> 1) + b, (2a + b) C + c], b = ox & 1.
    const T* y_row = y + (n * (geo.H + 1) + (oy >> 1) + a) * (geo.W + 1) * K + 2 * a * geo.C + c;
    const float* t_row = target + row * W2;
    for (int ox = lane; ox < W2; ox += 32) {
      const int b = ox & 1;
      acc += fabsf(toFloat(y_row[((ox >> 1) + b) * K + b * geo.C]) - t_row[ox]);
    }
  }
  const double total = blockSum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = total;
}

/// loss = Σ partial / count, the blocks' sums added in a fixed order.
__global__ void __launch_bounds__(kThreads)
    reconFinishKernel(const double* __restrict__ partial, int blocks, double count,
                      float* __restrict__ loss) {
  double v = 0.0;
  for (int b = threadIdx.x; b < blocks; b += kThreads) v += partial[b];
  const double total = blockSum(v);
  if (threadIdx.x == 0) *loss = static_cast<float>(total / count);
}

/// dy = (g / N) · sign(x − t) where an output reads y's element, 0 elsewhere (the padding
/// windows, and the channels past the 4C phases); sign as ATen's
/// abs backward takes it (0 for a zero difference). g / N is g · (1 / N) in fp32, as ATen's
/// mean backward divides by a scalar on CUDA.
template <typename T>
__global__ void __launch_bounds__(kThreads)
    reconGradKernel(const T* __restrict__ y, const float* __restrict__ target,
                    const float* __restrict__ grad, float count, Geometry geo, T* __restrict__ dy) {
  const float g = grad[0] * (1.0f / count);
  const int lane = threadIdx.x & 31, K = geo.K, phases = 4 * geo.C, width = (geo.W + 1) * K;
  const int64_t plane = static_cast<int64_t>(4) * geo.H * geo.W;  // one channel of the target
  for (int64_t row = firstRow(); row < geo.phaseRows(); row += rowStride()) {
    const int r = static_cast<int>(row % (geo.H + 1));
    const int64_t n = row / (geo.H + 1);
    const T* y_row = y + row * width;
    T* dy_row = dy + row * width;
    for (int q = lane; q < width; q += 32) {
      const int s = q / K, k = q - s * K;
      const int blk = k / geo.C, c = k - blk * geo.C;
      const int a = blk >> 1, b = blk & 1;
      const int i = r - a, j = s - b;
      float out = 0.0f;
      if (k < phases && i >= 0 && i < geo.H && j >= 0 && j < geo.W) {
        const float t = target[(n * geo.C + c) * plane +
                               static_cast<int64_t>(2 * i + a) * 2 * geo.W + 2 * j + b];
        const float d = toFloat(y_row[q]) - t;
        out = static_cast<float>((0.0f < d) - (d < 0.0f)) * g;
      }
      dy_row[q] = fromFloat<T>(out);
    }
  }
}

int64_t phaseChannels(const ReconLossArgs& a) {
  return a.phase_channels == 0 ? 4 * a.channels : a.phase_channels;
}

Geometry geometry(const ReconLossArgs& a) {
  return Geometry{a.batch, static_cast<int>(a.height), static_cast<int>(a.width),
                  static_cast<int>(a.channels), static_cast<int>(phaseChannels(a))};
}

const char* checkArgs(const ReconLossArgs& a) {
  if (a.batch <= 0 || a.height <= 0 || a.width <= 0 || a.channels <= 0)
    return "reconstruction loss: empty input";
  if (a.blocks < 1) return "reconstruction loss: no blocks";
  if (phaseChannels(a) < 4 * a.channels)
    return "reconstruction loss: fewer phase channels than 4 × the image's";
  // (Indices within a row and a pixel are 32-bit.)
  if (a.height >= (1 << 29) || a.width >= (1 << 29) || phaseChannels(a) >= (1 << 22) ||
      (a.width + 1) * phaseChannels(a) >= (int64_t{1} << 31))
    return "reconstruction loss: an image too large for the kernels";
  return nullptr;
}

template <typename T>
const char* forward(const ReconLossArgs& a) {
  auto stream = static_cast<cudaStream_t>(a.stream);
  const Geometry geo = geometry(a);
  MST_LAUNCH(a.blocks, kThreads, 0, stream, reconSumsKernel<T>)(
      static_cast<const T*>(a.y), a.target, geo, a.partial);
  if (const char* e = lastError()) return e;
  const double count = static_cast<double>(a.batch) * a.channels * 4 * a.height * a.width;
  MST_LAUNCH(1, kThreads, 0, stream, reconFinishKernel)(a.partial, a.blocks, count, a.loss);
  return lastError();
}

template <typename T>
const char* backward(const ReconLossArgs& a) {
  static const int resident = residentBlocks(reconGradKernel<T>, kThreads);
  auto stream = static_cast<cudaStream_t>(a.stream);
  const Geometry geo = geometry(a);
  const float count = static_cast<float>(a.batch * a.channels * 4 * a.height * a.width);
  MST_LAUNCH(rowBlocks(resident, a.batch * (a.height + 1), kWarps, 1), kThreads, 0, stream,
             reconGradKernel<T>)(
      static_cast<const T*>(a.y), a.target, a.grad, count, geo, static_cast<T*>(a.dy));
  return lastError();
}

}  // namespace

int reconLossBlocks(int64_t batch, int64_t height, int64_t width, int64_t channels) {
  static const int resident = residentBlocks(reconSumsKernel<__nv_bfloat16>, kThreads);
  return rowBlocks(resident, batch * channels * 2 * height, kWarps, 1);
}

const char* reconLossForward(const ReconLossArgs& a) {
  if (const char* e = checkArgs(a)) return e;
  return a.bf16 ? forward<__nv_bfloat16>(a) : forward<float>(a);
}

const char* reconLossBackward(const ReconLossArgs& a) {
  if (const char* e = checkArgs(a)) return e;
  return a.bf16 ? backward<__nv_bfloat16>(a) : backward<float>(a);
}

}  // namespace mst::kernels
