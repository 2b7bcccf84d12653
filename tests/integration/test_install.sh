#!/usr/bin/env bash
# Installs ringkv into a temporary prefix, builds client/example.c and
# client/example_async.c against the installed library with pkg-config (as an
# application would), and runs them against the installed ringkvd on a free
# loopback port. Bounded in time.
set -euo pipefail
build=$1 src=$2
tmp=$(mktemp -d /tmp/ringkv-install-XXXXXX)
pid=
cleanup() {
  if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi
  rm -rf "$tmp"
}
trap cleanup EXIT

cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
libdir=$(ls -d "$tmp"/prefix/lib*/pkgconfig | head -1 | xargs dirname)
export PKG_CONFIG_PATH=$libdir/pkgconfig
# Same compiler as the build; a sanitizer build's library needs its runtime.
cc=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
extra=
if grep -q '^RINGKV_SANITIZE:BOOL=ON' "$build/CMakeCache.txt"; then
  extra="-fsanitize=address,undefined"
fi
"${cc:-cc}" $extra "$src/client/example.c" $(pkg-config --cflags --libs ringkv) \
   -Wl,-rpath,"$libdir" -o "$tmp/example"
# The async example also needs libevent, whose loop it runs.
"${cc:-cc}" $extra "$src/client/example_async.c" $(pkg-config --cflags --libs ringkv libevent_core) \
   -Wl,-rpath,"$libdir" -o "$tmp/example_async"

"$tmp/prefix/bin/ringkvd" --listen 127.0.0.1:0 --data-dir "$tmp/data" 2>"$tmp/log" &
pid=$!
port=
for _ in $(seq 200); do
  port=$(sed -n 's/.*client protocol listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/log")
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { echo "ringkvd did not start:"; cat "$tmp/log"; exit 1; }

out=$(timeout 30 "$tmp/example" "127.0.0.1:$port")
echo "$out"
[ "$out" = "greeting = hello, ringkv" ] || { echo "unexpected output"; exit 1; }
out=$(timeout 30 "$tmp/example_async" "127.0.0.1:$port")
echo "$out"
[ "$out" = "key:42 = value 42" ] || { echo "unexpected output from example_async"; exit 1; }
"$tmp/prefix/bin/ringkv" -h "127.0.0.1:$port" get greeting | grep -qx "hello, ringkv"
kill -TERM "$pid"; wait "$pid"; pid=
echo "install test passed"
