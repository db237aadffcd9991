#!/bin/sh
# `make bench` entry point: migration benchmarks (never part of `make check`).
# Builds nothing: make has already built $BUILD/migvm and $BUILD/bench/sockbw.
# Extra arguments go to bench/migration-bench.py (e.g. --sizes 1G --transports unix).
set -e
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD
for f in "$BUILD/migvm" "$BUILD/bench/sockbw" "$BUILD/bench/zerobench" "$BUILD/bench/warmhost"; do
    [ -x "$f" ] || { echo "bench: $f missing (run: make bench)" >&2; exit 1; }
done
"$BUILD/bench/zerobench" 256       # the zero-page check's versions (about 2 s)
echo
exec /usr/bin/python3 bench/migration-bench.py "$@"
