/// @brief The second pass of the kernels' column sums (bias, γ and β gradients): the first pass
/// leaves one fp32 row of partial sums per block of its grid, (blocks, width); this adds them.
/// A block of 8 × 32 threads takes 32 adjacent columns (coalesced rows of the workspace); its
/// rows of threads split the partial rows between them and meet in shared memory. Included by
/// the .cu files, each with its own copy of the kernel.
#pragma once

#include <cuda_bf16.h>
#include <cuda_runtime.h>

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

/// out[c] = Σ_b partial[b][c] for c < width.
template <typename TOut>
void launchColumnSums(const float* partial, int blocks, int width, TOut* out,
                      cudaStream_t stream) {
  if (width <= 0) return;
  columnSumsKernel<TOut><<<(width + kSumLanes - 1) / kSumLanes, dim3(kSumLanes, kSumRows), 0,
                           stream>>>(partial, blocks, width, out);
}

}  // namespace
}  // namespace mst::kernels
