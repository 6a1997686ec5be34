#!/usr/bin/env bash
# Background queue of the issue-3 experiments on the CPU (each step is resumable): the diagnosis
# of the default experiment first, then Table 4 and Table 5. Uses a frozen copy of the CLI (MST,
# default runs/bin/mst) so that rebuilding build/ meanwhile does not change the runs.
set -uo pipefail
cd "$(dirname "$0")/.."
export MST=${MST:-runs/bin/mst}
[[ -x $MST ]] || { mkdir -p "$(dirname "$MST")"; cp build/bin/mst "$MST"; }
scripts/diagnose_fmnist.sh
$MST sweep --config experiments/table4_mask_strategies.json --out runs/table4 "$@"
$MST sweep --config experiments/table5_p_num.json --out runs/table5 "$@"
