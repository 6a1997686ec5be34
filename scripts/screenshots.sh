#!/usr/bin/env bash
# @brief Screenshots of the workbench during a short real run (for the README): trains a small
# Fashion-MNIST run from the window, then saves the window as PNG. Under Xvfb when xvfb-run is
# there, else offscreen; SCREENSHOT_PLATFORM=offscreen|xvfb chooses.
# Usage: scripts/screenshots.sh [OUT_DIR=docs/images] [STEPS=120]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-docs/images}
STEPS=${2:-120}
mkdir -p "$OUT"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/shot.json" <<'JSON'
{
  "_comment": "A short run for screenshots: the default network on 4,096 images, a row per 2 steps.",
  "data": {"path": "/usr/share/datasets/fashion-mnist", "format": "fashion_mnist", "limit": 4096},
  "train": {"epochs": 10, "batch_size": 64, "log_every": 2, "snapshot_every": 20,
            "checkpoint_every": 200},
  "eval": {"every_epochs": 0.5, "subset": 2000}
}
JSON
args=(--config "$work/shot.json" --workspace "$work/runs" --out "$work/runs/fashion_mnist"
      --max-steps "$STEPS" --screenshot "$OUT/workbench.png")
# The Sweep tab shows a Table 5 sweep when one has been run here (experiments/RESULTS.md: the
# CPU one is runs/t5cpu).
for sweep in runs/table5 runs/t5cpu; do
  if [[ -f $sweep/sweep.h5 ]]; then args+=(--sweep "$sweep"); break; fi
done
# Xvfb where there is one: its 1600 × 1000 screen shows the full layout (the offscreen platform's
# small screen makes the window put its Run and Runs docks into tabs).
platform=${SCREENSHOT_PLATFORM:-$(command -v xvfb-run >/dev/null && echo xvfb || echo offscreen)}
if [[ $platform == xvfb ]]; then
  xvfb-run -a -s "-screen 0 1600x1000x24" build/bin/mst-workbench "${args[@]}"
else
  QT_QPA_PLATFORM=offscreen build/bin/mst-workbench "${args[@]}"
fi
echo "screenshots: $OUT/workbench.png $OUT/workbench-inspector.png $OUT/workbench-sweep.png"
