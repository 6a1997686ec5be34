#!/usr/bin/env bash
# Why does the default Fashion-MNIST experiment trail raw-pixel k-NN? One factor at a time, same
# budget per run (20,000 training images, 4 epochs, seed 0), k-NN read out every epoch on a
# 10,000-image bank (raw pixels on that bank: 81.81 %). Results: runs/diag/<name>/run.h5,
# summarised by `mst log runs/diag/<name> --group eval`.
# Usage: scripts/diagnose_fmnist.sh [name ...]   (default: all variants, in order)
set -euo pipefail
cd "$(dirname "$0")/.."
MST=${MST:-build/bin/mst}
BASE=(--config experiments/fashion_mnist.json --set data.limit=20000 --set train.epochs=4
      --set train.snapshot_every=0 --set train.checkpoint_every=200)
declare -A VARIANT=(
  [base]=""
  [lr2e3]="optim.lr=0.002"
  [big_local]="crops.local_scale_min=0.2 crops.local_scale_max=0.5 crops.local_size=16"
  [no_local]="crops.local_crops=0"
  [weak_aug]="augment.solarize_p=0 augment.blur_p_global1=0 augment.blur_p_global2=0 augment.blur_p_local=0 crops.global_scale_min=0.6"
  [sharp_lr2e3]="loss.teacher_temp=0.03 loss.teacher_temp_start=0.03 optim.lr=0.002"
  [sharp02_k256]="loss.teacher_temp=0.02 loss.teacher_temp_start=0.02 optim.lr=0.002 model.out_dim=256"
)
ORDER=(base lr2e3 sharp_lr2e3 big_local no_local weak_aug sharp02_k256)
[[ $# -gt 0 ]] && ORDER=("$@")
mkdir -p runs/diag
for name in "${ORDER[@]}"; do
  out=runs/diag/$name
  [[ -f $out/done ]] && continue
  sets=()
  for kv in ${VARIANT[$name]}; do sets+=(--set "$kv"); done
  resume=(); [[ -f $out/checkpoint.pt ]] && resume=(--resume)
  echo "== $name: ${VARIANT[$name]}"
  $MST train "${BASE[@]}" "${sets[@]}" --out "$out" "${resume[@]}" > runs/diag/$name.log 2>&1
  touch "$out/done"
  $MST log "$out" --group eval | tail -n 4
done
