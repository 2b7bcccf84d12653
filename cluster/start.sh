#!/usr/bin/env bash
# Starts the local three-node ringkv cluster from configs/node1.conf..node3.conf
# and waits until every node sees all three alive, then prints the members
# table. Installs dependencies and builds first when needed (set
# RINGKV_BUILD=DIR to use binaries already built in DIR instead). Nodes run in
# the background; their logs and pid files are in var/. Inspect and control
# single nodes with cluster/ctl.sh; stop them all with cluster/stop.sh.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ -n "${RINGKV_BUILD:-}" ]; then
  build=$RINGKV_BUILD
else
  build=$("$root/cluster/build.sh")
fi
export RINGKV_BUILD=$build
cd "$root"

addr_of() { sed -n 's/^[[:space:]]*listen[[:space:]]*=[[:space:]]*\([^[:space:];#]*\).*/\1/p' "configs/$1.conf"; }

# The nodes seed each other, so the order does not matter: each joins
# through whichever of the others is up, retrying with backoff meanwhile.
for n in node1 node2 node3; do
  cluster/ctl.sh start "$n"
done

# Membership converges within a second or two on loopback; 30 s is a bound,
# not an expectation.
alive_seen_by() { "$build/ringkv" --timeout 2000 -h "$(addr_of "$1")" members --json 2>/dev/null |
                    grep -o '"state":"alive"' | wc -l; }
# ...and on the ring: a fresh cluster's first node founds it, the others join.
ring_of() { "$build/ringkv" --timeout 2000 -h "$(addr_of "$1")" stats 2>/dev/null |
              awk '$1 == "ring_members" { print $2 }'; }
converged=
for _ in $(seq 300); do
  converged=yes
  for n in node1 node2 node3; do
    [ "$(alive_seen_by "$n")" -eq 3 ] && [ "$(ring_of "$n")" = 3 ] || { converged=; break; }
  done
  [ -n "$converged" ] && break
  sleep 0.1
done
echo
if [ -z "$converged" ]; then
  echo "the nodes did not all see each other alive and on the ring within 30 s; what each sees:" >&2
  cluster/ctl.sh status >&2
  exit 1
fi
echo "Every node sees all three alive and on the ring:"
"$build/ringkv" -h "$(addr_of node1)" status

cat <<MSG

The cluster is running. Try the CLI:
  $build/ringkv -h $(addr_of node1) put hello world
  $build/ringkv -h $(addr_of node1) get hello
  $build/ringkv -h $(addr_of node1) members      # or: members --json
  $build/ringkv -h $(addr_of node1) stats
  $build/ringkv -h $(addr_of node1)              # interactive prompt; type 'help'
Or any Redis client, on the RESP ports 6401..6403:
  redis-cli -p 6401 set hello world; redis-cli -p 6401 get hello
Play with failures:
  cluster/ctl.sh kill node3; cluster/ctl.sh status     # node3 becomes dead
  cluster/ctl.sh restart node3                          # alive, higher incarnation
  cluster/ctl.sh pause node2; cluster/ctl.sh resume node2
Stop it with: cluster/stop.sh
MSG
