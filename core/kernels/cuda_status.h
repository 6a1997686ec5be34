/// @brief Host-side CUDA runtime helpers shared by the kernels' launchers (the .cu files).
#pragma once

#include <cuda_runtime.h>

namespace mst::kernels {

/// nullptr, or the text of the last CUDA error (which this clears).
inline const char* lastError() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

/// The current device's multiprocessor count (108, an A100's, where it cannot be asked).
inline int multiprocessors() {
  int device = 0, count = 0;
  if (cudaGetDevice(&device) != cudaSuccess ||
      cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, device) != cudaSuccess) {
    cudaGetLastError();
    return 108;
  }
  return count;
}

}  // namespace mst::kernels
