#!/usr/bin/env bash
# CPU time per proxied request of nginx (the compare.sh peer: one worker, API key map, keep-alive
# upstream) and of Gatehouse (`serve --threads 1`, the bench config), measured in alternation on
# the same harness: each proxy on core 1, wrk and the nginx stand-in device on core 0, the same
# request as compare.sh. Each line reads the proxy's utime+stime (/proc/PID/stat) over one wrk
# run. Both keep their core busy ("busy" near 1.00), so req/s follows CPU per request, and the
# user/system split says where the difference is; alternating takes the machine's drift out of
# the comparison (README, "Benchmarks").
#   bench/cpu-vs-nginx.sh                  # builds release into .build-release
#   GATEHOUSE_BIN=path ROUNDS=4 bench/cpu-vs-nginx.sh
# Env: ROUNDS (default 4), DURATION (s per run, default 6), CONNECTIONS (default 64).
# Needs nginx-light and wrk (Debian packages).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
peers=$root/../shared/bench/peers
ROUNDS=${ROUNDS:-4}
DURATION=${DURATION:-6}
CONNECTIONS=${CONNECTIONS:-64}
KEY=bench-key-0123456789abcdef0123456789abcdef
mkdir -p /tmp/gh-bench /tmp/gatehouse-bench
GATEHOUSE_BIN=${GATEHOUSE_BIN:-$("$root/deploy/build-release.sh")}
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
wait_port() { for _ in $(seq 1 300); do (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.1; done; return 1; }
taskset -c 0 nginx -c "$peers/upstream-nginx.conf" >/dev/null 2>&1 & pids+=($!)
taskset -c 1 nginx -c "$peers/nginx-proxy.conf" >/dev/null 2>&1 & pids+=($!)
nginx_master=$!
taskset -c 1 "$GATEHOUSE_BIN" serve --threads 1 --config "$here/gatehouse-bench.yml" >/tmp/gh-bench/cpu-vs-nginx.out 2>&1 & pids+=($!)
gatehouse=$!
wait_port 18080; wait_port 18081; wait_port 18084
# nginx's master only waits; its one worker does the work.
nginx_worker=$(pgrep -P "$nginx_master")
ticks=$(getconf CLK_TCK)
run() { # name pid port
  local u0 s0 u1 s1 out
  read -r u0 s0 < <(awk '{print $14, $15}' "/proc/$2/stat")
  out=$(taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "X-Api-Key: $KEY" "http://127.0.0.1:$3/api/printer")
  read -r u1 s1 < <(awk '{print $14, $15}' "/proc/$2/stat")
  awk -v n="$1" -v r="$(awk '/requests in/ {print $1}' <<<"$out")" -v p="$(awk '$1=="99%" {print $2}' <<<"$out")" \
    -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v t="$ticks" -v d="$DURATION" \
    'BEGIN{printf "| %s | %.0f | %s | %.1f | %.1f | %.1f | %.2f |\n", n, r / d, p, u / t * 1e6 / r, s / t * 1e6 / r, (u + s) / t * 1e6 / r, (u + s) / t / d}'
}
# A warm-up run for each first.
taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d2s -H "X-Api-Key: $KEY" http://127.0.0.1:18081/api/printer >/dev/null
taskset -c 0 wrk -t1 -c"$CONNECTIONS" -d2s -H "X-Api-Key: $KEY" http://127.0.0.1:18084/api/printer >/dev/null
echo "| proxy | req/s | p99 | user µs per request | system µs | total µs | busy |"
echo "|---|---|---|---|---|---|---|"
for _ in $(seq 1 "$ROUNDS"); do
  run nginx "$nginx_worker" 18081
  run gatehouse "$gatehouse" 18084
done
