/// @brief The attention input's gradient gather (see heads_cuda.h). As in gelu_cuda.cu, threads
/// move 8 adjacent bf16 channels at a time (16 bytes); a block of 8 rows of 32 threads covers
/// 256 output channels and strides over the rows, keeping its threads' column sums in
/// registers; column_sums.cuh adds the blocks' sums.
#include "core/kernels/heads_cuda.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "core/kernels/column_sums.cuh"
#include "core/kernels/cuda_status.h"
#include "core/kernels/launch.cuh"

namespace mst::kernels {
namespace {

constexpr int kLanes = 32;      // threads along the channels, 8 channels each
constexpr int kVector = 8;      // bf16 per 16-byte access
constexpr int kRowThreads = 8;  // threads along the rows
constexpr int kTile = kLanes * kVector;

union Pack {
  uint4 raw;
  __nv_bfloat162 pair[kVector / 2];
};

__global__ void __launch_bounds__(kLanes * kRowThreads) gatherKernel(HeadsGatherArgs a) {
  __shared__ float sums[kRowThreads][kTile + 1];
  const int D = a.heads * a.d, width = HeadsGatherArgs::kParts * D;
  const int c0 = blockIdx.x * kTile + threadIdx.x * kVector;
  const bool active = c0 < width;  // width % 8 == 0: a vector is wholly in or out
  float acc[kVector];
#pragma unroll
  for (int k = 0; k < kVector; ++k) acc[k] = 0.0f;
  if (active) {
    // This thread's 8 channels lie in one part and one head (d % 8 == 0).
    const int p = c0 / D, head = (c0 - p * D) / a.d, e = c0 - p * D - head * a.d;
    const auto* src = static_cast<const __nv_bfloat16*>(a.part[p]) + head * a.stride[p][1] + e;
    const int64_t sb = a.stride[p][0], st = a.stride[p][2];
    const int64_t rows = a.batch * a.tokens;
    auto* out = static_cast<__nv_bfloat16*>(a.out);
    for (int64_t row = static_cast<int64_t>(blockIdx.y) * kRowThreads + threadIdx.y; row < rows;
         row += static_cast<int64_t>(gridDim.y) * kRowThreads) {
      const int64_t b = row / a.tokens, t = row - b * a.tokens;
      Pack v;
      v.raw = *reinterpret_cast<const uint4*>(src + b * sb + t * st);
      *reinterpret_cast<uint4*>(out + row * width + c0) = v.raw;
#pragma unroll
      for (int k = 0; k < kVector / 2; ++k) {
        const float2 f = __bfloat1622float2(v.pair[k]);
        acc[2 * k] += f.x;
        acc[2 * k + 1] += f.y;
      }
    }
  }
  if (a.partial == nullptr) return;  // uniform across the block: no thread waits below
  writeTileSums<kLanes, kRowThreads, kVector>(sums, acc, a.partial, width);
}

}  // namespace

int headsGatherRowBlocks(int64_t rows, int width) {
  static const int resident = residentBlocks(gatherKernel, kLanes * kRowThreads);
  return rowBlocks(resident, rows, kRowThreads, (width + kTile - 1) / kTile);
}

const char* headsGather(const HeadsGatherArgs& a) {
  if (a.d % kVector != 0) return "heads gather: head width not a multiple of 8";
  const int width = HeadsGatherArgs::kParts * a.heads * a.d;
  const int64_t rows = a.batch * a.tokens;
  for (int p = 0; p < HeadsGatherArgs::kParts && rows > 0; ++p)  // (no rows: nothing is read)
    for (int s = 0; s < 3; ++s)
      if (a.stride[p][s] % kVector != 0) return "heads gather: a stride not a multiple of 8";
  const bool bias = a.partial != nullptr && a.dbias != nullptr;
  if (width == 0 || (rows == 0 && !bias)) return nullptr;  // nothing to write
  auto stream = static_cast<cudaStream_t>(a.stream);
  HeadsGatherArgs args = a;
  if (!bias) args.partial = nullptr;
  const dim3 block(kLanes, kRowThreads);
  const dim3 grid((width + kTile - 1) / kTile, a.row_blocks);
  MST_LAUNCH(grid, block, 0, stream, gatherKernel)(args);
  if (const char* e = lastError()) return e;
  if (!bias) return nullptr;
  launchColumnSums(a.partial, a.row_blocks, width, static_cast<__nv_bfloat16*>(a.dbias), stream);
  return lastError();
}

}  // namespace mst::kernels
