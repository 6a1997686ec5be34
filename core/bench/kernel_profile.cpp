/// @brief Kernel-time profile of training steps (see kernel_profile.h).
#include "core/bench/kernel_profile.h"

#include <algorithm>
#include <cctype>
#include <unordered_map>

#ifndef MST_NO_KERNEL_PROFILE
#include <torch/csrc/autograd/profiler_kineto.h>
#endif

#include "core/util/error.h"

namespace mst {
namespace {

#ifndef MST_NO_KERNEL_PROFILE
namespace prof = torch::profiler::impl;

/// An event's duration in ms: durationNs() in LibTorch 2.x, durationUs() in 1.13.
template <typename E>
auto durationMs(const E& e, int) -> decltype(e.durationNs(), double()) {
  return static_cast<double>(e.durationNs()) / 1e6;
}
template <typename E>
double durationMs(const E& e, long) {
  return static_cast<double>(e.durationUs()) / 1e3;
}

#endif

bool has(const std::string& text, const char* part) { return text.find(part) != std::string::npos; }

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.has_index() ? device.index() : 0);
}

}  // namespace

std::string kernelCategory(const std::string& raw) {
  std::string n(raw);
  std::transform(n.begin(), n.end(), n.begin(), [](unsigned char c) { return std::tolower(c); });
  // Order matters: cuDNN's implicit-GEMM convolutions and flash attention's names mention gemm.
  if (has(n, "mst::kernels")) {  // ours: the augmentation's kernels, else the residual norm's
    for (const char* k : {"cropkernel", "meankernel", "colourkernel", "blurrowskernel", "finishkernel"})
      if (has(n, k)) return "fused_augment";
    return "fused_norm";
  }
  if (has(n, "flash") || has(n, "fmha") || has(n, "attention") || has(n, "sdpa") ||
      has(n, "mem_eff"))
    return "attention";
  if (has(n, "conv") || has(n, "cudnn") || has(n, "dgrad") || has(n, "wgrad") ||
      has(n, "winograd") || has(n, "implicit_gemm"))
    return "convolution";
  if (has(n, "gemm") || has(n, "gemv") || has(n, "cutlass") || has(n, "cublas") ||
      has(n, "nvjet") || has(n, "xmma") || has(n, "matmul") || has(n, "aten::mm") ||
      has(n, "aten::addmm") || has(n, "aten::bmm") || has(n, "aten::linear"))
    return "matmul";
  if (has(n, "layer_norm") || has(n, "layernorm")) return "layernorm";
  if (has(n, "softmax")) return "softmax";
  if (has(n, "adam") || has(n, "foreach") || has(n, "multi_tensor")) return "optimizer";
  if (has(n, "reduce") || has(n, "norm_kernel") || has(n, "aten::sum") || has(n, "aten::mean") ||
      has(n, "aten::norm"))
    return "reduction";
  if (has(n, "copy") || has(n, "memcpy") || has(n, "memset") || has(n, "cast") ||
      has(n, "fill") || has(n, "cat") || has(n, "index") || has(n, "gather") ||
      has(n, "scatter") || has(n, "aten::to") || has(n, "contiguous"))
    return "copy_cast";
  if (has(n, "elementwise") || has(n, "vectorized") || has(n, "unrolled") || has(n, "gelu") ||
      has(n, "aten::add") || has(n, "aten::mul") || has(n, "aten::div") || has(n, "aten::sub") ||
      has(n, "aten::where") || has(n, "aten::lerp"))
    return "elementwise";
  return "other";
}

KernelProfile profileSteps(const std::function<void()>& step, int64_t steps,
                           const torch::Device& device) {
  if (steps < 1) throw MstError("kernel profile: at least one step");
#ifdef MST_NO_KERNEL_PROFILE
  (void)step, (void)device;
  throw MstError("kernel profile: this build has none (CMake MST_KERNEL_PROFILE=OFF)");
#else
  const bool cuda = device.is_cuda();
  std::set<prof::ActivityType> activities{cuda ? prof::ActivityType::CUDA : prof::ActivityType::CPU};
  const prof::ProfilerConfig config(prof::ProfilerState::KINETO);
  synchronize(device);
  torch::autograd::profiler::prepareProfiler(config, activities);
  torch::autograd::profiler::enableProfiler(config, activities);
  try {
    for (int64_t i = 0; i < steps; ++i) step();
    synchronize(device);
  } catch (...) {
    torch::autograd::profiler::disableProfiler();
    throw;
  }
  auto result = torch::autograd::profiler::disableProfiler();

  KernelProfile p;
  p.source = cuda ? "cuda kernels" : "cpu ops (inclusive)";
  p.steps = steps;
  std::unordered_map<std::string, KernelTime> by_name;
  const auto wanted = cuda ? c10::DeviceType::CUDA : c10::DeviceType::CPU;
  for (const auto& e : result->events()) {
    if (e.deviceType() != wanted) continue;
    auto& k = by_name[e.name()];
    k.name = e.name();
    k.ms_per_step += durationMs(e, 0);
    k.calls_per_step += 1;
  }
  if (by_name.empty())
    throw MstError("kernel profile: the profiler recorded no " + p.source +
                   " (is this LibTorch built with Kineto" + (cuda ? " and CUPTI?)" : "?)"));
  for (auto& [name, k] : by_name) {
    k.ms_per_step /= static_cast<double>(steps);
    k.calls_per_step /= static_cast<double>(steps);
    k.category = kernelCategory(name);
    p.total_ms_per_step += k.ms_per_step;
    p.category_ms_per_step[k.category] += k.ms_per_step;
    p.kernels.push_back(k);
  }
  std::sort(p.kernels.begin(), p.kernels.end(),
            [](const KernelTime& a, const KernelTime& b) { return a.ms_per_step > b.ms_per_step; });
  return p;
#endif
}

nlohmann::json kernelProfileJson(const KernelProfile& p, size_t top) {
  const double total = std::max(p.total_ms_per_step, 1e-12);
  nlohmann::json categories = nlohmann::json::object();
  for (const auto& [name, ms] : p.category_ms_per_step)
    categories[name] = {{"ms", ms}, {"share", ms / total}};
  nlohmann::json rows = nlohmann::json::array();
  for (size_t i = 0; i < std::min(top, p.kernels.size()); ++i) {
    const auto& k = p.kernels[i];
    rows.push_back({{"name", k.name.substr(0, 160)},
                    {"category", k.category},
                    {"ms", k.ms_per_step},
                    {"calls", k.calls_per_step},
                    {"share", k.ms_per_step / total}});
  }
  return {{"source", p.source},
          {"steps", p.steps},
          {"total_ms_per_step", p.total_ms_per_step},
          {"categories", categories},
          {"top", rows}};
}

}  // namespace mst
