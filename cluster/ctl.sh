#!/usr/bin/env bash
# Inspects and controls single nodes of the local cluster started by
# cluster/start.sh (configs/node1.conf..node3.conf; pid files and logs in var/).
#
#   cluster/ctl.sh status           members table as each node sees it
#   cluster/ctl.sh start NODE       start one node (if it is not running)
#   cluster/ctl.sh stop NODE        SIGTERM: leave the cluster, finish, exit
#   cluster/ctl.sh kill NODE        SIGKILL: a crash (the others declare it dead)
#   cluster/ctl.sh pause NODE       SIGSTOP: frozen (suspected, then dead)
#   cluster/ctl.sh resume NODE      SIGCONT: it refutes and is alive again
#   cluster/ctl.sh restart NODE     stop (if running), then start
#
# NODE is node1, node2, node3 (or 1, 2, 3). Binaries come from build/, or from
# $RINGKV_BUILD when set.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
build=${RINGKV_BUILD:-$root/build}
nodes=(node1 node2 node3)

usage() {
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

die() { echo "ctl.sh: $*" >&2; exit 1; }

node_name() {
  case "$1" in
    node[123]) echo "$1" ;;
    [123]) echo "node$1" ;;
    *) die "unknown node '$1' (use node1, node2 or node3)" ;;
  esac
}

addr_of() {
  sed -n 's/^[[:space:]]*listen[[:space:]]*=[[:space:]]*\([^[:space:];#]*\).*/\1/p' "configs/$1.conf"
}

pid_of() {
  local f=var/$1.pid
  [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null && cat "$f"
}

need_pid() {
  pid_of "$1" || die "$1 is not running (start it with: cluster/ctl.sh start $1)"
}

start_node() {
  local n=$1 pid addr
  [ -x "$build/ringkvd" ] || die "no $build/ringkvd: run cluster/start.sh first"
  if pid=$(pid_of "$n"); then
    echo "$n already running (pid $pid)"
    return 0
  fi
  mkdir -p var
  nohup "$build/ringkvd" --config "configs/$n.conf" >>"var/$n.log" 2>&1 </dev/null &
  echo $! >"var/$n.pid"
  addr=$(addr_of "$n")
  for _ in $(seq 100); do
    "$build/ringkv" -h "$addr" ping >/dev/null 2>&1 && break
    if ! kill -0 "$(cat "var/$n.pid")" 2>/dev/null; then
      echo "$n failed to start; its log (var/$n.log) ends with:" >&2
      tail -n 20 "var/$n.log" >&2
      rm -f "var/$n.pid"
      return 1
    fi
    sleep 0.1
  done
  "$build/ringkv" -h "$addr" ping >/dev/null || die "$n does not answer on $addr"
  echo "$n up on $addr (pid $(cat "var/$n.pid"), log var/$n.log)"
}

stop_node() {
  local n=$1 pid
  pid=$(pid_of "$n") || { echo "$n is not running"; rm -f "var/$n.pid"; return 0; }
  kill -TERM "$pid"
  kill -CONT "$pid" 2>/dev/null # a paused node must run to stop
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "$n (pid $pid) did not stop within 10 s; sending SIGKILL" >&2
    kill -KILL "$pid"
  else
    echo "$n stopped (it left the cluster)"
  fi
  rm -f "var/$n.pid"
}

status() {
  for n in "${nodes[@]}"; do
    local addr pid
    addr=$(addr_of "$n")
    if pid=$(pid_of "$n"); then
      if [ "$(ps -o stat= -p "$pid" | cut -c1)" = T ]; then
        echo "== $n ($addr, pid $pid): paused (SIGSTOP); resume with: cluster/ctl.sh resume $n"
        continue
      fi
      echo "== $n ($addr, pid $pid) sees:"
      "$build/ringkv" --timeout 2000 -h "$addr" members || true
    else
      echo "== $n ($addr): not running"
    fi
  done
}

[ $# -ge 1 ] || usage
cmd=$1
shift
case "$cmd" in
  status) [ $# -eq 0 ] || usage; status ;;
  start) [ $# -eq 1 ] || usage; n=$(node_name "$1") || exit 1; start_node "$n" ;;
  stop) [ $# -eq 1 ] || usage; n=$(node_name "$1") || exit 1; stop_node "$n" ;;
  kill)
    [ $# -eq 1 ] || usage
    n=$(node_name "$1") || exit 1; pid=$(need_pid "$n") || exit 1
    kill -KILL "$pid"; rm -f "var/$n.pid"
    echo "$n killed (kill -9); the others will report it dead" ;;
  pause)
    [ $# -eq 1 ] || usage
    n=$(node_name "$1") || exit 1; pid=$(need_pid "$n") || exit 1
    kill -STOP "$pid"
    echo "$n paused (SIGSTOP); the others will suspect it, then declare it dead" ;;
  resume)
    [ $# -eq 1 ] || usage
    n=$(node_name "$1") || exit 1; pid=$(need_pid "$n") || exit 1
    kill -CONT "$pid"
    echo "$n resumed (SIGCONT); it refutes and is alive again" ;;
  restart)
    [ $# -eq 1 ] || usage
    n=$(node_name "$1") || exit 1
    stop_node "$n"
    start_node "$n" ;;
  -h|--help|help) usage ;;
  *) echo "ctl.sh: unknown command '$cmd'" >&2; usage ;;
esac
