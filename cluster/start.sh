#!/usr/bin/env bash
# Starts the local three-node ringkv cluster from configs/node1.conf..node3.conf.
# Installs dependencies and builds first when needed. Nodes run in the
# background; their logs and pid files are in var/. Stop them with
# cluster/stop.sh. (Until the membership work lands, the three nodes run
# side by side without knowing each other.)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$("$root/cluster/build.sh")
cd "$root"
mkdir -p var

addr_of() { sed -n 's/^[[:space:]]*listen[[:space:]]*=[[:space:]]*\([^[:space:];#]*\).*/\1/p' "configs/$1.conf"; }

for n in node1 node2 node3; do
  pidf=var/$n.pid
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    echo "$n already running (pid $(cat "$pidf"))"
    continue
  fi
  nohup "$build/ringkvd" --config "configs/$n.conf" >>"var/$n.log" 2>&1 </dev/null &
  echo $! >"$pidf"
done

for n in node1 node2 node3; do
  addr=$(addr_of "$n")
  for _ in $(seq 100); do
    "$build/ringkv" -h "$addr" ping >/dev/null 2>&1 && break
    if ! kill -0 "$(cat "var/$n.pid")" 2>/dev/null; then
      echo "$n failed to start; its log (var/$n.log) ends with:" >&2
      tail -n 20 "var/$n.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  "$build/ringkv" -h "$addr" ping >/dev/null || { echo "$n does not answer on $addr" >&2; exit 1; }
  echo "$n up on $addr (pid $(cat "var/$n.pid"), log var/$n.log)"
done

cat <<MSG

The cluster is running. Try the CLI:
  $build/ringkv -h $(addr_of node1) put hello world
  $build/ringkv -h $(addr_of node1) get hello
  $build/ringkv -h $(addr_of node1) stats
  $build/ringkv -h $(addr_of node1)            # interactive prompt; type 'help'
Stop it with: cluster/stop.sh
MSG
