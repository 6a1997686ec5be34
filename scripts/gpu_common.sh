#!/usr/bin/env bash
# @brief Sourced first by the GPU-machine scripts: results folder OUT (default gpu-out/), all
# output also appended to $OUT/$1, and stamp() for timed progress lines.
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
exec > >(tee -a "$OUT/$1") 2>&1
T0=$(date +%s)
stamp() { echo "[$(($(date +%s) - T0)) s] $*"; }
