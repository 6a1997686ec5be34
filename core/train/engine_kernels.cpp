/// @brief Engine::configureKernels: which of our kernels and which attention kernels a run uses
/// (train.fused_*, train.attention_kernel*), resolved once at start (see engine.h). Apart from
/// engine.cpp because the tests' emulated build compiles it a second time, with the CPU as the
/// kernels' device (core/kernels/kernel_device.h, tests/CMakeLists.txt).
#include "core/train/engine.h"

#include "core/dist/communicator.h"
#include "core/kernels/fused_mlp.h"
#include "core/kernels/kernel_device.h"
#include "core/kernels/residual_norm.h"
#include "core/model/attention_kernel.h"
#include "core/train/kernel_selfcheck.h"
#include "core/util/error.h"

namespace mst {

void Engine::configureKernels(const Config& config, const EngineOptions& options) {
  // CUDA devices (the CPU in the tests' build with emulated kernels); elsewhere ATen's operations.
  if (!kernels::kernelDevice(options.device)) return;
  // auto: wherever the build's kernels run on this GPU and pass their self-check there (at this
  // run's shapes, kernel_selfcheck.h); on: insist on them, and refuse them where they fail it.
  const std::string unavailable = fusedKernelsUnavailable(options.device);
  const bool bf16_stream = student_vit->stream_dtype == torch::kBFloat16;
  const auto check = [&](const std::string& family) {
    return selfCheckKernels(family, config, options.device, bf16_, bf16_stream);
  };
  const auto unused = [](const std::string& family) {  // kernels this run would not launch
    KernelSelfCheck skipped;
    skipped.family = family;
    skipped.passed = true;
    return skipped;
  };
  kernel_notes_.clear();
  // Data parallel: a refusal is raised once every rank has decided (below), so that the other
  // ranks do not wait for this one in their first collective.
  std::string refused;
  const auto refuse = [&](const std::string& message) {
    if (!options.comm) throw MstError(message);
    if (refused.empty()) refused = message;
  };
  const auto fused = [&](const std::string& value, const char* key, bool launched = true) {
    try {
      return settleKernelSetting(value, key, unavailable,
                                 launched ? std::function<KernelSelfCheck(const std::string&)>(check)
                                          : unused,
                                 kernel_notes_);
    } catch (const MstError& e) {
      refuse(e.what());
      return false;
    }
  };
  // (The junction kernels take the bf16 operands of the autocast step; fp32 keeps the exact
  // LayerNorm.)
  bool fused_norm = fused(config.train.fused_norm, "train.fused_norm", bf16_) && bf16_;
  bool fused_augment = fused(config.train.fused_augment, "train.fused_augment");
  fused_loss_ = fused(config.train.fused_loss, "train.fused_loss");
  fused_optimizer_ = fused(config.train.fused_optimizer, "train.fused_optimizer");
  // (Data-parallel ranks normalise with SyncBN, whose statistics the kernels do not gather.)
  if (config.train.fused_decoder == "on" && options.comm)
    throw MstError("config key train.fused_decoder: this run has " +
                   std::to_string(options.comm->worldSize()) +
                   " data-parallel ranks, whose decoder normalises with SyncBN (ATen's "
                   "operations): set it to auto or off");
  decoder->fused_stages =
      fused(config.train.fused_decoder, "train.fused_decoder", options.comm == nullptr) &&
      options.comm == nullptr;
  // The tanh GELU's forward pass needs cuBLASLt's epilogue; the erf GELU's gains are all in
  // the backward kernel. Refused where the setting could only run ATen's operations.
  if (config.train.fused_mlp && bf16_) {
    if (config.model.gelu == "tanh" && !cublasLtBuilt())
      refuse("config key train.fused_mlp: this build has no cuBLASLt (CMake option "
             "MST_CUBLASLT, CUDA::cublasLt not found): set it to false");
    else if (config.model.gelu != "tanh" && !unavailable.empty())
      refuse("config key train.fused_mlp: with model.gelu = " + config.model.gelu +
             " it runs the fused GELU backward kernel, but " + unavailable + ": set it to false");
    // (true insists, as on does: a GELU backward kernel that fails its self-check is refused.)
    else if (unavailable.empty())
      fused("on", "train.fused_mlp");
  }
  if (options.comm) {
    // Every rank takes the same decisions: a family left off on one rank (its self-check failed
    // there) is left off on all, and a refusal on one refuses the run on all. (The optimiser's
    // step too: its kernel and ATen's operations differ in the last bit, and the ranks' weights
    // must stay identical.)
    auto flags = torch::tensor({refused.empty() ? 0.0f : 1.0f, fused_norm ? 0.0f : 1.0f,
                                fused_augment ? 0.0f : 1.0f, fused_loss_ ? 0.0f : 1.0f,
                                fused_optimizer_ ? 0.0f : 1.0f})
                     .to(options.device);
    options.comm->allReduceSum(flags);
    const auto sums = flags.cpu();
    const auto elsewhere = [&](int i) { return sums[i].item<float>() > 0.0f; };
    if (elsewhere(0))
      throw MstError(refused.empty() ? "another data-parallel rank refused a kernel setting (its "
                                       "log names the key and the reason)"
                                     : refused);
    for (auto [i, on, key] : {std::tuple{1, &fused_norm, "train.fused_norm"},
                              std::tuple{2, &fused_augment, "train.fused_augment"},
                              std::tuple{3, &fused_loss_, "train.fused_loss"},
                              std::tuple{4, &fused_optimizer_, "train.fused_optimizer"}})
      if (*on && elsewhere(i)) {
        *on = false;
        kernel_notes_.push_back(std::string(key) + " (auto): its kernels are off on another "
                                "data-parallel rank (see that rank's log), so on this one too");
      }
  }
  student_vit->fused_norm = teacher_vit->fused_norm = fused_norm;
  fused_mlp_ = config.train.fused_mlp && bf16_;
  student_vit->setFusedMlp(fused_mlp_);
  teacher_vit->setFusedMlp(fused_mlp_);
  const bool cuda = options.device.is_cuda();
  const auto long_kernel =
      attentionKernelSetting(config.train.attention_kernel, "train.attention_kernel", cuda);
  const auto short_kernel =
      attentionKernelSetting(config.train.attention_kernel_short, "train.attention_kernel_short", cuda);
  student_vit->setAttentionKernels(long_kernel, short_kernel);
  teacher_vit->setAttentionKernels(long_kernel, short_kernel);
  augment_.setFused(fused_augment);
}

}  // namespace mst
