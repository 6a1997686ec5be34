/// @brief Choosing LibTorch's attention kernel (see attention_kernel.h).
#include "core/model/attention_kernel.h"

#include <cstdint>
#include <map>

#include "core/util/error.h"

namespace mst {

const std::vector<std::string>& attentionKernelNames() {
  static const std::vector<std::string> names{"auto", "cudnn", "flash", "efficient", "math"};
  return names;
}

AttentionKernel attentionKernelFromName(const std::string& name, const std::string& key) {
  const auto& names = attentionKernelNames();
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i] == name) return static_cast<AttentionKernel>(i);
  throw MstError("config key " + key + ": \"" + name +
                 "\" is no attention kernel (auto, cudnn, flash, efficient or math)");
}

const char* attentionKernelName(AttentionKernel kernel) {
  return attentionKernelNames().at(static_cast<size_t>(kernel)).c_str();
}

bool attentionSwitchesBuilt() {
#if defined(MST_NO_ATTENTION_SWITCHES) && TORCH_VERSION_MAJOR >= 2
  return false;
#else
  return true;
#endif
}

AttentionKernel attentionKernelSetting(const std::string& value, const std::string& key, bool cuda) {
  const auto kernel = attentionKernelFromName(value, key);
  if (cuda && kernel != AttentionKernel::Auto && !attentionSwitchesBuilt())
    throw MstError("config key " + key + ": \"" + value + "\" needs the attention-kernel switches, "
                   "which this build left out (MST_ATTENTION_SWITCHES=OFF): set it to auto");
  return kernel;
}

std::mutex& sdpaSwitchMutex() {
  static std::mutex mutex;
  return mutex;
}

#if defined(MST_NO_ATTENTION_SWITCHES) && TORCH_VERSION_MAJOR >= 2
// Built with -DMST_ATTENTION_SWITCHES=OFF (scripts/gpu_build.sh's fallback where this file did not
// compile against a LibTorch): LibTorch chooses, and asking for a kernel is an error.
torch::Tensor scaledDotProductAttention(const torch::Tensor& q, const torch::Tensor& k,
                                        const torch::Tensor& v, AttentionKernel kernel) {
  if (q.is_cuda() && kernel != AttentionKernel::Auto)
    throw MstError(std::string("train.attention_kernel(_short) = ") + attentionKernelName(kernel) +
                   ": this build has no attention-kernel switches (MST_ATTENTION_SWITCHES=OFF); "
                   "use auto");
  return at::scaled_dot_product_attention(q, k, v);
}

std::string attentionKernelChoice(const torch::Tensor&, const torch::Tensor&, const torch::Tensor&,
                                  AttentionKernel) {
  return "";
}
#else
namespace {

// at::_fused_sdp_choice (LibTorch 2.x), found by argument-dependent lookup where it exists, so
// that this file compiles against 1.13 too. Returns at::SDPBackend's value, -2 where absent.
template <class T>
auto fusedChoice(const T& q, const T& k, const T& v, int) -> decltype(int64_t(_fused_sdp_choice(q, k, v))) {
  return _fused_sdp_choice(q, k, v);
}
template <class T>
int64_t fusedChoice(const T&, const T&, const T&, long) {
  return -2;
}

/// fusedChoice, or -1 where LibTorch finds no allowed kernel for (q, k, v) (it throws then).
int64_t allowedChoice(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  try {
    return fusedChoice(q, k, v, 0);
  } catch (const std::exception&) {
    return -1;
  }
}

/// Under the lock, with `switches` allowing the chosen kernel alone: also allows math where
/// LibTorch finds no allowed kernel for (q, k, v), or cannot say.
template <class Switches>
void mathWhereNeeded(Switches& switches, const torch::Tensor& q, const torch::Tensor& k,
                     const torch::Tensor& v) {
  if (allowedChoice(q, k, v) < 0) switches.allowMath();
}

#if TORCH_VERSION_MAJOR >= 2
/// Drops LibTorch's warnings while installed: asked about a kernel it cannot use, LibTorch
/// explains why in several warnings before it throws.
class QuietWarnings : public c10::WarningHandler {
 public:
  void process(const c10::Warning&) override {}
};
#endif

/// What LibTorch's kernel filters read of one operand: dtype, device, head dimension, whether it
/// needs a gradient here (grad mode on and requires_grad), a unit last stride, 16-byte strides
/// and base (not the batch, the heads or the sequence length).
std::string operandClass(const torch::Tensor& t) {
  bool strides16 = true;
  for (int64_t i = 0; i + 1 < t.dim(); ++i)
    strides16 = strides16 && (t.stride(i) * static_cast<int64_t>(t.element_size())) % 16 == 0;
  return t.device().str() + " " + c10::toString(t.scalar_type()) + " d" +
         std::to_string(t.size(-1)) +
         (torch::GradMode::is_enabled() && t.requires_grad() ? " grad" : "") +
         (t.stride(-1) == 1 ? " unit" : "") + (strides16 ? " s16" : "") +
         (reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0 ? " a16" : "") + " dim" +
         std::to_string(t.dim()) + ";";
}

/// Whether the process allows the memory-efficient kernel (true where `Ctx` has no switch).
template <class Ctx>
bool efficientSwitchOn(const Ctx& ctx) {
  if constexpr (sdpa_detail::EfficientSwitch<Ctx>::value)
    return sdpa_detail::EfficientSwitch<Ctx>::get(ctx);
  else
    return true;
}

/// Under the lock: whether "auto" runs the memory-efficient kernel for (q, k, v):
/// autoAttentionKernel says so for their length, the process has not switched that kernel off,
/// and, with it alone allowed, LibTorch finds that it takes them. LibTorch's answer is kept for
/// each class of operands (operandClass), so that it is asked once, and its warnings about a
/// kernel that cannot take them are not repeated every step.
bool autoTakesEfficient(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v) {
  if (q.dim() < 2 || autoAttentionKernel<at::Context>(q.size(-2)) != AttentionKernel::Efficient)
    return false;
  if (!efficientSwitchOn(at::globalContext())) return false;
  static std::map<std::string, bool> answers;
  const std::string key = operandClass(q) + operandClass(k) + operandClass(v);
  if (auto it = answers.find(key); it != answers.end()) return it->second;
  bool takes = false;
  {
#if TORCH_VERSION_MAJOR >= 2
    QuietWarnings quiet;
    c10::WarningUtils::WarningHandlerGuard guard(&quiet);
#endif
    SdpaSwitches<at::Context> switches(at::globalContext(), AttentionKernel::Efficient);
    takes = switches.available() && allowedChoice(q, k, v) == 2;  // efficient_attention
  }
  answers.emplace(key, takes);
  return takes;
}

std::string backendName(int64_t choice) {
  switch (choice) {
    case 0: return "math";
    case 1: return "flash";
    case 2: return "efficient";
    case 3: return "cudnn";
    case 4: return "overrideable";
    default: return "backend " + std::to_string(choice);
  }
}

}  // namespace

torch::Tensor scaledDotProductAttention(const torch::Tensor& q, const torch::Tensor& k,
                                        const torch::Tensor& v, AttentionKernel kernel) {
#if TORCH_VERSION_MAJOR >= 2
  if (!q.is_cuda()) return at::scaled_dot_product_attention(q, k, v);
  // The kernel is chosen here, on the host; the backward pass runs the chosen kernel's own
  // backward (autograd recorded which), so only this call needs the switches.
  std::lock_guard<std::mutex> lock(sdpaSwitchMutex());
  const bool efficient = kernel == AttentionKernel::Auto && autoTakesEfficient(q, k, v);
  SdpaSwitches<at::Context> switches(at::globalContext(),
                                     efficient ? AttentionKernel::Efficient : kernel);
  if (kernel != AttentionKernel::Auto && switches.available()) mathWhereNeeded(switches, q, k, v);
  return at::scaled_dot_product_attention(q, k, v);
#else
  (void)q, (void)k, (void)v, (void)kernel;
  throw MstError("scaledDotProductAttention: this LibTorch (" TORCH_VERSION
                 ") has no fused attention");
#endif
}

std::string attentionKernelChoice(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v, AttentionKernel kernel) {
  std::lock_guard<std::mutex> lock(sdpaSwitchMutex());
  const bool efficient = kernel == AttentionKernel::Auto && autoTakesEfficient(q, k, v);
  SdpaSwitches<at::Context> switches(at::globalContext(),
                                     efficient ? AttentionKernel::Efficient : kernel);
  if (!switches.available()) return "";
  if (kernel != AttentionKernel::Auto) mathWhereNeeded(switches, q, k, v);
  const int64_t choice = fusedChoice(q, k, v, 0);
  return choice == -2 ? "" : backendName(choice);
}
#endif

}  // namespace mst
