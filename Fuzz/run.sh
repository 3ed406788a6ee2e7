#!/usr/bin/env bash
# Builds Gatehouse's libFuzzer targets (AddressSanitizer on) and runs each for FUZZ_SECONDS
# (default 60). Exits non-zero when a target finds a crash or a broken property; the input is
# left in Fuzz/.artifacts/ — fix the bug, then keep the input in Fuzz/Regressions/<target>/ so
# the test suite checks it from then on.
#   Fuzz/run.sh                      all targets
#   FUZZ_SECONDS=600 Fuzz/run.sh FuzzPathNormalizer
set -euo pipefail
cd "$(dirname "$0")"
seconds=${FUZZ_SECONDS:-60}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(FuzzConfigLoader FuzzPathNormalizer FuzzCredentialParsers FuzzJSONWebToken FuzzResponseScanner FuzzRequestScanner)

# SwiftPM's --sanitize instruments only this package's own modules; the code under test lives in
# the parent package, so coverage instrumentation is asked for explicitly, for every module
# (without it libFuzzer sees only the harness and mutates blindly).
flags=(-c release --sanitize=fuzzer --sanitize=address -Xswiftc -sanitize=fuzzer,address)
# One product at a time: each needs only GatehouseFuzzChecks and what it imports.
for target in "${targets[@]}"; do
    swift build "${flags[@]}" --product "$target"
done
bin=$(swift build "${flags[@]}" --show-bin-path)
mkdir -p .artifacts
# Swift's own crash backtracer and AddressSanitizer's get in each other's way; ASan reports.
export SWIFT_BACKTRACE=enable=no
status=0
for target in "${targets[@]}"; do
    # New corpus entries go to a scratch directory; the seeds in Corpus/ stay as committed.
    work=$(mktemp -d)
    echo "== $target: ${seconds}s"
    # Seeds and kept inputs, where there are any (git keeps no empty folder).
    inputs=()
    for dir in "Corpus/$target" "Regressions/$target"; do [ -d "$dir" ] && inputs+=("$dir"); done
    if ! "$bin/$target" "$work" "${inputs[@]}" \
        -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=8192 \
        -artifact_prefix=".artifacts/$target-" -print_final_stats=1 2>&1 | tail -n 25; then
        echo "!! $target failed; its input is in Fuzz/.artifacts/" >&2
        status=1
    fi
    rm -rf "$work"
done
exit $status
