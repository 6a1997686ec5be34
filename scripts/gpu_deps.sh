#!/usr/bin/env bash
# @brief Prepares, on this (Debian) machine, what the GPU machine lacks for building core/ + mst:
# HDF5 1.10 and zlib as static position-independent libraries (built from Debian's sources) and
# the header-only nlohmann-json and CLI11. Everything lands in third_party/ (ignored by git), which
# `run` carries: carry ["third_party"]. About 41 MiB with Fashion-MNIST; HDF5's build takes ~5 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD/third_party
mkdir -p "$ROOT/include"
cp -r /usr/include/nlohmann /usr/include/CLI "$ROOT/include/"
# Fashion-MNIST for the ablations on the GPU machine (scripts/issue3_gpu.sh): 30 MiB of IDX .gz.
FMNIST=/usr/share/datasets/fashion-mnist
if [[ -d $FMNIST ]]; then mkdir -p "$ROOT/fashion-mnist" && cp "$FMNIST"/*.gz "$ROOT/fashion-mnist/"; fi
if [[ -f $ROOT/gpu/lib/libhdf5.a && -f $ROOT/gpu/lib/libz.a ]]; then
  echo "third_party/gpu already has HDF5 and zlib"; exit 0
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cat >"$WORK/src.list" <<'LIST'
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
LIST
mkdir -p "$WORK/lists"
o="-oDir::Etc::SourceList=$WORK/src.list -oDir::Etc::SourceParts=/dev/null -oDir::State::Lists=$WORK/lists"
apt-get $o update -qq
(cd "$WORK" && apt-get $o source --download-only hdf5 zlib -qq)
(cd "$WORK" && tar xzf hdf5_*.orig.tar.gz && tar xjf zlib_*.orig.tar.bz2)
(cd "$WORK"/zlib-* && CFLAGS="-O2 -fPIC" ./configure --static --prefix="$ROOT/gpu" >/dev/null &&
  make -j"$(nproc)" >/dev/null && make install >/dev/null)
mkdir -p "$WORK/hdf5-build"
cmake -S "$WORK"/hdf5-1.10* -B "$WORK/hdf5-build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DBUILD_SHARED_LIBS=OFF -DBUILD_TESTING=OFF \
  -DHDF5_BUILD_TOOLS=OFF -DHDF5_BUILD_EXAMPLES=OFF -DHDF5_BUILD_HL_LIB=OFF -DHDF5_BUILD_CPP_LIB=OFF \
  -DHDF5_BUILD_FORTRAN=OFF -DHDF5_ENABLE_Z_LIB_SUPPORT=OFF -DHDF5_ENABLE_SZIP_SUPPORT=OFF \
  -DCMAKE_INSTALL_PREFIX="$ROOT/gpu" >/dev/null
cmake --build "$WORK/hdf5-build" >/dev/null
cmake --install "$WORK/hdf5-build" >/dev/null
echo "third_party/gpu: $(du -sh "$ROOT/gpu" | cut -f1)"
