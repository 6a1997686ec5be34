/// @brief The comparisons of our CUDA kernels with the ATen operations they replace, one case
/// at a time: what the kernels' self-checks run at a run's shapes when it starts
/// (kernel_selfcheck.h), and `mst gpucheck` over many more shapes (core/bench/kernel_checks.cpp).
/// Compiled twice, like the kernels' host code: into mst_core, and against the CPU emulator for
/// the tests (tests/CMakeLists.txt), where the kernels' device is the CPU.
#pragma once

#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/config/config.h"

namespace mst {

/// One comparison of a kernel family with its ATen reference: whether it passed, and a row of
/// what was compared (the shape, each output's relative difference, whether the kernel ran).
struct KernelCase {
  bool passed = false;  ///< every compared value within its tolerance
  bool ran = false;     ///< the kernels took the operands (else ATen ran on both sides)
  nlohmann::json row;
};

/// The cases, each on `device` (a CUDA device; in the tests' emulated build the CPU while
/// kernelEmulation() is on), from values drawn by a CPU generator seeded with `seed`. Where the
/// kernels decline the operands (a width or layout they do not take), there is nothing of ours to
/// compare: the case passes with ran = false, and `mst gpucheck`, whose shapes the kernels must
/// take, fails it.
namespace kernel_cases {

/// train.fused_norm's junction, forward and backward, against its ATen arithmetic on the CPU.
/// variant: 0 branch + scale, 1 branch, 2 no branch, 3 branch + bias + scale, 4 branch + bias,
/// 5 branch + bias + scale into an output of the stream's dtype (the fused ViT launches 2 to 5:
/// its first norm, the blocks' junctions with and without stochastic depth, and the last one,
/// into the final norm); the others' outputs are bf16.
KernelCase junction(int64_t B, int64_t T, int64_t D, torch::ScalarType stream, int variant,
                    const torch::Device& device, uint64_t seed);
/// The token embedding after the patch projection (token_embed.h): x (B, n, D) of `x_dtype`,
/// the [MASK] token in about 40 % of the patches (`masked`) or none, into a `stream` residual
/// stream, against ATen's where, cat and add: the output and x's gradient (exactly), the
/// position embedding's, the CLS token's and the [MASK] token's (the kernels sum in fp32 where
/// ATen's bf16 path rounds first).
KernelCase tokenEmbed(int64_t B, int64_t n, int64_t D, torch::ScalarType x_dtype,
                      torch::ScalarType stream, bool masked, const torch::Device& device,
                      uint64_t seed);
/// The q/k/v projection's gradient gather against linear + splitHeads, bf16. layout: 0 (B, h, T,
/// d), 1 (B, T, h, d) memory, 2 one packed (B, T, 3, h, d) buffer, 3 (B, h, T, d) without v's.
KernelCase qkvGather(int64_t B, int64_t T, int64_t heads, int64_t d, int64_t in, int layout,
                     const torch::Device& device, uint64_t seed);
/// The GELU backward kernel against ATen's gelu_backward, gelu and sum on the device, bf16.
KernelCase geluBackward(int64_t rows, int64_t hidden, const std::string& approximate,
                        bool want_gelu, bool want_bias, const torch::Device& device,
                        uint64_t seed);
/// One decoder stage (gather, BatchNorm in training mode, ReLU) against ATen's three operations.
/// beta: β's mean (−2 cuts most outputs); nchw_grad: the incoming gradient fp32 in NCHW order;
/// shift: the input's mean (its standard deviation is 1.5).
KernelCase decoderStage(torch::ScalarType dtype, int64_t B, int64_t C, int64_t H, int64_t W,
                        double beta, bool nchw_grad, double shift, const torch::Device& device,
                        uint64_t seed);
/// The distillation loss and the logits' gradient against autograd on the logits' fp32 copy.
/// scale: of the logits; the temperatures: the student's and the targets'.
KernelCase loss(int64_t S, int64_t B, int64_t K, double scale, double student_temp,
                double teacher_temp, torch::ScalarType dtype, const torch::Device& device,
                uint64_t seed);
/// The reconstruction loss from the decoder's last phases y (B, K, H+1, W+1) of `dtype` against
/// an fp32 target (B, C, 2H, 2W), through its kernels against ATen's gather, cast and mean
/// absolute error: the loss, and y's gradient under an upstream factor. A tenth of the target
/// copies the gathered values exactly (a zero difference, whose gradient is zero in both).
/// K = `phase_channels`, or 4C for 0; the channels past 4C hold noise that neither side may read
/// (the decoder's padding channels, zeros there).
KernelCase reconstruction(torch::ScalarType dtype, int64_t B, int64_t C, int64_t H, int64_t W,
                          const torch::Device& device, uint64_t seed, int64_t phase_channels = 0);
/// The optimiser's step (fused_adamw.h) through its kernel against ATen's operations on the
/// device, from the same fp32 buffers of `numel` values, each starting `offset` values into its
/// allocation (1: not on 16 bytes, where the kernel takes one value per thread); the last layer
/// an unaligned slice in the middle, with its own bias corrections (`with_freeze`) and held
/// (`frozen`, which also zeroes its gradient as the engine does); the teacher the first
/// `teacher_numel` values. Compares p, m, v and the teacher, and the step p − p₀ itself.
KernelCase optimizer(int64_t numel, int64_t offset, bool with_freeze, bool frozen,
                     int64_t teacher_numel, const torch::Device& device, uint64_t seed);
/// One crop set of `rows` crops (a multiple of `sources`) cut from `sources` random images
/// through the augmentation kernels against MultiCrop's ATen operations, from the same draws
/// (TF32 off for the comparison, restored after).
KernelCase augment(const CropConfig& crops, const AugmentConfig& augment, int64_t channels,
                   const char* set, int64_t sources, int64_t rows, int64_t size,
                   double scale_min, double scale_max, double blur_p, double solarize_p,
                   int64_t source_h, int64_t source_w, const torch::Device& device,
                   uint64_t seed);

}  // namespace kernel_cases

}  // namespace mst
