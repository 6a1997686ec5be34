/// @brief `mst bench`: training-step throughput, FLOPs and the machine's matrix-product rate.
#pragma once

#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "core/config/config.h"

namespace mst {

struct BenchOptions {
  int64_t batch = 32;
  int64_t steps = 10;
  int64_t warmup = 3;
  torch::Device device = torch::kCPU;
  /// Real input path: an ImageFolder root (or any data.format the config names) decoded by the
  /// loader's worker threads into pinned memory. Empty = synthetic images only.
  std::string data_dir;
  int64_t data_batches = 20;
  /// Also time each phase of the step (eager, waiting for the device after each phase).
  bool phases = false;  ///< batches timed for the loader alone and for loader-fed steps
  /// Also profile a few steps kernel by kernel (core/bench/kernel_profile) and report the
  /// `kernels` kernels with most time and every category's total; 0 = off.
  int64_t kernels = 0;
};

/// Model FLOPs of one training step per image (forward + backward of the student on every crop,
/// teacher forward on the global crops, decoder), counting a multiply-add as 2 FLOPs.
double stepFlopsPerImage(const Config& config);

/// Runs `warmup` + `steps` training steps on synthetic images and measures a square matrix
/// product on the same device. Returns {"img_s", "step_ms", "peak_mem_mb", "gflop_per_image",
/// "achieved_gflops", "matmul_gflops", "matmul_fraction", "device", "threads", "batch", "steps"},
/// on CUDA also the allocator's peaks. With `data_dir`: "data" = {"loader_img_s" (decode into
/// pinned batches, no training), "fed_img_s" (training steps fed by the loader), "starved" (the
/// fraction of step time lost to waiting for input, 1 - fed / synthetic), "workers"}. With
/// `kernels`: "kernels" = kernelProfileJson of max(2, steps / 2) more steps.
nlohmann::json runBench(const Config& config, const BenchOptions& options);

/// Facts about the installation for `mst doctor`: LibTorch, threads, BLAS library actually
/// loaded, CUDA devices, HDF5, OpenCV.
nlohmann::json systemInfo();

/// Peak resident memory of this process in MiB (VmHWM).
double peakResidentMb();

}  // namespace mst
