#!/usr/bin/env bash
# Three network hosts on one machine: three network namespaces, each with one
# veth link to a bridge in the root namespace, each on its own address in
# 198.18.0.0/15 (reserved for network benchmarks). The root namespace holds
# the bridge's address (.254), so a client there reaches all three hosts.
# Nothing is routed off the machine: the namespaces have no default route and
# only their /24 on the link; the bridge has no uplink; in the root namespace
# the whole 198.18.0.0/15 is a blackhole route except a live set's /24.
#
#   netns.sh up [PID]       create a set owned by PID (default: the caller);
#                           prints its id S (hosts 198.18.S.1-3). Sets whose
#                           owner is gone (killed before it could clean up)
#                           are reaped first: their processes killed, their
#                           namespaces and links deleted.
#   netns.sh down S         delete set S (namespaces, links, bridge)
#   netns.sh exec S I CMD.. run CMD in host I (1..3) of set S
#   netns.sh cut S I        partition host I from the other two, both ways
#                           (nft drop rules inside host I; the root namespace,
#                           where the client runs, still reaches it)
#   netns.sh heal S I       remove that partition
#   netns.sh check          exit 0 if this machine allows it (root, ip netns, nft)
#
# Names: namespaces rkvfS-1..3, bridge rkvfSbr. S is the first free number in
# 1..250, so several sets (parallel test runs) can live side by side.
set -euo pipefail

ns_name() { echo "rkvf$1-$2"; }
br_name() { echo "rkvf$1br"; }

die() { echo "netns.sh: $*" >&2; exit 1; }

check() {
  [ "$(id -u)" -eq 0 ] || { echo "not root" >&2; return 1; }
  command -v ip >/dev/null || { echo "no ip (iproute2)" >&2; return 1; }
  command -v nft >/dev/null || { echo "no nft (nftables)" >&2; return 1; }
  local probe="rkvf-probe-$$"
  ip netns add "$probe" 2>/dev/null || { echo "ip netns add is not allowed here" >&2; return 1; }
  local ok=0
  ip netns exec "$probe" nft list ruleset >/dev/null 2>&1 || ok=1
  ip netns del "$probe"
  [ $ok -eq 0 ] || echo "nft does not work inside a namespace" >&2
  return $ok
}

owner_file() { echo "/run/ringkv-netns.$1.owner"; }

# Is pid running (a zombie is not)?
alive() {
  local st
  st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
  [ -n "$st" ] && [ "$st" != Z ] && [ "$st" != X ]
}

down() {
  local s=$1 i
  for i in 1 2 3; do
    ip netns del "$(ns_name "$s" "$i")" 2>/dev/null || true
    ip link del "rkvf${s}h$i" 2>/dev/null || true
  done
  ip link del "$(br_name "$s")" 2>/dev/null || true
  rm -f "$(owner_file "$s")"
}

# A set whose owner died: kill what runs in its namespaces, then delete it.
reap() {
  local s=$1 i p
  for i in 1 2 3; do
    for p in $(ip netns pids "$(ns_name "$s" "$i")" 2>/dev/null); do kill -KILL "$p" 2>/dev/null; done
  done
  down "$s"
  echo "netns.sh: reaped set $s, left behind by a run that was killed" >&2
}

up() {
  local s i ns br
  # A lock so two runs starting together do not pick the same set.
  exec 9>/run/ringkv-netns.lock
  flock -w 30 9 || die "could not lock /run/ringkv-netns.lock"
  local owner=${1:-$PPID} f
  for f in /run/ringkv-netns.*.owner; do
    [ -f "$f" ] || continue
    s=${f#/run/ringkv-netns.}; s=${s%.owner}
    alive "$(cat "$f")" || reap "$s"
  done
  for s in $(seq 1 250); do
    ip link show "$(br_name "$s")" >/dev/null 2>&1 && continue
    ip netns list | grep -q "^$(ns_name "$s" 1)\b" && continue
    ip -o addr show | grep -q " 198\.18\.$s\.254/" && continue
    break
  done
  [ "$s" -lt 250 ] || die "no free set"
  # Packets to 198.18.0.0/15 never leave the machine: a set's /24 is routed
  # to its bridge while it is up, and anything else in the range (a client
  # still connecting after its set went down) meets this blackhole instead
  # of the default route. Kept after the sets go: the range is reserved.
  ip route show type blackhole 2>/dev/null | grep -q "^blackhole 198\.18\.0\.0/15" ||
    ip route add blackhole 198.18.0.0/15
  br=$(br_name "$s")
  trap 'down "$s"' ERR
  ip link add "$br" type bridge
  ip addr add "198.18.$s.254/24" dev "$br"
  ip link set "$br" up
  for i in 1 2 3; do
    ns=$(ns_name "$s" "$i")
    ip netns add "$ns"
    ip link add "rkvf${s}h$i" type veth peer name "rkvf${s}n$i"
    ip link set "rkvf${s}n$i" netns "$ns"
    ip link set "rkvf${s}h$i" master "$br" up
    ip -n "$ns" link set lo up
    ip -n "$ns" link set "rkvf${s}n$i" name eth0
    ip -n "$ns" addr add "198.18.$s.$i/24" dev eth0
    ip -n "$ns" link set eth0 up
  done
  trap - ERR
  echo "$owner" >"$(owner_file "$s")"
  echo "$s"
}

cut() {
  local s=$1 i=$2 j others=()
  for j in 1 2 3; do [ "$j" = "$i" ] || others+=("198.18.$s.$j"); done
  local set="{ ${others[0]}, ${others[1]} }"
  ip netns exec "$(ns_name "$s" "$i")" nft -f - <<EOF
table inet rkvfault {
  chain in { type filter hook input priority 0; policy accept; ip saddr $set drop; }
  chain out { type filter hook output priority 0; policy accept; ip daddr $set drop; }
}
EOF
}

heal() {
  ip netns exec "$(ns_name "$1" "$2")" nft delete table inet rkvfault 2>/dev/null || true
}

cmd=${1:-}
case "$cmd" in
  check) check ;;
  up) up "${2:-}" ;;
  down) [ $# -eq 2 ] || die "usage: netns.sh down S"; down "$2" ;;
  exec)
    [ $# -ge 4 ] || die "usage: netns.sh exec S I CMD..."
    s=$2 i=$3; shift 3
    exec ip netns exec "$(ns_name "$s" "$i")" "$@" ;;
  cut) [ $# -eq 3 ] || die "usage: netns.sh cut S I"; cut "$2" "$3" ;;
  heal) [ $# -eq 3 ] || die "usage: netns.sh heal S I"; heal "$2" "$3" ;;
  *) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
