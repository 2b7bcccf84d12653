# bench/compare-cluster.sh: the --cluster mode of bench/compare (sourced by
# it after its options, tools, temp dir, trap and helpers are set up; not run
# on its own). Uses from bench/compare: $tmp $rounds $quick $build $ringkvd
# $bench $clients $keyspace $n1 $n16, free_port, resp_ping, median, ratio,
# fmt_rps, fmt_ms, size_name, and keeps the pids of the processes it has
# running in $extra_pids, so that bench/compare's cleanup stops them (and only
# them: pids of processes already reaped are taken out).
#
# Redis Cluster: six redis-servers (cluster-enabled, appendonly yes,
# appendfsync everysec, no RDB saves), 3 masters + 3 replicas made with
# `redis-cli --cluster create --cluster-replicas 1`; driven by one
# `redis-benchmark --cluster` process whose $clients connections spread over
# the three masters.
#
# ringkv: three ringkvd (N=3, fsync everysec, RESP on) on private ports and a
# temp data dir, started afresh for each consistency: r = w = 1 ("one") and
# r = w = 2 ("quorum"); the RESP port uses those default levels. Driven by
# the same `redis-benchmark --cluster` command: ringkv's CLUSTER NODES gives
# each node an equal share of the slots (node/resp_cluster.c), so the
# connections spread over the three nodes as over Redis' masters, and every
# node coordinates the requests it receives.
#
# Run lengths: in cluster mode redis-benchmark runs one thread per master,
# and a run's end is seen only at its next 250 ms tick, so a run of 1 s
# could read up to a fifth slow, and two sides a tick apart read 3% apart
# in a run of 8 s. SET and GET are separate runs, each with enough requests
# for about 10 s or more here (cluster_n), on both sides alike: a tick is
# then 2.5% of a run or less.
#
# In cluster mode redis-benchmark puts a hash tag of the node's slots into
# every key ("key:{tag}:<12 digits>"), one tag per node for the whole run, so
# keys come from 3 x $keyspace: SETs mostly overwrite, and the GETs, which
# run after the SETs of the same shape, mostly hit (Redis Cluster's INFO
# stats after 800,000 SETs and GETs at -P16: 743,604 hits, 56,396 misses).

# ---- ports ----
# Ports below the kernel's ephemeral range (32768 and up by default), so that
# no benchmark connection's local port takes one of them between runs; a
# port is taken when any TCP or UDP socket (TIME_WAIT too) uses it.
used_ports=' '
port_busy() {
  case $used_ports in *" $1 "*) return 0 ;; esac
  [ -n "$(ss -Htuan "( sport = :$1 )" 2>/dev/null)" ] && return 0
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}
pick_port() { # LO SPAN [OFFSET]: a free port in LO..LO+SPAN-1 (and port+OFFSET free too)
  local p
  for _ in $(seq 200); do
    p=$(($1 + RANDOM % $2))
    port_busy "$p" && continue
    [ -n "${3:-}" ] && port_busy "$((p + $3))" && continue
    echo "$p"; return
  done
  echo "compare: no free port found" >&2; exit 1
}

# ---- Redis Cluster ----
# Client ports 10000-22699, cluster bus ports (+10000) 20000-32699.
rc_ports=() rc_pids=''
for i in 1 2 3 4 5 6; do p=$(pick_port 10000 12700 10000); used_ports="$used_ports$p $((p + 10000)) "; rc_ports+=("$p"); done
for i in 0 1 2 3 4 5; do
  d=$tmp/rcluster/$i; mkdir -p "$d"
  redis-server --port "${rc_ports[$i]}" --bind 127.0.0.1 --dir "$d" --save '' \
    --appendonly yes --appendfsync everysec --daemonize no --protected-mode no \
    --cluster-enabled yes --cluster-config-file nodes.conf --cluster-node-timeout 5000 \
    --logfile "$d/redis.log" &
  rc_pids="$rc_pids $!"; extra_pids=$rc_pids
done
for i in 0 1 2 3 4 5; do
  for _ in $(seq 100); do resp_ping "${rc_ports[$i]}" && break; sleep 0.05; done
  resp_ping "${rc_ports[$i]}" || { tail -20 "$tmp/rcluster/$i/redis.log" >&2
    echo "compare: redis-server (cluster node $i) did not start" >&2; exit 1; }
done
rc_addrs=(); for p in "${rc_ports[@]}"; do rc_addrs+=("127.0.0.1:$p"); done
if ! timeout 60 redis-cli --cluster create "${rc_addrs[@]}" --cluster-replicas 1 --cluster-yes \
     >"$tmp/rcluster/create.log" 2>&1; then
  cat "$tmp/rcluster/create.log" >&2; echo "compare: redis-cli --cluster create failed" >&2; exit 1
fi
rc_ok() {
  local p
  for p in "${rc_ports[@]}"; do
    timeout 2 redis-cli -h 127.0.0.1 -p "$p" cluster info 2>/dev/null | tr -d '\r' |
      grep -q '^cluster_state:ok$' || return 1
  done
}
for _ in $(seq 300); do rc_ok && break; sleep 0.1; done
rc_ok || { echo "compare: Redis Cluster not ok after 30 s" >&2; exit 1; }
# Replicas attached and in sync (master_link_status:up on all three).
for _ in $(seq 300); do
  up=0
  for p in "${rc_ports[@]}"; do
    timeout 2 redis-cli -h 127.0.0.1 -p "$p" info replication 2>/dev/null | tr -d '\r' |
      grep -q '^master_link_status:up$' && up=$((up + 1))
  done
  [ "$up" -ge 3 ] && break; sleep 0.1
done

# ---- ringkv cluster ----
rk_pids=() rk_listen=() rk_resp=() rk_peer=()
rk_start() { # level: 1 (one) or 2 (quorum)
  local i seeds p
  # Fresh ports (23000-32699) for each start.
  rk_listen=() rk_resp=() rk_peer=()
  for i in 0 1 2; do
    p=$(pick_port 23000 9700); used_ports="$used_ports$p "; rk_listen+=("$p")
    p=$(pick_port 23000 9700); used_ports="$used_ports$p "; rk_resp+=("$p")
    p=$(pick_port 23000 9700); used_ports="$used_ports$p "; rk_peer+=("$p")
  done
  seeds="127.0.0.1:${rk_peer[0]}, 127.0.0.1:${rk_peer[1]}, 127.0.0.1:${rk_peer[2]}"
  rm -rf "$tmp/ringkv"; mkdir -p "$tmp/ringkv"
  rk_pids=()
  for i in 0 1 2; do
    cat >"$tmp/ringkv/node$((i + 1)).conf" <<EOF
[node]
id = node$((i + 1))
listen = 127.0.0.1:${rk_listen[$i]}
resp = 127.0.0.1:${rk_resp[$i]}
peer = 127.0.0.1:${rk_peer[$i]}
seeds = $seeds
data_dir = $tmp/ringkv/node$((i + 1))
fsync = everysec
log_level = warn
[replication]
n = 3
r = $1
w = $1
EOF
    "$ringkvd" --config "$tmp/ringkv/node$((i + 1)).conf" >"$tmp/ringkv/node$((i + 1)).log" 2>&1 </dev/null &
    rk_pids+=("$!"); extra_pids="$rc_pids ${rk_pids[*]}"
  done
  for i in 0 1 2; do
    for _ in $(seq 200); do resp_ping "${rk_resp[$i]}" && break; sleep 0.05; done
    resp_ping "${rk_resp[$i]}" || { tail -20 "$tmp/ringkv/node$((i + 1)).log" >&2
      echo "compare: ringkvd node$((i + 1)) did not answer PING on its RESP port" >&2; exit 1; }
  done
  # Every node sees all three alive, and every node is on the ring: a fresh
  # cluster's second and third nodes join the first one's ring (streaming
  # their ranges), and requests meanwhile can be refused, which ends a
  # redis-benchmark run.
  local conv=0
  for _ in $(seq 300); do
    conv=0
    for i in 0 1 2; do
      [ "$("$build/ringkv" --timeout 1000 -h "127.0.0.1:${rk_listen[$i]}" members --json 2>/dev/null |
           grep -o '"state":"alive"' | wc -l)" -eq 3 ] &&
        [ "$("$build/ringkv" --timeout 1000 -h "127.0.0.1:${rk_listen[$i]}" stats 2>/dev/null |
             awk '$1 == "ring_members" { print $2 }')" = 3 ] && conv=$((conv + 1))
    done
    [ "$conv" -eq 3 ] && break; sleep 0.1
  done
  [ "$conv" -eq 3 ] || { echo "compare: the ringkv cluster did not converge in 30 s" >&2; exit 1; }
}
rk_stop() {
  local p
  for p in "${rk_pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "${rk_pids[@]}"; do
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true
  done
  rk_pids=(); extra_pids=$rc_pids
}

# ---- header ----
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
echo "bench/compare --cluster, three nodes, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(nproc) CPUs, ${cpu:-unknown CPU}, Linux $(uname -r)"
echo "versions: $(redis-server --version | cut -d' ' -f1-3), $(redis-benchmark --version), $("$ringkvd" --version 2>&1 | head -1)"
echo "settings: Redis Cluster 3 masters + 3 replicas, appendonly yes, appendfsync everysec, no RDB saves;"
echo "          ringkv 3 nodes, N=3, fsync everysec, RESP at the default levels r=w=1 (one) or r=w=2 (quorum),"
echo "          default record cache (cache_size = auto: an eighth of the memory)"
echo "clients: one redis-benchmark --cluster each, $clients connections over the 3 masters / 3 nodes;"
echo "         one slot tag per node in the keys (3 x $keyspace keys); GETs follow the SETs and mostly hit"
# Requests for test, P and size: about 10 s or more of each run here (the
# rates of 2026-11-29 on both sides: SETs of 3 B 85-100k op/s unpipelined
# and 370-390k with -P 16, of 1 KiB 54-60k and 108-122k; GETs 105-128k
# unpipelined, 0.4-1.2M with -P 16).
cluster_n() { # SET|GET P size
  if [ "$quick" = 1 ]; then [ "$2" = 16 ] && echo "$n16" || echo "$n1"; return; fi
  case $1.$2.$3 in
    SET.1.3) echo 1200000 ;; SET.1.1024) echo 600000 ;; SET.16.3) echo 4000000 ;; SET.16.1024) echo 1200000 ;;
    GET.1.3) echo 1500000 ;; GET.1.1024) echo 1200000 ;; GET.16.3) echo 8000000 ;; GET.16.1024) echo 4000000 ;;
  esac
}
echo "runs: $rounds round(s), medians; requests per run, SET then GET: without pipelining $(cluster_n SET 1 3) and $(cluster_n GET 1 3) at 3 B, $(cluster_n SET 1 1024) and $(cluster_n GET 1 1024) at 1 KiB; with -P 16 $(cluster_n SET 16 3) and $(cluster_n GET 16 3) at 3 B, $(cluster_n SET 16 1024) and $(cluster_n GET 16 1024) at 1 KiB; random keys from $keyspace"
echo

# ---- runs ----
mkdir -p "$tmp/res"
add() { echo "$2" >>"$tmp/res/$1"; }
parse_csv() { tr -d '"' | while IFS=, read -r t rps _ _ _ _ p99 _; do
  case $t in SET|GET) echo "$t $rps $p99" ;; esac; done; }

# One shape on one side: the SET run, then the GET run (which reads the
# keys the SETs wrote). Results go to $tmp/res/<name>.<TEST>.<P>.<SIZE>.
bench_shape() { # result-name port P size
  local t n
  for t in SET GET; do
    n=$(cluster_n "$t" "$3" "$4")
    redis-benchmark --cluster -h 127.0.0.1 -p "$2" -c "$clients" -n "$n" -d "$4" -P "$3" \
      -r "$keyspace" -t "$t" --csv 2>/dev/null | parse_csv | while read -r _ rps p99; do
        add "$1.$t.$3.$4.rps" "$rps"; add "$1.$t.$3.$4.p99" "$p99"
      done
  done
}
rc_bench() { bench_shape rc "${rc_ports[0]}" "$1" "$2"; }       # P size
rk_bench() { bench_shape "rk.$1" "${rk_resp[0]}" "$2" "$3"; }   # level-name P size

rc_phase() { # round
  echo "round $1/$rounds: Redis Cluster..." >&2
  for p in 1 16; do for s in 3 1024; do rc_bench "$p" "$s"; done; done
}
rk_phase() { # round level-name
  echo "round $1/$rounds: ringkv $2..." >&2
  if [ "$2" = one ]; then rk_start 1; else rk_start 2; fi
  for p in 1 16; do for s in 3 1024; do rk_bench "$2" "$p" "$s"; done; done
  rk_stop
}
# The machine's speed drifts by 10-30% over the minutes of a run (2026-11-29:
# every shape slowed on both sides from the first round to the third), and a
# side's shapes run minutes after the other's. So the rounds take turns:
# odd ones run Redis Cluster, ringkv at one, then at quorum; even ones the
# other way round, so that neither side is always the later one.
for r in $(seq "$rounds"); do
  if [ $((r % 2)) = 1 ]; then
    rc_phase "$r"; rk_phase "$r" one; rk_phase "$r" quorum
  else
    rk_phase "$r" quorum; rk_phase "$r" one; rc_phase "$r"
  fi
done

# ---- table ----
echo "Table C: redis-benchmark over RESP, Redis Cluster (3+3) against ringkv (3 nodes, N=3), medians of $rounds"
printf "%-4s %3s %6s | %9s %9s %6s %9s %6s | %9s %9s %9s\n" test P value "rcl op/s" "one op/s" ratio \
  "quor op/s" ratio "rcl p99" "one p99" "quor p99"
for t in SET GET; do for p in 1 16; do for s in 3 1024; do
  rr=$(median "$tmp/res/rc.$t.$p.$s.rps") r9=$(median "$tmp/res/rc.$t.$p.$s.p99")
  or=$(median "$tmp/res/rk.one.$t.$p.$s.rps") o9=$(median "$tmp/res/rk.one.$t.$p.$s.p99")
  qr=$(median "$tmp/res/rk.quorum.$t.$p.$s.rps") q9=$(median "$tmp/res/rk.quorum.$t.$p.$s.p99")
  printf "%-4s %3s %6s | %9s %9s %6s %9s %6s | %9s %9s %9s\n" "$t" "$p" "$(size_name "$s")" \
    "$(fmt_rps "$rr")" "$(fmt_rps "$or")" "$(ratio "$or" "$rr")" "$(fmt_rps "$qr")" "$(ratio "$qr" "$rr")" \
    "$(fmt_ms "$r9")" "$(fmt_ms "$o9")" "$(fmt_ms "$q9")"
done; done; done
echo "(ratio: ringkv op/s / Redis Cluster op/s; targets: one >= 1.0x, quorum >= 0.6x)"
