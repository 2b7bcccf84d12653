#!/usr/bin/env bash
# Runs ringkv-bench against a real ringkvd on a free loopback port: a 2-second
# closed-loop run with --json (nonzero ops, p50 <= p99 <= max, no errors), a
# short open-loop zipfian run with --preload and --ops, --plot when gnuplot is
# installed (or its clear error when it is not), and a bad option. Checks what
# the numbers must satisfy, never how fast they are.
set -euo pipefail
bench=$1 ringkvd=$2
tmp=$(mktemp -d /tmp/ringkv-bench-test-XXXXXX)
pid=
cleanup() { if [ -n "$pid" ]; then kill -KILL "$pid" 2>/dev/null || true; fi; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$ringkvd" --listen 127.0.0.1:0 --data-dir "$tmp/data" 2>"$tmp/log" &
pid=$!
port=
for _ in $(seq 400); do
  port=$(sed -n 's/.*client protocol listening on 127.0.0.1:\([0-9]*\).*/\1/p' "$tmp/log")
  [ -n "$port" ] && break
  sleep 0.05
done
[ -n "$port" ] || { cat "$tmp/log"; fail "ringkvd did not start"; }
addr=127.0.0.1:$port

# A top-level number from ringkv-bench's JSON (one key per line there).
num() { sed -n "s/^  \"$1\": \([0-9.]*\),\{0,1\}\$/\1/p" "$2"; }

rc=0
timeout 120 "$bench" -h "$addr" --duration 2 --connections 8 --pipeline 4 \
  --workload a --keys 1000 --json >"$tmp/run.json" 2>"$tmp/run.err" || rc=$?
[ "$rc" = 0 ] || { cat "$tmp/run.err"; fail "ringkv-bench exited $rc"; }
cat "$tmp/run.json"
ops=$(num ops "$tmp/run.json") p50=$(num p50_us "$tmp/run.json")
p99=$(num p99_us "$tmp/run.json") max=$(num max_us "$tmp/run.json")
errs=$(num errors_total "$tmp/run.json")
[ -n "$ops" ] && [ -n "$p50" ] && [ -n "$p99" ] && [ -n "$max" ] || fail "missing summary keys"
awk -v o="$ops" -v a="$p50" -v b="$p99" -v c="$max" -v e="$errs" 'BEGIN {
  if (o <= 0) { print "FAIL: no ops"; exit 1 }
  if (!(a > 0 && a <= b && b <= c)) { print "FAIL: want 0 < p50 <= p99 <= max"; exit 1 }
  if (e != 0) { print "FAIL: errors"; exit 1 } }'
grep -q '"GET": {' "$tmp/run.json" || fail "no GET section"
grep -q '"PUT": {' "$tmp/run.json" || fail "no PUT section"
grep -q '"timeline": \[' "$tmp/run.json" || fail "no timeline"
grep -q 'p99' "$tmp/run.err" || fail "no progress line on stderr"

# Open loop, zipfian, preload, a fixed op count, the table output.
timeout 120 "$bench" -h "$addr,$addr" --rate 2000 --ops 1000 --connections 4 \
  --dist zipfian --keys 500 --preload --workload b --consistency one -q >"$tmp/open.txt" ||
  fail "open-loop run failed"
cat "$tmp/open.txt"
grep -q "open loop at 2000 ops/s" "$tmp/open.txt" || fail "open loop not reported"
grep -q "preload: 500 keys" "$tmp/open.txt" || fail "preload not reported"
grep -Eq "^all +1000 " "$tmp/open.txt" || fail "expected exactly 1000 ops"
grep -q "errors: none" "$tmp/open.txt" || fail "errors in the open-loop run"
grep -q "NOT_FOUND" "$tmp/open.txt" && fail "GET misses after --preload"

if command -v gnuplot >/dev/null; then
  timeout 120 "$bench" -h "$addr" --duration 1 -c 2 -q --plot "$tmp/plot.png" >/dev/null ||
    fail "--plot run failed"
  [ -s "$tmp/plot.png" ] || fail "no plot written"
else
  if "$bench" -h "$addr" --duration 1 --plot "$tmp/plot.png" 2>"$tmp/plot.err"; then
    fail "--plot without gnuplot succeeded"
  fi
  grep -q "gnuplot" "$tmp/plot.err" || fail "unclear --plot error: $(cat "$tmp/plot.err")"
fi

rc=0; "$bench" --pipeline 0 2>"$tmp/bad.err" || rc=$?
[ "$rc" = 2 ] && grep -q -- "--pipeline" "$tmp/bad.err" || fail "bad option: exit $rc"

# No node: a clear error and a non-zero exit, not a hang.
kill -TERM "$pid"; wait "$pid" || true; pid=
rc=0; timeout 60 "$bench" -h "$addr" --duration 1 -q 2>"$tmp/down.err" || rc=$?
[ "$rc" = 1 ] && grep -q "cannot reach" "$tmp/down.err" || fail "node down: exit $rc: $(cat "$tmp/down.err")"
echo "bench test passed"
