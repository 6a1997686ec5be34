/// @brief The fused GELU backward kernel (see gelu_cuda.h). Threads read and write 8 adjacent
/// bf16 channels at a time (16 bytes); a block of 8 rows of 32 threads covers 256 channels and
/// strides over the rows, keeping its threads' bias-gradient sums in registers; a second small
/// kernel (column_sums.cuh) adds the blocks' sums. The arithmetic is gelu_math.h's.
#include "core/kernels/gelu_cuda.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "core/kernels/column_sums.cuh"
#include "core/kernels/cuda_status.h"
#include "core/kernels/launch.cuh"

#include "core/kernels/gelu_math.h"

namespace mst::kernels {
namespace {

constexpr int kLanes = 32;     // threads along the channels, 8 channels each
constexpr int kVector = 8;     // bf16 per 16-byte access
constexpr int kRowThreads = 8;  // threads along the rows
constexpr int kTile = kLanes * kVector;  // channels per block

union Pack {
  uint4 raw;
  __nv_bfloat162 pair[kVector / 2];
};

__global__ void __launch_bounds__(kLanes * kRowThreads)
    geluBackwardKernel(const __nv_bfloat16* __restrict__ dgelu,
                       const __nv_bfloat16* __restrict__ pre, __nv_bfloat16* __restrict__ dpre,
                       __nv_bfloat16* __restrict__ out_gelu, float* __restrict__ partial,
                       int64_t rows, int hidden, bool tanh_approx) {
  __shared__ float sums[kRowThreads][kTile + 1];
  const int c0 = blockIdx.x * kTile + threadIdx.x * kVector;
  const bool active = c0 < hidden;  // hidden % 8 == 0: a vector is wholly in or out
  float acc[kVector];
#pragma unroll
  for (int k = 0; k < kVector; ++k) acc[k] = 0.0f;
  if (active) {
    for (int64_t row = static_cast<int64_t>(blockIdx.y) * kRowThreads + threadIdx.y; row < rows;
         row += static_cast<int64_t>(gridDim.y) * kRowThreads) {
      const int64_t at = row * hidden + c0;
      Pack g, x, d, v;
      g.raw = *reinterpret_cast<const uint4*>(dgelu + at);
      x.raw = *reinterpret_cast<const uint4*>(pre + at);
#pragma unroll
      for (int k = 0; k < kVector / 2; ++k) {
        const float2 gf = __bfloat1622float2(g.pair[k]);
        const float2 xf = __bfloat1622float2(x.pair[k]);
        // (GELU's value costs a product once its derivative's erf or tanh is known)
        float value_x, value_y, slope_x, slope_y;
        gelu::valueAndDerivative(xf.x, tanh_approx, value_x, slope_x);
        gelu::valueAndDerivative(xf.y, tanh_approx, value_y, slope_y);
        d.pair[k] = __floats2bfloat162_rn(gf.x * slope_x, gf.y * slope_y);
        if (out_gelu != nullptr) v.pair[k] = __floats2bfloat162_rn(value_x, value_y);
        const float2 stored = __bfloat1622float2(d.pair[k]);  // the bias sums what is stored
        acc[2 * k] += stored.x;
        acc[2 * k + 1] += stored.y;
      }
      *reinterpret_cast<uint4*>(dpre + at) = d.raw;
      if (out_gelu != nullptr) *reinterpret_cast<uint4*>(out_gelu + at) = v.raw;
    }
  }
  if (partial == nullptr) return;  // uniform across the block: no thread waits below
  writeTileSums<kLanes, kRowThreads, kVector>(sums, acc, partial, hidden);
}

}  // namespace

int geluBackwardRowBlocks(int64_t rows, int hidden) {
  static const int resident = residentBlocks(geluBackwardKernel, kLanes * kRowThreads);
  return rowBlocks(resident, rows, kRowThreads, (hidden + kTile - 1) / kTile);
}

const char* geluBackward(const GeluBackwardArgs& a) {
  if (a.hidden % kVector != 0) return "gelu backward: hidden width not a multiple of 8";
  if (a.hidden == 0 || (a.rows == 0 && a.dbias == nullptr)) return nullptr;  // nothing to write
  auto stream = static_cast<cudaStream_t>(a.stream);
  const bool bias = a.partial != nullptr && a.dbias != nullptr;
  const dim3 block(kLanes, kRowThreads);
  const dim3 grid((a.hidden + kTile - 1) / kTile, a.row_blocks);
  MST_LAUNCH(grid, block, 0, stream, geluBackwardKernel)(
      static_cast<const __nv_bfloat16*>(a.dgelu), static_cast<const __nv_bfloat16*>(a.pre),
      static_cast<__nv_bfloat16*>(a.dpre), static_cast<__nv_bfloat16*>(a.gelu),
      bias ? a.partial : nullptr, a.rows, a.hidden, a.tanh_approx);
  if (const char* e = lastError()) return e;
  if (!bias) return nullptr;
  launchColumnSums(a.partial, a.row_blocks, a.hidden, static_cast<__nv_bfloat16*>(a.dbias),
                   stream);
  return lastError();
}

}  // namespace mst::kernels
