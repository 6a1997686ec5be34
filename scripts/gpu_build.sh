#!/usr/bin/env bash
# @brief Sourced by the GPU-machine scripts (gpu_check.sh, issue3_gpu.sh): configures and builds
# core/ + mst against the machine's own LibTorch (PyTorch's, CUDA) with Ninja on all cores, using
# the static HDF5/zlib and the headers that scripts/gpu_deps.sh put in third_party/. Needs OUT and
# stamp(); sets MST to the built binary. On a build error it retries once without CUDA graphs
# (the newest LibTorch API the engine uses), then gives up with the compiler's messages.
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
stamp "configure"
if ! configure >"$OUT/build_log.txt" 2>&1; then
  tail -40 "$OUT/build_log.txt"
  exit 1
fi
grep -E "HDF5|Torch|CUDA|nccl|NCCL|WARNING" "$OUT/build_log.txt" | head -20
stamp "build"
if ! ninja -C "$BUILD" -k 0 mst >>"$OUT/build_log.txt" 2>&1; then
  grep -E "error|undefined reference" "$OUT/build_log.txt" | head -30
  stamp "build failed: again without CUDA graphs"
  configure -DMST_CUDA_GRAPHS=OFF >>"$OUT/build_log.txt" 2>&1
  if ! ninja -C "$BUILD" mst >>"$OUT/build_log.txt" 2>&1; then
    grep -E "error|undefined reference" "$OUT/build_log.txt" | tail -30
    exit 1
  fi
fi
MST=$BUILD/bin/mst
