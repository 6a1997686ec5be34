/// @brief Our CUDA kernels check themselves before a run uses them. When a kernel setting
/// (train.fused_norm, fused_loss, fused_optimizer, fused_decoder, fused_augment, fused_mlp) would
/// turn kernels on, the engine first runs each of their families once on the run's device at the
/// run's own widths (model width, heads, tokens per crop, decoder stage widths, classes, crops,
/// channels) with a couple of samples, against the ATen operations they replace, from the same
/// values (the optimiser's at a few buffer sizes and alignments of its own): tens of
/// milliseconds on a GPU. A family that disagrees is not used: under `auto` the run goes on with
/// ATen's operations and says so; under `on` it is refused, naming the key. `mst gpucheck` runs
/// the same cases over many more shapes (core/bench/kernel_checks.cpp).
#pragma once

#include <functional>
#include <string>
#include <vector>

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

/// A family's self-check at one run's shapes.
struct KernelSelfCheck {
  std::string family;  ///< junction, qkv_gather, gelu_backward, decoder_stage, loss, optimizer,
                       ///< augment
  bool passed = false;
  /// Empty if passed; else "disagree with ATen's operations on this device: " and the first case
  /// that failed, or "could not be checked on this device: " and the error (out of memory, a
  /// CUDA fault), which is not kept for later engines.
  std::string detail;
  double ms = 0;       ///< wall time of the check
  int64_t total = 0;   ///< cases compared
  int64_t ran = 0;     ///< of them, cases whose operands the kernels took
  nlohmann::json cases;
};

/// The kernel families that a setting's kernels consist of: train.fused_norm → junction and
/// qkv_gather; fused_mlp → gelu_backward; fused_decoder → decoder_stage; fused_loss → loss;
/// fused_optimizer → optimizer; fused_augment → augment.
std::vector<std::string> kernelFamilies(const std::string& key);

/// `family`'s cases at `config`'s shapes on `device`, for a run in bf16 autocast (`bf16`) or fp32
/// (`bf16_stream`: the junction's stream is bf16): the run's dtype, and fp32 wherever the kernels
/// take it (their fp32 instances share the arithmetic, and their tolerances are tight enough to
/// see an error of 0.1 % that bf16 rounding hides; a failure there turns the family off too).
/// Each result is kept for the process: another engine with the same model, crop, augmentation
/// and loss settings on the same device reuses it. The checks run one at a time.
KernelSelfCheck selfCheckKernels(const std::string& family, const Config& config,
                                 const torch::Device& device, bool bf16, bool bf16_stream);

/// Every self-check this process has run, in order.
std::vector<KernelSelfCheck> kernelSelfChecks();

/// Whether a kernel setting's kernels run. `value`: auto | on | off; `unavailable`: why the build's
/// kernels cannot run on the device (empty when they can). off → false, without checking. on
/// with kernels unavailable → MstError naming `key`. Otherwise `check` runs each of the key's
/// families: all pass → true; one fails → under on, MstError naming the key and the failure;
/// under auto, false and a line in `notes` saying which family disagreed and that ATen's
/// operations run instead.
bool settleKernelSetting(const std::string& value, const std::string& key,
                         const std::string& unavailable,
                         const std::function<KernelSelfCheck(const std::string&)>& check,
                         std::vector<std::string>& notes);

}  // namespace mst
