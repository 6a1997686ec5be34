/// @brief A CPU emulator of the CUDA features core/kernels/*.cu use, so that the CPU tests run
/// the kernels themselves (tests/test_kernels_emulated.cpp): the .cu files compile as plain C++
/// against the headers in include/ (cuda_runtime.h, cuda_bf16.h), which include this one.
///
/// Each launch runs its blocks one after another; a block's threads are cooperative fibers
/// (ucontext) on the calling thread. A thread runs until it ends or waits: at __syncthreads()
/// for every thread of the block that has not ended, at a warp shuffle for the other 31 lanes of
/// its warp (all of which must take part: the kernels pass the full mask). What this catches:
/// indexing and layout errors, a shuffle or barrier some threads never reach (a deadlock is an
/// error, not a hang), reads of dynamic shared memory nobody wrote (it starts as NaN), invalid
/// launch configurations (cudaGetLastError reports them as CUDA does). Successive rounds run the
/// ready threads in alternating orders, so that results that depend on the order of unsynchronised
/// threads show as differences between runs. Not emulated: timing, the memory model beyond
/// barriers, and the static __shared__ arrays' initial contents (zeros here).
#pragma once

#include <math.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <type_traits>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static  // one block runs at a time: a static is the block's shared array

struct uint3 {
  unsigned x, y, z;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(8) uint2 {
  unsigned x, y;
};
struct alignas(16) uint4 {
  unsigned x, y, z, w;
};
struct alignas(8) float2 {
  float x, y;
};
struct alignas(16) float4 {
  float x, y, z, w;
};
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }

extern uint3 threadIdx, blockIdx;
extern dim3 blockDim, gridDim;

namespace emu {

/// Runs `thread` once for every thread of every block (blockIdx, threadIdx set for each);
/// an invalid configuration sets the error cudaGetLastError returns and runs nothing. Throws
/// std::runtime_error on a deadlock or a shuffle with lanes that have ended.
void run(dim3 grid, dim3 block, size_t shared_bytes, const std::function<void()>& thread);
/// Launches so far (each call of run).
uint64_t& launchCount();
void syncthreads();
/// The value lane (this lane ^ lane_mask) passed, exchanged through 8 bytes per thread.
uint64_t exchangeXor(uint64_t bits, int lane_mask);
void* dynamicShared();
/// The last launch error (a cudaError_t), then cleared.
int takeError();
void setError(int error);
/// The device the launchers query: multiprocessors and resident blocks per multiprocessor
/// (small, so that the kernels' grid-stride loops take several turns in small tests).
int multiprocessors();
int blocksPerMultiprocessor();

template <typename K>
struct Launcher {
  dim3 grid, block;
  size_t shared;
  K kernel;
  template <typename... A>
  void operator()(A&&... args) const {
    run(grid, block, shared, [&] { kernel(args...); });  // (by value into the kernel, as CUDA)
  }
};

template <typename K>
Launcher<K> launcher(dim3 grid, dim3 block, size_t shared, const void*, K kernel) {
  return {grid, block, shared, kernel};
}

}  // namespace emu

inline void __syncthreads() { emu::syncthreads(); }

template <typename T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = 32) {
  static_assert(std::is_trivially_copyable<T>::value && sizeof(T) <= 8, "shuffle of 8 bytes at most");
  if (mask != 0xffffffffu || width != 32) emu::setError(1);  // (the kernels shuffle whole warps)
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  bits = emu::exchangeXor(bits, lane_mask);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

#define MST_LAUNCH(grid, block, shared, stream, ...) \
  ::emu::launcher(grid, block, shared, stream, __VA_ARGS__)
#define MST_DYNAMIC_SHARED(type, name) type* name = static_cast<type*>(::emu::dynamicShared())
