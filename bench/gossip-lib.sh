# bench/gossip-lib.sh: helpers shared by the gossip benchmarks (sourced, not
# run). They run a private three-node cluster made from configs/node*.conf
# with other ports and temporary data dirs, so a cluster started by
# cluster/start.sh keeps running undisturbed beside it.
#
#   gl_setup BASE   temp dir, configs with client ports BASE+1..3 and peer
#                   ports BASE+101..103 (all seeding each other), default
#                   gossip settings; binaries from $RINGKV_BUILD or build/
#   gl_start I      start node I (1..3); gl_kill I; gl_stop_all
#   gl_state OBS ID what node OBS reports about member ID ("" if it cannot say)
#   gl_wait_converged SECS   until every node sees all three alive, on the ring
#   gl_stat I NAME  a numeric STATS value of node I

gl_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

gl_now_ms() { date +%s%3N; }

gl_setup() {
  local base=$1 i
  if [ -n "${RINGKV_BUILD:-}" ]; then
    gl_build=$RINGKV_BUILD
  else
    gl_build=$("$gl_root/cluster/build.sh")
  fi
  gl_dir=$(mktemp -d /tmp/ringkv-gossip-bench-XXXXXX)
  gl_base=$base
  local subst=()
  for i in 1 2 3; do
    subst+=(-e "s/127\.0\.0\.1:700$i\b/127.0.0.1:$((base + i))/g"
            -e "s/127\.0\.0\.1:710$i\b/127.0.0.1:$((base + 100 + i))/g")
  done
  for i in 1 2 3; do
    sed "${subst[@]}" -e "s|^data_dir = .*|data_dir = $gl_dir/node$i|" \
        "$gl_root/configs/node$i.conf" >"$gl_dir/node$i.conf"
    if ss -ltnu 2>/dev/null | grep -qE ":($((base + i))|$((base + 100 + i))) "; then
      echo "port $((base + i)) or $((base + 100 + i)) is in use; pick another base with -p" >&2
      rm -rf "$gl_dir"
      return 1
    fi
  done
  trap gl_cleanup EXIT
}

gl_addr() { echo "127.0.0.1:$((gl_base + $1))"; }

gl_start() {
  local i=$1
  # In a subshell, so the node is not this shell's job (no "Killed" notices).
  ("$gl_build/ringkvd" --config "$gl_dir/node$i.conf" >>"$gl_dir/node$i.log" 2>&1 </dev/null &
   echo $! >"$gl_dir/node$i.pid")
  for _ in $(seq 200); do
    "$gl_build/ringkv" -h "$(gl_addr "$i")" ping >/dev/null 2>&1 && return 0
    kill -0 "$(cat "$gl_dir/node$i.pid")" 2>/dev/null || break
    sleep 0.05
  done
  echo "node$i did not start; its log:" >&2
  tail -n 20 "$gl_dir/node$i.log" >&2
  return 1
}

gl_wait_gone() {
  for _ in $(seq 200); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.05; done
}

gl_kill() {
  local pid
  pid=$(cat "$gl_dir/node$1.pid")
  kill -KILL "$pid" 2>/dev/null
  gl_wait_gone "$pid"
}

gl_stop_all() {
  local i
  for i in 1 2 3; do
    [ -f "$gl_dir/node$i.pid" ] && kill -TERM "$(cat "$gl_dir/node$i.pid")" 2>/dev/null
  done
  for i in 1 2 3; do
    [ -f "$gl_dir/node$i.pid" ] && gl_wait_gone "$(cat "$gl_dir/node$i.pid")"
  done
}

gl_cleanup() {
  [ -n "${gl_load_pids:-}" ] && kill $gl_load_pids 2>/dev/null
  [ -n "${gl_dir:-}" ] && [ -d "$gl_dir" ] || return 0
  local i
  for i in 1 2 3; do
    [ -f "$gl_dir/node$i.pid" ] && kill -KILL "$(cat "$gl_dir/node$i.pid")" 2>/dev/null
  done
  rm -rf "$gl_dir"
}

gl_state() {
  "$gl_build/ringkv" --timeout 1000 -h "$(gl_addr "$1")" members --json 2>/dev/null |
    grep -o "\"id\":\"$2\"[^}]*" | sed -n 's/.*"state":"\([a-z]*\)".*/\1/p'
}

gl_wait_converged() {
  local deadline=$(($(gl_now_ms) + $1 * 1000)) i alive
  while [ "$(gl_now_ms)" -lt "$deadline" ]; do
    alive=0
    for i in 1 2 3; do
      [ "$("$gl_build/ringkv" --timeout 1000 -h "$(gl_addr "$i")" members --json 2>/dev/null |
           grep -o '"state":"alive"' | wc -l)" -eq 3 ] && alive=$((alive + 1))
    done
    # and every node a ring member (a fresh cluster's second and third
    # nodes join the first one's ring)
    if [ "$alive" -eq 3 ]; then
      for i in 1 2 3; do
        [ "$(gl_stat "$i" ring_members)" = 3 ] || { alive=0; break; }
      done
      [ "$alive" -eq 3 ] && return 0
    fi
    sleep 0.05
  done
  return 1
}

gl_stat() {
  "$gl_build/ringkv" --timeout 2000 -h "$(gl_addr "$1")" stats 2>/dev/null |
    awk -v k="$2" '$1 == k { print $2 }'
}
