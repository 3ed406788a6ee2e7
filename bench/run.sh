#!/usr/bin/env bash
# Builds Gatehouse in release mode and runs the shared side-by-side proxy benchmark
# (../shared/bench/compare.sh: nginx, nginx+auth_request, Caddy, HAProxy and Gatehouse, each on
# one core, wrk on the other). Needs nginx-light, haproxy, caddy, wrk, curl (Debian packages).
#   bench/run.sh                 # defaults: 10 s per proxy, 64 connections
#   DURATION=30 bench/run.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
compare=${COMPARE:-$root/../shared/bench/compare.sh}
cd "$root"
swift build -c release --product gatehouse --scratch-path "$root/.build-release" >&2
# One event loop thread: the proxy gets one core, as the peers do.
GATEHOUSE_CMD="$root/.build-release/release/gatehouse serve --threads 1 --config $here/gatehouse-bench.yml" \
  bash "$compare"
