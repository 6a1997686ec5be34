/// @brief The fused token embedding's kernels (see embed_cuda.h). A block takes one token row
/// (b, t) at a time forward, one token t over a chunk of the batch backward; its threads take 4
/// adjacent channels each (D / 4 threads, rounded up to whole warps).
#include "core/kernels/embed_cuda.h"

#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "core/kernels/column_sums.cuh"
#include "core/kernels/cuda_status.h"
#include "core/kernels/launch.cuh"
#include "core/kernels/vec_access.cuh"

namespace mst::kernels {
namespace {

constexpr int kMaxThreads = 256;

/// out[b, t] = v + p, v the CLS token (t = 0), the [MASK] token (masked) or x[b, t − 1], each
/// rounded to x's dtype and then to the stream's as ATen's casts leave it, p = pos[t] rounded
/// to the stream's dtype.
template <typename TX, typename TO>
__global__ void __launch_bounds__(kMaxThreads) embedForwardKernel(EmbedArgs a) {
  const TX* __restrict__ x = static_cast<const TX*>(a.x);
  TO* __restrict__ out = static_cast<TO*>(a.out);
  const int64_t rows = a.batch * a.tokens;
  const int n = a.tokens - 1;
  for (int64_t row = blockIdx.x; row < rows; row += gridDim.x) {
    const int t = static_cast<int>(row % a.tokens);
    const int64_t b = row / a.tokens;
    const int64_t patch = b * n + t - 1;  // (t ≥ 1)
    const bool masked = t > 0 && a.mask != nullptr && a.mask[patch];
    for (int c = threadIdx.x * 4; c < a.D; c += blockDim.x * 4) {
      float v[4], p[4], o[4];
      if (t == 0 || masked) {
        loadVec((t == 0 ? a.cls : a.token) + c, v);
#pragma unroll
        for (int k = 0; k < 4; ++k) v[k] = roundTo<TX>(v[k]);
      } else {
        loadVec(x + patch * a.D + c, v);
      }
      loadVec(a.pos + static_cast<int64_t>(t) * a.D + c, p);
      // (x.to(stream) + pos.to(stream): an fp32 x into a bf16 stream is rounded first too)
#pragma unroll
      for (int k = 0; k < 4; ++k) o[k] = roundTo<TO>(v[k]) + roundTo<TO>(p[k]);
      storeVec(out + row * a.D + c, o);
    }
  }
}

/// For token t (blockIdx.x, striding) and the batch rows of chunk blockIdx.y: x's gradient (0
/// where masked), and the chunk's sums of the gradient (for pos) and, with a mask, of its
/// masked rows (for the [MASK] token) in partial[0][chunk][t] and partial[1][chunk][t].
template <typename TX, typename TO>
__global__ void __launch_bounds__(kMaxThreads) embedBackwardKernel(EmbedArgs a) {
  const TO* __restrict__ g = static_cast<const TO*>(a.gout);
  TX* __restrict__ dx = static_cast<TX*>(a.dx);
  const int n = a.tokens - 1;
  const int64_t per_chunk = (a.batch + a.chunks - 1) / a.chunks;
  const int64_t b0 = blockIdx.y * per_chunk;
  const int64_t b1 = b0 + per_chunk < a.batch ? b0 + per_chunk : a.batch;
  const int64_t width = static_cast<int64_t>(a.tokens) * a.D;
  float* __restrict__ pos_sums = a.partial + blockIdx.y * width;
  float* __restrict__ token_sums = a.partial + (a.chunks + blockIdx.y) * width;
  for (int t = blockIdx.x; t < a.tokens; t += gridDim.x) {
    for (int c = threadIdx.x * 4; c < a.D; c += blockDim.x * 4) {
      float all[4] = {0.0f, 0.0f, 0.0f, 0.0f}, masked_sum[4] = {0.0f, 0.0f, 0.0f, 0.0f};
      for (int64_t b = b0; b < b1; ++b) {
        float v[4];
        loadVec(g + (b * a.tokens + t) * a.D + c, v);
#pragma unroll
        for (int k = 0; k < 4; ++k) all[k] += v[k];
        if (t == 0) continue;
        const int64_t patch = b * n + t - 1;
        if (a.mask != nullptr && a.mask[patch]) {
#pragma unroll
          for (int k = 0; k < 4; ++k) {
            masked_sum[k] += v[k];
            v[k] = 0.0f;
          }
        }
        storeVec(dx + patch * a.D + c, v);
      }
      storeVec(pos_sums + static_cast<int64_t>(t) * a.D + c, all);
      if (a.mask != nullptr) storeVec(token_sums + static_cast<int64_t>(t) * a.D + c, masked_sum);
    }
  }
}

int blockThreads(int D) {
  const int warps = (D / 4 + 31) / 32;
  return warps * 32 < kMaxThreads ? warps * 32 : kMaxThreads;
}

template <typename TX, typename TO>
const char* forward(const EmbedArgs& a) {
  static const int resident = residentBlocks(embedForwardKernel<TX, TO>, kMaxThreads);
  // (One token row per block at a time.)
  const int grid = rowBlocks(4 * resident, a.batch * a.tokens, 1, 1);
  MST_LAUNCH(grid, blockThreads(a.D), 0, static_cast<cudaStream_t>(a.stream),
             embedForwardKernel<TX, TO>)(a);
  return lastError();
}

template <typename TX, typename TO>
const char* backward(const EmbedArgs& a) {
  auto stream = static_cast<cudaStream_t>(a.stream);
  MST_LAUNCH(dim3(a.tokens, a.chunks), blockThreads(a.D), 0, stream,
             embedBackwardKernel<TX, TO>)(a);
  if (const char* e = lastError()) return e;
  const int width = a.tokens * a.D;
  launchColumnSums(a.partial, a.chunks, width, a.dpos, stream);
  if (const char* e = lastError()) return e;
  if (a.mask != nullptr) {
    // Over the chunks into (T, D), then over the tokens into D: one pass over chunks · T rows of
    // D columns would leave a dozen blocks each summing thousands of rows in turn.
    float* per_token = a.partial + 2 * static_cast<int64_t>(a.chunks) * width;
    launchColumnSums(a.partial + static_cast<int64_t>(a.chunks) * width, a.chunks, width,
                     per_token, stream);
    if (const char* e = lastError()) return e;
    launchColumnSums(per_token, a.tokens, a.D, a.dtoken, stream);
  }
  return lastError();
}

const char* checkArgs(const EmbedArgs& a) {
  if (!embedSupports(a.D)) return "token embedding: D must be a positive multiple of 4";
  if (a.batch <= 0 || a.tokens < 1) return "token embedding: empty input";
  if (a.chunks < 1 || a.chunks > 65535) return "token embedding: bad chunk count";
  if (static_cast<int64_t>(a.tokens) * a.D >= (int64_t{1} << 31) / 2)
    return "token embedding: too many tokens for the kernels";
  return nullptr;
}

template <typename TX>
const char* dispatchForward(const EmbedArgs& a) {
  return a.out_bf16 ? forward<TX, __nv_bfloat16>(a) : forward<TX, float>(a);
}
template <typename TX>
const char* dispatchBackward(const EmbedArgs& a) {
  return a.out_bf16 ? backward<TX, __nv_bfloat16>(a) : backward<TX, float>(a);
}

}  // namespace

bool embedSupports(int D) { return D > 0 && D % 4 == 0; }

int embedChunks(int64_t batch, int tokens) {
  // About 4,096 blocks in all (tokens × chunks), a dozen or more batch rows per chunk.
  int64_t chunks = (4096 + tokens - 1) / (tokens > 0 ? tokens : 1);
  const int64_t by_rows = (batch + 11) / 12;
  if (chunks > by_rows) chunks = by_rows;
  if (chunks < 1) chunks = 1;
  return static_cast<int>(chunks > 65535 ? 65535 : chunks);
}

const char* embedForward(const EmbedArgs& a) {
  if (const char* e = checkArgs(a)) return e;
  return a.x_bf16 ? dispatchForward<__nv_bfloat16>(a) : dispatchForward<float>(a);
}

const char* embedBackward(const EmbedArgs& a) {
  if (const char* e = checkArgs(a)) return e;
  return a.x_bf16 ? dispatchBackward<__nv_bfloat16>(a) : dispatchBackward<float>(a);
}

}  // namespace mst::kernels
