/// @brief `mst bench --kernels N`: where a training step's device time goes, kernel by kernel,
/// measured inside running steps by LibTorch's profiler (Kineto/CUPTI on CUDA), so with warm
/// caches and the real overlap, unlike a replay of each kernel alone (Nsight Compute).
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

namespace mst {

/// Where a kernel's time comes from: the operator that launched it (on the CPU, the operator
/// itself), its inputs' shapes and dtypes, and the recorded scopes around it, innermost first
/// (an autograd node's evaluate_function, the engine's phase).
struct KernelSource {
  std::string op;      ///< e.g. "aten::add"; empty when the profiler linked no operator
  std::string inputs;  ///< e.g. "[256, 197, 384] float, [256, 197, 384] c10::BFloat16"
  std::string within;  ///< e.g. "autograd::engine::evaluate_function: AddBackward0 > mst::backward"
  double ms_per_step = 0;
  double calls_per_step = 0;
};

struct KernelTime {
  std::string name;
  std::string category;
  double ms_per_step = 0;
  double calls_per_step = 0;
  std::vector<KernelSource> sources;  ///< most time first
};

struct KernelProfile {
  /// "cuda kernels" (device time, one entry per kernel name), or on the CPU "cpu ops
  /// (inclusive)": operator wall times, which overlap where one operator calls another.
  std::string source;
  int64_t steps = 0;
  double total_ms_per_step = 0;  ///< the sum over `kernels`
  std::vector<KernelTime> kernels;  ///< most time first
  std::map<std::string, double> category_ms_per_step;
};

/// The kind of work a kernel (or operator) name says it does: matmul, attention, convolution,
/// fused_norm, fused_embed, fused_augment, fused_gelu, fused_heads, fused_loss, fused_sums,
/// fused_decoder, fused_optimizer (our kernels), layernorm, softmax, reduction, optimizer,
/// copy_cast, elementwise or other.
std::string kernelCategory(const std::string& name);

/// Runs `step` `steps` times under the profiler (waiting for `device` at the end) and sums the
/// recorded kernels' times by name, and within each name by source (KernelSource).
KernelProfile profileSteps(const std::function<void()>& step, int64_t steps,
                           const torch::Device& device);

/// {"source", "steps", "total_ms_per_step", "categories": {name: {ms, share}}, "top": [the
/// `top` kernels with most time: name (at most 160 characters), category, ms, calls, share and
/// "sources": their (at most 8) sources with most time: op, inputs, within, ms, calls]}.
nlohmann::json kernelProfileJson(const KernelProfile& profile, size_t top);

}  // namespace mst
