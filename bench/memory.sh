#!/usr/bin/env bash
# Streams a 1 GiB upload, a 1 GiB download and a 1 GiB MJPEG stream through Gatehouse and reports Gatehouse's peak
# RSS (VmHWM), which must stay under 64 MiB: bodies are streamed, never buffered whole.
# The upstream is nginx serving a sparse 1 GiB file and discarding uploads, and passing /stream
# on to bench/mjpeg-source.py.
#   GATEHOUSE_BIN=path bench/memory.sh   # a binary built before (no build)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
work=/tmp/gh-bench-memory
SIZE_MIB=${SIZE_MIB:-1024}
mkdir -p "$work/files"
truncate -s "${SIZE_MIB}M" "$work/files/big.bin"
cd "$root"
bin="${GATEHOUSE_BIN:-$("$root/deploy/build-release.sh")}"
KEY=bench-key-0123456789abcdef0123456789abcdef
rm -rf "$work/state"; mkdir -p "$work/state"
sed -e "s#18080#18086#" -e "s#/tmp/gatehouse-bench/#$work/state/#" "$here/gatehouse-bench.yml" > "$work/gatehouse.yml"
sed -e "s#@WORK@#$work#g" "$here/upstream-files.conf" > "$work/nginx.conf"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null' EXIT
nginx -c "$work/nginx.conf" & pids+=($!)
python3 "$here/mjpeg-source.py" 18089 "$SIZE_MIB" & pids+=($!)
GATEHOUSE_ADMIN_PASSWORD=bench-admin-password "$bin" serve --threads 1 --config "$work/gatehouse.yml" > "$work/gatehouse.out" 2>&1 & gh=$!; pids+=($gh)
for _ in $(seq 1 100); do curl -s -o /dev/null http://127.0.0.1:18084/ && break; sleep 0.1; done
rss() { awk '/VmHWM/ {hwm=$2} /VmRSS/ {now=$2} END {printf "%.1f | %.1f", hwm/1024, now/1024}' /proc/$gh/status; }
echo "| step | bytes through | seconds | Gatehouse peak RSS MiB | RSS now MiB |"
echo "|---|---|---|---|---|"
echo "| started | 0 | - | $(rss) |"
start=$(date +%s.%N)
down=$(curl -s -o /dev/null -w '%{size_download}' -H "X-Api-Key: $KEY" http://127.0.0.1:18084/files/big.bin)
t=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}')
echo "| ${SIZE_MIB} MiB download | $down | $t | $(rss) |"
start=$(date +%s.%N)
up=$(curl -s -o /dev/null -w '%{size_upload}' -H "X-Api-Key: $KEY" -H 'Expect:' -X POST -T "$work/files/big.bin" http://127.0.0.1:18084/upload)
t=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}')
echo "| ${SIZE_MIB} MiB upload (Content-Length) | $up | $t | $(rss) |"
start=$(date +%s.%N)
up=$(head -c "$((SIZE_MIB * 1048576))" /dev/zero | curl -s -o /dev/null -w '%{size_upload}' -H "X-Api-Key: $KEY" -H 'Expect:' -T - http://127.0.0.1:18084/upload)
t=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}')
echo "| ${SIZE_MIB} MiB upload (chunked) | $up | $t | $(rss) |"
start=$(date +%s.%N)
down=$(curl -s -o /dev/null -w '%{size_download}' -H "X-Api-Key: $KEY" http://127.0.0.1:18084/stream)
t=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}')
echo "| ${SIZE_MIB} MiB MJPEG stream (multipart, no length) | $down | $t | $(rss) |"
# Sign-ins: each checks a password with scrypt (a 16 MiB block); none of it may stay behind.
start=$(date +%s.%N)
for i in $(seq 1 20); do
  code=$(curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Content-Type: application/json' -d '{"username":"admin","password":"bench-admin-password"}' \
    http://127.0.0.1:18084/_gatehouse/api/login)
  [ "$code" = 200 ] || { echo "sign-in $i answered $code, not 200: the row would measure refusals" >&2; exit 1; }
done
t=$(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN{printf "%.1f", e-s}')
echo "| 20 sign-ins | - | $t | $(rss) |"
