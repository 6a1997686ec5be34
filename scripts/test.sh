#!/usr/bin/env bash
# @brief The README's test command: set up (install + build), then run every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh "$@"
export QT_QPA_PLATFORM=offscreen
ctest --test-dir build --output-on-failure --timeout 1200
