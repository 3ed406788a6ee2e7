#!/usr/bin/env bash
# CPU time and heap allocations per proxied request, for Gatehouse on one core: the same request
# as compare.sh (GET /api/printer with the bench key) through `serve --threads 1` in front of the
# nginx stand-in device. CPU: the process's utime+stime (/proc/PID/stat) over a wrk run, divided
# by the requests wrk completed. Allocations: the same with bench/malloc-count.c preloaded (a
# second run, so the counter's own cost never enters the CPU figure). A warm-up run comes first.
#   bench/per-request.sh            # builds release into .build-release
#   GATEHOUSE_BIN=path bench/per-request.sh
# Env: DURATION (default 10), CONNECTIONS (default 64), CONFIG (default bench/gatehouse-bench.yml)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
DURATION=${DURATION:-10}
CONNECTIONS=${CONNECTIONS:-64}
CONFIG=${CONFIG:-$here/gatehouse-bench.yml}
KEY=bench-key-0123456789abcdef0123456789abcdef
work=/tmp/gh-bench-per-request
mkdir -p "$work" /tmp/gh-bench /tmp/gatehouse-bench
if [ -z "${GATEHOUSE_BIN:-}" ]; then
  GATEHOUSE_BIN=$("$root/deploy/build-release.sh")
fi
cc -O2 -shared -fPIC -o "$work/malloc-count.so" "$here/malloc-count.c"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null' EXIT
taskset -c 0 nginx -c "$root/../shared/bench/peers/upstream-nginx.conf" >"$work/upstream.out" 2>&1 & pids+=($!)
wait_port() { for _ in $(seq 1 300); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
wait_port 18080
ticks=$(getconf CLK_TCK)
cpu() { awk -v t="$ticks" '{printf "%.6f %.6f", $14 / t, $15 / t}' "/proc/$1/stat"; }
load() { taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"$1s" -H "X-Api-Key: $KEY" http://127.0.0.1:18084/api/printer | awk '/requests in/ {print $1}'; }

measure() { # preload? -> prints "requests user-seconds system-seconds allocations"
  local env=()
  [ "$1" = yes ] && env=(env LD_PRELOAD="$work/malloc-count.so" MALLOC_COUNT_FILE="$work/counts")
  "${env[@]}" taskset -c 1 "$GATEHOUSE_BIN" serve --threads 1 --config "$CONFIG" >"$work/gatehouse.out" 2>&1 &
  local gh=$!
  pids+=($gh)
  wait_port 18084
  load 3 >/dev/null
  local before after allocs=0 requests
  before=($(cpu $gh))
  [ "$1" = yes ] && { kill -USR2 $gh; sleep 0.2; read -r a0 _ <"$work/counts"; }
  requests=$(load "$DURATION")
  after=($(cpu $gh))
  [ "$1" = yes ] && { kill -USR2 $gh; sleep 0.2; read -r a1 _ <"$work/counts"; allocs=$((a1 - a0)); }
  kill $gh; wait $gh 2>/dev/null || true
  echo "$requests $(awk -v a="${before[0]}" -v b="${after[0]}" -v c="${before[1]}" -v d="${after[1]}" 'BEGIN{printf "%.6f %.6f", b - a, d - c}') $allocs"
}
read -r req user_s sys_s _ <<<"$(measure no)"
read -r areq _ _ allocs <<<"$(measure yes)"
echo "| requests | CPU s | CPU µs per request (user + system) | allocations per request |"
echo "|---|---|---|---|"
awk -v r="$req" -v u="$user_s" -v s="$sys_s" -v ar="$areq" -v a="$allocs" \
  'BEGIN{printf "| %d | %.2f | %.1f (%.1f + %.1f) | %.1f |\n", r, u + s, (u + s) * 1e6 / r, u * 1e6 / r, s * 1e6 / r, a / ar}'
