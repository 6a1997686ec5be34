/// @brief `mst bench --micro` (see kernel_micro.h).
#include "core/bench/kernel_micro.h"

#include <algorithm>
#include <chrono>
#include <functional>
#include <string>

#include "core/util/error.h"

#if defined(MST_HAVE_FUSED_KERNELS) && !defined(MST_EMULATED_KERNELS)
#include "core/augment/multicrop.h"
#include "core/kernels/gelu_cuda.h"
#include "core/kernels/kernel_device.h"
#include "core/kernels/recon_loss.h"
#include "core/kernels/residual_norm.h"
#include "core/kernels/residual_norm_cuda.h"
#include "core/kernels/token_embed.h"
#include "core/model/decoder.h"
#include "core/train/losses.h"
#include "core/util/torch_compat.h"
#endif

namespace mst {

#if defined(MST_HAVE_FUSED_KERNELS) && !defined(MST_EMULATED_KERNELS)
namespace {

void sync(const torch::Device& device) {
  torch::cuda::synchronize(device.has_index() ? device.index() : 0);
}

/// Microseconds per call of `launch`: back-to-back calls after a warm-up, enough of them for
/// about 20 ms, so that the host's launch time hides behind the kernels.
double microseconds(const torch::Device& device, const std::function<void()>& launch) {
  using Clock = std::chrono::steady_clock;
  for (int i = 0; i < 3; ++i) launch();
  sync(device);
  auto t0 = Clock::now();
  launch();
  sync(device);
  const double once = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
  const int calls = static_cast<int>(std::clamp(20000.0 / std::max(once, 1.0), 5.0, 2000.0));
  t0 = Clock::now();
  for (int i = 0; i < calls; ++i) launch();
  sync(device);
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count() / calls;
}

void check(const char* error, const std::string& what) {
  if (error != nullptr) throw MstError("mst bench --micro: " + what + ": " + error);
}

}  // namespace

nlohmann::json runKernelMicro(const Config& config, const torch::Device& device, int64_t batch) {
  if (!device.is_cuda()) throw MstError("mst bench --micro: needs a CUDA device (--device cuda)");
  if (const auto why = fusedKernelsUnavailable(device); !why.empty())
    throw MstError("mst bench --micro: the kernels cannot run: " + why);
  const kernels::DeviceGuard guard(device);
  torch::NoGradGuard no_grad;
  const auto f32 = torch::TensorOptions().device(device).dtype(torch::kFloat);
  const auto bf16 = f32.dtype(torch::kBFloat16);
  void* stream = kernels::launchStream(device);
  nlohmann::json out;
  out["device"] = device.str();

  {  // the yardstick: a plain copy, each byte read once and written once
    auto a = torch::empty({256 << 20}, bf16).fill_(1.0), b = torch::empty_like(a);
    const double us = microseconds(device, [&] { b.copy_(a); });
    out["copy_gb_s"] = 2.0 * static_cast<double>(a.nbytes()) / (us * 1e3);
  }
  const double copy_gb_s = out["copy_gb_s"].get<double>();
  auto row = [&](const std::string& kernel, const std::string& crops, int64_t rows, int64_t width,
                 const std::string& stream_dtype, const std::string& access, double us,
                 double bytes) {
    const double gb_s = bytes / (us * 1e3);
    out["kernels"].push_back({{"kernel", kernel},      {"crops", crops},
                              {"rows", rows},          {"width", width},
                              {"stream", stream_dtype}, {"access", access},
                              {"us", us},              {"gb_s", gb_s},
                              {"of_copy", gb_s / copy_gb_s}});
  };

  const auto& m = config.model;
  const int64_t D = m.dim, hidden = static_cast<int64_t>(static_cast<double>(D) * m.mlp_ratio);
  const int64_t tg = (config.crops.global_size / m.patch_size), tl = config.crops.local_size / m.patch_size;
  struct CropSet {
    const char* name;
    int64_t samples, tokens;
  };
  const CropSet sets[] = {{"global", 2 * batch, tg * tg + 1},
                          {"local", config.crops.local_crops * batch, tl * tl + 1}};
  for (const auto& set : sets) {
    if (set.samples == 0) continue;
    const int64_t rows = set.samples * set.tokens;
    auto scale = torch::full({set.samples}, 1.0f / 0.9f, f32);
    auto gamma = torch::ones({D}, f32), beta = torch::zeros({D}, f32), bias = torch::zeros({D}, f32);
    auto branch = torch::randn({rows, D}, bf16);
    auto stats = torch::empty({2, rows}, f32);
    // fp32 stream into bf16 (the blocks' junctions), bf16 into bf16 (bf16_stream), fp32 into
    // fp32 (the final norm of an fp32 stream).
    struct Kind {
      const char* name;
      torch::ScalarType stream, out;
    };
    for (const Kind& kind : {Kind{"fp32", torch::kFloat, torch::kBFloat16},
                             Kind{"bf16", torch::kBFloat16, torch::kBFloat16},
                             Kind{"fp32, fp32 out", torch::kFloat, torch::kFloat}}) {
      auto x = torch::randn({rows, D}, f32.dtype(kind.stream)), y = torch::empty_like(x);
      auto z = torch::empty({rows, D}, f32.dtype(kind.out));
      const double s = static_cast<double>(x.element_size()), o = static_cast<double>(z.element_size());
      for (const bool scalar : {false, true}) {
        kernels::ResidualNormForwardArgs a;
        a.x = x.data_ptr();
        a.branch = branch.data_ptr();
        a.bias = bias.data_ptr<float>();
        a.scale = scale.data_ptr<float>();
        a.gamma = gamma.data_ptr<float>();
        a.beta = beta.data_ptr<float>();
        a.y = y.data_ptr();
        a.z = z.data_ptr();
        a.mean = stats[0].data_ptr<float>();
        a.rstd = stats[1].data_ptr<float>();
        a.rows = rows;
        a.tokens = set.tokens;
        a.D = static_cast<int>(D);
        a.stream_bf16 = kind.stream == torch::kBFloat16;
        a.out_fp32 = kind.out == torch::kFloat;
        a.scalar_access = scalar;
        a.stream = stream;
        const double fwd = microseconds(device, [&] { check(kernels::residualNormForward(a), "junction forward"); });
        // x and the branch read, y and z written
        row("junction_forward", set.name, rows, D, kind.name, scalar ? "1 channel" : "4 channels",
            fwd, static_cast<double>(rows * D) * (2 * s + 2 + o));

        auto gz = torch::randn({rows, D}, f32.dtype(kind.out)), gy = torch::randn_like(x);
        auto dx = torch::empty_like(x), dbranch = torch::empty_like(branch);
        kernels::ResidualNormBackwardArgs g;
        g.gz = gz.data_ptr();
        g.gy = gy.data_ptr();
        g.y = y.data_ptr();
        g.mean = a.mean;
        g.rstd = a.rstd;
        g.gamma = a.gamma;
        g.scale = a.scale;
        g.dx = dx.data_ptr();
        g.dbranch = dbranch.data_ptr();
        g.sums = 3;
        g.rows = rows;
        g.tokens = set.tokens;
        g.D = static_cast<int>(D);
        g.stream_bf16 = a.stream_bf16;
        g.out_fp32 = a.out_fp32;
        g.scalar_access = scalar;
        g.blocks = kernels::residualNormBackwardBlocks(g);
        auto partial = torch::empty({g.blocks, g.sums, D}, f32), affine = torch::empty({g.sums, D}, f32);
        g.partial = partial.data_ptr<float>();
        g.affine = affine.data_ptr<float>();
        g.stream = stream;
        const double bwd = microseconds(device, [&] { check(kernels::residualNormBackward(g), "junction backward"); });
        // gz, y and gy read, dx and the branch's gradient written
        row("junction_backward", set.name, rows, D, kind.name, scalar ? "1 channel" : "4 channels",
            bwd, static_cast<double>(rows * D) * (o + 3 * s + 2));
      }
    }
    if (hidden % 8 == 0) {
      auto dgelu = torch::randn({rows, hidden}, bf16), pre = torch::randn({rows, hidden}, bf16);
      auto dpre = torch::empty_like(pre), gelu = torch::empty_like(pre);
      kernels::GeluBackwardArgs a;
      a.row_blocks = kernels::geluBackwardRowBlocks(rows, static_cast<int>(hidden));
      auto partial = torch::empty({a.row_blocks, hidden}, f32);
      auto dbias = torch::empty({hidden}, bf16);
      a.dgelu = dgelu.data_ptr();
      a.pre = pre.data_ptr();
      a.dpre = dpre.data_ptr();
      a.gelu = gelu.data_ptr();
      a.partial = partial.data_ptr<float>();
      a.dbias = dbias.data_ptr();
      a.rows = rows;
      a.hidden = static_cast<int>(hidden);
      a.stream = stream;
      const double bytes = static_cast<double>(rows * hidden) * 8;  // dgelu, pre in; dpre, gelu out
      for (const char* approximate : {"none", "tanh"}) {
        a.tanh_approx = std::string(approximate) == "tanh";
        const std::string kind = a.tanh_approx ? "tanh" : "erf";
        const double us = microseconds(device, [&] { check(kernels::geluBackward(a), "GELU backward"); });
        row("gelu_backward (" + kind + ")", set.name, rows, hidden, "bf16", "8 channels", us, bytes);
        // What it replaces: ATen's GELU backward, GELU recomputed, and the bias's column sum
        // (three passes over the activations, the same results).
        const double aten = microseconds(device, [&] {
          auto d = torch::gelu_backward(dgelu, pre, approximate);
          auto g = torch::gelu(pre, approximate);
          auto b = d.sum(0);
        });
        row("gelu_backward (" + kind + ", ATen's three operations)", set.name, rows, hidden,
            "bf16", "ATen", aten, bytes);
      }
    }
  }
  {
    // The token embedding at the global crops (masked, as the student's) and the local crops,
    // forward and backward into an fp32 stream, fused (train.fused_norm) and through ATen's
    // where, cat and add.
    torch::AutoGradMode grad_mode(true);
    for (const auto& set : sets) {
      if (set.samples == 0) continue;
      const int64_t n = set.tokens - 1;
      const bool masked = std::string(set.name) == "global";
      auto x = torch::randn({set.samples, n, D}, bf16).requires_grad_(true);
      auto mask = masked ? torch::rand({set.samples, n}, f32) < 0.4 : torch::Tensor();
      auto token = torch::randn({1, 1, D}, f32).requires_grad_(true);
      auto cls = torch::randn({1, 1, D}, f32).requires_grad_(true);
      auto pos = torch::randn({1, set.tokens, D}, f32).requires_grad_(true);
      auto gout = torch::randn({set.samples, set.tokens, D}, f32);
      // x read and the fp32 stream written forward; the stream's gradient read and x's written
      // backward
      const double bytes = static_cast<double>(set.samples * set.tokens * D) * (2 + 4 + 4 + 2);
      for (const bool fused : {true, false}) {
        if (fused && !fusedTokenEmbedApplies(x, mask, token, cls, pos, torch::kFloat)) continue;
        const double us = microseconds(device, [&] {
          auto out = tokenEmbed(x, mask, token, cls, pos, torch::kFloat, fused);
          for (auto* t : {&x, &token, &cls, &pos}) t->mutable_grad().reset();
          out.backward(gout);
        });
        row(fused ? "token_embedding (forward + backward)"
                  : "token_embedding (forward + backward, ATen's operations)",
            set.name, set.samples * set.tokens, D, "fp32", fused ? "kernels" : "ATen", us, bytes);
      }
    }
  }
  if (config.model.patch_size % 2 == 0 && config.crops.global_size % 2 == 0) {
    // The reconstruction loss from the decoder's last phases at the global crops, forward and
    // backward, fused (train.fused_loss) and through ATen's gather, cast, abs and mean.
    torch::AutoGradMode grad_mode(true);
    const int64_t B = 2 * batch, C = m.channels, half = config.crops.global_size / 2;
    // (With the decoder's padding channels, as the step has them.)
    auto y = torch::randn({B, paddedPhaseChannels(C), half + 1, half + 1}, bf16)
                 .contiguous(at::MemoryFormat::ChannelsLast)
                 .requires_grad_(true);
    auto target = torch::randn({B, C, 2 * half, 2 * half}, f32);
    const int64_t outputs = target.numel(), phases = y.numel();
    // Forward: one y value (2 bytes) and one target value (4) per output; backward: y read and
    // its gradient written (2 + 2 per phase value), the target read again (4 per output).
    const double bytes = static_cast<double>(outputs) * 10 + static_cast<double>(phases) * 4;
    for (const bool fused : {true, false}) {
      if (fused && !fusedReconstructionApplies(y, C, target)) continue;
      const double us = microseconds(device, [&] {
        auto loss = reconstructionLossFromPhases(y, C, target, fused);
        y.mutable_grad().reset();  // (a fresh gradient each call, as a step makes)
        loss.backward();
      });
      row(fused ? "reconstruction_loss (forward + backward)"
                : "reconstruction_loss (forward + backward, ATen's operations)",
          "global", B * 2 * half, 2 * half * C, "bf16", fused ? "kernels" : "ATen", us, bytes);
    }
  }
  {
    // One step's augmentation (MultiCrop: both global crop sets and the local crops, their draws
    // included) from `batch` images of the global crops' side in [0, 1], fused
    // (train.fused_augment) and through ATen's operations.
    const auto& c = config.crops;
    MultiCrop multicrop(c, config.augment, m.channels, {0.485, 0.456, 0.406}, {0.229, 0.224, 0.225});
    auto images = torch::rand({batch, m.channels, c.global_size, c.global_size}, f32);
    at::Generator gen = makeGenerator(device, 1);
    // The crops written once (fp32) and the images read once per crop set.
    const int64_t outputs = batch * m.channels *
                            (2 * c.global_size * c.global_size + c.local_crops * c.local_size * c.local_size);
    const double bytes = 4.0 * static_cast<double>(outputs + 3 * images.numel());
    auto probe = multicrop.draw(1, c.local_size, c.local_scale_min, c.local_scale_max, 0.5, 0.0,
                                gen, {}, images.options());
    torch::Tensor probe_out;
    const bool kernels_run = multicrop.applyFused(images, probe, c.local_size, probe_out);
    for (const bool fused : {true, false}) {
      if (fused && !kernels_run) continue;  // (the ATen row alone, as for the other kernels)
      multicrop.setFused(fused);
      const double us = microseconds(device, [&] { (void)multicrop(images, gen, {}); });
      row(fused ? "augmentation (one step's crop sets)"
                : "augmentation (one step's crop sets, ATen's operations)",
          "all", batch, m.channels, "fp32", fused ? "kernels" : "ATen", us, bytes);
    }
  }
  return out;
}
#else
nlohmann::json runKernelMicro(const Config&, const torch::Device&, int64_t) {
  throw MstError(
      "mst bench --micro: this build has no fused CUDA kernels (CMake found no CUDA compiler; "
      "set CUDACXX and MST_CUDA_KERNELS=ON)");
}
#endif

}  // namespace mst
