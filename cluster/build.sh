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
# The build's output goes to a log; on failure its end is shown.
log="$root/$dir.log"
echo "building ringkv in $dir/ (log: $dir.log)" >&2
if ! { cmake -S "$root" -B "$root/$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "${args[@]}" &&
       cmake --build "$root/$dir" -j"$(nproc)"; } >"$log" 2>&1; then
  echo "build failed; the end of $log:" >&2
  tail -n 40 "$log" >&2
  exit 1
fi
echo "$root/$dir"
