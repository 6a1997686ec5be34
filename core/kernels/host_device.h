/// @brief MST_HD: a function of the kernels' arithmetic that nvcc compiles for both the device
/// (the kernels) and the host (the CPU loops the tests compare with ATen), and that a plain C++
/// compiler sees as an ordinary inline function.
#pragma once

#ifdef __CUDACC__
#define MST_HD __host__ __device__ __forceinline__
#else
#define MST_HD inline
#endif
