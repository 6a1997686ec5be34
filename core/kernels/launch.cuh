/// @brief How the .cu files launch kernels and declare dynamic shared memory: nvcc's syntax
/// here, and whatever tests/cuda_emu/ defines first when the CPU tests compile the same files
/// as plain C++ and run their kernels in an emulator (tests/test_kernels_emulated.cpp).
#pragma once

/// MST_LAUNCH(grid, block, shared_bytes, stream, kernel)(arguments...): the kernel last, as it
/// may be a template-id with commas.
#ifndef MST_LAUNCH
#define MST_LAUNCH(grid, block, shared, stream, ...) __VA_ARGS__<<<grid, block, shared, stream>>>
#endif

/// The block's dynamic shared memory (the launch's shared_bytes) as `type* name`.
#ifndef MST_DYNAMIC_SHARED
#define MST_DYNAMIC_SHARED(type, name) \
  extern __shared__ type name##_storage[]; \
  type* name = name##_storage
#endif
