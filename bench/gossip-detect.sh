#!/usr/bin/env bash
# How long until a crashed node is reported dead by every other node, with the
# default gossip settings (issue 3's target: median of 10 trials <= 5 s).
#
# Runs a private three-node cluster (configs/node*.conf with other ports and
# temporary data dirs, so a running local cluster is left alone). Each trial
# kills a random node with kill -9, polls `ringkv members --json` on the two
# others every 50 ms until both say "dead", prints the time, restarts the node
# and waits until all three see each other alive again.
#
#   bench/gossip-detect.sh [-n TRIALS] [-p BASE_PORT]
#     -n  trials (default 10)
#     -p  client ports BASE+1..3, peer ports BASE+101..103 (default 27400)
# Binaries from $RINGKV_BUILD, else build/ (built when needed).
set -uo pipefail
. "$(dirname "$0")/gossip-lib.sh"

trials=10
base=27400
while getopts "n:p:h" opt; do
  case "$opt" in
    n) trials=$OPTARG ;;
    p) base=$OPTARG ;;
    *) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done

gl_setup "$base" || exit 1
for i in 1 2 3; do gl_start "$i" || exit 1; done
gl_wait_converged 30 || { echo "the cluster did not converge within 30 s" >&2; exit 1; }
echo "3 nodes up (default gossip settings); $trials trials of kill -9 -> dead at both others"

times=()
for t in $(seq "$trials"); do
  victim=$((RANDOM % 3 + 1))
  others=()
  for i in 1 2 3; do [ "$i" -ne "$victim" ] && others+=("$i"); done
  t0=$(gl_now_ms)
  gl_kill "$victim"
  declare -A seen=()
  deadline=$((t0 + 60000))
  while [ "${#seen[@]}" -lt 2 ] && [ "$(gl_now_ms)" -lt "$deadline" ]; do
    for o in "${others[@]}"; do
      [ -n "${seen[$o]:-}" ] && continue
      [ "$(gl_state "$o" "node$victim")" = dead ] && seen[$o]=$(($(gl_now_ms) - t0))
    done
    sleep 0.05
  done
  if [ "${#seen[@]}" -lt 2 ]; then
    echo "trial $t: node$victim not reported dead by both others within 60 s" >&2
    exit 1
  fi
  a=${seen[${others[0]}]} b=${seen[${others[1]}]}
  last=$((a > b ? a : b))
  unset seen
  times+=("$last")
  printf 'trial %2d: kill -9 node%d: dead at every other node after %d.%03d s (node%d %d ms, node%d %d ms)\n' \
    "$t" "$victim" $((last / 1000)) $((last % 1000)) "${others[0]}" "$a" "${others[1]}" "$b"
  gl_start "$victim" || exit 1
  gl_wait_converged 60 || { echo "trial $t: no convergence after restart" >&2; exit 1; }
done

sorted=($(printf '%s\n' "${times[@]}" | sort -n))
n=${#sorted[@]}
if [ $((n % 2)) -eq 1 ]; then
  median=${sorted[$((n / 2))]}
else
  median=$(( (sorted[n / 2 - 1] + sorted[n / 2]) / 2 ))
fi
printf 'median of %d trials: %d.%03d s (min %d.%03d s, max %d.%03d s); target <= 5 s: %s\n' \
  "$n" $((median / 1000)) $((median % 1000)) $((sorted[0] / 1000)) $((sorted[0] % 1000)) \
  $((sorted[n - 1] / 1000)) $((sorted[n - 1] % 1000)) "$([ "$median" -le 5000 ] && echo met || echo MISSED)"
gl_stop_all
