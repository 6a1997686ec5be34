/// @brief The kernels' self-checks (see kernel_selfcheck.h): each family's cases
/// (kernel_cases.h) at a run's shapes, and what a kernel setting makes of them. Compiled twice,
/// like the kernels' host code: into mst_core, and against the CPU emulator for the tests
/// (tests/CMakeLists.txt), where the kernels' device is the CPU.
#include "core/train/kernel_selfcheck.h"

#include <chrono>
#include <cmath>
#include <map>
#include <mutex>

#include "core/config/config.h"
#include "core/model/decoder.h"
#include "core/util/error.h"

namespace mst {

std::vector<std::string> kernelFamilies(const std::string& key) {
  if (key == "train.fused_norm") return {"junction", "qkv_gather", "embed"};
  if (key == "train.fused_mlp") return {"gelu_backward"};
  if (key == "train.fused_decoder") return {"decoder_stage"};
  if (key == "train.fused_loss") return {"loss", "reconstruction"};
  if (key == "train.fused_optimizer") return {"optimizer"};
  if (key == "train.fused_augment") return {"augment"};
  return {};
}

namespace {

std::mutex& checksMutex() {
  static std::mutex m;
  return m;
}
std::vector<KernelSelfCheck>& checksRun() {
  static std::vector<KernelSelfCheck> v;
  return v;
}
std::map<std::string, KernelSelfCheck>& checksByKey() {
  static std::map<std::string, KernelSelfCheck> m;
  return m;
}

/// The cases of `family` at the run's shapes, as (description, case) pairs.
std::vector<std::function<KernelCase()>> familyCases(const std::string& family, const Config& config,
                                                     const torch::Device& dev, bool bf16,
                                                     bool bf16_stream, nlohmann::json& shapes) {
  const auto& m = config.model;
  const auto& c = config.crops;
  const int64_t D = m.dim, p = m.patch_size;
  const int64_t t_global = (c.global_size / p) * (c.global_size / p) + 1;
  const int64_t t_local = (c.local_size / p) * (c.local_size / p) + 1;
  std::vector<int64_t> tokens{t_global};
  if (c.local_crops > 0 && t_local != t_global) tokens.push_back(t_local);
  std::vector<std::function<KernelCase()>> cases;
  const uint64_t seed = 7001;
  // Rows: two samples where the kernels are emulated (the tests; the emulated device's small grid
  // already gives each warp several rows), and on a GPU enough rows that the grid-stride loops and
  // partial sums take several turns there too (the junction's backward grid holds a few thousand
  // warps on an H100): 4,800 token rows, still milliseconds.
  const bool gpu = dev.is_cuda();
  const auto samples = [&](int64_t T) {
    return gpu ? std::max<int64_t>(2, (4800 + std::max<int64_t>(T, 1) - 1) / std::max<int64_t>(T, 1))
               : int64_t{2};
  };
  std::vector<torch::ScalarType> dtypes{torch::kFloat};  // the decoder's and the loss's
  if (bf16) dtypes.push_back(torch::kBFloat16);
  // Each family in the run's dtype, and in fp32 where the kernels take it: the fp32 cases' tight
  // tolerances see an error of a tenth of a percent that bf16's rounding would hide.
  if (family == "junction") {
    std::vector<torch::ScalarType> streams{torch::kFloat};
    if (bf16_stream) streams.push_back(torch::kBFloat16);
    shapes = {{"D", D}, {"tokens", tokens}, {"bf16_stream", bf16_stream}};
    for (auto stream : streams)
      for (int64_t T : tokens)
        for (int variant : {2, 3, 4, 5})  // (the variants the ViT launches)
          cases.push_back([=] {
            return kernel_cases::junction(samples(T), T, D, stream, variant, dev,
                                          seed + 4 * T + variant);
          });
  } else if (family == "qkv_gather") {
    shapes = {{"D", D}, {"heads", m.heads}, {"tokens", tokens}};
    for (int64_t T : tokens)
      for (int layout = 0; layout < 4; ++layout)
        cases.push_back([=] {
          return kernel_cases::qkvGather(samples(T), T, m.heads, D / m.heads, D, layout, dev,
                                         seed + 4 * T + layout);
        });
  } else if (family == "embed") {
    // The global crops masked, the local crops not, in each stream the run may use and in fp32.
    std::vector<std::pair<torch::ScalarType, torch::ScalarType>> kinds{{torch::kFloat, torch::kFloat}};
    if (bf16) kinds.emplace_back(torch::kBFloat16, torch::kFloat);
    if (bf16_stream) kinds.emplace_back(torch::kBFloat16, torch::kBFloat16);
    shapes = {{"D", D}, {"tokens", tokens}, {"bf16_stream", bf16_stream}};
    for (auto [x_dtype, stream] : kinds)
      for (size_t i = 0; i < tokens.size(); ++i) {
        const int64_t T = tokens[i];
        cases.push_back([=] {
          return kernel_cases::tokenEmbed(samples(T), T - 1, D, x_dtype, stream, i == 0, dev,
                                          seed + 5 * T);
        });
      }
  } else if (family == "gelu_backward") {
    const int64_t hidden = static_cast<int64_t>(std::llround(D * m.mlp_ratio));
    const std::string approximate = m.gelu == "tanh" ? "tanh" : "none";
    shapes = {{"hidden", hidden}, {"gelu", approximate}};
    // (The fused MLP always asks for the bias gradient, and for GELU's output unless stored.)
    for (bool want_gelu : {true, false})
      cases.push_back([=] {
        return kernel_cases::geluBackward(samples(t_global) * t_global, hidden, approximate,
                                          want_gelu, true, dev,
                                          seed + want_gelu);
      });
  } else if (family == "decoder_stage") {
    // The stages after an upsampling: every width but the first.
    const auto widths = decoderWidths(m);
    std::vector<int64_t> stage_widths(widths.size() > 1 ? widths.begin() + 1 : widths.end(),
                                      widths.end());
    shapes = {{"widths", stage_widths}, {"bf16", bf16}};
    for (auto dtype : dtypes)
      for (int64_t C : stage_widths)
        cases.push_back([=] {
          return kernel_cases::decoderStage(dtype, gpu ? 8 : 2, C, gpu ? 14 : 3, gpu ? 15 : 4, 0.0,
                                            false, 0.3, dev, seed + C);
        });
  } else if (family == "loss") {
    const int64_t S = 2 + c.local_crops;
    const double ts = config.loss.student_temp;
    shapes = {{"crops", S}, {"classes", m.out_dim}, {"bf16", bf16}};
    for (auto dtype : dtypes)
      for (double tt : {config.loss.teacher_temp_start, config.loss.teacher_temp})
        cases.push_back([=] {
          return kernel_cases::loss(S, gpu ? 16 : 2, m.out_dim, 1.0, ts, tt, dtype, dev, seed + S);
        });
  } else if (family == "reconstruction") {
    // The decoder's last phases at the global crops' size (fewer rows emulated), with the
    // decoder's padding channels, in the run's dtype and fp32.
    const int64_t half = gpu ? c.global_size / 2 : std::min<int64_t>(c.global_size / 2, 9);
    const int64_t K = paddedPhaseChannels(m.channels);
    shapes = {{"channels", m.channels}, {"phase_channels", K}, {"size", 2 * half}, {"bf16", bf16}};
    for (auto dtype : dtypes)
      cases.push_back([=] {
        return kernel_cases::reconstruction(dtype, gpu ? 8 : 2, m.channels, half, half, dev,
                                            seed + 11, K);
      });
  } else if (family == "optimizer") {
    // Sizes of its own (the run's 45 M parameters would take seconds emulated): an odd count
    // (whose grid-stride loop takes several turns on the emulated device), a handful of values
    // (the tail alone), and buffers off 16 bytes; the last layer frozen, after its freeze, and
    // without one.
    const int64_t n = gpu ? 1000003 : 20011;
    shapes = {{"numel", std::vector<int64_t>{n, 7}}};
    struct Case {
      int64_t numel, offset;
      bool with_freeze, frozen;
      int64_t teacher;
    };
    for (auto o : {Case{n, 0, true, true, 3 * n / 4 + 1}, Case{n, 0, true, false, 3 * n / 4 + 1},
                   Case{n, 0, false, false, n}, Case{n, 1, true, false, n - 2},
                   Case{7, 0, true, false, 5}}) {
      const uint64_t case_seed = seed + cases.size();
      cases.push_back([=] {
        return kernel_cases::optimizer(o.numel, o.offset, o.with_freeze, o.frozen, o.teacher, dev,
                                       case_seed);
      });
    }
  } else if (family == "augment") {
    shapes = {{"channels", m.channels}, {"global", c.global_size}, {"local", c.local_size}};
    const auto& a = config.augment;
    // Sources of another size than the crops, so that crops scale both ways and reflect.
    const int64_t h = c.global_size + c.global_size / 4 + 3, w = c.global_size - c.global_size / 8;
    // Source images as a run's B: its crop sets have B and local_crops × B rows.
    const int64_t B = gpu ? 8 : 2;
    cases.push_back([=] {
      return kernel_cases::augment(c, a, m.channels, "global1", B, B, c.global_size,
                                   c.global_scale_min, c.global_scale_max, a.blur_p_global1, 0.0,
                                   h, w, dev, seed + 1);
    });
    cases.push_back([=] {
      return kernel_cases::augment(c, a, m.channels, "global2", B, B, c.global_size,
                                   c.global_scale_min, c.global_scale_max, a.blur_p_global2,
                                   a.solarize_p, h, w, dev, seed + 2);
    });
    if (c.local_crops > 0)
      cases.push_back([=] {
        return kernel_cases::augment(c, a, m.channels, "locals", B, B * c.local_crops, c.local_size,
                                     c.local_scale_min, c.local_scale_max, a.blur_p_local, 0.0, h,
                                     w, dev, seed + 3);
      });
  } else {
    throw MstError("selfCheckKernels: unknown kernel family " + family);
  }
  return cases;
}

}  // namespace

KernelSelfCheck selfCheckKernels(const std::string& family, const Config& config,
                                 const torch::Device& device, bool bf16, bool bf16_stream) {
  KernelSelfCheck r;
  r.family = family;
  nlohmann::json shapes;
  auto cases = familyCases(family, config, device, bf16, bf16_stream, shapes);
  // Everything the cases read: the model, the crops, the augmentation and the loss settings.
  const auto json = configToJson(config);
  const std::string key = family + " " + device.str() + (bf16 ? " bf16" : " fp32") +
                          (bf16_stream ? " stream" : "") + " " + json["model"].dump() +
                          json["crops"].dump() + json["augment"].dump() + json["loss"].dump();
  std::lock_guard<std::mutex> lock(checksMutex());
  if (auto it = checksByKey().find(key); it != checksByKey().end()) return it->second;
  const auto start = std::chrono::steady_clock::now();
  // The cases' modules draw their initial weights from the global CPU generator: it is put back,
  // so that a run's own draws do not depend on whether its kernels were checked. (Another thread
  // drawing from it meanwhile, a sweep's engine on another device, would be rewound too: as with
  // torch::manual_seed, runs in parallel threads share that generator.)
  struct KeepGlobalRng {
    at::Generator gen = at::detail::getDefaultCPUGenerator();
    torch::Tensor state;
    KeepGlobalRng() {
      std::lock_guard<std::mutex> hold(gen.mutex());
      state = gen.get_state();
    }
    ~KeepGlobalRng() {
      std::lock_guard<std::mutex> hold(gen.mutex());
      gen.set_state(state);
    }
  } keep_rng;
  r.passed = true;
  r.cases = nlohmann::json::array();
  bool errored = false;
  try {
    torch::AutoGradMode grad(true);
    for (auto& run : cases) {
      auto one = run();
      r.cases.push_back(one.row);
      ++r.total;
      r.ran += one.ran ? 1 : 0;
      if (!one.passed && r.passed) {
        r.passed = false;
        r.detail = "disagree with ATen's operations on this device: " + one.row.dump();
      }
    }
  } catch (const std::exception& e) {
    // Out of memory, or a fault (after which CUDA fails every later call in the process, and
    // the run with it): not a disagreement, and not kept, so that a later engine checks again.
    errored = true;
    r.passed = false;
    const std::string what = e.what();
    r.detail = "could not be checked on this device: " + what.substr(0, what.find('\n'));
  }
  r.ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  r.cases = {{"shapes", shapes}, {"cases", r.cases}};
  if (!errored) checksByKey()[key] = r;
  checksRun().push_back(r);
  return r;
}

std::vector<KernelSelfCheck> kernelSelfChecks() {
  std::lock_guard<std::mutex> lock(checksMutex());
  return checksRun();
}

bool settleKernelSetting(const std::string& value, const std::string& key,
                         const std::string& unavailable,
                         const std::function<KernelSelfCheck(const std::string&)>& check,
                         std::vector<std::string>& notes) {
  if (value == "off") return false;
  if (!unavailable.empty()) {
    if (value == "on")
      throw MstError("config key " + key + ": " + unavailable + ": set it to auto or off");
    return false;
  }
  for (const auto& family : kernelFamilies(key)) {
    const auto result = check(family);
    if (result.passed) continue;
    const std::string what = "the " + family + " kernels " + result.detail;
    // (train.fused_mlp is true / false.)
    const char* remedy = key == "train.fused_mlp" ? "set it to false" : "set it to auto or off";
    if (value == "on") throw MstError("config key " + key + ": " + what + ": " + remedy);
    notes.push_back(key + " (auto): " + what + "; this run uses ATen's operations instead");
    return false;
  }
  return true;
}

}  // namespace mst
