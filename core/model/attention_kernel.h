/// @brief Which CUDA kernel runs the ViT's scaled-dot-product attention (train.attention_kernel
/// for sequences of more than kShortSequence tokens, train.attention_kernel_short for the rest).
///
/// LibTorch 2.x picks among cuDNN, flash (FlashAttention-2), memory-efficient (CUTLASS) and math
/// kernels by a priority order and global switches (at::Context::setSDPUse*). In the session-12
/// profile it ran cuDNN's kernels for both of DeiT-S/16's sequence lengths; for the 37-token
/// local crops they took 4.9 ms of an 87 ms step, about four times what their reads and writes
/// need. Choosing per sequence length lets `mst bench` measure the alternatives.
#pragma once

#include <mutex>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace mst {

/// "auto" leaves the choice to LibTorch (but for short sequences: autoAttentionKernel); the others
/// allow that kernel alone, or LibTorch's math path alone where LibTorch says the kernel cannot
/// take the inputs (flash and cuDNN in fp32).
enum class AttentionKernel { Auto, CuDnn, Flash, Efficient, Math };

/// Sequences of at most this many tokens use train.attention_kernel_short (one 64-row tile of
/// the flash kernels; DeiT-S/16's local crops have 37 tokens, its global crops 197).
inline constexpr int64_t kShortSequence = 64;

/// "auto", "cudnn", "flash", "efficient", "math" (the config values, in this order).
const std::vector<std::string>& attentionKernelNames();
/// The value for `name`; throws MstError naming `key` for anything else.
AttentionKernel attentionKernelFromName(const std::string& name, const std::string& key);
const char* attentionKernelName(AttentionKernel kernel);
/// Whether this build can choose the kernel (false where scripts/gpu_build.sh had to build with
/// -DMST_ATTENTION_SWITCHES=OFF: LibTorch's choice only).
bool attentionSwitchesBuilt();
/// The setting `value` of config key `key` for a run on CUDA (`cuda`) or elsewhere; throws
/// MstError naming the key for an unknown value, or for any value but auto on CUDA in a build
/// without the switches.
AttentionKernel attentionKernelSetting(const std::string& value, const std::string& key, bool cuda);

namespace sdpa_detail {

// Each of LibTorch's switches where its Context has it (FA3 and FA4 only in some 2.x versions,
// cuDNN since 2.2, flash and math since 1.13): detected, so that this compiles against either
// LibTorch.
#define MST_SDPA_SWITCH(Name, Setter, Getter)                                                   \
  template <class C, class = void>                                                             \
  struct Name : std::false_type {};                                                            \
  template <class C>                                                                           \
  struct Name<C, std::void_t<decltype(std::declval<C&>().Setter(true)),                        \
                             decltype(bool(std::declval<const C&>().Getter()))>>               \
      : std::true_type {                                                                       \
    static bool get(const C& c) { return c.Getter(); }                                         \
    static void set(C& c, bool on) { c.Setter(on); }                                           \
  };
MST_SDPA_SWITCH(CuDnnSwitch, setSDPUseCuDNN, userEnabledCuDNNSDP)
MST_SDPA_SWITCH(FlashSwitch, setSDPUseFlash, userEnabledFlashSDP)
MST_SDPA_SWITCH(EfficientSwitch, setSDPUseMemEfficient, userEnabledMemEfficientSDP)
MST_SDPA_SWITCH(MathSwitch, setSDPUseMath, userEnabledMathSDP)
MST_SDPA_SWITCH(Fa3Switch, setSDPUseFA3, userEnabledFA3SDP)
MST_SDPA_SWITCH(Fa4Switch, setSDPUseFA4, userEnabledFA4SDP)
#undef MST_SDPA_SWITCH

}  // namespace sdpa_detail

/// While it lives, `ctx`'s switches allow only `kernel` (allowMath() adds the math path); the
/// destructor restores every switch it changed. Auto changes nothing. `available` is false where
/// the context has no switch for `kernel` (cuDNN before 2.2, memory-efficient in 1.13): nothing
/// is changed then either. With only the chosen kernel allowed, LibTorch's priority order among
/// its kernels does not matter (with math also allowed, math would win wherever it comes first).
/// The switches are process-wide: hold sdpaSwitchMutex() around their use.
template <class Ctx>
class SdpaSwitches {
 public:
  SdpaSwitches(Ctx& ctx, AttentionKernel kernel) : ctx_(ctx) {
    using namespace sdpa_detail;
    if (kernel == AttentionKernel::Auto) return;
    const bool has = (kernel == AttentionKernel::CuDnn && CuDnnSwitch<Ctx>::value) ||
                     (kernel == AttentionKernel::Flash && FlashSwitch<Ctx>::value) ||
                     (kernel == AttentionKernel::Efficient && EfficientSwitch<Ctx>::value) ||
                     (kernel == AttentionKernel::Math && MathSwitch<Ctx>::value);
    if (!has) {
      available_ = false;
      return;
    }
    apply<CuDnnSwitch<Ctx>>(0, kernel == AttentionKernel::CuDnn);
    apply<FlashSwitch<Ctx>>(1, kernel == AttentionKernel::Flash);
    apply<EfficientSwitch<Ctx>>(2, kernel == AttentionKernel::Efficient);
    apply<MathSwitch<Ctx>>(3, kernel == AttentionKernel::Math);
    apply<Fa3Switch<Ctx>>(4, false);
    apply<Fa4Switch<Ctx>>(5, false);
  }
  ~SdpaSwitches() { restore(); }
  SdpaSwitches(const SdpaSwitches&) = delete;
  SdpaSwitches& operator=(const SdpaSwitches&) = delete;

  bool available() const { return available_; }
  /// Also allows LibTorch's math path (where the chosen kernel cannot take the inputs).
  void allowMath() {
    if (!available_ || saved_[3] < 0) return;
    if constexpr (sdpa_detail::MathSwitch<Ctx>::value) sdpa_detail::MathSwitch<Ctx>::set(ctx_, true);
  }

 private:
  template <class S>
  void apply(int i, bool on) {
    if constexpr (S::value) {
      saved_[i] = S::get(ctx_) ? 1 : 0;
      S::set(ctx_, on);
    }
  }
  template <class S>
  void put(int i) {
    if constexpr (S::value) {
      if (saved_[i] >= 0) S::set(ctx_, saved_[i] == 1);
    }
  }
  void restore() {
    using namespace sdpa_detail;
    put<CuDnnSwitch<Ctx>>(0);
    put<FlashSwitch<Ctx>>(1);
    put<EfficientSwitch<Ctx>>(2);
    put<MathSwitch<Ctx>>(3);
    put<Fa3Switch<Ctx>>(4);
    put<Fa4Switch<Ctx>>(5);
  }

  Ctx& ctx_;
  bool available_ = true;
  int saved_[6] = {-1, -1, -1, -1, -1, -1};  ///< -1: not changed
};

/// What "auto" runs for a CUDA sequence of `tokens` tokens, given a LibTorch context type `Ctx`:
/// the memory-efficient kernel for sequences of at most kShortSequence tokens where `Ctx` has
/// its switch, LibTorch's own choice otherwise. On the H200 (session 18, DeiT-S/16, batch 128)
/// LibTorch chose cuDNN's kernel for the 37-token local crops, and the memory-efficient one made
/// the whole step 1.5 % faster (78.3 against 79.4 ms); for the 197-token crops cuDNN's was the
/// fastest of the four. Where the memory-efficient kernel cannot take the inputs, auto is
/// LibTorch's choice (scaledDotProductAttention checks, never the math path in its place).
template <class Ctx>
AttentionKernel autoAttentionKernel(int64_t tokens) {
  return tokens <= kShortSequence && sdpa_detail::EfficientSwitch<Ctx>::value
             ? AttentionKernel::Efficient
             : AttentionKernel::Auto;
}

/// The lock every use of the process-wide switches holds (a process with one engine per GPU
/// runs several training threads).
std::mutex& sdpaSwitchMutex();

/// at::scaled_dot_product_attention(q, k, v) with `kernel` chosen as above for CUDA tensors
/// (LibTorch's math path instead where at::_fused_sdp_choice finds no kernel allowed; Auto as
/// autoAttentionKernel says for q's sequence length); elsewhere exactly that call. Every CUDA call holds sdpaSwitchMutex(), Auto included, so that no call
/// sees another thread's switches. LibTorch 2.x only (1.13 has no public fused attention: the
/// ViT computes it with matmul and softmax there).
torch::Tensor scaledDotProductAttention(const torch::Tensor& q, const torch::Tensor& k,
                                        const torch::Tensor& v, AttentionKernel kernel);

/// The backend scaledDotProductAttention runs for (q, k, v) with `kernel`: "math", "flash",
/// "efficient", "cudnn", "overrideable"; "" where this LibTorch cannot say (no
/// at::_fused_sdp_choice) or `kernel`'s switch is missing.
std::string attentionKernelChoice(const torch::Tensor& q, const torch::Tensor& k,
                                  const torch::Tensor& v, AttentionKernel kernel);

}  // namespace mst
