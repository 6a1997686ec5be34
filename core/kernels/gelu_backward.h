/// @brief GELU's backward pass in one pass over its (rows × hidden) input: the gradient of the
/// input, GELU's output recomputed (for the next linear's weight gradient) and the preceding
/// linear's bias gradient. Unfused these are three kernels that each read the activations
/// (gelu_backward, gelu, sum). The fused MLP's backward pass uses it (train.fused_mlp).
#pragma once

#include <string>

#include <torch/torch.h>

namespace mst {

struct GeluBackwardOut {
  torch::Tensor dpre;   ///< dgelu ⊙ gelu'(pre), pre's dtype
  torch::Tensor gelu;   ///< gelu(pre), or undefined when not asked for
  torch::Tensor dbias;  ///< (hidden) Σ over rows of dpre, or undefined when not asked for
};

/// dgelu, pre: (rows, hidden), the same dtype; `approximate`: "none" (erf) or "tanh". On CUDA in
/// bf16 (contiguous, 16-byte aligned, hidden % 8 == 0, a build whose kernels run on the device)
/// one kernel; elsewhere ATen's gelu_backward, gelu and sum.
GeluBackwardOut geluBackward(const torch::Tensor& dgelu, const torch::Tensor& pre,
                             const std::string& approximate, bool want_gelu, bool want_bias);

/// Whether geluBackward runs the kernel for this `pre` and a contiguous, 16-byte aligned dgelu
/// of its dtype (what a fresh product is).
bool geluBackwardKernelApplies(const torch::Tensor& pre);

/// The kernel's arithmetic (gelu_math.h) as a plain loop over CPU tensors of any floating dtype:
/// each result computed in fp32 from the stored inputs and rounded to their dtype; the bias
/// gradient sums the rounded dpre in fp32. What the CPU tests compare with ATen.
GeluBackwardOut geluBackwardReference(const torch::Tensor& dgelu, const torch::Tensor& pre,
                                      const std::string& approximate, bool want_gelu,
                                      bool want_bias);

}  // namespace mst
