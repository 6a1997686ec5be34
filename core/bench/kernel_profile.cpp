/// @brief Kernel-time profile of training steps (see kernel_profile.h).
#include "core/bench/kernel_profile.h"

#include <algorithm>
#include <cctype>
#include <sstream>
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

/// Start time in ns: startNs() in LibTorch 2.x, startUs() in 1.13.
template <typename E>
auto startNs(const E& e, int) -> decltype(e.startNs(), int64_t()) {
  return static_cast<int64_t>(e.startNs());
}
template <typename E>
int64_t startNs(const E& e, long) {
  return static_cast<int64_t>(e.startUs()) * 1000;
}

/// "[256, 197, 384] float, [] Scalar": the inputs' shapes and dtypes, where recorded.
template <typename E>
auto inputsText(const E& e, int) -> decltype(e.shapes(), e.dtypes(), std::string()) {
  if (!e.hasShapes()) return {};
  const auto shapes = e.shapes();
  const auto types = e.hasTypes() ? e.dtypes() : decltype(e.dtypes()){};
  std::ostringstream out;
  for (size_t i = 0; i < shapes.size(); ++i) {
    if (i > 0) out << ", ";
    out << '[';
    for (size_t d = 0; d < shapes[i].size(); ++d) out << (d > 0 ? ", " : "") << shapes[i][d];
    out << ']';
    if (i < types.size() && !types[i].empty()) out << ' ' << types[i];
  }
  return out.str();
}
template <typename E>
std::string inputsText(const E&, long) {
  return {};
}

/// A CPU-side event: an operator, a scope (autograd's evaluate_function), or a runtime call.
struct HostEvent {
  std::string name;
  uint64_t thread = 0;
  int64_t start = 0, end = 0;
  int parent = -1;  ///< the innermost event on the same thread that spans this one
  std::string inputs;
};

/// Runtime and driver calls (cudaLaunchKernel, cuLaunchKernelEx, ...) share the CPU side with the
/// operators but launch on their behalf: a kernel is attributed to the operator.
bool isRuntimeCall(const std::string& n) {
  return n.rfind("cuda", 0) == 0 || (n.size() > 2 && n[0] == 'c' && n[1] == 'u' &&
                                     std::isupper(static_cast<unsigned char>(n[2])));
}

/// Links each host event to the innermost one around it on its thread (by time). Events on one
/// thread nest or follow each other, so an event lies inside the last open one that has not
/// ended by its start. (LibTorch 1.13 gives start and duration in whole µs, each rounded down,
/// so a child may seem to end after its parent: comparing starts, not ends, keeps it inside.
/// An event starting in the µs its parent's rounded end falls in is still misplaced.)
void linkParents(std::vector<HostEvent>& host) {
  std::vector<int> order(host.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    const auto& x = host[a];
    const auto& y = host[b];
    if (x.thread != y.thread) return x.thread < y.thread;
    if (x.start != y.start) return x.start < y.start;
    if (x.end != y.end) return x.end > y.end;  // the enclosing one first
    return a < b;
  });
  std::vector<int> open;
  uint64_t thread = 0;
  for (int i : order) {
    auto& e = host[i];
    if (open.empty() || e.thread != thread) open.clear(), thread = e.thread;
    while (!open.empty() && host[open.back()].end <= e.start && host[open.back()].start < e.start)
      open.pop_back();
    e.parent = open.empty() ? -1 : open.back();
    open.push_back(i);
  }
}

/// The scopes around host event `i`, innermost first, at most `depth` of them.
std::string withinText(const std::vector<HostEvent>& host, int i, int depth) {
  std::string out;
  for (int p = host[i].parent; p >= 0 && depth > 0; p = host[p].parent, --depth) {
    if (!out.empty()) out += " > ";
    out += host[p].name;
  }
  return out;
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
  if (has(n, "mst::kernels")) {  // ours: augmentation, GELU backward, q/k/v gradient gather,
                                 // the DINO and reconstruction losses, the column sums, the
                                 // decoder stages, the optimiser step, else the residual norm
    if (has(n, "recon")) return "fused_loss";
    if (has(n, "embedforward") || has(n, "embedbackward")) return "fused_embed";
    if (has(n, "augmentargs")) return "fused_augment";  // (every pass takes AugmentArgs)
    if (has(n, "gelubackwardkernel")) return "fused_gelu";
    if (has(n, "gatherkernel")) return "fused_heads";
    if (has(n, "dinoloss")) return "fused_loss";
    if (has(n, "columnsumskernel")) return "fused_sums";
    if (has(n, "decoder")) return "fused_decoder";
    if (has(n, "adamw")) return "fused_optimizer";
    return "fused_norm";
  }
  // (cuDNN's attention backward also runs two small kernels of its "fusion" namespace.)
  if (has(n, "flash") || has(n, "fmha") || has(n, "attention") || has(n, "sdpa") ||
      has(n, "mem_eff") || has(n, "compute_dot_do_o") || has(n, "convert_dq_to_16bits"))
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
  // The CPU side too on CUDA: the operators that launched the kernels, with their inputs' shapes.
  std::set<prof::ActivityType> activities{prof::ActivityType::CPU};
  if (cuda) activities.insert(prof::ActivityType::CUDA);
  const prof::ProfilerConfig config(prof::ProfilerState::KINETO, /*report_input_shapes=*/true);
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
  // Host events, and the operator each correlation id names (not a runtime call).
  std::vector<HostEvent> host;
  std::unordered_map<uint64_t, int> op_of;
  for (const auto& e : result->events()) {
    if (e.deviceType() != c10::DeviceType::CPU) continue;
    HostEvent h;
    h.name = e.name();
    h.thread = e.startThreadId();
    h.start = startNs(e, 0);
    h.end = h.start + static_cast<int64_t>(durationMs(e, 0) * 1e6);
    h.inputs = inputsText(e, 0);
    const int index = static_cast<int>(host.size());
    // (Id 0 links nothing: kernels launched outside any operator, such as those of a custom
    // autograd function's forward, carry it, and so do the profiler's own buffer events.)
    if (cuda && e.correlationId() != 0 && !isRuntimeCall(h.name))
      op_of.emplace(e.correlationId(), index);
    host.push_back(std::move(h));
  }
  linkParents(host);
  std::unordered_map<std::string, KernelTime> by_name;
  std::unordered_map<std::string, std::unordered_map<std::string, KernelSource>> sources;
  int host_index = -1;
  for (const auto& e : result->events()) {
    const bool on_host = e.deviceType() == c10::DeviceType::CPU;
    if (on_host) ++host_index;
    if (on_host == cuda) continue;  // CUDA: device kernels; CPU: the operators themselves
    auto& k = by_name[e.name()];
    k.name = e.name();
    const double ms = durationMs(e, 0);
    k.ms_per_step += ms;
    k.calls_per_step += 1;
    int op = host_index;  // on the CPU the operator is the event
    if (cuda) {
      const auto it = op_of.find(e.linkedCorrelationId());
      op = it == op_of.end() ? -1 : it->second;
    }
    KernelSource src;
    if (op >= 0) {
      src.op = cuda ? host[op].name : std::string();
      src.inputs = host[op].inputs;
      src.within = withinText(host, op, 2);
    }
    const std::string key = src.op + '\n' + src.inputs + '\n' + src.within;
    auto& s = sources[k.name].emplace(key, std::move(src)).first->second;
    s.ms_per_step += ms;
    s.calls_per_step += 1;
  }
  if (by_name.empty())
    throw MstError("kernel profile: the profiler recorded no " + p.source +
                   " (is this LibTorch built with Kineto" + (cuda ? " and CUPTI?)" : "?)"));
  const double n = static_cast<double>(steps);
  for (auto& [name, k] : by_name) {
    k.ms_per_step /= n;
    k.calls_per_step /= n;
    k.category = kernelCategory(name);
    for (auto& [key, s] : sources[name]) {
      s.ms_per_step /= n;
      s.calls_per_step /= n;
      k.sources.push_back(std::move(s));
    }
    std::sort(k.sources.begin(), k.sources.end(), [](const KernelSource& a, const KernelSource& b) {
      return a.ms_per_step > b.ms_per_step;
    });
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
    nlohmann::json sources = nlohmann::json::array();
    for (size_t j = 0; j < std::min<size_t>(8, k.sources.size()); ++j) {
      const auto& s = k.sources[j];
      sources.push_back({{"op", s.op},
                         {"inputs", s.inputs.substr(0, 240)},
                         {"within", s.within.substr(0, 240)},
                         {"ms", s.ms_per_step},
                         {"calls", s.calls_per_step}});
    }
    rows.push_back({{"name", k.name.substr(0, 160)},
                    {"category", k.category},
                    {"ms", k.ms_per_step},
                    {"calls", k.calls_per_step},
                    {"share", k.ms_per_step / total},
                    {"sources", sources}});
  }
  return {{"source", p.source},
          {"steps", p.steps},
          {"total_ms_per_step", p.total_ms_per_step},
          {"categories", categories},
          {"top", rows}};
}

}  // namespace mst
