#!/usr/bin/env bash
# How membership scales past what one machine can run: the gossip simulator
# (tests/sim/gossip_sim.c, the real state machine on a simulated network with
# 0.2-2 ms latency) for N = 10, 100, 1000 at 0% and 1% packet loss, default
# gossip settings, 300 s of simulated time after the cluster converged. Prints
# the markdown table the README shows.
#
#   bench/gossip-sim.sh [-s SEED] [-d SECONDS] [-n "N1 N2 ..."]
# Binary from $RINGKV_BUILD, else build/ (built when needed). N = 10000 needs
# about 70 GB (every node holds a record of every other): pass it with -n on a
# machine that has the memory.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)

seed=1
duration=300
sizes="10 100 1000"
while getopts "s:d:n:h" opt; do
  case $opt in
    s) seed=$OPTARG ;;
    d) duration=$OPTARG ;;
    n) sizes=$OPTARG ;;
    *) sed -n '2,11p' "$0" >&2; exit 2 ;;
  esac
done

build=${RINGKV_BUILD:-}
if [ -z "$build" ]; then
  build=$("$root/cluster/build.sh")
fi
sim=$build/tests/gossip-sim
if [ ! -x "$sim" ]; then
  echo "no $sim: build the gossip-sim target" >&2
  exit 1
fi

echo "| nodes | loss | converged (s) | join known by all (s) | crash known by all (s) | false suspicions | false deaths | UDP B/s/node | push-pull B/s/node | total B/s/node | wall (s) |"
echo "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for n in $sizes; do
  for loss in 0 1; do
    "$sim" --nodes "$n" --loss "$loss" --seed "$seed" --duration "$duration"
  done
done
