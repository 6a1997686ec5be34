#!/usr/bin/env bash
# @brief Feeds `mst train` one bad input at a time and prints the one line it answers with (issue 8's
# list of bad inputs). Every case must fail fast with a message naming the file or key.
set -uo pipefail
cd "$(dirname "$0")/.."
MST=${MST:-build/bin/mst}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
FM=/usr/share/datasets/fashion-mnist
mkdir -p "$work/empty" "$work/noimages/train/a" "$work/noimages/val/a" "$work/trunc" "$work/magic" \
         "$work/cifar"
touch "$work/noimages/train/a/readme.txt"
cp "$FM"/*.gz "$work/trunc/" && head -c 5000 "$FM/train-images-idx3-ubyte.gz" > "$work/trunc/train-images-idx3-ubyte.gz"
cp "$FM"/*.gz "$work/magic/" && { printf '\x00\x00\x08\x04'; zcat "$FM/train-images-idx3-ubyte.gz" | tail -c +5; } | gzip -1 > "$work/magic/train-images-idx3-ubyte.gz"
head -c 1000 /dev/urandom > "$work/cifar/data_batch_1.bin"
tiny=(--set model.preset=vit_micro28 --set data.limit=64 --set train.batch_size=16 --set data.workers=1
      --set crops.local_crops=1 --set eval.every_epochs=0 --set train.snapshot_every=0 --threads 1)
$MST train "${tiny[@]}" --out "$work/micro" --max-steps 1 > /dev/null 2>&1
head -c 20000 "$work/micro/checkpoint.pt" > "$work/corrupt.pt"
mkdir -p "$work/other" && cp "$work/micro/checkpoint.pt" "$work/other/checkpoint.pt"

try() {  # description, then the arguments of mst train
  local what=$1; shift
  local err; err=$($MST train "$@" --max-steps 1 2>&1 >/dev/null | tail -n 1); local rc=$?
  printf '| %s | `%s` |\n' "$what" "${err//|/\\|}"
}
echo "| bad input | what mst train says (exit code non-zero in every case) |"
echo "|---|---|"
try "missing data folder" "${tiny[@]}" --set data.path=/nonexistent --out "$work/r1"
try "empty data folder" "${tiny[@]}" --set data.path="$work/empty" --out "$work/r2"
try "image folder with no images" "${tiny[@]}" --set data.format=image_folder --set data.path="$work/noimages" --out "$work/r3"
try "truncated IDX (.gz cut at 5 kB)" "${tiny[@]}" --set data.path="$work/trunc" --set data.limit=0 --out "$work/r4"
try "IDX with a wrong magic number" "${tiny[@]}" --set data.path="$work/magic" --out "$work/r5"
try "CIFAR-10 batch of 1000 random bytes" "${tiny[@]}" --set data.format=cifar10 --set data.path="$work/cifar" --out "$work/r6"
try "unknown key" "${tiny[@]}" --set masking.pp=0.1 --out "$work/r7"
try "wrong type" "${tiny[@]}" --set masking.p='"high"' --out "$work/r8"
try "p outside [0,1]" "${tiny[@]}" --set masking.p=1.5 --out "$work/r9"
try "num < 1" "${tiny[@]}" --set masking.num=0 --out "$work/r10"
try "image size not divisible by the patch" "${tiny[@]}" --set crops.global_size=30 --out "$work/r11"
try "heads not dividing dim" "${tiny[@]}" --set model.heads=5 --out "$work/r12"
try "batch < 1" "${tiny[@]}" --set train.batch_size=0 --out "$work/r13"
try "local crops larger than global" "${tiny[@]}" --set crops.local_size=32 --out "$work/r14"
try "checkpoint of another architecture" --set model.preset=vit_tiny28 --set data.limit=64 --set train.batch_size=16 --threads 1 --out "$work/other" --resume
cp "$work/corrupt.pt" "$work/r15.pt"; mkdir -p "$work/r15" && cp "$work/corrupt.pt" "$work/r15/checkpoint.pt"
try "corrupt (truncated) checkpoint" "${tiny[@]}" --out "$work/r15" --resume
try "loss overflowing to inf" "${tiny[@]}" --set loss.lambda_ce=1e300 --out "$work/r16"
try "a folder that holds a run, without --resume" "${tiny[@]}" --out "$work/micro"
try "resuming with another batch size" "${tiny[@]}" --set train.batch_size=8 --out "$work/micro" --resume
try "masking.num beyond the patches of a crop" "${tiny[@]}" --set masking.num=50 --out "$work/r17"
try "a probe image past the data set" "${tiny[@]}" --set 'train.probe_images=[0,64]' --out "$work/r18"
