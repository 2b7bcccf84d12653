#!/usr/bin/env bash
# Streaming speed on join and decommission, and what it does to foreground
# latency (issue 5's targets: streaming at 50 MB/s or more on loopback, with
# foreground p99 at most 2x its idle value meanwhile).
#
# Starts a private three-node cluster (N = 3, default [rebalance] settings:
# stream_rate 64 MiB/s), loads KEYS keys of VALUE bytes at `all`, then for
# each round: measures the p99 of a fixed-rate foreground load (open loop,
# 50% GETs / 50% PUTs at quorum) on the idle cluster; starts a fourth node,
# which joins by streaming its ranges in, measuring the same load while it
# streams and the join's rate (bytes streamed in / time until it is a
# member); then decommissions it (it streams its ranges back out) and wipes
# it. Prints one line per round and the medians.
#
#   bench/stream.sh [-k KEYS] [-v VALUE_BYTES] [-r ROUNDS] [-R OPS_PER_S] [-p BASE_PORT]
#                   [-c STREAM_CHUNK] [-s STREAM_RATE] [-m]
#     defaults: 300000 keys of 1024 bytes, 3 rounds, 2000 ops/s, base 27800,
#     and the node's [rebalance] defaults (stream_chunk 256KiB, stream_rate 64MiB)
#     -m  data dirs on /dev/shm (tmpfs): without the disk's writeback, which
#         on a small VM stalls an idle node for tens of ms and swamps the
#         figure this measures (streaming's cost on the event loops)
# Each round starts once no node is purging or running anti-entropy, so the
# idle figure is idle.
# Binaries from $RINGKV_BUILD, else build/ (built when needed).
set -uo pipefail
. "$(dirname "$0")/gossip-lib.sh"

keys=300000
vsize=1024
rounds=3
rate=2000
base=27800
chunk= srate= shm=
while getopts "k:v:r:R:p:c:s:mh" opt; do
  case "$opt" in
    k) keys=$OPTARG ;;
    v) vsize=$OPTARG ;;
    r) rounds=$OPTARG ;;
    R) rate=$OPTARG ;;
    p) base=$OPTARG ;;
    c) chunk=$OPTARG ;;
    s) srate=$OPTARG ;;
    m) shm=1 ;;
    *) sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done

gl_setup "$base" || exit 1
n4_pid=
cleanup() {
  [ -n "$n4_pid" ] && kill -KILL "$n4_pid" 2>/dev/null
  gl_cleanup
  [ -n "${shm_dir:-}" ] && rm -rf "$shm_dir"
}
trap cleanup EXIT

# node4: node3's config with its own ports, id and data dir.
n4_addr="127.0.0.1:$((base + 4))"
sed -e "s/^id = .*/id = node4/" -e "s/^listen = .*/listen = $n4_addr/" \
    -e "s/^resp = .*/resp = 127.0.0.1:$((base + 204))/" \
    -e "s/^peer = .*/peer = 127.0.0.1:$((base + 104))/" \
    -e "s|^data_dir = .*|data_dir = $gl_dir/node4|" "$gl_dir/node3.conf" >"$gl_dir/node4.conf"

shm_dir=
if [ -n "$shm" ]; then
  shm_dir=$(mktemp -d /dev/shm/ringkv-stream-XXXXXX)
  for i in 1 2 3 4; do
    sed -i "s|^data_dir = .*|data_dir = $shm_dir/node$i|" "$gl_dir/node$i.conf"
  done
fi
if [ -n "$chunk$srate" ]; then
  for i in 1 2 3 4; do
    { echo "[rebalance]"; [ -n "$chunk" ] && echo "stream_chunk = $chunk"
      [ -n "$srate" ] && echo "stream_rate = $srate"; } >>"$gl_dir/node$i.conf"
  done
fi
for i in 1 2 3; do gl_start "$i" || exit 1; done
gl_wait_converged 30 || { echo "the cluster did not converge within 30 s" >&2; exit 1; }

hosts="$(gl_addr 1),$(gl_addr 2),$(gl_addr 3)"
echo "loading $keys keys of $vsize bytes at consistency all..." >&2
"$gl_build/ringkv-bench" -h "$hosts" --consistency all --workload custom --read-ratio 0 \
    --keys "$keys" --value-size "$vsize" -c 16 -P 16 -n 1 --preload -q --json >/dev/null ||
  { echo "loading failed" >&2; exit 1; }

stat4() {
  "$gl_build/ringkv" --timeout 2000 -h "$n4_addr" stats 2>/dev/null |
    awk -v k="$1" '$1 == k { print $2 }'
}

# p99 (us) over both operations of a fixed-rate run of $1 seconds.
fg_p99() {
  "$gl_build/ringkv-bench" -h "$hosts" --consistency quorum --workload a --keys "$keys" \
      --value-size "$vsize" -c 8 --rate "$rate" --duration "$1" --json -q |
    tr -d ' \n' | grep -o '"p99_us":[0-9.]*' | cut -d: -f2 | sort -g | tail -1
}

median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

printf "%-6s %12s %12s %8s %14s %16s\n" round idle_p99_us join_p99_us ratio join_MB_per_s decom_MB_per_s
: >"$gl_dir/rounds"
# until no node is purging or comparing trees (60 s at most)
settle() {
  local i busy
  for _ in $(seq 600); do
    busy=
    for i in 1 2 3; do
      [ "$(gl_stat "$i" stream_activity)" = idle ] && [ "$(gl_stat "$i" ae_in_progress)" = 0 ] ||
        busy=1
    done
    [ -z "$busy" ] && return 0
    sleep 0.1
  done
}

for r in $(seq "$rounds"); do
  settle
  idle=$(fg_p99 3)
  rm -rf "$gl_dir/node4" "${shm_dir:-/nonexistent}/node4"
  log0=$(cat "$gl_dir/node4.log" 2>/dev/null | wc -l)
  t0=$(gl_now_ms)
  ("$gl_build/ringkvd" --config "$gl_dir/node4.conf" >>"$gl_dir/node4.log" 2>&1 </dev/null &
   echo $! >"$gl_dir/node4.pid")
  n4_pid=$(cat "$gl_dir/node4.pid")
  # the foreground load while node4 streams in (it starts once node4 answers)
  for _ in $(seq 200); do "$gl_build/ringkv" -h "$n4_addr" ping >/dev/null 2>&1 && break; sleep 0.02; done
  # Nothing else runs while the foreground load is measured (polling node4
  # with the CLI meanwhile would spawn 20 processes a second on the same
  # cores); the join's end is read from node4's log afterwards.
  fg_p99 2 >"$gl_dir/during"
  joined() { tail -n +"$((log0 + 1))" "$gl_dir/node4.log" | grep -m1 "is now a ring member"; }
  while ! joined >/dev/null; do
    [ $(($(gl_now_ms) - t0)) -gt 600000 ] && { echo "node4 did not join in 10 min" >&2; exit 1; }
    sleep 0.05
  done
  t1=$(date -d "$(joined | cut -d' ' -f1)" +%s%3N)
  during=$(cat "$gl_dir/during")
  bytes_in=$(stat4 stream_bytes_in)
  join_rate=$(awk -v b="$bytes_in" -v ms=$((t1 - t0)) 'BEGIN { printf "%.1f", b / 1e6 / (ms / 1000) }')
  # the decommission streams node4's ranges back out; it stops when done
  t2=$(gl_now_ms)
  "$gl_build/ringkv" -h "$n4_addr" decommission >/dev/null || { echo "decommission refused" >&2; exit 1; }
  out0=$(stat4 stream_bytes_out)
  last_out=$out0
  t3=$t2
  # until node4 stops; the rate counts up to its last byte streamed out (the
  # graceful leave that follows takes up to a second more)
  while kill -0 "$n4_pid" 2>/dev/null; do
    v=$(stat4 stream_bytes_out)
    if [ -n "$v" ] && [ "$v" != "$last_out" ]; then last_out=$v; t3=$(gl_now_ms); fi
    sleep 0.02
  done
  n4_pid=
  decom_rate=$(awk -v b=$((last_out - out0)) -v ms=$((t3 - t2)) 'BEGIN { printf "%.1f", b / 1e6 / (ms / 1000) }')
  ratio=$(awk -v a="$during" -v b="$idle" 'BEGIN { printf "%.2f", a / b }')
  printf "%-6s %12s %12s %8s %14s %16s\n" "$r" "$idle" "$during" "$ratio" "$join_rate" "$decom_rate"
  echo "$idle $during $ratio $join_rate $decom_rate" >>"$gl_dir/rounds"
  # wait until the three see the ring of three again before the next round
  for _ in $(seq 400); do
    [ "$(gl_stat 1 ring_members)" = 3 ] && [ "$(gl_stat 2 ring_members)" = 3 ] && break
    sleep 0.05
  done
done
printf "%-6s %12s %12s %8s %14s %16s\n" median \
  "$(cut -d' ' -f1 "$gl_dir/rounds" | median)" "$(cut -d' ' -f2 "$gl_dir/rounds" | median)" \
  "$(cut -d' ' -f3 "$gl_dir/rounds" | median)" "$(cut -d' ' -f4 "$gl_dir/rounds" | median)" \
  "$(cut -d' ' -f5 "$gl_dir/rounds" | median)"
echo "($keys keys of $vsize bytes, N = 3; foreground: $rate ops/s, 50% GET / 50% PUT at quorum;" \
     "rates are record bytes moved per second of wall time)"
