#!/usr/bin/env bash
# @brief One set-up for everything: installs the missing Debian packages, configures and builds.
# Usage: scripts/setup.sh [--no-gui] [--build-dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."

BUILD_DIR=build
GUI=ON
while [[ $# -gt 0 ]]; do
  case "$1" in
    --no-gui) GUI=OFF ;;
    --build-dir) BUILD_DIR="$2"; shift ;;
    *) echo "setup.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done

PACKAGES=(build-essential cmake ninja-build ccache pkg-config
  qt6-base-dev qt6-svg-dev libqcustomplot-dev libgl-dev libxkbcommon-dev
  libtorch-dev libopenblas0-openmp libopencv-dev libjpeg-dev libhdf5-dev hdf5-tools
  nlohmann-json3-dev libcli11-dev zlib1g-dev libgloo-dev dataset-fashion-mnist xvfb xauth)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [[ $(id -u) -ne 0 ]] && SUDO=sudo
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# ccache and precompiled headers need these to share hits between builds.
export CCACHE_SLOPPINESS=pch_defines,time_macros,include_file_mtime,include_file_ctime
export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
export CCACHE_MAXSIZE="${CCACHE_MAXSIZE:-5G}"
JOBS=$(nproc)
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DMST_BUILD_GUI="$GUI"
cmake --build "$BUILD_DIR" -j "$JOBS"
