/// @brief Launcher of the attention input's gradient gather (heads_cuda.cu), free of LibTorch so
/// that nvcc compiles it alone. The backward pass of the fused q/k/v projection: the three
/// per-head gradients, (B, heads, T, d) each in whatever layout the attention kernel left them,
/// are written into the projection's (B·T, 3·heads·d) output layout in one pass, which also
/// sums every column for the projection's bias gradient. Unfused, a stacking copy and a separate
/// reduction each read the whole gradient. bf16 throughout; d % 8 == 0; every stride a multiple
/// of 8 elements and the bases 16-byte aligned (16-byte vectors of 8 channels).
#pragma once

#include <cstdint>

namespace mst::kernels {

struct HeadsGatherArgs {
  static constexpr int kParts = 3;
  const void* part[kParts] = {nullptr, nullptr, nullptr};  ///< dq, dk, dv (bf16)
  /// Element strides of each part along (batch, head, token); the channel stride is 1.
  int64_t stride[kParts][3] = {};
  void* out = nullptr;        ///< (B·T, parts·heads·d) bf16, contiguous
  float* partial = nullptr;   ///< (row_blocks, parts·heads·d) workspace, or nullptr: no bias
  void* dbias = nullptr;      ///< (parts·heads·d) bf16 out: Σ over rows of out, or nullptr
  int64_t batch = 0, tokens = 0;
  int heads = 0, d = 0;
  int row_blocks = 1;         ///< headsGatherRowBlocks(batch · tokens, parts · heads · d)
  void* stream = nullptr;     ///< cudaStream_t
};

/// The grid's extent along the rows (the partial workspace's first dimension).
int headsGatherRowBlocks(int64_t rows, int width);
/// nullptr, or the CUDA error's text.
const char* headsGather(const HeadsGatherArgs& args);

}  // namespace mst::kernels
