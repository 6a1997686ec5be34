/// @brief GPU correctness checks (see gpu_checks.h).
#include "core/bench/gpu_checks.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "core/util/check_math.h"
#include "core/kernels/residual_norm.h"
#include "core/util/torch_compat.h"
#include "core/masking/masking.h"
#include "core/train/engine.h"

namespace mst {

EngineOptions checkOptions(const Config& c, const torch::Device& device) {
  EngineOptions o;
  o.device = device;
  o.steps_per_epoch = 100;
  o.total_steps = 1000;
  o.mean.assign(c.model.channels, 0.5);
  o.std.assign(c.model.channels, 0.25);
  return o;
}

torch::Tensor checkImages(const Config& c, int64_t step) {
  auto gen = at::detail::createCPUGenerator(static_cast<uint64_t>(1000 + step));
  return torch::randint(0, 256, {c.train.batch_size, c.model.channels, c.model.image_size,
                                 c.model.image_size},
                        gen, torch::TensorOptions().dtype(torch::kUInt8));
}

namespace {

using checks::relNorm;

double relDiff(double a, double b) { return std::abs(a - b) / std::max(std::abs(a), 1e-12); }

}  // namespace

bool cudaPresent() { return torch::cuda::is_available() && torch::cuda::device_count() > 0; }

Config gpuCheckConfig() {
  Config c;
  c.train.batch_size = 16;
  c.crops.local_crops = 3;
  c.model.drop_path = 0.1;
  c.masking.strategy = "attention_guided";
  c.optim.warmup_epochs = 0;  // a real update at step 0
  c.optim.freeze_last_layer_epochs = 0;
  // The plain ATen step unless a check turns the fused kernels on (their default is auto).
  c.train.fused_norm = c.train.fused_augment = c.train.fused_loss = c.train.fused_decoder = "off";
  c.train.fused_optimizer = "off";
  return c;
}

GpuCheck checkCpuCudaAgreement(const Config& config, const std::string& precision, double rel_tol) {
  GpuCheck r;
  r.name = "cpu_vs_cuda_" + precision;
  Config cpu_config = config, gpu_config = config;
  cpu_config.train.precision = "fp32";
  cpu_config.train.recompute_gelu = "off";  // the reference: autograd keeps every activation
  gpu_config.train.precision = precision;
  Engine cpu(cpu_config, checkOptions(cpu_config, torch::kCPU));
  auto gpu_options = checkOptions(gpu_config, torch::Device(torch::kCUDA, 0));
  gpu_options.host_rng = true;  // the same draws as the CPU engine
  Engine gpu(gpu_config, gpu_options);
  double worst0 = 0, worst1 = 0;
  for (int64_t step = 0; step < 2; ++step) {
    auto images = checkImages(config, step);
    auto a = cpu.trainStep(images);
    auto b = gpu.trainStep(images);
    nlohmann::json row;
    for (auto [name, x, y] : {std::tuple{"loss", a.loss, b.loss},
                              std::tuple{"loss_ce", a.loss_ce, b.loss_ce},
                              std::tuple{"loss_rec", a.loss_rec, b.loss_rec}}) {
      const double cx = x.item<double>(), gx = y.item<double>();
      row[name] = {{"cpu", cx}, {"cuda", gx}, {"rel", relDiff(cx, gx)}};
      (step == 0 ? worst0 : worst1) = std::max(step == 0 ? worst0 : worst1, relDiff(cx, gx));
    }
    row["mask_ratio"] = {{"cpu", a.mask_ratio.item<double>()}, {"cuda", b.mask_ratio.item<double>()}};
    r.values["step" + std::to_string(step)] = row;
  }
  r.values["max_rel_step0"] = worst0;
  r.values["max_rel_step1"] = worst1;
  r.values["tolerance"] = rel_tol;
  r.passed = worst0 <= rel_tol;
  return r;
}

GpuCheck checkMaskRule() {
  GpuCheck r;
  r.name = "mask_rule_cpu_vs_cuda";
  auto gen = at::detail::createCPUGenerator(7);
  const torch::Device cuda(torch::kCUDA, 0);
  int64_t cases = 0, mismatched = 0;
  for (int64_t n : {49, 196}) {
    auto attention = torch::rand({32, n}, gen).softmax(-1);
    auto uniform = torch::rand({32, n}, gen);
    for (auto strategy : {MaskStrategy::None, MaskStrategy::Random, MaskStrategy::AttentionGuided,
                          MaskStrategy::AttentionHigh}) {
      for (double p : {0.1, 0.5, 1.0}) {
        for (int64_t num : {1, 2, 8}) {
          auto on_cpu = makeMask(strategy, attention, uniform, p, num);
          auto on_gpu = makeMask(strategy, attention.to(cuda), uniform.to(cuda), p, num).cpu();
          ++cases;
          if (!torch::equal(on_cpu, on_gpu)) ++mismatched;
        }
      }
    }
  }
  r.values["cases"] = cases;
  r.values["mismatched"] = mismatched;
  r.passed = cases > 0 && mismatched == 0;
  return r;
}

GpuCheck checkProbeAttention(const Config& config) {
  GpuCheck r;
  r.name = "probe_attention_cpu_vs_cuda_fp32";
  Config c = config;
  c.train.precision = "fp32";
  Engine cpu(c, checkOptions(c, torch::kCPU));
  Engine gpu(c, checkOptions(c, torch::Device(torch::kCUDA, 0)));
  const auto images = checkImages(c, 0).narrow(0, 0, 4);
  // The inspector's maps: the mean, every head, every block (the masks are drawn from each
  // device's own generator, so they are not compared here; mask_rule_cpu_vs_cuda is).
  const auto a = cpu.probe(images, 3, c.masking, /*every_block=*/true);
  const auto b = gpu.probe(images, 3, c.masking, /*every_block=*/true);
  double worst = 0;
  for (const auto& [name, x, y] :
       {std::tuple{"attention", a.attention, b.attention},
        std::tuple{"attention_heads", a.attention_heads, b.attention_heads},
        std::tuple{"attention_blocks", a.attention_blocks, b.attention_blocks}}) {
    const double d = relNorm(y, x);
    r.values[name] = d;
    worst = std::isnan(d) ? INFINITY : std::max(worst, d);
  }
  // The per-block pass ends in the block the mask reads: its maps are the heads'.
  const double last = relNorm(b.attention_blocks.select(1, -1), b.attention_heads);
  r.values["cuda_last_block_vs_heads"] = last;
  r.values["tolerance"] = 1e-3;
  r.passed = worst <= 1e-3 && last <= 1e-5;
  return r;
}

namespace {

/// `steps` training steps of two CUDA engines on the same images (pinned, as the loader gives
/// them): each step's loss under the names `a_name` and `b_name`, plus what `extra` adds to
/// the row; returns the rows and the largest relative difference.
std::pair<nlohmann::json, double> pairedLosses(
    Engine& a, Engine& b, const Config& config, int64_t steps, const char* a_name,
    const char* b_name, const std::function<void(nlohmann::json&)>& extra = {}) {
  double worst = 0;
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t step = 0; step < steps; ++step) {
    auto images = checkImages(config, step).pin_memory();
    const double x = a.trainStep(images).loss.item<double>();
    const double y = b.trainStep(images).loss.item<double>();
    nlohmann::json row{{"step", step}, {a_name, x}, {b_name, y}};
    if (extra) extra(row);
    rows.push_back(row);
    worst = std::max(worst, relDiff(x, y));
  }
  return {rows, worst};
}

}  // namespace

GpuCheck checkGraphReplay(const Config& config, const std::string& precision, int64_t steps,
                          double rel_tol) {
  GpuCheck r;
  r.name = "graph_vs_eager_" + precision;
  Config eager_config = config, graph_config = config;
  eager_config.train.precision = graph_config.train.precision = precision;
  eager_config.train.cuda_graph = false;
  graph_config.train.cuda_graph = true;
  const torch::Device cuda(torch::kCUDA, 0);
  Engine eager(eager_config, checkOptions(eager_config, cuda));
  Engine graph(graph_config, checkOptions(graph_config, cuda));
  int64_t replayed = 0;
  auto [rows, worst] = pairedLosses(eager, graph, config, steps, "eager", "graph",
                                    [&](nlohmann::json& row) {
                                      row["replay"] = graph.graphActive();
                                      if (graph.graphActive()) ++replayed;
                                    });
  r.values["steps"] = rows;
  r.values["replayed_steps"] = replayed;
  r.values["max_rel"] = worst;
  r.values["tolerance"] = rel_tol;
  r.passed = replayed > 0 && worst <= rel_tol;
  return r;
}

GpuCheck checkRecomputeGelu(const Config& config, const std::string& precision, int64_t steps,
                            double rel_tol) {
  GpuCheck r;
  r.name = "recompute_gelu_vs_kept_" + precision;
  Config kept = config, recomputed = config;
  kept.train.precision = recomputed.train.precision = precision;
  kept.train.recompute_gelu = "off";
  recomputed.train.recompute_gelu = "on";
  const torch::Device cuda(torch::kCUDA, 0);
  Engine a(kept, checkOptions(kept, cuda));
  Engine b(recomputed, checkOptions(recomputed, cuda));
  auto [rows, worst] = pairedLosses(a, b, config, steps, "kept", "recomputed");
  r.values["steps"] = rows;
  r.values["max_rel"] = worst;
  r.values["tolerance"] = rel_tol;
  r.passed = !a.recomputeGelu() && b.recomputeGelu() && worst <= rel_tol;
  return r;
}

std::vector<GpuCheck> runGpuChecks(const Config& config,
                                   const std::function<void(const GpuCheck&)>& on_check) {
  std::vector<GpuCheck> out;
  auto guarded = [&](const std::string& name, const std::function<GpuCheck()>& check) {
    try {
      out.push_back(check());
    } catch (const std::exception& e) {
      GpuCheck failed;
      failed.name = name;
      failed.values["error"] = e.what();
      out.push_back(failed);
    }
    if (on_check) on_check(out.back());
  };
  guarded("cpu_vs_cuda_fp32", [&] { return checkCpuCudaAgreement(config, "fp32", 1e-4); });
  guarded("cpu_vs_cuda_bf16", [&] { return checkCpuCudaAgreement(config, "bf16", 1e-2); });
  guarded("cpu_vs_cuda_bf16_stream",
          [&] { return checkCpuCudaAgreement(config, "bf16_stream", 1e-2); });
  guarded("mask_rule_cpu_vs_cuda", [] { return checkMaskRule(); });
  guarded("probe_attention_cpu_vs_cuda_fp32", [&] { return checkProbeAttention(config); });
  // The same numbers by construction (tests/test_model.cpp checks it bit for bit on the CPU);
  // on the GPU only flash attention's backward may add up in a different order.
  guarded("recompute_gelu_vs_kept_bf16", [&] { return checkRecomputeGelu(config, "bf16", 4, 1e-3); });
  guarded("graph_vs_eager_fp32", [&] { return checkGraphReplay(config, "fp32", kGraphWarmupSteps + 4, 1e-3); });
  guarded("graph_vs_eager_bf16", [&] { return checkGraphReplay(config, "bf16", kGraphWarmupSteps + 4, 1e-2); });
  guarded("attention_kernels_vs_reference", [] { return checkAttentionKernels(); });
  // Our own kernels after every check that runs without them: a kernel fault leaves a sticky
  // CUDA error that fails every later check in this process.
  guarded("fused_norm_vs_reference", [] { return checkFusedNorm(); });
  guarded("token_embed_vs_reference", [] { return checkTokenEmbed(); });
  guarded("qkv_heads_kernel_vs_reference", [] { return checkQkvHeads(); });
  guarded("fused_loss_vs_reference", [] { return checkFusedLoss(); });
  guarded("fused_reconstruction_vs_reference", [] { return checkFusedReconstruction(); });
  guarded("fused_optimizer_vs_reference", [] { return checkFusedOptimizer(); });
  guarded("decoder_norm_kernel_vs_reference", [] { return checkDecoderNorm(); });
  guarded("fused_auto_resolves_on", [&] {  // the default (auto) uses the kernels on this GPU
    GpuCheck r;
    r.name = "fused_auto_resolves_on";
    Config defaults = config;
    defaults.train.fused_norm = defaults.train.fused_augment = defaults.train.fused_loss = "auto";
    defaults.train.fused_decoder = defaults.train.fused_optimizer = "auto";
    const torch::Device cuda(torch::kCUDA, 0);
    Engine engine(defaults, checkOptions(defaults, cuda));
    const std::string why = fusedKernelsUnavailable(cuda);
    r.values["unavailable"] = why;
    r.values["fused_norm"] = engine.fusedNorm();
    r.values["fused_augment"] = engine.fusedAugment();
    r.values["fused_loss"] = engine.fusedLoss();
    r.values["fused_decoder"] = engine.fusedDecoder();
    r.values["fused_optimizer"] = engine.fusedOptimizer();
    r.values["kernel_notes"] = engine.kernelNotes();  // a family that failed its self-check
    r.passed = why.empty() && engine.fusedNorm() && engine.fusedAugment() && engine.fusedLoss() &&
               engine.fusedDecoder() && engine.fusedOptimizer();
    return r;
  });
  guarded("fused_augment_vs_aten", [] { return checkFusedAugment(); });
  Config fused = config;
  fused.train.fused_norm = fused.train.fused_loss = fused.train.fused_decoder = "on";
  fused.train.fused_optimizer = "on";
  for (const char* precision : {"bf16", "bf16_stream"}) {
    guarded(std::string("cpu_vs_cuda_") + precision + "_fused", [&] {
      auto r = checkCpuCudaAgreement(fused, precision, 1e-2);
      r.name += "_fused";
      return r;
    });
  }
  guarded("cpu_vs_cuda_fp32_fused_augment", [&] {
    Config augmented = config;
    augmented.train.fused_augment = "on";
    auto r = checkCpuCudaAgreement(augmented, "fp32", 1e-3);
    r.name += "_fused_augment";
    return r;
  });
  guarded("cpu_vs_cuda_fp32_fused_loss", [&] {  // the kernels' fp32-logit instances
    Config loss = config;
    loss.train.fused_loss = "on";
    auto r = checkCpuCudaAgreement(loss, "fp32", 1e-3);
    r.name += "_fused_loss";
    return r;
  });
  guarded("cpu_vs_cuda_fp32_fused_decoder", [&] {  // the kernels' fp32 instances
    Config decoder = config;
    decoder.train.fused_decoder = "on";
    auto r = checkCpuCudaAgreement(decoder, "fp32", 1e-3);
    r.name += "_fused_decoder";
    return r;
  });
  guarded("graph_vs_eager_bf16_fused", [&] {
    Config all = fused;
    all.train.fused_augment = "on";
    auto r = checkGraphReplay(all, "bf16", kGraphWarmupSteps + 4, 1e-2);
    r.name += "_fused";
    return r;
  });
  // Last: the newest code (cuBLASLt called directly), so that a fault there cannot take the
  // checks above with it.
  guarded("gelu_backward_kernel_vs_reference", [] { return checkGeluBackward(); });
  guarded("fused_mlp_vs_reference", [] { return checkFusedMlp(); });
  Config tanh_mlp = config;
  tanh_mlp.model.gelu = "tanh";
  tanh_mlp.train.fused_mlp = true;
  guarded("cpu_vs_cuda_bf16_fused_mlp", [&] {
    auto r = checkCpuCudaAgreement(tanh_mlp, "bf16", 1e-2);
    r.name += "_fused_mlp";
    return r;
  });
  guarded("graph_vs_eager_bf16_fused_mlp", [&] {
    auto r = checkGraphReplay(tanh_mlp, "bf16", kGraphWarmupSteps + 4, 1e-2);
    r.name += "_fused_mlp";
    return r;
  });
  Config erf_mlp = config;  // the erf GELU: ATen's forward pass, the kernel's backward pass
  erf_mlp.train.fused_mlp = true;
  guarded("cpu_vs_cuda_bf16_fused_mlp_erf", [&] {
    auto r = checkCpuCudaAgreement(erf_mlp, "bf16", 1e-2);
    r.name += "_fused_mlp_erf";
    return r;
  });
  return out;
}

}  // namespace mst
