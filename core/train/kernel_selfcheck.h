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
#include "core/train/kernel_cases.h"

namespace mst {

/// A family's self-check at one run's shapes.
struct KernelSelfCheck {
  std::string family;  ///< junction, qkv_gather, embed, gelu_backward, decoder_stage, loss,
                       ///< reconstruction, optimizer, augment
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

/// The kernel families that a setting's kernels consist of: train.fused_norm → junction,
/// qkv_gather and embed; fused_mlp → gelu_backward; fused_decoder → decoder_stage; fused_loss → loss and
/// reconstruction;
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
