#!/usr/bin/env bash
# Median latency of a quorum write on a three-node cluster (N = 3, W = 2)
# against a write to a single node (N = 1), measured by the same client in
# one run (issue 4's target: the ratio at most 2x).
#
# Starts a private three-node cluster (configs/node*.conf with other ports
# and temporary data dirs, so a running local cluster is left alone) and a
# separate node without peers, then runs ringkv-bench with one connection,
# one request in flight, PUTs only, against node1 of the cluster and then
# against the single node, and prints both medians and their ratio.
#
#   bench/quorum-latency.sh [-d SECONDS] [-p BASE_PORT]
#     -d  seconds per measurement (default 5)
#     -p  client ports BASE+1..3, peer ports BASE+101..103, single node
#         BASE+10 (default 27600)
# Binaries from $RINGKV_BUILD, else build/ (built when needed).
set -uo pipefail
. "$(dirname "$0")/gossip-lib.sh"

secs=5
base=27600
while getopts "d:p:h" opt; do
  case "$opt" in
    d) secs=$OPTARG ;;
    p) base=$OPTARG ;;
    *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done

gl_setup "$base" || exit 1
single_pid=
cleanup() {
  [ -n "$single_pid" ] && kill -KILL "$single_pid" 2>/dev/null
  gl_cleanup
}
trap cleanup EXIT

for i in 1 2 3; do gl_start "$i" || exit 1; done
gl_wait_converged 30 || { echo "the cluster did not converge within 30 s" >&2; exit 1; }

single="127.0.0.1:$((base + 10))"
("$gl_build/ringkvd" --listen "$single" --data-dir "$gl_dir/single" >"$gl_dir/single.log" 2>&1 \
   </dev/null & echo $! >"$gl_dir/single.pid")
single_pid=$(cat "$gl_dir/single.pid")
for _ in $(seq 200); do
  "$gl_build/ringkv" -h "$single" ping >/dev/null 2>&1 && break
  sleep 0.05
done

# p50 of PUTs from ringkv-bench's JSON.
median_put() {
  "$gl_build/ringkv-bench" -h "$1" --consistency "$2" --workload custom --read-ratio 0 \
      -c 1 -P 1 --keys 10000 --duration "$secs" --json -q |
    tr -d ' \n' | sed -n 's/.*"PUT":{[^}]*"p50_us":\([0-9.]*\).*/\1/p'
}

echo "PUTs, 1 connection, 1 in flight, ${secs} s each (default fsync everysec)"
q=$(median_put "$(gl_addr 1)" quorum)
s=$(median_put "$single" one)
rep=$("$gl_build/ringkv" -h "$(gl_addr 2)" --json stats | tr -d ' \n' |
      sed -n 's/.*"replica_writes_applied":\([0-9]*\).*/\1/p')
if [ -z "$q" ] || [ -z "$s" ]; then
  echo "a measurement failed (quorum '$q', single '$s')" >&2
  exit 1
fi
printf 'quorum write (N=3, W=2) via node1: median %s us\n' "$q"
printf 'single-node write (N=1):          median %s us\n' "$s"
echo "node2 applied ${rep:-?} replica writes (the quorum writes did replicate)"
awk -v q="$q" -v s="$s" 'BEGIN { printf "ratio: %.2fx (target <= 2x)\n", q / s }'
