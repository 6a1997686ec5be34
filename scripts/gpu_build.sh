#!/usr/bin/env bash
# @brief Sourced by the GPU-machine scripts (gpu_check.sh, issue3_gpu.sh): configures and builds
# core/ + mst against the machine's own LibTorch (PyTorch's, CUDA) with Ninja on all cores, using
# the static HDF5/zlib and the headers that scripts/gpu_deps.sh put in third_party/. Needs OUT and
# stamp(); sets MST to the built binary. On a build error it retries without cuBLASLt
# (train.fused_mlp), then also without the kernel profiler, without the fused CUDA kernels
# (core/kernels, nvcc), without both, then also without CUDA graphs (the newest LibTorch API the
# engine uses), then gives up with the compiler's messages.
TORCH_PREFIX=${TORCH_PREFIX:-$(python3 -c "import torch; print(torch.utils.cmake_prefix_path)")}
BUILD=${BUILD:-build-gpu}
TP=$PWD/third_party
configure() {
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMST_BUILD_GUI=OFF \
    -DMST_BUILD_TESTS=OFF "-DCMAKE_PREFIX_PATH=$TORCH_PREFIX;$TP/gpu" -DHDF5_ROOT="$TP/gpu" \
    -DHDF5_USE_STATIC_LIBRARIES=ON -DZLIB_ROOT="$TP/gpu" -DZLIB_USE_STATIC_LIBS=ON \
    -DJPEG_INCLUDE_DIR="$TP/gpu/include" -DJPEG_LIBRARY="$TP/gpu/lib/libjpeg.a" \
    -DCMAKE_DISABLE_FIND_PACKAGE_nlohmann_json=ON -DCMAKE_DISABLE_FIND_PACKAGE_CLI11=ON "$@"
}
# nvcc for core/kernels (train.fused_norm); CMake also looks in PATH and /usr/local/cuda.
if [[ -z ${CUDACXX:-} ]]; then
  CUDACXX=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
  [[ -n $CUDACXX ]] && export CUDACXX
fi
# LibTorch's CMake adds -gencode flags for TORCH_CUDA_ARCH_LIST (else for the GPUs it detects).
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
attempt() {  # extra cmake options; configure and build, all output to the build log
  configure "$@" >>"$OUT/build_log.txt" 2>&1 && ninja -C "$BUILD" -k 0 mst >>"$OUT/build_log.txt" 2>&1
}
: >"$OUT/build_log.txt"
stamp "configure + build (nvcc: ${CUDACXX:-none})"
# Each fallback leaves out one more of the parts most likely to meet a LibTorch or CUDA API
# change: the kernel profiler, the fused kernels, both, then CUDA graphs too.
built=0
NOLT=-DMST_CUBLASLT=OFF
for options in "" "$NOLT" "$NOLT -DMST_KERNEL_PROFILE=OFF" "$NOLT -DMST_CUDA_KERNELS=OFF" \
               "$NOLT -DMST_CUDA_KERNELS=OFF -DMST_KERNEL_PROFILE=OFF" \
               "$NOLT -DMST_CUDA_KERNELS=OFF -DMST_KERNEL_PROFILE=OFF -DMST_CUDA_GRAPHS=OFF"; do
  # shellcheck disable=SC2086
  if attempt -DMST_CUBLASLT=ON -DMST_CUDA_KERNELS=ON -DMST_KERNEL_PROFILE=ON -DMST_CUDA_GRAPHS=ON $options; then
    built=1
    [[ -n $options ]] && stamp "built with $options"
    break
  fi
  grep -E "error|undefined reference|CMake Error" "$OUT/build_log.txt" | tail -15
  stamp "build failed with options '${options}': trying the next fallback"
done
if [[ $built != 1 ]]; then
  stamp "build failed with every fallback"
  exit 1
fi
grep -E "HDF5|Torch|CUDA|nccl|NCCL|fused|WARNING" "$OUT/build_log.txt" | sort -u | head -20
MST=$BUILD/bin/mst
