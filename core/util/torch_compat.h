/// @brief The few places where LibTorch 1.13 (Debian) and 2.x (GPU machine) differ.
#pragma once

#include <cstdint>
#include <string>

#include <torch/torch.h>

/// c10d's process-group type that ProcessGroupGloo/NCCL derive from and that holds the
/// collectives: ProcessGroup in 1.13, Backend since 2.0. Only meaningful where the c10d headers
/// are included (core/dist/communicator.cpp).
#if TORCH_VERSION_MAJOR >= 2
#define MST_C10D_BACKEND c10d::Backend
#else
#define MST_C10D_BACKEND c10d::ProcessGroup
#endif

namespace mst {

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

/// Version string of the LibTorch this binary was built against.
inline std::string torchVersionString() {
  return std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) + "." +
         std::to_string(TORCH_VERSION_PATCH);
}

}  // namespace mst
