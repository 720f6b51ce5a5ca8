#!/bin/sh
# Run every libFuzzer target of a fuzzing build (make fuzz): first replay
# its seed corpus (tests/fuzz/corpus/TARGET), then fuzz for SECONDS (0: only
# replay).  New inputs go to BUILD/fuzz-work/TARGET, crashers to
# BUILD/fuzz-artifacts/TARGET/.  Exit status 1 if any target crashed.
# Usage: run-fuzzers.sh [BUILD] [SECONDS] [TARGET...]
set -u
build=${1:-build-fuzz}
secs=${2:-10}
shift 2 2>/dev/null || shift $#
src=$(cd "$(dirname "$0")/../.." && pwd)
targets=${*:-"fuzz-qcow2-header fuzz-qcow2-bitmaps fuzz-keyval fuzz-qmp-input fuzz-qcow2-image fuzz-nbd-server"}
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
failed=0
for t in $targets; do
    bin="$build/tests/fuzz/$t"
    if [ ! -x "$bin" ]; then
        echo "$t: not built (configure with CC=clang -Dfuzzing=true)"
        failed=1
        continue
    fi
    work="$build/fuzz-work/$t"
    art="$build/fuzz-artifacts/$t"
    mkdir -p "$work" "$art"
    opts="-rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 -artifact_prefix=$art/"
    if ! "$bin" $opts -runs=0 "$src/tests/fuzz/corpus/$t" >"$art/replay.log" 2>&1; then
        echo "$t: seed corpus replay CRASHED (see $art/replay.log)"
        failed=1
        continue
    fi
    if [ "$secs" -gt 0 ]; then
        if "$bin" $opts -max_total_time="$secs" "$work" \
                "$src/tests/fuzz/corpus/$t" >"$art/fuzz.log" 2>&1; then
            echo "$t: ok ($(grep -o '^Done [0-9]* runs' "$art/fuzz.log"))"
        else
            echo "$t: CRASH, reproducer in $art/ (log $art/fuzz.log)"
            failed=1
        fi
    else
        echo "$t: seed corpus ok"
    fi
done
exit $failed
