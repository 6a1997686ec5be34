/// @brief Launchers of the fused self-distillation cross-entropy (dino_loss_cuda.cu), free of
/// LibTorch so that nvcc compiles them alone. For every student row r = i·B + b (crop i of S,
/// sample b of B; logits z of K classes, bf16 or fp32) and its teacher target
/// c = Σ_{j ∈ {0, 1}, j ≠ i} t_{j,b} (the teacher's sharpened softmax of the global crops, fp32):
/// the forward pass returns lse_r = logsumexp(z/τ), dot_r = Σ_k c_k z_k/τ and csum_r = Σ_k c_k,
/// from which the loss is −Σ_r (dot_r − csum_r · lse_r) / (B(2S − 2)); the backward pass writes
/// ∂loss/∂z = g · coef · (c − csum_r · softmax(z/τ)) with g the loss's incoming gradient (read
/// on the device) and coef = −1 / (τ B (2S − 2)). Each reads the logits once, where autograd
/// through a cast, a division, log_softmax and the pair sums makes a dozen passes over them in
/// fp32. Rows contiguous, K % 8 == 0, 16-byte aligned; S ≤ 32.
#pragma once

#include <cstdint>

namespace mst::kernels {

struct DinoLossArgs {
  const void* student = nullptr;   ///< (S·B, K) logits, crop-major
  const float* teacher = nullptr;  ///< (2·B, K) teacher probabilities
  int64_t batch = 0, classes = 0;  ///< B, K
  int crops = 0;                   ///< S ≥ 2
  bool student_bf16 = true;        ///< the logits' dtype: bf16, else fp32
  float inv_temp = 1.0f;           ///< 1 / τ (the student's temperature)
  int segments = 1;                ///< dinoLossSegments(B, K): blocks per sample
  float* partial = nullptr;        ///< forward: (segments, S·B, 3) + (segments, 2·B) workspace
  float* stats = nullptr;          ///< (3, S·B): lse, dot, csum (written forward, read backward)
  const float* grad = nullptr;     ///< backward: the loss's gradient, one value on the device
  float coef = 0.0f;               ///< backward: −1 / (τ B (2S − 2))
  void* dstudent = nullptr;        ///< backward: (S·B, K) in the logits' dtype
  void* stream = nullptr;          ///< cudaStream_t
};

/// The most crops the kernels take.
constexpr int kDinoLossMaxCrops = 32;

/// Blocks per sample along the classes, enough for the device to hold several blocks per SM.
int dinoLossSegments(int64_t batch, int64_t classes);
/// Floats of the forward pass's workspace.
int64_t dinoLossPartialFloats(int segments, int64_t batch, int crops);
/// nullptr, or the CUDA error's text.
const char* dinoLossForward(const DinoLossArgs& args);
const char* dinoLossBackward(const DinoLossArgs& args);

}  // namespace mst::kernels
