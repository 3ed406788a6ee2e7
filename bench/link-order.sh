#!/usr/bin/env bash
# Writes deploy/link-order.txt: every function that runs while Gatehouse starts (a first start
# that creates the admin, and a second on the same store) and answers requests (a proxied
# request with a key, a refusal, the sign-in page), in the order they first run, as recorded
# by valgrind's callgrind. deploy/build-release.sh hands it to the linker, which places those
# functions together at the front of the binary: the kernel reads executable pages in blocks
# of 64-128 KiB around each one touched, so code that runs spread over the whole binary made
# most of it resident (README, "Benchmarks"). Rerun it after larger changes; a stale list
# only costs memory, never correctness. Needs valgrind (Debian package) and python3.
#   bench/link-order.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
work=/tmp/gh-link-order
command -v valgrind >/dev/null || { echo "needs valgrind: apt-get install -y valgrind" >&2; exit 1; }
bin=$("$root/deploy/build-release.sh")
rm -rf "$work"; mkdir -p "$work/state"
# valgrind cannot read the toolchain's DWARF 5; the symbol table is all it needs.
cp "$bin" "$work/gatehouse"; strip -g "$work/gatehouse"
sed -e "s#18084#18194#" -e "s#18080#18198#" -e "s#/tmp/gatehouse-bench/#$work/state/#" "$here/gatehouse-bench.yml" > "$work/gatehouse.yml"
pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true' EXIT
mkdir -p "$work/www/api"; echo '{}' > "$work/www/api/printer"
(cd "$work/www" && exec python3 -m http.server 18198 --bind 127.0.0.1 >/dev/null 2>&1) & pids+=($!)
KEY=bench-key-0123456789abcdef0123456789abcdef
run() {
  # A script's background jobs start with SIGINT ignored, and under valgrind an ignored signal
  # never reaches Gatehouse (seen: the recording never ended); Gatehouse must get it to exit and let
  # callgrind write its file.
  GATEHOUSE_ADMIN_PASSWORD=link-order-admin-password env --default-signal=INT valgrind --tool=callgrind --demangle=no \
    --callgrind-out-file="$work/$1.callgrind" "$work/gatehouse" serve --threads 1 --config "$work/gatehouse.yml" > "$work/$1.log" 2>&1 &
  local gh=$!
  for _ in $(seq 1 1200); do curl -s -o /dev/null http://127.0.0.1:18194/_gatehouse/healthz && break; sleep 0.5; done
  for _ in 1 2 3; do
    curl -s -o /dev/null -H "X-Api-Key: $KEY" http://127.0.0.1:18194/api/printer || true
    curl -s -o /dev/null http://127.0.0.1:18194/api/printer || true
    curl -s -o /dev/null -H 'Accept: text/html' http://127.0.0.1:18194/ || true
  done
  kill -INT "$gh"; wait "$gh" || true
  grep -q 'listening on' "$work/$1.log" || { echo "gatehouse did not start under valgrind ($work/$1.log)" >&2; exit 1; }
}
run first
run second
# callgrind names each function once as fn=(id) name; later mentions use the id only.
cat "$work/first.callgrind" "$work/second.callgrind" \
  | sed -nE "s/^c?fn=\([0-9]+\) (.*)$/\1/p" | grep -v '^0x' | sed -E "s/'[0-9]+$//" \
  | awk '!seen[$0]++' > "$root/deploy/link-order.txt"
echo "deploy/link-order.txt: $(wc -l < "$root/deploy/link-order.txt") functions" >&2
