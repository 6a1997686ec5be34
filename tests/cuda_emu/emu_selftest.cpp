/// @brief Kernels that break the rules the emulator enforces (emu.h), for the test that shows
/// it catches them: a shuffle after some lanes of the warp returned, half a warp at a shuffle
/// while the other half waits at __syncthreads, lanes that disagree on a shuffle's lane mask,
/// and a block of too many threads.
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "core/kernels/launch.cuh"
#include "emu_selftest.h"

namespace {

__global__ void shuffleAfterReturn(float* out) {
  if (threadIdx.x % 32 >= 16) return;
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
}

/// Half of each warp at a shuffle, the other half at a barrier: neither can complete.
__global__ void splitBarrier(float* out) {
  if (threadIdx.x % 32 < 16) {
    out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, 1);
  } else {
    __syncthreads();
  }
  __syncthreads();
}

/// Lanes of one warp at shuffles with different lane masks.
__global__ void mixedMasks(float* out) {
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, 1.0f, threadIdx.x % 2 == 0 ? 1 : 2);
}

/// out[t] = what thread t's xor-partner held, after a barrier: the emulator's plain behaviour.
__global__ void exchange(float* out) {
  const float mine = static_cast<float>(threadIdx.x);
  __syncthreads();
  out[threadIdx.x] = __shfl_xor_sync(0xffffffffu, mine, 5);
}

std::string caught(void (*kernel)(float*), unsigned threads, float* out) {
  try {
    MST_LAUNCH(1, threads, 0, nullptr, kernel)(out);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

namespace emu_selftest {

std::string shuffleAfterReturnError(float* out64) { return caught(shuffleAfterReturn, 64, out64); }
std::string splitBarrierError(float* out64) { return caught(splitBarrier, 64, out64); }
std::string mixedMasksError(float* out64) { return caught(mixedMasks, 64, out64); }
std::string exchangeError(float* out64) { return caught(exchange, 64, out64); }
uint64_t launches() { return emu::launchCount(); }

int oversizedBlockError(float* out64) {
  MST_LAUNCH(1, 2048, 0, nullptr, exchange)(out64);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace emu_selftest
