#!/usr/bin/env bash
# @brief Builds the libFuzzer targets (build-fuzz/, clang), makes their seed corpora and runs each
# for SECONDS (default 60), then prints executions, crashes and corpus size per target.
#
#   scripts/fuzz.sh [SECONDS]          e.g. scripts/fuzz.sh 600 for a longer soak
#
# Findings land in build-fuzz/fuzz-work/artifacts/<target>/ (crash-*, leak-*, timeout-*, oom-*);
# replay one with build-fuzz/bin/<target> <file>. The corpora in build-fuzz/fuzz-work/corpus/ grow
# from run to run. CI never runs this: the readers' regressions are ctest cases.
set -euo pipefail

DURATION=${1:-60}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
BUILD=build-fuzz
WORK=$BUILD/fuzz-work
TARGETS=(fuzz_idx fuzz_cifar fuzz_config fuzz_checkpoint)

if [[ ! -f $BUILD/build.ninja ]]; then
  CC=clang CXX=clang++ cmake -S . -B "$BUILD" -G Ninja -DMST_BUILD_GUI=OFF -DMST_BUILD_TESTS=OFF \
    -DMST_BUILD_FUZZERS=ON
fi
# The lock serialises builds with the other work trees on this machine (2 cores).
flock /tmp/mst-build.lock cmake --build "$BUILD" --target "${TARGETS[@]}"

# ---- seed corpora: small valid inputs the mutations start from --------------------------------
SEEDS=$WORK/seeds
rm -rf "$SEEDS"
mkdir -p "$SEEDS"/{fuzz_idx,fuzz_cifar,fuzz_config,fuzz_checkpoint}
python3 - "$SEEDS" <<'PY'
import gzip, struct, sys, os
seeds = sys.argv[1]
def put(target, name, data):
    with open(os.path.join(seeds, target, name), "wb") as f:
        f.write(data)
# IDX: [flags][images length LE32][images][labels] (fuzz/fuzz_idx.cpp); 3 images of 4x4.
images = struct.pack(">IIII", 0x803, 3, 4, 4) + bytes(range(48))
labels = struct.pack(">II", 0x801, 3) + bytes([0, 5, 9])
def idx(flags, im, lb):
    return bytes([flags]) + struct.pack("<I", len(im)) + im + lb
put("fuzz_idx", "plain_train", idx(0, images, labels))
put("fuzz_idx", "plain_test_limit", idx(1 | (2 << 4), images, labels))
put("fuzz_idx", "harness_gzip", idx(2 | 4, images, labels))
put("fuzz_idx", "raw_gzip", idx(0, gzip.compress(images), gzip.compress(labels)))
# CIFAR-10: [flags][records]; two 3073-byte records.
records = bytes([3]) + bytes(i % 256 for i in range(3072)) + bytes([9]) + bytes(3072)
put("fuzz_cifar", "test", bytes([0]) + records)
put("fuzz_cifar", "train_nested", bytes([1 | 2 | (1 << 4)]) + records)
# Config: leading '=' lines are --set overrides.
put("fuzz_config", "overrides", b"=model.preset=vit_micro28\n=train.batch_size=16\n{}\n")
put("fuzz_config", "nested", b'{"model": {"preset": "vit_tiny28", "dim": 96}, "masking.p": 0.5}')
# Checkpoint, structured mode: the bytes drive fuzz/fuzz_checkpoint.cpp's writeStructured.
put("fuzz_checkpoint", "structured_as_saved", bytes([1]) + bytes(64))
put("fuzz_checkpoint", "structured_mixed", bytes([1]) + bytes(range(256)))
PY
cp experiments/*.json "$SEEDS/fuzz_config/"
# A real checkpoint (raw mode: mode byte 0, then the file), made once by the normal build's CLI.
CKPT=$WORK/seed-run/checkpoint.pt
if [[ ! -f $CKPT && -x build/bin/mst ]]; then
  # The architecture of fuzz/fuzz_checkpoint.cpp's engine (keep in sync): vit_micro28, shrunk.
  build/bin/mst train --set model.preset=vit_micro28 --set data.limit=64 --set train.batch_size=16 \
    --set model.dim=16 --set model.depth=1 --set model.heads=2 --set model.head_hidden=16 \
    --set model.head_bottleneck=8 --set model.out_dim=16 --set model.decoder_widths=[8,8] \
    --set train.threads=1 --max-steps 1 --out "$WORK/seed-run" >"$WORK/seed-run.log" 2>&1 ||
    echo "warning: could not make the seed checkpoint (see $WORK/seed-run.log)" >&2
fi
if [[ -f $CKPT ]]; then
  { printf '\0'; cat "$CKPT"; } >"$SEEDS/fuzz_checkpoint/real_checkpoint"
else
  echo "warning: no build/bin/mst: the checkpoint target starts from structured seeds only" >&2
fi

# ---- runs -------------------------------------------------------------------------------------
# LibTorch keeps a few process-lifetime allocations that LeakSanitizer reports at exit; they are
# not per-input, and -detect_leaks checks growth per input anyway.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/fuzz/lsan.supp:print_suppressions=0}
export OMP_NUM_THREADS=1
declare -A EXECS CRASHES CORPUS
for target in "${TARGETS[@]}"; do
  corpus=$WORK/corpus/$target
  artifacts=$WORK/artifacts/$target
  log=$WORK/$target.log
  mkdir -p "$corpus" "$artifacts"
  : >"$log"
  before=$(ls "$artifacts" | wc -l)
  deadline=$((SECONDS + DURATION))
  # libFuzzer stops at the first finding; start it again until the time is up so that one cheap
  # crash cannot hide the rest (the same input is saved under the same name, so counts are unique).
  while ((SECONDS < deadline)); do
    found=$(ls "$artifacts" | wc -l)
    "$BUILD/bin/$target" "$corpus" "$SEEDS/$target" -max_total_time=$((deadline - SECONDS)) \
      -rss_limit_mb=4096 -timeout=10 -print_final_stats=1 -artifact_prefix="$artifacts/" \
      >>"$log" 2>&1 || true
    # It ended without a finding: the time is up, or it could not start (see the log).
    if (($(ls "$artifacts" | wc -l) == found)); then break; fi
  done
  EXECS[$target]=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" |
    awk '{s += $2} END {print s + 0}')
  CRASHES[$target]=$(($(ls "$artifacts" | wc -l) - before))
  CORPUS[$target]=$(ls "$corpus" | wc -l)
  echo "$target: ${EXECS[$target]} executions, ${CRASHES[$target]} new findings (log: $log)" >&2
done

printf '\n| target | seconds | executions | new crashes | corpus size |\n|---|---|---|---|---|\n'
for target in "${TARGETS[@]}"; do
  printf '| %s | %s | %s | %s | %s |\n' "$target" "$DURATION" "${EXECS[$target]}" \
    "${CRASHES[$target]}" "${CORPUS[$target]}"
done
echo
echo "findings: $WORK/artifacts/<target>/ (replay: $BUILD/bin/<target> FILE)"
