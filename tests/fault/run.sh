#!/usr/bin/env bash
# The fault suite: a three-node cluster (N=3, W=R=quorum), a workload that
# records every acknowledged write (fault-check run), a nemesis that faults
# one node at a time, then, once the cluster has settled, the lost-write
# checker (fault-check check). Exit 0 when no acknowledged write was lost.
#
#   tests/fault/run.sh [options]
#     --duration SECS      workload and faults (60)
#     --interval SECS      one fault every SECS (10)
#     --hold SECS          how long a fault lasts (3)
#     --faults LIST        fault types, in turn (kill,pause,partition,join)
#     --net auto|netns|loopback   where the nodes run (auto: netns if allowed)
#     --clients N --keys N --read-pct P    workload shape (4, 50, 50)
#     --rate OPS           offered load, operations per second (3000; 0: flat out)
#     --report-every SECS  throughput lines (10; 0: none)
#     --resources          sample RSS and descriptors of each node every 10 s
#     --self-test          no faults; the checker must catch a deliberate
#                          rollback of 10 keys (exit 0 when it does)
#     --build DIR          binaries (default: $RINGKV_BUILD, else build/)
#     --keep               keep the run's directory (logs, state) at the end
#     --seed N             random choices of the nemesis and workload (pid)
#
# Faults (one node at a time, chosen at random): kill = kill -9, then restart
# on the same data dir after --hold; pause = SIGSTOP, SIGCONT after --hold;
# partition = the node cut off from its two peers in both directions (drop
# rules inside its network namespace; the client still reaches it), healed
# after --hold; join = a fourth node (fresh data dir) joins the ring by
# streaming its ranges in, and after --hold is decommissioned: it hands them
# back and stops (in netns mode it runs in node N's namespace, on other
# ports). A new fault type is a pair of functions fault_TYPE_inject N and
# fault_TYPE_heal N below, and its name in --faults.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

duration=60 interval=10 hold=3 faults=kill,pause,partition,join net=auto
clients=4 keys=50 read_pct=50 rate=3000 report=10 resources=0 selftest=0 keep=0
build=${RINGKV_BUILD:-$root/build} seed=$$
while [ $# -gt 0 ]; do
  case "$1" in
    --duration) duration=$2; shift ;;
    --interval) interval=$2; shift ;;
    --hold) hold=$2; shift ;;
    --faults) faults=$2; shift ;;
    --net) net=$2; shift ;;
    --clients) clients=$2; shift ;;
    --keys) keys=$2; shift ;;
    --read-pct) read_pct=$2; shift ;;
    --rate) rate=$2; shift ;;
    --report-every) report=$2; shift ;;
    --resources) resources=1 ;;
    --self-test) selftest=1 ;;
    --build) build=$2; shift ;;
    --keep) keep=1 ;;
    --seed) seed=$2; shift ;;
    -h|--help) sed -n '2,28p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run.sh: unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
RANDOM=$seed
for b in ringkvd ringkv fault-check; do
  f=$build/$b
  [ -x "$f" ] || f=$build/tests/$b
  [ -x "$f" ] || { echo "run.sh: no $b in $build (build first: cluster/build.sh)" >&2; exit 2; }
  eval "bin_${b//-/_}=$f"
done

now() { date +%s; }
t0=$(now)
say() { echo "[fault $(printf '%4d' $(($(now) - t0)))s] $*"; }

dir=$(mktemp -d /tmp/ringkv-fault-XXXXXX)
set_id= pids=(0 0 0 0 0) paused=(0 0 0 0 0) cut=(0 0 0 0 0) kills=(0 0 0 0 0) load_pid= mon_pid=
declare -A count=()

# ---- where the nodes run ----
if [ "$net" = auto ]; then
  if why=$("$here/netns.sh" check 2>&1); then net=netns; else net=loopback; fi
fi
case "$net" in
  netns)
    if ! set_id=$("$here/netns.sh" up $$); then
      echo "run.sh: could not create the namespaces; running on loopback" >&2
      set_id= net=loopback why="creating them failed"
    fi
    ;;
esac
case "$net" in
  netns)
    for i in 1 2 3; do host[i]=198.18.$set_id.$i; cport[i]=7001; pport[i]=7101; done
    cport[4]=7004 pport[4]=7104 # node4 (join) shares a namespace, on its own ports
    mode="netns: three network namespaces joined by a bridge, nodes on 198.18.$set_id.1-3"
    ;;
  loopback)
    for _ in $(seq 20); do # ports that nothing listens on
      base=$((20000 + RANDOM % 20000))
      ports="$((base + 1))|$((base + 2))|$((base + 3))|$((base + 4))|$((base + 101))|$((base + 102))|$((base + 103))|$((base + 104))"
      ss -ltnuH 2>/dev/null | grep -qE ":($ports) " || break
    done
    for i in 1 2 3 4; do host[i]=127.0.0.1; cport[i]=$((base + i)); pport[i]=$((base + 100 + i)); done
    mode="loopback: nodes on 127.0.0.1 ports $((base + 1))-$((base + 3))"
    if [[ ",$faults," == *,partition,* ]]; then
      faults=$(echo ",$faults," | sed 's/,partition,/,/g; s/^,//; s/,$//')
      mode="$mode; partitions skipped (they need network namespaces: ${why:---net loopback was asked for})"
    fi
    ;;
  *) echo "run.sh: --net must be auto, netns or loopback" >&2; exit 2 ;;
esac
[ "$selftest" = 1 ] && faults=
IFS=, read -r -a fault_types <<<"$faults"
addrs="${host[1]}:${cport[1]},${host[2]}:${cport[2]},${host[3]}:${cport[3]}"
say "mode: $mode"
say "run directory: $dir"

# ---- nodes ----
# Is pid running (a zombie, waiting for init to reap it, is not)?
running() {
  local st
  st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

write_conf() {
  local i=$1
  cat >"$dir/node$i.conf" <<EOF
[node]
id = f$i
listen = ${host[i]}:${cport[i]}
peer = ${host[i]}:${pport[i]}
seeds = ${host[1]}:${pport[1]}, ${host[2]}:${pport[2]}, ${host[3]}:${pport[3]}
data_dir = $dir/node$i
fsync = everysec
log_level = info
[gossip]
probe_interval = 200ms
probe_timeout = 100ms
suspicion_mult = 2
suspicion_max_mult = 3
gossip_interval = 50ms
pushpull_interval = 5s
[replication]
n = 3
r = 2
w = 2
request_timeout = 1s
[rebalance]
anti_entropy_interval = 2s
EOF
}

cli() { "$bin_ringkv" --timeout 1000 -h "${host[$1]}:${cport[$1]}" "${@:2}"; }

start_node() {
  local i=$1 ns=${2:-$1}
  local cmd=("$bin_ringkvd" --config "$dir/node$i.conf")
  [ "$net" = netns ] && cmd=(ip netns exec "rkvf$set_id-$ns" "${cmd[@]}")
  # A simple command in the background, so $! is ringkvd itself (ip netns
  # exec execs it); in a subshell, so the node is not this shell's job.
  ("${cmd[@]}" >>"$dir/node$i.log" 2>&1 </dev/null &
   echo $! >"$dir/node$i.pid")
  pids[i]=$(cat "$dir/node$i.pid")
  for _ in $(seq 300); do
    cli "$i" ping >/dev/null 2>&1 && return 0
    running "${pids[i]}" || break
    sleep 0.1
  done
  say "node$i did not start; its log ends with:"
  tail -n 20 "$dir/node$i.log" >&2
  return 1
}

# Every node sees all three alive.
# Every node sees three alive members, all three on the ring (a fresh
# cluster's first node founds the ring and the others join it by streaming).
converged() {
  local i
  for i in 1 2 3; do
    [ "$(cli "$i" members --json 2>/dev/null | grep -o '"state":"alive"' | wc -l)" -eq 3 ] || return 1
    [ "$(stat_of "$i" ring_members)" = 3 ] && [ "$(stat_of "$i" ring_pending_members)" = 0 ] || return 1
  done
}

stat_of() { cli "$1" stats 2>/dev/null | awk -v k="$2" '$1 == k { print $2 }'; }

wait_converged() { # SECS
  local deadline=$(($(now) + $1))
  while [ "$(now)" -lt "$deadline" ]; do converged && return 0; sleep 0.2; done
  return 1
}

# A node process that died without being killed here is a crash.
crashes=0
check_alive() {
  local i
  for i in 1 2 3; do
    if [ "${pids[i]}" != 0 ] && ! running "${pids[i]}"; then
      say "CRASH: node$i (pid ${pids[i]}) died on its own; its log ends with:"
      tail -n 20 "$dir/node$i.log"
      crashes=$((crashes + 1))
      pids[i]=0
      start_node "$i" || true
    fi
  done
}

# ---- faults: fault_TYPE_inject N / fault_TYPE_heal N ----
fault_kill_inject() {
  kill -KILL "${pids[$1]}"; wait_gone "${pids[$1]}"; pids[$1]=0; kills[$1]=$((kills[$1] + 1))
}
fault_kill_heal() { start_node "$1"; }
fault_pause_inject() { kill -STOP "${pids[$1]}"; paused[$1]=1; }
fault_pause_heal() { kill -CONT "${pids[$1]}"; paused[$1]=0; }
fault_partition_inject() { "$here/netns.sh" cut "$set_id" "$1"; cut[$1]=1; }
fault_partition_heal() { "$here/netns.sh" heal "$set_id" "$1"; cut[$1]=0; }
# join: node4 joins (in node N's namespace under netns), and is a ring
# member before the hold starts; heal: it is decommissioned and stops.
fault_join_inject() {
  [ "$net" = netns ] && host[4]=${host[$1]}
  write_conf 4
  rm -rf "$dir/node4"
  start_node 4 "$1" || return 1
  local deadline=$(($(now) + 60))
  until [ "$(stat_of 4 ring_role)" = member ] && [ "$(stat_of 1 ring_members)" = 4 ]; do
    [ "$(now)" -lt "$deadline" ] || { say "node4 did not finish joining within 60 s"; return 1; }
    sleep 0.1
  done
  say "node4 joined: $(stat_of 4 stream_records_in) records streamed in"
}
fault_join_heal() {
  local deadline=$(($(now) + 60))
  until cli 4 decommission >/dev/null 2>&1; do # refused while another change is under way
    [ "$(now)" -lt "$deadline" ] || { say "node4 could not be decommissioned"; return 1; }
    sleep 0.2
  done
  while running "${pids[4]}"; do
    [ "$(now)" -lt "$deadline" ] || { say "node4 did not stop within 60 s of its decommission"; return 1; }
    sleep 0.1
  done
  pids[4]=0
}

wait_gone() { for _ in $(seq 100); do running "$1" || return 0; sleep 0.05; done; }

heal_all() {
  local i
  for i in 1 2 3; do
    [ "${paused[i]}" = 1 ] && fault_pause_heal "$i"
    [ "${cut[i]}" = 1 ] && fault_partition_heal "$i"
  done
}

# ---- resources: RSS and descriptors per node ----
# "RSS ANON FDS" of node I (KiB, KiB, count), "- - -" when it is not running.
# RSS includes the LMDB map pages the node touched (file-backed, reclaimable);
# ANON (RssAnon) is its heap and stacks, where a leak would show.
node_res() {
  local p
  p=$(cat "$dir/node$1.pid" 2>/dev/null)
  if [ -n "$p" ] && running "$p"; then
    echo "$(awk '/^VmRSS:/ { r = $2 } /^RssAnon:/ { a = $2 } END { print r, a }' "/proc/$p/status") $(ls "/proc/$p/fd" 2>/dev/null | wc -l)"
  else
    echo "- - -"
  fi
}

monitor() { # every 10 s a line: seconds, then RSS ANON FDS of each node
  local line
  echo "[resources] t(s) then RSS(KiB) anonRSS(KiB) fds for node1, node2, node3"
  while :; do
    line="$(($(now) - t0)) $(node_res 1) $(node_res 2) $(node_res 3)"
    echo "$line" >>"$dir/resources.txt"
    echo "[resources] $line"
    sleep 10
  done
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  [ -n "${watchdog:-}" ] && kill "$watchdog" 2>/dev/null
  if [ -n "$load_pid" ]; then # gone before the namespaces go
    kill "$load_pid" 2>/dev/null
    wait_gone "$load_pid"
    kill -KILL "$load_pid" 2>/dev/null
  fi
  [ -n "$mon_pid" ] && kill "$mon_pid" 2>/dev/null
  heal_all 2>/dev/null
  local i
  for i in 1 2 3 4; do
    [ "${pids[i]}" != 0 ] && kill -KILL "${pids[i]}" 2>/dev/null
  done
  for i in 1 2 3 4; do [ "${pids[i]}" != 0 ] && wait_gone "${pids[i]}"; done
  [ -n "$set_id" ] && "$here/netns.sh" down "$set_id"
  if [ "$keep" = 1 ] || [ $rc -ne 0 ]; then
    echo "run.sh: exit $rc; logs and state kept in $dir"
  else
    rm -rf "$dir"
  fi
  exit $rc
}
trap cleanup EXIT
trap 'say "interrupted"; exit 130' INT TERM
# A watchdog: however a run goes wrong, it ends (and cleans up) by itself
# well within ctest's timeout.
limit=$((duration + 150))
(trap 'kill $sp 2>/dev/null; exit 0' TERM
 sleep "$limit" & sp=$!
 wait $sp && say "WATCHDOG: still running after $limit s; stopping" && kill -TERM $$) &
watchdog=$!

# ---- the run ----
for i in 1 2 3; do write_conf "$i"; done
for i in 1 2 3; do start_node "$i" || exit 2; done
wait_converged 30 || { say "the cluster did not converge within 30 s"; exit 2; }
say "cluster up: $addrs (N=3, W=R=quorum)"
if [ "$resources" = 1 ]; then
  for i in 1 2 3; do res_start[i]=$(node_res "$i"); done
  monitor & mon_pid=$!
fi

[ "$selftest" = 1 ] && duration=5
"$bin_fault_check" run --addrs "$addrs" --state "$dir/state" --duration "$duration" \
  --clients "$clients" --keys "$keys" --read-pct "$read_pct" --report-every "$report" --rate "$rate" \
  --seed "$seed" > >(sed -u "s/^/[load] /") &
load_pid=$!

end=$(($(now) + duration))
k=0
while [ ${#fault_types[@]} -gt 0 ] && [ $(($(now) + hold)) -lt "$end" ]; do
  tick=$(($(now) + interval))
  type=${fault_types[k % ${#fault_types[@]}]}
  node=$((RANDOM % 3 + 1))
  check_alive
  say "inject $type on node$node"
  "fault_${type}_inject" "$node" || say "could not inject $type on node$node"
  sleep "$hold"
  "fault_${type}_heal" "$node" || say "could not heal $type on node$node"
  say "healed $type on node$node"
  count[$type]=$((${count[$type]:-0} + 1))
  k=$((k + 1))
  # One node faulted at a time: the next fault waits until all are back.
  wait_converged 20 || say "not converged 20 s after healing node$node"
  while [ "$(now)" -lt "$tick" ] && [ "$(now)" -lt "$end" ]; do sleep 0.5; done
done
wait "$load_pid"
load_rc=$?
load_pid=
heal_all
check_alive
[ $load_rc -eq 0 ] || { say "the workload failed (exit $load_rc)"; exit 2; }

# ---- settle: all alive everywhere, no hint pending anywhere, and one
# anti-entropy comparison finished on every node since the faults ----
say "settling: waiting for all members alive, hints_pending 0 and an anti-entropy round on every node"
ae=1
for i in 1 2 3; do
  ae0[i]=$(stat_of "$i" ae_ranges_compared)
  [ -n "${ae0[i]}" ] || ae=0
done
[ $ae = 1 ] || say "these nodes have no anti-entropy (no ae_ranges_compared in STATS); not waiting for it"
settled=0 deadline=$(($(now) + 60))
while [ "$(now)" -lt "$deadline" ]; do
  if converged; then
    pending=0
    for i in 1 2 3; do
      h=$(stat_of "$i" hints_pending)
      pending=$((pending + ${h:-1}))
      if [ $ae = 1 ]; then
        c=$(stat_of "$i" ae_ranges_compared)
        [ "${c:-0}" -gt "${ae0[i]}" ] || pending=$((pending + 1))
      fi
    done
    [ "$pending" -eq 0 ] && { settled=1; break; }
  fi
  sleep 0.5
done
if [ $settled = 1 ]; then say "settled"; else say "NOT SETTLED after 60 s (checking anyway)"; fi

summary=
for t in "${fault_types[@]}"; do summary="$summary $t=${count[$t]:-0}"; done
summary=${summary# }
sabotage=()
[ "$selftest" = 1 ] && sabotage=(--sabotage 10)
"$bin_fault_check" check --addrs "$addrs" --state "$dir/state" --faults "${summary:-none}" \
  --mode "$mode" "${sabotage[@]}" | tee "$dir/check.txt"
check_rc=${PIPESTATUS[0]}

if [ "$resources" = 1 ]; then
  kill "$mon_pid" 2>/dev/null; mon_pid=
  echo
  echo "| node | RSS start -> end (peak) | anon RSS start -> end (peak) | descriptors start -> end | restarts (kill -9) |"
  echo "| --- | --- | --- | --- | --- |"
  for i in 1 2 3; do
    s=(${res_start[i]}) e=($(node_res "$i"))
    c=$((2 + (i - 1) * 3))
    peak=($(awk -v c=$c '$c != "-" && $c > r { r = $c } $(c+1) != "-" && $(c+1) > a { a = $(c+1) }
                         END { print r + 0, a + 0 }' "$dir/resources.txt"))
    echo "| node$i | ${s[0]} -> ${e[0]} KiB (${peak[0]}) | ${s[1]} -> ${e[1]} KiB (${peak[1]}) | ${s[2]} -> ${e[2]} | ${kills[i]} |"
  done
  echo "(start: cluster up, before the load; end: after settling; peak: of the samples every 10 s in resources.txt)"
fi

for i in 1 2 3; do
  if grep -qE "AddressSanitizer|runtime error:|LeakSanitizer" "$dir/node$i.log"; then
    say "SANITIZER REPORT in node$i's log"
    crashes=$((crashes + 1))
  fi
done
[ $crashes -eq 0 ] || say "$crashes node crash(es) or sanitizer reports"
[ $settled = 1 ] || say "the cluster did not settle (hints pending or members not alive)"

if [ "$selftest" = 1 ]; then
  if [ $check_rc -eq 1 ] && grep -q "the checker caught the rollback" "$dir/check.txt"; then
    say "self-test passed: the checker reported the rolled-back writes as lost"
    exit 0
  fi
  say "self-test FAILED: the checker did not report the rollback (exit $check_rc)"
  exit 1
fi
[ $check_rc -eq 0 ] && [ $crashes -eq 0 ] && [ $settled = 1 ] && { say "PASS"; exit 0; }
say "FAIL"
exit 1
