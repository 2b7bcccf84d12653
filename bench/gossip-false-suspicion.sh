#!/usr/bin/env bash
# False suspicions under CPU load (issue 3's target: none in a 5-minute run
# of three nodes while a load generator keeps both cores busy).
#
# Runs a private three-node cluster with the default gossip settings (other
# ports and temporary data dirs, so a running local cluster is left alone),
# starts one busy loop per CPU core, and after the run reports from each node
# the suspicions it raised (STATS gossip_suspicions), its refutations, and
# the suspect/dead events it logged. No node fails during the run, so every
# suspicion is a false one.
#
#   bench/gossip-false-suspicion.sh [-d SECONDS] [-p BASE_PORT] [-j LOOPS]
#     -d  how long to keep the cores busy (default 300)
#     -p  client ports BASE+1..3, peer ports BASE+101..103 (default 27600)
#     -j  busy loops (default: the number of cores)
# Binaries from $RINGKV_BUILD, else build/ (built when needed).
set -uo pipefail
. "$(dirname "$0")/gossip-lib.sh"

duration=300
base=27600
loops=$(nproc)
while getopts "d:p:j:h" opt; do
  case "$opt" in
    d) duration=$OPTARG ;;
    p) base=$OPTARG ;;
    j) loops=$OPTARG ;;
    *) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 2 ;;
  esac
done

gl_setup "$base" || exit 1
for i in 1 2 3; do gl_start "$i" || exit 1; done
gl_wait_converged 30 || { echo "the cluster did not converge within 30 s" >&2; exit 1; }

declare -A sus0 ref0 lines0
for i in 1 2 3; do
  sus0[$i]=$(gl_stat "$i" gossip_suspicions)
  ref0[$i]=$(gl_stat "$i" gossip_refutations)
  lines0[$i]=$(wc -l <"$gl_dir/node$i.log")
done

gl_load_pids=
for _ in $(seq "$loops"); do
  (exec sh -c 'while :; do :; done') &
  gl_load_pids="$gl_load_pids $!"
done
echo "3 nodes up (default gossip settings); $loops busy loops on $(nproc) cores for $duration s"
start=$(gl_now_ms)
while :; do
  left=$((duration - ($(gl_now_ms) - start) / 1000))
  [ "$left" -le 0 ] && break
  sleep $((left < 60 ? left : 60))
  total=0
  for i in 1 2 3; do total=$((total + $(gl_stat "$i" gossip_suspicions) - sus0[$i])); done
  echo "  $(( ($(gl_now_ms) - start) / 1000 )) s: $total suspicion(s) so far"
done
kill $gl_load_pids 2>/dev/null
wait $gl_load_pids 2>/dev/null
gl_load_pids=

sus_total=0 ref_total=0 ev_total=0
for i in 1 2 3; do
  s=$(($(gl_stat "$i" gossip_suspicions) - sus0[$i]))
  r=$(($(gl_stat "$i" gossip_refutations) - ref0[$i]))
  ev=$(tail -n +"$((lines0[$i] + 1))" "$gl_dir/node$i.log" | grep -cE 'is now (suspect|dead)')
  aw=$(gl_stat "$i" gossip_awareness)
  probes=$(gl_stat "$i" gossip_probes)
  echo "node$i: suspicions raised $s, refutations $r, suspect/dead events logged $ev," \
       "probes $probes, awareness now $aw"
  tail -n +"$((lines0[$i] + 1))" "$gl_dir/node$i.log" | grep -E 'is now (suspect|dead)' | sed 's/^/    /'
  sus_total=$((sus_total + s)) ref_total=$((ref_total + r)) ev_total=$((ev_total + ev))
done
echo "false suspicions in $duration s under load: $sus_total" \
     "(refutations $ref_total, suspect/dead events $ev_total); target 0: $([ "$sus_total" -eq 0 ] && [ "$ev_total" -eq 0 ] && echo met || echo MISSED)"
gl_stop_all
