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
};

/// Model FLOPs of one training step per image (forward + backward of the student on every crop,
/// teacher forward on the global crops, decoder), counting a multiply-add as 2 FLOPs.
double stepFlopsPerImage(const Config& config);

/// Runs `warmup` + `steps` training steps on synthetic images and measures a square matrix
/// product on the same device. Returns {"img_s", "step_ms", "peak_mem_mb", "gflop_per_image",
/// "achieved_gflops", "matmul_gflops", "matmul_fraction", "device", "threads", "batch", "steps"}.
nlohmann::json runBench(const Config& config, const BenchOptions& options);

/// Facts about the installation for `mst doctor`: LibTorch, threads, BLAS library actually
/// loaded, CUDA devices, HDF5, OpenCV.
nlohmann::json systemInfo();

/// Peak resident memory of this process in MiB (VmHWM).
double peakResidentMb();

}  // namespace mst
