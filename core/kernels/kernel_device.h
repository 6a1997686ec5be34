/// @brief Where the fused kernels' host code (the autograd functions of core/kernels/*.cpp and
/// the fused augmentation) meets the device: which tensors the kernels take, the stream a launch
/// goes to, and the device guard around it.
///
/// - A CUDA build with the kernels (MST_HAVE_FUSED_KERNELS): CUDA tensors, LibTorch's current
///   stream of their device.
/// - The tests' emulated build (MST_EMULATED_KERNELS as well; tests/CMakeLists.txt compiles the
///   host code a second time against tests/cuda_emu): CPU tensors while kernelEmulation() is
///   on, no stream. The same test binary thus runs the host code exactly as the GPU will, and,
///   with emulation off, the ATen paths it is compared with.
/// - Any other build: no kernels (kernelDevice is true for CUDA devices, where
///   fusedKernelsBuilt() then says no).
#pragma once

#include <torch/torch.h>

#if defined(MST_HAVE_FUSED_KERNELS) && !defined(MST_EMULATED_KERNELS)
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace mst::kernels {

#ifdef MST_EMULATED_KERNELS
/// Whether CPU tensors go to the emulated kernels (off until a test switches it on).
inline bool& kernelEmulation() {
  static bool on = false;
  return on;
}
inline bool kernelDevice(const torch::Device& device) {
  return device.is_cpu() && kernelEmulation();
}
inline void* launchStream(const torch::Device&) { return nullptr; }
struct DeviceGuard {
  explicit DeviceGuard(const torch::Device&) {}
};
/// For its lifetime, CPU tensors take ATen's paths: the reference that a comparison with the
/// (emulated) kernels computes on the CPU.
class ReferencePath {
 public:
  ReferencePath() : was_(kernelEmulation()) { kernelEmulation() = false; }
  ~ReferencePath() { kernelEmulation() = was_; }
  ReferencePath(const ReferencePath&) = delete;
  ReferencePath& operator=(const ReferencePath&) = delete;

 private:
  bool was_;
};
#else
/// The CPU is never the kernels' device here, so a reference computed there is ATen's already.
struct ReferencePath {
  ReferencePath() {}  // (user-provided: a guard variable of this type is not "unused")
};
/// Whether tensors on `device` are the kind the kernels take (not whether they can run there:
/// see fusedKernelsRunOn).
inline bool kernelDevice(const torch::Device& device) { return device.is_cuda(); }
#ifdef MST_HAVE_FUSED_KERNELS
/// The cudaStream_t a launch for `device` goes to.
inline void* launchStream(const torch::Device& device) {
  return at::cuda::getCurrentCUDAStream(device.index()).stream();
}
using DeviceGuard = c10::cuda::CUDAGuard;
#endif
#endif

}  // namespace mst::kernels
