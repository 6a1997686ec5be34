/// @brief The second pass of the kernels' column sums (bias, γ and β gradients): the first pass
/// leaves one fp32 row of partial sums per block of its grid, (blocks, width); this adds them.
/// Also the first pass's grid size along the rows.
/// A block of 8 × 32 threads takes 32 adjacent columns (coalesced rows of the workspace); its
/// rows of threads split the partial rows between them and meet in shared memory. Included by
/// the .cu files, each with its own copy of the kernel.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/kernels/cuda_status.h"
#include "core/kernels/launch.cuh"

namespace mst::kernels {
namespace {

constexpr int kSumLanes = 32;
constexpr int kSumRows = 8;

__device__ __forceinline__ void storeSum(float v, float* out) { *out = v; }
__device__ __forceinline__ void storeSum(float v, __nv_bfloat16* out) {
  *out = __float2bfloat16_rn(v);  // round to nearest even, as ATen's bf16 sum stores it
}

template <typename TOut>
__global__ void __launch_bounds__(kSumLanes * kSumRows)
    columnSumsKernel(const float* __restrict__ partial, int blocks, int width,
                     TOut* __restrict__ out) {
  __shared__ float sums[kSumRows][kSumLanes + 1];
  const int c = blockIdx.x * kSumLanes + threadIdx.x;
  float total = 0.0f;
  if (c < width)
    for (int b = threadIdx.y; b < blocks; b += kSumRows)
      total += partial[static_cast<int64_t>(b) * width + c];
  sums[threadIdx.y][threadIdx.x] = total;
  __syncthreads();
  if (threadIdx.y != 0 || c >= width) return;
#pragma unroll
  for (int r = 1; r < kSumRows; ++r) total += sums[r][threadIdx.x];
  storeSum(total, out + c);
}

/// The end of a first pass whose blocks are kRows × kLanes threads, each thread summing kVector
/// adjacent columns over its rows (`acc`), the block a tile of kLanes · kVector columns: the
/// block's rows of threads meet in `sums`, and thread t leaves column t of the tile's sum in
/// partial[blockIdx.y]. Every thread of the block must call it (it waits for them).
template <int kLanes, int kRows, int kVector>
__device__ __forceinline__ void writeTileSums(float (*sums)[kLanes * kVector + 1], const float* acc,
                                              float* __restrict__ partial, int width) {
  static_assert(kRows == kVector, "one column of the tile per thread");
#pragma unroll
  for (int k = 0; k < kVector; ++k) sums[threadIdx.y][threadIdx.x * kVector + k] = acc[k];
  __syncthreads();
  const int t = threadIdx.y * kLanes + threadIdx.x;
  const int c = blockIdx.x * kLanes * kVector + t;
  if (c >= width) return;
  float total = 0.0f;
#pragma unroll
  for (int r = 0; r < kRows; ++r) total += sums[r][t];
  partial[static_cast<int64_t>(blockIdx.y) * width + c] = total;
}

/// Blocks of `kernel` (`threads` threads, no dynamic shared memory) the device holds at once,
/// 4 per multiprocessor where the occupancy cannot be asked.
template <typename Kernel>
int residentBlocks(Kernel kernel, int threads) {
  int per_sm = 0;
  if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, 0) != cudaSuccess) {
    cudaGetLastError();
    per_sm = 4;
  }
  return multiprocessors() * (per_sm > 0 ? per_sm : 1);
}

/// The grid's extent along the rows for a first pass whose blocks cover `column_blocks` column
/// tiles and `row_threads` rows at a time: as many as the device holds at once (`resident`
/// blocks in all), fewer for few rows, at least one. (The partial workspace's first dimension.)
inline int rowBlocks(int resident, int64_t rows, int row_threads, int column_blocks) {
  const int64_t by_rows = (rows + row_threads - 1) / row_threads;
  int64_t cap = resident / (column_blocks > 0 ? column_blocks : 1);
  if (cap < 1) cap = 1;
  return static_cast<int>(by_rows < cap ? (by_rows > 0 ? by_rows : 1) : cap);
}

/// out[c] = Σ_b partial[b][c] for c < width.
template <typename TOut>
void launchColumnSums(const float* partial, int blocks, int width, TOut* out,
                      cudaStream_t stream) {
  if (width <= 0) return;
  MST_LAUNCH((width + kSumLanes - 1) / kSumLanes, dim3(kSumLanes, kSumRows), 0, stream,
             columnSumsKernel<TOut>)(partial, blocks, width, out);
}

}  // namespace
}  // namespace mst::kernels
