#!/usr/bin/env bash
# @brief Prepares, on this (Debian) machine, what the GPU machine lacks for building core/ + mst:
# HDF5 1.10 and zlib as static position-independent libraries (built from Debian's sources) and
# the header-only nlohmann-json and CLI11. Everything lands in third_party/ (ignored by git), which
# `run` carries: carry ["third_party/gpu", "third_party/include", "third_party/jpegs"] (plus
# "third_party/fashion-mnist" for issue3_gpu.sh; all of it is 61 MB, near the 64 MiB limit).
# HDF5's build takes ~5 min on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD/third_party
mkdir -p "$ROOT/include"
cp -r /usr/include/nlohmann /usr/include/CLI "$ROOT/include/"
# Fashion-MNIST for the ablations on the GPU machine (scripts/issue3_gpu.sh): 30 MiB of IDX .gz.
FMNIST=/usr/share/datasets/fashion-mnist
if [[ -d $FMNIST ]]; then mkdir -p "$ROOT/fashion-mnist" && cp "$FMNIST"/*.gz "$ROOT/fashion-mnist/"; fi
have() { [[ -f $ROOT/gpu/lib/$1 ]]; }
if have libhdf5.a && have libz.a && have libjpeg.a; then
  echo "third_party/gpu already has HDF5, zlib and libjpeg"; exit 0
fi
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
cat >"$WORK/src.list" <<'LIST'
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
LIST
mkdir -p "$WORK/lists"
o="-oDir::Etc::SourceList=$WORK/src.list -oDir::Etc::SourceParts=/dev/null -oDir::State::Lists=$WORK/lists"
apt-get $o update -qq
cd "$WORK"
if ! have libz.a; then
  apt-get $o source --download-only zlib -qq && tar xjf zlib_*.orig.tar.bz2
  (cd zlib-* && CFLAGS="-O2 -fPIC" ./configure --static --prefix="$ROOT/gpu" >/dev/null &&
    make -j"$(nproc)" >/dev/null && make install >/dev/null)
fi
if ! have libjpeg.a; then
  # ImageFolder's JPEG decoder where OpenCV is missing (the GPU machine). nasm (apt-get install
  # nasm, here only) gives libjpeg-turbo its SIMD code: without it decoding is 2-3x slower.
  apt-get $o source --download-only libjpeg-turbo -qq && tar xzf libjpeg-turbo_*.orig.tar.gz
  cmake -S "$(ls -d libjpeg-turbo-*/ | head -1)" -B jpeg-build -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_POSITION_INDEPENDENT_CODE=ON -DENABLE_SHARED=OFF -DWITH_TURBOJPEG=OFF \
    -DCMAKE_INSTALL_PREFIX="$ROOT/gpu" -DCMAKE_INSTALL_LIBDIR="$ROOT/gpu/lib" >/dev/null
  # (libjpeg-turbo 2.1 takes a relative LIBDIR from the working folder, not the prefix: it put
  # libjpeg.a in the temporary folder, and the GPU build then could not link. Absolute, and
  # checked.)
  cmake --build jpeg-build >/dev/null && cmake --install jpeg-build >/dev/null
  have libjpeg.a || { echo "gpu_deps: libjpeg-turbo built but libjpeg.a is not in $ROOT/gpu/lib" >&2; exit 1; }
fi
if ! have libhdf5.a; then
  apt-get $o source --download-only hdf5 -qq && tar xzf hdf5_*.orig.tar.gz
  # HDF5's configure checks want their build folder inside the source tree.
  # (The glob names the extracted folder only: "hdf5-1.10*/b" matches nothing before mkdir.)
  src=$(ls -d hdf5-1.10*/ | head -1)
  mkdir -p "$src/b" && cd "$src/b"
  cmake .. -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_POSITION_INDEPENDENT_CODE=ON \
    -DBUILD_SHARED_LIBS=OFF -DBUILD_TESTING=OFF -DHDF5_BUILD_TOOLS=OFF -DHDF5_BUILD_EXAMPLES=OFF \
    -DHDF5_BUILD_HL_LIB=OFF -DHDF5_BUILD_CPP_LIB=OFF -DHDF5_BUILD_FORTRAN=OFF \
    -DHDF5_ENABLE_Z_LIB_SUPPORT=OFF -DHDF5_ENABLE_SZIP_SUPPORT=OFF -DCMAKE_INSTALL_PREFIX="$ROOT/gpu" >/dev/null
  ninja >/dev/null && ninja install >/dev/null
fi
echo "third_party/gpu: $(du -sh "$ROOT/gpu" | cut -f1)"
