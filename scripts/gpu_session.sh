#!/usr/bin/env bash
# @brief Everything a session lent the GPU machine should run, in one call (~9 of its 15 minutes):
# the build, the CUDA checks and the DeiT-S/16 benchmark (gpu_check.sh, QUICK), then issue 3's
# Tables 4 and 5 (issue3_gpu.sh) with 240 + 120 s of cells. Device tool: command
# "bash scripts/gpu_session.sh", carry ["third_party"], timeout_s 600.
set -uo pipefail
cd "$(dirname "$0")/.."
export OUT=${OUT:-$PWD/gpu-out}
QUICK=1 bash scripts/gpu_check.sh
T4_BUDGET=${T4_BUDGET:-240} T5_BUDGET=${T5_BUDGET:-120} bash scripts/issue3_gpu.sh
# The device tool returns at most 8 files: the build log only matters when the build failed.
grep -q "build failed" "$OUT/gpu_log.txt" || rm -f "$OUT/build_log.txt"
ls "$OUT"
