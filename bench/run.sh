#!/usr/bin/env bash
# Builds Gatehouse in release mode and runs the shared side-by-side proxy benchmark
# (../shared/bench/compare.sh: nginx, nginx+auth_request, Caddy, HAProxy and Gatehouse, each on
# one core, wrk on the other). Needs nginx-light, haproxy, caddy, wrk, curl (Debian packages).
#   bench/run.sh                 # defaults: 10 s per proxy, 64 connections
#   DURATION=30 bench/run.sh
#   ACCESS_LOG=on bench/run.sh   # Gatehouse with its default access log (to compare.sh's output file)
#   GATEHOUSE_BIN=/path/to/gatehouse bench/run.sh   # a binary built before (no build)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
compare=${COMPARE:-$root/../shared/bench/compare.sh}
cd "$root"
GATEHOUSE_BIN=${GATEHOUSE_BIN:-$("$root/deploy/build-release.sh")}
config=$here/gatehouse-bench.yml
if [ "${ACCESS_LOG:-off}" = on ]; then
  config=/tmp/gatehouse-bench/gatehouse-bench-access-log.yml
  mkdir -p /tmp/gatehouse-bench
  sed 's/^access_log: false.*/access_log: true/' "$here/gatehouse-bench.yml" >"$config"
fi
# One event loop thread: the proxy gets one core, as the peers do.
GATEHOUSE_CMD="$GATEHOUSE_BIN serve --threads 1 --config $config" \
  bash "$compare"
