/// @brief The few places where LibTorch 1.13 (Debian) and 2.x (GPU machine) differ.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include <torch/csrc/autograd/variable.h>
#include <torch/torch.h>

#if defined(MST_HAVE_CUDA) && TORCH_VERSION_MAJOR >= 2
#include <ATen/autocast_mode.h>
#define MST_HAVE_AUTOCAST 1
#endif

/// c10d's process-group type that ProcessGroupGloo/NCCL derive from and that holds the
/// collectives: ProcessGroup in 1.13, Backend since 2.0. Only meaningful where the c10d headers
/// are included (core/dist/communicator.cpp).
#if TORCH_VERSION_MAJOR >= 2
#define MST_C10D_BACKEND c10d::Backend
#else
#define MST_C10D_BACKEND c10d::ProcessGroup
#endif

namespace mst {

/// Owning handle on an autograd Node, as torch::autograd::impl::grad_accumulator returns it:
/// std::shared_ptr<Node> in 1.13 and 2.x so far; c10::intrusive_ptr<Node> once PyTorch's
/// "Convert shared_ptr<Node> to intrusive_ptr<Node>" (pytorch/pytorch#181782, April 2026) is in a
/// release. Deduced rather than spelled, so that core/dist/gradient_reducer builds with both.
using AutogradNodePtr =
    decltype(torch::autograd::impl::grad_accumulator(std::declval<const torch::Tensor&>()));

/// c10d::TCPStoreOptions::useLibUV: absent in 1.13 (one socket-based server), present since 2.2
/// and true by default since 2.4, when TCPStore's constructor throws ("use_libuv was requested but
/// PyTorch was built without libuv support") in a LibTorch built without libuv. Sets the flag where
/// the member exists and returns true; returns false (and does nothing) where it does not. Call it
/// as setTcpStoreUseLibuv(options, on, 0). A template, so that only communicator.cpp needs c10d.
template <typename Options>
auto setTcpStoreUseLibuv(Options& options, bool on, int)
    -> decltype(options.useLibUV = on, bool()) {
  options.useLibUV = on;
  return true;
}
template <typename Options>
bool setTcpStoreUseLibuv(Options&, bool, long) {
  return false;
}

/// A fresh generator for `device`, seeded with `seed`, independent of the global one. Cloning the
/// device's default generator works the same way on both LibTorch versions and on CPU and CUDA.
inline at::Generator makeGenerator(const torch::Device& device, uint64_t seed) {
  at::Generator gen = at::globalContext().defaultGenerator(device).clone();
  gen.set_current_seed(seed);
  return gen;
}

/// Mixes a run seed and a counter (step, epoch) into one well-spread 64-bit seed (splitmix64), so
/// that every step's randomness is a pure function of (seed, step): resume is exact by construction.
inline uint64_t mixSeed(uint64_t seed, uint64_t counter) {
  uint64_t z = seed * 0x9E3779B97F4A7C15ULL + counter + 0x632BE59BD9B4E019ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/// bf16 autocast on CUDA for the guard's lifetime (the `with torch.autocast("cuda", bfloat16)`
/// of PyTorch). On leaving the outermost guard the cache of bf16 weight copies is cleared: LibTorch
/// does not clear it by itself, and stale copies of weights that the optimiser has since changed
/// would otherwise be reused by the next step. No-op when `enable` is false.
class AutocastGuard {
 public:
  explicit AutocastGuard(bool enable) : enabled_(enable) {
    if (!enabled_) return;
#ifdef MST_HAVE_AUTOCAST
    was_enabled_ = at::autocast::is_autocast_enabled(at::kCUDA);
    was_dtype_ = at::autocast::get_autocast_dtype(at::kCUDA);
    at::autocast::set_autocast_enabled(at::kCUDA, true);
    at::autocast::set_autocast_dtype(at::kCUDA, at::kBFloat16);
    at::autocast::increment_nesting();
#else
    TORCH_CHECK(false, "bf16 autocast needs a CUDA build of LibTorch 2.x");
#endif
  }
  ~AutocastGuard() {
    if (!enabled_) return;
#ifdef MST_HAVE_AUTOCAST
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    at::autocast::set_autocast_enabled(at::kCUDA, was_enabled_);
    at::autocast::set_autocast_dtype(at::kCUDA, was_dtype_);
#endif
  }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool enabled_;
  bool was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kBFloat16;
};

/// Whether CUDA autocast is on in this thread (always false in builds without it).
inline bool autocastActive() {
#ifdef MST_HAVE_AUTOCAST
  return at::autocast::is_autocast_enabled(at::kCUDA);
#else
  return false;
#endif
}

/// The tensors CUDA autocast's linear would multiply by for `weight` and `bias` (either may be
/// undefined): while autocast is on, its cached lower-precision copies, so that a hand-written
/// operation and autocast's own linear share one cast node and the gradients from every use meet
/// there as they do unfused; the tensors themselves otherwise.
inline std::pair<torch::Tensor, torch::Tensor> autocastLinearParams(const torch::Tensor& weight,
                                                                    const torch::Tensor& bias) {
#ifdef MST_HAVE_AUTOCAST
  if (autocastActive()) {
    const auto dtype = at::autocast::get_autocast_dtype(at::kCUDA);
    return {at::autocast::cached_cast(dtype, weight, at::kCUDA),
            bias.defined() ? at::autocast::cached_cast(dtype, bias, at::kCUDA) : bias};
  }
#endif
  return {weight, bias};
}

/// Version string of the LibTorch this binary was built against.
inline std::string torchVersionString() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

}  // namespace mst
