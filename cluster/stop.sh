#!/usr/bin/env bash
# Stops the local cluster started by cluster/start.sh: SIGTERM (graceful: the
# nodes finish requests in flight, commit and sync), then waits up to 10 s.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
for pidf in var/node*.pid; do
  [ -f "$pidf" ] || continue
  n=$(basename "$pidf" .pid)
  pid=$(cat "$pidf")
  if kill -TERM "$pid" 2>/dev/null; then
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "$n (pid $pid) did not stop within 10 s; sending SIGKILL" >&2
      kill -KILL "$pid"
    else
      echo "$n stopped"
    fi
  fi
  rm -f "$pidf"
done
