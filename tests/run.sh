#!/usr/bin/env bash
# Installs dependencies, builds, and runs the whole test suite (ctest).
#   tests/run.sh              gcc build in build/
#   tests/run.sh --sanitize   clang ASan+UBSan build in build-san/, plus a fuzz smoke run
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir=$("$root/cluster/build.sh" "$@")
cd "$dir"
ctest --output-on-failure -j"$(nproc)" --timeout 300
