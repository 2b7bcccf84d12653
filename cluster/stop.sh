#!/usr/bin/env bash
# Stops the local cluster started by cluster/start.sh: SIGTERM (graceful: each
# node leaves the cluster, finishes requests in flight, commits and syncs),
# then waits up to 10 s. cluster/ctl.sh stops a single node.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
for pidf in var/node*.pid; do
  [ -f "$pidf" ] || continue
  n=$(basename "$pidf" .pid)
  pid=$(cat "$pidf")
  if kill -TERM "$pid" 2>/dev/null; then
    kill -CONT "$pid" 2>/dev/null # a paused node (ctl.sh pause) must run to stop
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
