/// @brief `mst bench` implementation (see bench.h).
#include "core/bench/bench.h"

#include <chrono>
#include <fstream>
#include <sstream>

#include <hdf5.h>

#include "core/bench/kernel_profile.h"
#include "core/data/dataset.h"
#include "core/data/jpeg_decode.h"
#include "core/data/loader.h"
#include "core/kernels/fused_mlp.h"
#include "core/kernels/residual_norm.h"
#include "core/model/attention_kernel.h"
#include "core/model/decoder.h"
#include "core/util/error.h"
#include "core/train/engine.h"
#include "core/train/kernel_selfcheck.h"
#include "core/util/devices.h"
#include "core/util/torch_compat.h"

#ifdef MST_HAVE_CUDA
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#ifdef MST_HAVE_OPENCV
#include <opencv2/core/version.hpp>
#endif

namespace mst {
namespace {

void synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index() < 0 ? 0 : device.index());
}

/// ViT forward MACs on `n` patches (+ CLS).
double vitMacs(const ModelConfig& m, int64_t n) {
  const double T = static_cast<double>(n + 1), D = static_cast<double>(m.dim);
  const double hidden = D * m.mlp_ratio;
  const double per_block = T * (3 * D * D + D * D + 2 * D * hidden) + 2 * T * T * D;
  const double patch = static_cast<double>(n) * m.channels * m.patch_size * m.patch_size * D;
  return patch + per_block * static_cast<double>(m.depth);
}

double headMacs(const ModelConfig& m) {
  return static_cast<double>(m.dim * m.head_hidden + m.head_hidden * m.head_hidden +
                             m.head_hidden * m.head_bottleneck + m.head_bottleneck * m.out_dim);
}

double decoderMacs(const ModelConfig& m, int64_t g) {
  double macs = 0;
  int64_t in = m.dim, size = g;
  for (int64_t w : decoderWidths(m)) {
    macs += static_cast<double>(size * size * 9 * in * w);
    size *= 2;
    in = w;
  }
  return macs + static_cast<double>(size * size * 9 * in * m.channels);
}

}  // namespace

double stepFlopsPerImage(const Config& c) {
  const auto& m = c.model;
  const int64_t gg = c.crops.global_size / m.patch_size, lg = c.crops.local_size / m.patch_size;
  const double global = vitMacs(m, gg * gg) + headMacs(m);
  const double local = vitMacs(m, lg * lg) + headMacs(m);
  const double student = 2 * global + static_cast<double>(c.crops.local_crops) * local +
                         2 * decoderMacs(m, gg);
  const double teacher = 2 * global;
  return 2.0 * (3.0 * student + teacher);  // backward ≈ 2× forward
}

double peakResidentMb() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::stod(line.substr(6)) / 1024.0;
  return 0.0;
}

namespace {

/// The device's name as the device picker lists it ("NVIDIA H200", ...).
std::string deviceName(const torch::Device& device) {
  const std::string id = device.has_index() ? device.str() : device.str() + ":0";
  for (const auto& d : listDevices())
    if (d.id == id) return d.name;
  return id;
}

/// The attention kernel settings and, for the crops' sequence lengths, which backend LibTorch
/// runs with them ("" where it cannot say: the CPU, LibTorch 1.13).
nlohmann::json attentionKernelsReport(const Config& c, const torch::Device& device, bool bf16) {
  nlohmann::json out{{"long", c.train.attention_kernel}, {"short", c.train.attention_kernel_short}};
  if (!device.is_cuda()) return out;
  const int64_t d = c.model.dim / c.model.heads;
  auto opt = torch::TensorOptions().device(device).dtype(bf16 ? torch::kBFloat16 : torch::kFloat);
  for (int64_t size : {c.crops.global_size, c.crops.local_size}) {
    const int64_t g = size / c.model.patch_size, T = g * g + 1;
    const auto kernel = attentionKernelFromName(
        T > kShortSequence ? c.train.attention_kernel : c.train.attention_kernel_short, "");
    auto q = torch::empty({1, c.model.heads, T, d}, opt).requires_grad_(true);
    try {  // (a report, never a reason for the bench to fail)
      out["ran"][std::to_string(T) + " tokens"] = attentionKernelChoice(q, q, q, kernel);
    } catch (const std::exception& e) {
      out["ran"][std::to_string(T) + " tokens"] = std::string("error: ") + e.what();
    }
  }
  return out;
}

/// Square matrix products of `dtype` on `device`, GFLOP/s (at least one second of them).
double matmulGflops(const torch::Device& device, torch::ScalarType dtype) {
  using Clock = std::chrono::steady_clock;
  const int64_t n = device.is_cuda() ? 8192 : 1024;
  auto opt = torch::TensorOptions().device(device).dtype(dtype);
  auto a = torch::randn({n, n}, opt), b = torch::randn({n, n}, opt);
  auto r = torch::matmul(a, b);
  synchronize(device);
  int reps = 0;
  auto start = Clock::now();
  double seconds = 0;
  do {
    for (int i = 0; i < (device.is_cuda() ? 10 : 1); ++i, ++reps) r = torch::matmul(a, b);
    synchronize(device);
    seconds = std::chrono::duration<double>(Clock::now() - start).count();
  } while (seconds < 1.0);
  return 2.0 * n * n * n * reps / seconds / 1e9;
}

/// The real input path of `mst bench --data`: the loader alone, then training steps fed by it.
nlohmann::json dataBench(Config c, const BenchOptions& o, Engine& engine, double synthetic_img_s) {
  using Clock = std::chrono::steady_clock;
  c.data.path = o.data_dir;
  auto dataset = openDataset(c.data, /*train=*/true);
  LoaderOptions lo;
  lo.batch_size = o.batch;
  lo.seed = c.train.seed;
  lo.workers = c.data.workers;
  lo.prefetch = c.data.prefetch;
  lo.pin_memory = o.device.is_cuda();
  Loader loader(*dataset, lo);
  if (loader.batchesPerEpoch() < 2)
    throw MstError("mst bench --data " + o.data_dir + ": " + dataset->describe() +
                   " holds fewer than two batches of " + std::to_string(o.batch));
  int64_t epoch = 0;
  loader.start(epoch);
  auto next = [&]() {
    auto batch = loader.next();
    if (!batch) {
      loader.start(++epoch);
      batch = loader.next();
    }
    return *batch;
  };
  auto time_batches = [&](const std::function<void(const Batch&)>& use) {
    for (int i = 0; i < 2; ++i) use(next());  // fill the queue, warm the workers
    synchronize(o.device);
    auto start = Clock::now();
    for (int64_t i = 0; i < o.data_batches; ++i) use(next());
    synchronize(o.device);
    return static_cast<double>(o.batch * o.data_batches) /
           std::chrono::duration<double>(Clock::now() - start).count();
  };
  // The loader alone: decode, resize, batch, pin (the queue refills while nothing consumes it).
  const double loader_img_s = time_batches([](const Batch&) {});
  // Training steps fed by the loader: the copy is asynchronous from pinned memory, so decoding the
  // next batches overlaps the step; the step itself decides how fast batches are taken.
  const double fed_img_s = time_batches([&](const Batch& b) { engine.trainStep(b.images); });
  nlohmann::json d;
  d["dataset"] = dataset->describe();
  d["workers"] = lo.workers;
  d["image_shape"] = {dataset->shape().channels, dataset->shape().height, dataset->shape().width};
  d["loader_img_s"] = loader_img_s;
  d["fed_img_s"] = fed_img_s;
  d["synthetic_img_s"] = synthetic_img_s;
  d["starved"] = std::max(0.0, 1.0 - fed_img_s / synthetic_img_s);
  d["corrupt"] = loader.corruptCount();
  return d;
}

}  // namespace

nlohmann::json runBench(const Config& config, const BenchOptions& o) {
  using Clock = std::chrono::steady_clock;
  Config c = config;
  c.train.batch_size = o.batch;
  EngineOptions eo;
  eo.device = o.device;
  eo.steps_per_epoch = 1000;
  eo.total_steps = 100000;  // mid-schedule values; the step's cost does not depend on them
  eo.mean.assign(c.model.channels, 0.5);
  eo.std.assign(c.model.channels, 0.25);
  c.optim.freeze_last_layer_epochs = 0;
  Engine engine(c, eo);
  torch::manual_seed(1);
  auto images = torch::randint(0, 256, {o.batch, c.model.channels, c.crops.global_size,
                                        c.crops.global_size},
                               torch::TensorOptions().dtype(torch::kUInt8))
                    .to(o.device);
  // A CUDA-graph run captures after kGraphWarmupSteps eager steps: warm up past the capture.
  const bool graph = o.device.is_cuda() && c.train.cuda_graph;
  const int64_t warmup = graph ? std::max<int64_t>(o.warmup, kGraphWarmupSteps + 2) : o.warmup;
  for (int64_t i = 0; i < warmup; ++i) engine.trainStep(images);
  synchronize(o.device);
  auto start = Clock::now();
  StepMetrics last;
  for (int64_t i = 0; i < o.steps; ++i) last = engine.trainStep(images);
  synchronize(o.device);
  double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  double loss = last.loss.item<double>();

  nlohmann::json out;
  if (o.phases && !engine.graphActive()) {
    // A few more steps with a wait after each phase: where the step's time goes.
    const int64_t n = std::max<int64_t>(2, o.steps / 2);
    engine.setPhaseTiming(true);
    for (int64_t i = 0; i < n; ++i) engine.trainStep(images);
    engine.setPhaseTiming(false);
    nlohmann::json phases;
    for (const auto& [name, ms] : engine.phaseTimes()) phases[name] = ms / static_cast<double>(n);
    out["phases_ms"] = phases;
  }
  if (o.kernels > 0) {
    const int64_t n = std::max<int64_t>(2, o.steps / 2);
    try {  // a LibTorch without Kineto (or CUPTI) loses the profile, not the measurement
      auto profile = profileSteps([&] { engine.trainStep(images); }, n, o.device);
      out["kernels"] = kernelProfileJson(profile, static_cast<size_t>(o.kernels));
    } catch (const std::exception& e) {
      out["kernels"] = {{"error", e.what()}};
    }
  }
#ifdef MST_HAVE_CUDA
  if (o.device.is_cuda()) {
    // The allocator's peaks over the whole run (warm-up and capture included).
    auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(
        o.device.has_index() ? o.device.index() : 0);
    out["peak_gpu_allocated_gb"] = static_cast<double>(stats.allocated_bytes[0].peak) / 1e9;
    out["peak_gpu_reserved_gb"] = static_cast<double>(stats.reserved_bytes[0].peak) / 1e9;
  }
#endif
  // The machine's own matrix-product rate on the same device, in the dtype the step's matrix
  // products use (bf16 under autocast), measured now.
  const auto mm_dtype = engine.bf16() ? torch::kBFloat16 : torch::kFloat;
  const double matmul_gflops = matmulGflops(o.device, mm_dtype);

  double flops = stepFlopsPerImage(c);
  double img_s = static_cast<double>(o.batch * o.steps) / seconds;
  if (!o.data_dir.empty()) out["data"] = dataBench(c, o, engine, img_s);
  out["img_s"] = img_s;
  out["step_ms"] = 1000.0 * seconds / static_cast<double>(o.steps);
  out["peak_mem_mb"] = peakResidentMb();
  out["gflop_per_image"] = flops / 1e9;
  out["achieved_gflops"] = flops * img_s / 1e9;
  out["matmul_gflops"] = matmul_gflops;
  out["matmul_dtype"] = engine.bf16() ? "bf16" : "fp32";
  out["matmul_fraction"] = flops * img_s / 1e9 / matmul_gflops;
  out["precision"] = engine.arithmetic();
  out["cuda_graph"] = engine.graphActive();
  out["fused_norm"] = engine.fusedNorm();
  out["recompute_gelu"] = engine.recomputeGelu();
  out["fused_mlp"] = engine.fusedMlp();
  if (engine.fusedMlp() && c.model.gelu == "tanh")  // (only the tanh GELU's forward is cuBLASLt's)
    out["fused_mlp_fallbacks"] = fusedMlpFallbacks();
  out["fused_augment"] = engine.fusedAugment() && o.device.is_cuda();
  out["fused_loss"] = engine.fusedLoss();
  out["fused_optimizer"] = engine.fusedOptimizer();
  out["fused_decoder"] = engine.fusedDecoder();
  if (engine.fusedDecoder())  // (stages that ran fused in the last forward pass, "k of n")
    out["fused_decoder_stages"] = std::to_string(engine.decoder->fused_stages_last) + " of " +
                                  std::to_string(engine.decoder->norm_stages_last);
  // Calls that the kernels could not take and ATen ran instead (none expected).
  out["kernel_fallbacks"] = kernelFallbacks();
  // The kernels' self-checks at this run's shapes (kernel_selfcheck.h): a family that failed
  // one runs ATen's operations under auto, and says so here.
  nlohmann::json selfchecks = nlohmann::json::object();
  for (const auto& k : kernelSelfChecks())
    selfchecks[k.family] = {{"passed", k.passed}, {"ms", k.ms}, {"cases", k.total},
                            {"kernels_ran", k.ran}, {"detail", k.detail}};
  out["kernel_selfchecks"] = selfchecks;
  out["kernel_notes"] = engine.kernelNotes();
  out["attention_kernels"] = attentionKernelsReport(c, o.device, engine.bf16());
  out["device"] = o.device.str();
  out["device_name"] = o.device.is_cuda() ? deviceName(o.device) : std::string("cpu");
  out["threads"] = at::get_num_threads();
  out["batch"] = o.batch;
  out["steps"] = o.steps;
  out["final_loss"] = loss;
  out["libtorch"] = torchVersionString();
  return out;
}

nlohmann::json systemInfo() {
  nlohmann::json info;
  info["libtorch"] = torchVersionString();
  info["threads"] = at::get_num_threads();
  info["hardware_threads"] = std::thread::hardware_concurrency();
  // Force BLAS to load, then read which shared object really serves it.
  auto warm = torch::matmul(torch::ones({64, 64}), torch::ones({64, 64}));
  (void)warm;
  std::string blas = "unknown";
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    auto pos = line.find('/');
    if (pos == std::string::npos) continue;
    std::string lib = line.substr(pos);
    if (lib.find("openblas") != std::string::npos || lib.find("libblas") != std::string::npos ||
        lib.find("mkl") != std::string::npos || lib.find("blis") != std::string::npos) {
      blas = lib;
      break;
    }
  }
  info["blas"] = blas;
  info["blas_is_openblas"] = blas.find("openblas") != std::string::npos;
  info["parallel"] = at::get_parallel_info();
  info["cuda_available"] = torch::cuda::is_available();
  info["cuda_devices"] = torch::cuda::is_available() ? torch::cuda::device_count() : 0;
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  info["hdf5"] = std::to_string(maj) + "." + std::to_string(min) + "." + std::to_string(rel);
#ifdef MST_HAVE_OPENCV
  info["opencv"] = CV_VERSION;
#else
  info["opencv"] = "not built in";
#endif
  info["libjpeg"] = jpegDecoderAvailable();  // ImageFolder's JPEG decoder without OpenCV
  return info;
}

}  // namespace mst
