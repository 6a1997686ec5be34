#!/usr/bin/env bash
# @brief Issue 3's ablations on the GPU machine: Table 4 (mask strategies) with two seeds, then
# Table 5 (p x num), on all 60,000 Fashion-MNIST training images with cells long enough to leave
# the near-uniform teacher phase that makes 3-epoch CPU cells meaningless (experiments/RESULTS.md).
# Each table is a resumable `mst sweep` under a time budget: finished cells are in sweep.csv.
#
# Prepare here: scripts/gpu_deps.sh (third_party/: static HDF5 + zlib, headers, Fashion-MNIST).
# Run with the device tool: command "bash scripts/issue3_gpu.sh", carry ["third_party/gpu",
# "third_party/include", "third_party/fashion-mnist"].
# Knobs: EPOCHS (per cell; default: as many as fit, from the throughput measured first),
# T4_BUDGET / T5_BUDGET (seconds, default 300 / 180),
# DEVICE (default cuda; "cpu" with tiny EPOCHS and LIMIT checks the script here), SWEEP_ARGS
# (more `mst sweep` options, e.g. "--max-steps 2 --train-limit 1000" for that check).
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/gpu_common.sh issue3_log.txt
DEVICE=${DEVICE:-cuda}
LIMIT=${LIMIT:-0}
DATA=${DATA:-$PWD/third_party/fashion-mnist}

if [[ $DEVICE == cuda ]]; then
  source scripts/gpu_build.sh
else
  MST=${MST:-build/bin/mst}
fi
GRAPH=$([[ $DEVICE == cuda ]] && echo true || echo false)
if [[ -z ${EPOCHS:-} ]]; then
  # Size the cells from the step's measured throughput: Table 4's 8 cells share T4_BUDGET, and
  # about 70 % of a cell's time is training (the rest: read-outs, start-up).
  IMG_S=$("$MST" bench --config experiments/fashion_mnist.json --batch 128 --steps 30 --warmup 5 \
    --device "$DEVICE" --set "train.cuda_graph=$GRAPH" 2>/dev/null | tail -1 |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["img_s"])')
  EPOCHS=$(python3 -c "print(max(3, min(60, int($IMG_S * ${T4_BUDGET:-300} / 8 * 0.7 / 60000))))")
  stamp "step throughput ${IMG_S} img/s: ${EPOCHS} epochs per cell"
fi
# Every cell: the whole training set, EPOCHS epochs, in-training k-NN off (the sweep reads out
# k-NN and the linear probe at the end), the step captured as a CUDA graph on the GPU.
COMMON=(--device "$DEVICE" --set "data.path=$DATA" --set "data.limit=$LIMIT"
        --set "train.epochs=$EPOCHS" --set "optim.warmup_epochs=2" --set "eval.every_epochs=0"
        --set "train.cuda_graph=$GRAPH")

stamp "table 4"
timeout "${T4_BUDGET:-300}" "$MST" sweep --config experiments/table4_mask_strategies.json \
  --out "$OUT/table4" "${COMMON[@]}" \
  --grid "masking.strategy=none,random,attention_guided,attention_high" --grid "train.seed=0,1" \
  ${SWEEP_ARGS:-}
echo "table 4 exit $?"
stamp "table 5"
timeout "${T5_BUDGET:-180}" "$MST" sweep --config experiments/table5_p_num.json \
  --out "$OUT/table5" "${COMMON[@]}" ${SWEEP_ARGS:-}
echo "table 5 exit $?"
for t in table4 table5; do
  [[ -f $OUT/$t/sweep.csv ]] && { cp "$OUT/$t/sweep.csv" "$OUT/${t}.csv"; cat "$OUT/${t}.csv"; }
  [[ -f $OUT/$t/seeds.csv ]] && { cp "$OUT/$t/seeds.csv" "$OUT/${t}_seeds.csv"; cat "$OUT/${t}_seeds.csv"; }
done
# Only the CSVs and the log come back (the device tool returns at most 8 files).
rm -rf "$OUT/table4" "$OUT/table5"
stamp "done"
