#!/usr/bin/env bash
# @brief The README's first command: set up, then run the default Fashion-MNIST experiment:
# in the workbench when a display is available, else headless with a progress bar.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
OUT="${1:-runs/fashion_mnist}"
if [[ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" && -x build/bin/mst-workbench ]]; then
  exec build/bin/mst-workbench --config experiments/fashion_mnist.json --out "$OUT" --start
fi
echo "run: no display (or no workbench build): training headless into $OUT"
# A folder that holds a run resumes; one killed before its first checkpoint (run.h5, no
# checkpoint.pt) too: `mst train --resume` without a checkpoint starts the run afresh.
resume=()
[[ -f "$OUT/checkpoint.pt" || -f "$OUT/run.h5" ]] && resume=(--resume)
exec build/bin/mst train --config experiments/fashion_mnist.json --out "$OUT" "${resume[@]}"
