#!/usr/bin/env bash
# Installs the dependencies and builds ringkv.
#   cluster/build.sh              -> build/      (gcc, RelWithDebInfo)
#   cluster/build.sh --sanitize   -> build-san/  (clang, ASan + UBSan, fuzz targets)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/cluster/deps.sh"

dir=build; args=()
if [ "${1:-}" = "--sanitize" ]; then
  dir=build-san
  args=(-DRINGKV_SANITIZE=ON -DCMAKE_C_COMPILER=clang)
fi
cmake -S "$root" -B "$root/$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${args[@]}" >/dev/null
cmake --build "$root/$dir" -j"$(nproc)" >&2
echo "$root/$dir"
