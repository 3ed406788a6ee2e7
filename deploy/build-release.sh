#!/usr/bin/env bash
# Builds the release binary the way it is deployed and measured (Dockerfile, bench/):
#   deploy/build-release.sh            # prints the binary's path (in .build-release/)
#   deploy/build-release.sh /gatehouse # and copies it there
# Link options, each measured for resident memory after start (README, "Benchmarks"):
#   --static-swift-stdlib     the Swift runtime, Foundation and ICU linked in: only what is used
#                             is loaded, instead of every page a shared library's loader touches
#   --gc-sections             drops functions nothing calls
#   --no-export-dynamic       the executable exports nothing (38,000 exported names meant a
#                             dynamic symbol table the loader reads at every start)
#   lld, pack-relative-relocs relocations stored compactly (DT_RELR; glibc 2.36+), still a
#                             position-independent executable
#   --symbol-ordering-file    the functions that run at start and on the request path placed
#                             together first (deploy/link-order.txt, made by
#                             bench/link-order.sh), so the pages they share are the only ones
#                             read in; a function missing from the list still works, it is only
#                             placed after them
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scratch=${SCRATCH_PATH:-$root/.build-release}
options=(-c release --product gatehouse --scratch-path "$scratch" --static-swift-stdlib
  -Xswiftc -use-ld=lld
  -Xlinker --gc-sections -Xlinker --no-export-dynamic -Xlinker -z -Xlinker pack-relative-relocs
  -Xlinker "--symbol-ordering-file=$root/deploy/link-order.txt" -Xlinker --no-warn-symbol-ordering)
bin="$(swift build "${options[@]}" --show-bin-path)/gatehouse"
# SwiftPM does not count the order file as an input of the link: a binary older than the list
# is removed, so that a list written by bench/link-order.sh is used by the next build.
if [ -e "$bin" ] && [ "$root/deploy/link-order.txt" -nt "$bin" ]; then rm -f "$bin"; fi
swift build "${options[@]}" >&2
if [ $# -gt 0 ]; then cp "$bin" "$1"; bin=$1; fi
echo "$bin"
