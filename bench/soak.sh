#!/usr/bin/env bash
# Soak: the fault suite's workload (mixed reads and writes at quorum, every
# acknowledged write recorded) against a three-node cluster for a long run,
# with a fault every 30 s (kill -9, pause, partition, join + decommission in
# turn, one node at a time), then the lost-write checker. Reports throughput per 10 s, the
# faults, lost writes, and per node the RSS and open descriptors at start and
# end (peak from samples every 10 s), so a leak shows as a trend.
#
#   bench/soak.sh [--duration 10m] [--rate OPS] [--interval SECS] [--out FILE]
#                 [any other tests/fault/run.sh option, e.g. --net loopback]
#
# --duration takes s, m or h (default 10m); --rate is the offered load in
# operations per second (default 5000); the whole output also goes to --out
# (default /tmp/ringkv-soak-DATE.txt). Exit status as run.sh: 0 when no
# acknowledged write was lost, no node crashed and the cluster settled.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

duration=10m rate=5000 interval=30 out=/tmp/ringkv-soak-$(date -u +%Y%m%dT%H%M%SZ).txt
pass=()
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift ;;
    --rate) rate=$2; shift ;;
    --interval) interval=$2; shift ;;
    --out) out=$2; shift ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) pass+=("$1") ;;
  esac
  shift
done
case "$duration" in
  *h) secs=$((${duration%h} * 3600)) ;;
  *m) secs=$((${duration%m} * 60)) ;;
  *s) secs=${duration%s} ;;
  *) secs=$duration ;;
esac
[[ "$secs" =~ ^[0-9]+$ ]] && [ "$secs" -ge 30 ] || { echo "soak.sh: --duration of at least 30s" >&2; exit 2; }

if [ -z "${RINGKV_BUILD:-}" ]; then
  RINGKV_BUILD=$("$root/cluster/build.sh") || exit 2
  export RINGKV_BUILD
fi

{
  echo "soak: $(date -u +%Y-%m-%dT%H:%M:%SZ), $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo), $(uname -sr)"
  echo "soak: ${secs} s, a fault every ${interval} s, offered load ${rate} ops/s"
} | tee "$out"
"$root/tests/fault/run.sh" --duration "$secs" --interval "$interval" --hold 5 --rate "$rate" \
  --report-every 10 --resources "${pass[@]}" 2>&1 | tee -a "$out"
rc=${PIPESTATUS[0]}
echo "soak: tests/fault/run.sh exited with $rc" | tee -a "$out"

# Throughput over time, with the faults injected in each 10 s.
table=$(awk '
  /^\[fault/ && / inject / { t = $2; sub(/s\]/, "", t); b = int((t + 9) / 10) * 10; if (b < 10) b = 10; ev[b] = ev[b] " " $4 "@" $6 }
  /progress t=/ {
    for (i = 1; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
    t = v["t"]; sub(/s/, "", t); row[++n] = t; ops[t] = v["ops/s"]; ack[t] = v["acked/s"]; fail[t] = v["failed"]
  }
  END {
    print "| t (s) | ops/s | acknowledged writes/s | failed requests | faults injected |"
    print "| --- | --- | --- | --- | --- |"
    for (i = 1; i <= n; i++) { t = row[i]; printf "| %s | %s | %s | %s |%s |\n", t, ops[t], ack[t], fail[t], ev[t] }
  }' "$out")
printf '\nthroughput every 10 s:\n%s\n\nsoak: full output in %s\n' "$table" "$out" | tee -a "$out"
exit "$rc"
