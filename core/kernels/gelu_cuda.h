/// @brief Launcher of the fused GELU backward kernel (gelu_cuda.cu), free of LibTorch so that
/// nvcc compiles it alone. One pass over the (rows × hidden) activations computes what GELU's
/// backward, GELU's recomputation and the preceding linear's bias gradient each read them for.
/// All arrays bf16 unless said otherwise, contiguous, 16-byte aligned; hidden % 8 == 0.
#pragma once

#include <cstdint>

namespace mst::kernels {

struct GeluBackwardArgs {
  const void* dgelu = nullptr;  ///< (rows, hidden) gradient of GELU's output
  const void* pre = nullptr;    ///< (rows, hidden) GELU's input
  void* dpre = nullptr;         ///< (rows, hidden) out: dgelu ⊙ gelu'(pre)
  void* gelu = nullptr;         ///< (rows, hidden) out: gelu(pre), or nullptr
  float* partial = nullptr;     ///< (row_blocks, hidden) fp32 workspace, or nullptr: no dbias
  void* dbias = nullptr;        ///< (hidden) out: Σ over rows of dpre (as stored), or nullptr
  int64_t rows = 0;
  int hidden = 0;
  int row_blocks = 1;  ///< geluBackwardRowBlocks(rows, hidden)
  bool tanh_approx = false;
  void* stream = nullptr;  ///< cudaStream_t
};

/// The grid's extent along the rows (the partial workspace's first dimension).
int geluBackwardRowBlocks(int64_t rows, int hidden);
/// nullptr, or the CUDA error's text.
const char* geluBackward(const GeluBackwardArgs& args);

}  // namespace mst::kernels
