#!/usr/bin/env bash
# @brief Everything a session lent the GPU machine should run, in one call (under 600 s: the
# benches stop at a 520 s budget and the table is written anyway): the build (with the fused
# kernels when nvcc is there, cuBLASLt for train.fused_mlp), the CUDA checks, and the DeiT-S/16
# benchmarks of issue 6 (gpu_check.sh, QUICK): our kernels alone against a copy's bandwidth
# (mst bench --micro), the default step (fused_norm, fused_augment, fused_loss, fused_optimizer
# and fused_decoder on), the default with fused_mlp (its one-pass backward kernel), without the
# fused loss, the fused decoder stages or the fused optimiser step, everything fused (plus
# bf16_stream and the tanh network with fused_mlp) and the kernel profiles of both, the attention
# kernels for the local crops (efficient, flash, math) and flash for all, then each setting
# against the default (the plain ATen step, GELU's output kept, bf16_stream, tanh with and
# without fused_mlp, the ATen augmentation), eager steps, and the JPEG input path when
# third_party/jpegs exists. TABLES=1 also runs issue 3's Tables 4 and 5 (issue3_gpu.sh, 240 + 120 s of cells).
# Device tool: command "bash scripts/gpu_session.sh", carry ["third_party/gpu",
# "third_party/include", "third_party/jpegs"], timeout_s 600 (TABLES=1 also needs
# "third_party/fashion-mnist": all of third_party/ is 61 MB of the tool's 64 MiB per call).
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-$PWD/gpu-out}
if [[ -d third_party/jpegs && -z ${DATA_DIR:-} ]]; then
  export DATA_DIR=third_party/jpegs
fi
QUICK=1 bash scripts/gpu_check.sh
check_rc=$?
if [[ ${TABLES:-0} == 1 ]]; then
  T4_BUDGET=${T4_BUDGET:-240} T5_BUDGET=${T5_BUDGET:-120} bash scripts/issue3_gpu.sh
fi
# The device tool returns at most 8 files: the build log only matters when the build failed or
# went on without some optional part (the exit status, not gpu_log.txt, which tee may still be
# writing).
if ((check_rc == 0)) && [[ ! -f $OUT/build_degraded ]]; then rm -f "$OUT/build_log.txt"; fi
rm -f "$OUT/build_degraded"
ls "$OUT"
