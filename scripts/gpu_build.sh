#!/usr/bin/env bash
# @brief Sourced by the GPU-machine scripts (gpu_check.sh, issue3_gpu.sh): configures and builds
# core/ + mst against the machine's own LibTorch (PyTorch's, CUDA) with Ninja on all cores, using
# the static HDF5/zlib and the headers that scripts/gpu_deps.sh put in third_party/. Needs OUT and
# stamp(); sets MST to the built binary (one that starts: `mst doctor` runs). On a build error
# it retries without the optional parts that failed (cuBLASLt for train.fused_mlp, the kernel
# profiler, the fused CUDA kernels, CUDA graphs, the attention-kernel switches), then gives up
# with the compiler's messages.
TORCH_PREFIX=${TORCH_PREFIX:-$(python3 -c "import torch; print(torch.utils.cmake_prefix_path)")}
BUILD=${BUILD:-build-gpu}
TP=$PWD/third_party
# libjpeg (ImageFolder's decoder there) only when gpu_deps.sh built it: without it the build goes
# on without the JPEG input path rather than failing to link a missing file.
if [[ -f $TP/gpu/lib/libjpeg.a ]]; then
  JPEG_ARGS=(-DJPEG_INCLUDE_DIR="$TP/gpu/include" -DJPEG_LIBRARY="$TP/gpu/lib/libjpeg.a")
else
  echo "third_party/gpu/lib/libjpeg.a is missing (scripts/gpu_deps.sh): building without JPEG input"
  JPEG_ARGS=(-DCMAKE_DISABLE_FIND_PACKAGE_JPEG=ON)
fi
configure() {
  cmake -S . -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMST_BUILD_GUI=OFF \
    -DMST_BUILD_TESTS=OFF "-DCMAKE_PREFIX_PATH=$TORCH_PREFIX;$TP/gpu" -DHDF5_ROOT="$TP/gpu" \
    -DHDF5_USE_STATIC_LIBRARIES=ON -DZLIB_ROOT="$TP/gpu" -DZLIB_USE_STATIC_LIBS=ON \
    "${JPEG_ARGS[@]}" \
    -DCMAKE_DISABLE_FIND_PACKAGE_nlohmann_json=ON -DCMAKE_DISABLE_FIND_PACKAGE_CLI11=ON "$@"
}
# nvcc for core/kernels (train.fused_norm); CMake also looks in PATH and /usr/local/cuda.
if [[ -z ${CUDACXX:-} ]]; then
  CUDACXX=$(command -v nvcc || ls /usr/local/cuda/bin/nvcc 2>/dev/null || true)
  [[ -n $CUDACXX ]] && export CUDACXX
fi
# LibTorch's CMake adds -gencode flags for TORCH_CUDA_ARCH_LIST (else for the GPUs it detects).
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-9.0}
attempt() {  # extra cmake options; configure, build, and check that the binary starts
  configure "$@" >>"$OUT/build_log.txt" 2>&1 && ninja -C "$BUILD" -k 0 mst >>"$OUT/build_log.txt" 2>&1 &&
    "$BUILD/bin/mst" doctor --device cuda >>"$OUT/build_log.txt" 2>&1
}
: >"$OUT/build_log.txt"
stamp "configure + build (nvcc: ${CUDACXX:-none})"
# The optional parts, each most likely to meet a LibTorch or CUDA API change, and the sources
# only it compiles. A failed attempt turns off the parts whose sources failed to compile; a
# failure that names none of them (a link error, a binary that does not start) turns off the next
# part in this order. A compile error elsewhere ends the build at once.
PARTS=(MST_CUBLASLT MST_KERNEL_PROFILE MST_CUDA_KERNELS MST_CUDA_GRAPHS MST_ATTENTION_SWITCHES)
declare -A SOURCES=([MST_CUBLASLT]="fused_mlp" [MST_KERNEL_PROFILE]="kernel_profile"
  [MST_CUDA_KERNELS]="residual_norm|augment_cuda|multicrop|augment_reference|gelu_cuda|gelu_backward|heads_cuda|qkv_heads|dino_loss|decoder_norm|column_sums|adamw_cuda|fused_adamw|recon_loss|embed_cuda|token_embed|kernel_micro"
  [MST_CUDA_GRAPHS]="step_graph" [MST_ATTENTION_SWITCHES]="attention_kernel")
declare -A OFF=()
built=0
for ((try = 1; try <= ${#PARTS[@]} + 1; try++)); do  # (each failed try turns a part off, or stops)
  options=()
  for part in "${PARTS[@]}"; do
    [[ -n ${OFF[$part]:-} ]] && options+=("-D$part=OFF") || options+=("-D$part=ON")
  done
  mark=$(wc -l <"$OUT/build_log.txt")
  if attempt "${options[@]}"; then
    built=1
    if ((${#OFF[@]} > 0)); then
      stamp "built without ${!OFF[*]}"
      : >"$OUT/build_degraded"  # gpu_session.sh keeps build_log.txt
    fi
    break
  fi
  failed=$(tail -n +"$((mark + 1))" "$OUT/build_log.txt" | grep -E "^FAILED: " || true)
  grep -E "error|undefined reference|CMake Error|FAILED" "$OUT/build_log.txt" | tail -15
  turned=0
  # A configure error has no FAILED: line; when it is about CUDA, the kernels (CMake's CUDA
  # language) are the part to turn off first, not the next in PARTS' order.
  if [[ -z $failed && -z ${OFF[MST_CUDA_KERNELS]:-} ]] &&
    tail -n +"$((mark + 1))" "$OUT/build_log.txt" | grep -A5 "CMake Error" | grep -qiE "cuda|nvcc"; then
    OFF[MST_CUDA_KERNELS]=1
    turned=1
  fi
  for part in "${PARTS[@]}"; do
    if [[ -z ${OFF[$part]:-} && -n $failed ]] && grep -qE "${SOURCES[$part]}" <<<"$failed"; then
      OFF[$part]=1
      turned=1
    fi
  done
  if ((turned == 0)); then
    if [[ -n $failed ]] && ! grep -qE "bin/mst$" <<<"$failed"; then
      stamp "a compile error outside the optional parts: no fallback helps"
      break
    fi
    for part in "${PARTS[@]}"; do  # a link error, or a binary that does not start
      if [[ -z ${OFF[$part]:-} ]]; then
        OFF[$part]=1
        turned=1
        break
      fi
    done
  fi
  ((turned == 0)) && break
  stamp "build attempt $try failed: trying again without ${!OFF[*]}"
done
if [[ $built != 1 ]]; then
  stamp "build failed"
  exit 1
fi
grep -E "HDF5|Torch|CUDA|nccl|NCCL|fused|WARNING" "$OUT/build_log.txt" | sort -u | head -20
MST=$BUILD/bin/mst
