/// @brief Launchers of the fused token embedding (embed_cuda.cu), free of LibTorch so that nvcc
/// compiles them alone. After the patch projection x (B, n, D) the ViT puts the [MASK] token in
/// the masked patches' place (Eq. 6), prepends the CLS token and adds the position embedding:
///   out[b, 0] = cls + pos[0],   out[b, 1+i] = (mask[b, i] ? token : x[b, i]) + pos[1+i],
/// in the residual stream's dtype. ATen does this in three passes over the tokens (where, cat,
/// add) and backward in as many more (the add's broadcast sums, the cat's slices, where's
/// zeros). Forward here: one pass. Backward: one pass writes x's gradient (zeros where masked)
/// and per-chunk partial sums over the batch, and small passes add them into the position
/// embedding's gradient (T, D) and, with a mask, the [MASK] token's (D); the CLS token's
/// gradient is the position embedding's row 0. The rounding follows ATen's: the tokens are
/// rounded to x's dtype (autocast's bf16), and in a bf16 stream every term to bf16, before the
/// add. The gradient sums are fp32 (ATen's bf16 paths round each term first).
/// Every array contiguous, D a multiple of 4 and every pointer 16-byte aligned (4 channels per
/// access); x bf16 or fp32, the stream bf16 or fp32; the tokens and pos fp32.
#pragma once

#include <cstdint>

namespace mst::kernels {

struct EmbedArgs {
  const void* x = nullptr;       ///< (B, n, D) the patch projections
  const bool* mask = nullptr;    ///< (B, n), or nullptr: no token replaced
  const float* token = nullptr;  ///< (D) the [MASK] token (read where mask is set)
  const float* cls = nullptr;    ///< (D)
  const float* pos = nullptr;    ///< (T, D), T = n + 1
  void* out = nullptr;           ///< forward: (B, T, D) in the stream's dtype
  const void* gout = nullptr;    ///< backward: out's gradient, (B, T, D) in the stream's dtype
  void* dx = nullptr;            ///< backward: (B, n, D) in x's dtype
  float* partial = nullptr;      ///< backward: embedPartialFloats(...) of workspace
                                 ///< ([2][chunks][T][D] sums, then (T, D) for the token's)
  float* dpos = nullptr;         ///< backward: (T, D)
  float* dtoken = nullptr;       ///< backward: (D) (written only with a mask)
  int64_t batch = 0;             ///< B
  int tokens = 0;                ///< T
  int D = 0;
  bool x_bf16 = true;
  bool out_bf16 = false;         ///< the stream's dtype
  int chunks = 1;                ///< embedChunks(B, T): the backward pass's chunks of the batch
  void* stream = nullptr;        ///< cudaStream_t
};

/// Whether the kernels take this width (D % 4 == 0).
bool embedSupports(int D);
/// How many chunks of the batch the backward pass's partial sums take.
int embedChunks(int64_t batch, int tokens);
/// Floats of the backward pass's workspace.
inline int64_t embedPartialFloats(int chunks, int tokens, int D) {
  return (2 * static_cast<int64_t>(chunks) + 1) * tokens * D;
}
/// nullptr, or the CUDA error's text.
const char* embedForward(const EmbedArgs& args);
const char* embedBackward(const EmbedArgs& args);

}  // namespace mst::kernels
