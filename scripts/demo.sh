#!/bin/bash
# `make demo`: the main job. Until live migration lands: a VM running the soft
# workload with the HMP monitor on this terminal (type `help`, `info status`, `q`).
set -eu
BUILD=${BUILD:-build}
exec "$BUILD/migvm" -name demo -m 256M -accel soft -display none -nodefaults \
    -serial "file:${TMPDIR:-/tmp}/migvm-demo-serial.log" -monitor stdio
