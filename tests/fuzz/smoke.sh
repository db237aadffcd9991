#!/bin/bash
# make fuzz-smoke: run every libFuzzer target for its share of about a minute,
# starting from its committed corpus, and fail on any crash, leak, timeout or
# over-limit allocation.
#   tests/fuzz/smoke.sh BUILD/fuzz/fuzz-NAME...
# For each target: corpus tests/fuzz/corpus/NAME/, dictionary tests/fuzz/NAME.dict
# and extra libFuzzer flags tests/fuzz/NAME.options (one per line), when they
# exist. New inputs go to a scratch directory, never into the committed
# corpus; a crashing input is kept as $BUILD/fuzz/artifacts/NAME-crash-*.
# FUZZ_SMOKE_SECONDS (default 60) is the total time, shared equally.
# A target that cannot run on this host (fuzz-incoming-kvm without /dev/kvm)
# prints "NAME: SKIP: REASON" and exits with status 69: counted as skipped.
set -u
here=$(cd "$(dirname "$0")" && pwd)
total=${FUZZ_SMOKE_SECONDS:-60}
n=$#
[ "$n" -gt 0 ] || { echo "usage: $0 FUZZ_BINARY..." >&2; exit 2; }
each=$(( (total + n - 1) / n ))
passed=0 failed=0 skipped=0
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

for bin in "$@"; do
    name=$(basename "$bin")
    art="$(dirname "$bin")/artifacts"
    mkdir -p "$art" "$scratch/$name"
    args=(-max_total_time="$each" -timeout=10 -print_final_stats=1 -artifact_prefix="$art/$name-")
    [ -f "$here/$name.dict" ] && args+=(-dict="$here/$name.dict")
    if [ -f "$here/$name.options" ]; then
        while read -r opt; do
            case "$opt" in ''|'#'*) ;; *) args+=("$opt") ;; esac
        done <"$here/$name.options"
    fi
    corpus=()
    [ -d "$here/corpus/$name" ] && corpus=("$here/corpus/$name")
    log="$scratch/$name.log"
    "$bin" "${args[@]}" "$scratch/$name" "${corpus[@]}" >"$log" 2>&1
    rc=$?
    runs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+).*/\1/p' "$log" | tail -n1)
    line=$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -n1)
    cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$line")
    corp=$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$line")
    skip=$(sed -nE "s/^$name: SKIP: //p" "$log" | head -n1)
    if [ "$rc" -eq 69 ] && [ -n "$skip" ]; then
        skipped=$((skipped + 1))
        echo "SKIP: $name: $skip"
    elif [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        echo "ok - $name: ${runs:-?} runs in ${each}s, ${cov:-?} edges, corpus ${corp:-?}"
    else
        failed=$((failed + 1))
        echo "FAIL - $name: exit status $rc after ${runs:-?} runs; the fuzzer's report:"
        grep -vE '^#[0-9]+[[:space:]]' "$log" | tail -n 60 | sed 's/^/    /'
    fi
done
echo "fuzz-smoke: $passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
