/// @brief GPU correctness checks (see gpu_checks.h).
#include "core/bench/gpu_checks.h"

#include <algorithm>
#include <cmath>

#include "core/masking/masking.h"
#include "core/train/engine.h"

namespace mst {
namespace {

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
  return c;
}

GpuCheck checkCpuCudaAgreement(const Config& config, const std::string& precision, double rel_tol) {
  GpuCheck r;
  r.name = "cpu_vs_cuda_" + precision;
  Config cpu_config = config, gpu_config = config;
  cpu_config.train.precision = "fp32";
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
  double worst = 0;
  int64_t replayed = 0;
  nlohmann::json rows = nlohmann::json::array();
  for (int64_t step = 0; step < steps; ++step) {
    auto images = checkImages(config, step).pin_memory();
    const double a = eager.trainStep(images).loss.item<double>();
    const double b = graph.trainStep(images).loss.item<double>();
    if (graph.graphActive()) ++replayed;
    rows.push_back({{"step", step}, {"eager", a}, {"graph", b}, {"replay", graph.graphActive()}});
    worst = std::max(worst, relDiff(a, b));
  }
  r.values["steps"] = rows;
  r.values["replayed_steps"] = replayed;
  r.values["max_rel"] = worst;
  r.values["tolerance"] = rel_tol;
  r.passed = replayed > 0 && worst <= rel_tol;
  return r;
}

std::vector<GpuCheck> runGpuChecks(const Config& config) {
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
  };
  guarded("cpu_vs_cuda_fp32", [&] { return checkCpuCudaAgreement(config, "fp32", 1e-4); });
  guarded("cpu_vs_cuda_bf16", [&] { return checkCpuCudaAgreement(config, "bf16", 1e-2); });
  guarded("cpu_vs_cuda_bf16_stream",
          [&] { return checkCpuCudaAgreement(config, "bf16_stream", 1e-2); });
  guarded("mask_rule_cpu_vs_cuda", [] { return checkMaskRule(); });
  guarded("graph_vs_eager_fp32", [&] { return checkGraphReplay(config, "fp32", kGraphWarmupSteps + 4, 1e-3); });
  guarded("graph_vs_eager_bf16", [&] { return checkGraphReplay(config, "bf16", kGraphWarmupSteps + 4, 1e-2); });
  return out;
}

}  // namespace mst
