#!/usr/bin/env bash
# Disk full (issue 6): a node whose data dir is on a small tmpfs that fills
# up refuses writes with a "disk full" error, keeps serving reads, logs the
# episode once, takes writes again on its own once space is freed, and
# after a kill -9 and a restart still has every write it acknowledged.
# Needs to mount a tmpfs (root, as in CI); exits 77 (skipped) saying why
# when it cannot.
#   test_diskfull.sh RINGKVD RINGKV [FSYNC]
set -euo pipefail
ringkvd=$1 cli=$2 fsync=${3:-everysec}
tmp=$(mktemp -d /tmp/ringkv-diskfull-XXXXXX)
mnt=$tmp/mnt pid='' mounted=0
cleanup() {
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  if [ "$mounted" = 1 ]; then umount "$mnt" 2>/dev/null || umount -l "$mnt" || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT
logs() { cat "$tmp"/log.* 2>/dev/null || true; }
fail() { echo "FAIL: $*"; logs | sed 's/^/  log: /' | tail -n 30; exit 1; }

mkdir -p "$mnt"
if ! mount -t tmpfs -o size=16m,mode=0700 tmpfs "$mnt" 2>"$tmp/mount.err"; then
  echo "SKIP: cannot mount a 16 MiB tmpfs here ($(cat "$tmp/mount.err")); the disk-full test needs root"
  exit 77
fi
mounted=1

# A filler file on the same tmpfs, deleted later to give space back.
dd if=/dev/zero of="$mnt/filler" bs=1M count=4 status=none

# map_size far larger than the tmpfs: the disk, not the map, runs out.
cat >"$tmp/node.conf" <<EOF
[node]
listen = 127.0.0.1:0
data_dir = $mnt/data
fsync = $fsync
[storage]
map_size = 1GiB
EOF

starts=0
start() { # one log file per start: log.1, log.2
  starts=$((starts + 1))
  local log=$tmp/log.$starts
  "$ringkvd" --config "$tmp/node.conf" 2>"$log" &
  pid=$!
  port=
  for _ in $(seq 400); do
    port=$(sed -n 's/.*client protocol listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$log")
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.05
  done
  [ -n "$port" ] || fail "ringkvd did not start"
}
kv() { "$cli" -h "127.0.0.1:$port" --timeout 10000 "$@"; }
value() { # key -> 200 KiB of bytes that depend on the key
  local k=$1
  yes "$k-0123456789abcdef" | head -c 204800 || true # yes ends on SIGPIPE
}

start
# Write distinct 200 KiB values until a write is refused.
acked=0 err=''
for i in $(seq 0 199); do
  if value "k$i" | kv put "k$i" - >"$tmp/put.out" 2>&1; then
    acked=$((acked + 1))
  else
    err=$(cat "$tmp/put.out")
    break
  fi
done
echo "acknowledged $acked writes before: $err"
[ -n "$err" ] || fail "200 writes of 200 KiB fit on a 16 MiB tmpfs"
[ "$acked" -gt 5 ] || fail "only $acked writes before the disk was full"
case $err in *"disk full"*) ;; *) fail "the refusal does not say 'disk full': $err" ;; esac
kill -0 "$pid" 2>/dev/null || fail "ringkvd died when the disk filled up"

# More writes are refused too, with the same clear error; the node lives on.
for i in 1 2 3; do
  if value "more$i" | kv put "more$i" - >"$tmp/put.out" 2>&1; then
    fail "a 200 KiB write went through on a full disk"
  fi
  grep -q "disk full" "$tmp/put.out" || fail "later refusal: $(cat "$tmp/put.out")"
done

# Reads of what was acknowledged still work.
for i in 0 $((acked / 2)) $((acked - 1)); do
  kv get "k$i" >"$tmp/got" || fail "get k$i failed on a full disk"
  value "k$i" | cmp -s - "$tmp/got" || fail "k$i reads back wrong on a full disk"
done

# Logged once for the episode, not once per refused write.
n=$(logs | grep -c "disk full" || true)
[ "$n" = 1 ] || fail "'disk full' logged $n times (want once per episode)"

# Space comes back: writes work again within a few seconds, by themselves.
rm -f "$mnt/filler"
ok=0
for _ in $(seq 50); do
  if value "after" | kv put after - >"$tmp/put.out" 2>&1; then ok=1; break; fi
  sleep 0.2
done
[ "$ok" = 1 ] || fail "writes still refused after space was freed: $(cat "$tmp/put.out")"
logs | grep -q "disk space is back" || fail "the end of the episode was not logged"

# kill -9 and restart: every acknowledged write is still there.
kill -KILL "$pid"; wait "$pid" 2>/dev/null || true; pid=
start
for i in $(seq 0 $((acked - 1))) after; do
  k=k$i; [ "$i" = after ] && k=after
  kv get "$k" >"$tmp/got" || fail "$k lost after a restart"
  value "$k" | cmp -s - "$tmp/got" || fail "$k reads back wrong after a restart"
done
kill -TERM "$pid"; wait "$pid" 2>/dev/null || true; pid=
echo "disk full ($fsync): $acked writes acknowledged, then refused with 'disk full', reads served, writes back after freeing space, all kept across kill -9"
