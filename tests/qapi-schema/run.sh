#!/bin/bash
# Negative and positive schema tests for build/qapi-gen.
# Each bad/NAME.json must make `qapi-gen --check` exit 1 with exactly the
# diagnostic in bad/NAME.err ("FILE:LINE: message"); qapi-test.json and the
# real schema must pass. Run from the top of the tree.
set -u
BUILD=${BUILD:-build}
GEN=$BUILD/qapi-gen
passed=0 failed=0

if [ ! -x "$GEN" ]; then
    echo "SKIP: $GEN not built"
    exit 0
fi

for schema in tests/qapi-schema/bad/*.json; do
    expected=${schema%.json}.err
    actual=$("$GEN" --check "$schema" 2>&1 >/dev/null)
    rc=$?
    if [ $rc -eq 1 ] && [ "$actual" = "$(cat "$expected")" ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $schema (exit $rc)"
        echo "  expected: $(cat "$expected")"
        echo "  actual:   $actual"
    fi
done

for schema in tests/qapi-schema/qapi-test.json qapi/qapi-schema.json; do
    if out=$("$GEN" --check "$schema" 2>&1) && [ -z "$out" ]; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL: $schema should be accepted: $out"
    fi
done

echo "qapi-schema: $passed passed, $failed failed"
[ $failed -eq 0 ]
