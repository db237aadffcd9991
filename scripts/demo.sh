#!/bin/bash
# `make demo`: a live migration between two local migvm processes, driven the
# way an operator would: HMP over a UNIX socket with socat.
#   source:      a 128 MiB guest running the soft workload (its serial log gets a 'B' per pass)
#   destination: the same guest shape, waiting with -incoming
# The migration runs while the guest keeps dirtying memory; progress is shown
# from `info migrate`, then both sides' state and the destination's serial log,
# the flight recorder's `info migrate_history`, and its picture drawn by
# scripts/migvm-plot (saved as $DEMO_PLOT, default $BUILD/demo-migration.png).
set -euo pipefail
failed=0
BUILD=${BUILD:-build}
PLOT_OUT=${DEMO_PLOT:-$BUILD/demo-migration.png}
MIGVM="$BUILD/migvm"
dir=$(mktemp -d "${TMPDIR:-/tmp}/migvm-demo.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$dir"; }
trap cleanup EXIT

hmp() { # socket command...: print the command's output (skip banner, echo and prompts)
    printf '%s\n' "$2" | socat -t 0.5 - "UNIX-CONNECT:$1" 2>/dev/null |
        tr -d '\r' | sed -e '1,/^(qemu) /{/^(qemu) /!d}' -e '/^(qemu) /d' -e '/^QEMU .* monitor/d'
}
wait_for() { for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.1; done; echo "demo: $1 did not appear" >&2; exit 1; }

common=(-m 128M -accel soft,dirty-rate=64 -display none -nodefaults)
passes() { tr -cd B < "$1" | wc -c; }
wait_passes() { # file count: wait (10 s at most) until the log shows more than count passes
    for _ in $(seq 100); do [ "$(passes "$1")" -gt "$2" ] && return 0; sleep 0.1; done; return 1; }
"$MIGVM" "${common[@]}" -name destination -incoming "unix:$dir/migration.sock" \
    -monitor "unix:$dir/dst.hmp,server=on,wait=off" -serial "file:$dir/dst.serial" 2>"$dir/dst.err" &
pids+=($!)
"$MIGVM" "${common[@]}" -name source -qmp "unix:$dir/src.qmp,server=on,wait=off" \
    -monitor "unix:$dir/src.hmp,server=on,wait=off" -serial "file:$dir/src.serial" 2>"$dir/src.err" &
pids+=($!)
wait_for "$dir/src.hmp"; wait_for "$dir/dst.hmp"

echo "== source: $(hmp "$dir/src.hmp" 'info status')   destination: $(hmp "$dir/dst.hmp" 'info status')"
wait_passes "$dir/src.serial" 1 || true
echo "== guest passes on the source so far: $(passes "$dir/src.serial")"
echo "(qemu) migrate_set_capability return-path on"
hmp "$dir/src.hmp" 'migrate_set_capability return-path on'
echo "(qemu) migrate_set_parameter max-bandwidth 200M"
hmp "$dir/src.hmp" 'migrate_set_parameter max-bandwidth 200M'
echo "(qemu) migrate -d unix:$dir/migration.sock"
hmp "$dir/src.hmp" "migrate -d unix:$dir/migration.sock"
for _ in $(seq 120); do
    info=$(hmp "$dir/src.hmp" 'info migrate')
    status=$(sed -n 's/^Migration status: //p' <<<"$info")
    printf '   %-10s transferred %8s kB  remaining %8s kB  %10s mbps  pass %s\n' "$status" \
        "$(sed -n 's/^transferred ram: \([0-9]*\).*/\1/p' <<<"$info")" \
        "$(sed -n 's/^remaining ram: \([0-9]*\).*/\1/p' <<<"$info")" \
        "$(sed -n 's/^throughput: \([0-9.]*\).*/\1/p' <<<"$info")" \
        "$(sed -n 's/^dirty sync count: //p' <<<"$info")"
    case "$status" in completed|failed*|cancelled) break ;; esac
    sleep 0.25
done
echo "(qemu) info migrate        # on the source"
hmp "$dir/src.hmp" 'info migrate' | sed -n '/^Migration status/,$p'
echo "== source: $(hmp "$dir/src.hmp" 'info status')   destination: $(hmp "$dir/dst.hmp" 'info status')"
at_switch=$(passes "$dir/dst.serial")
if wait_passes "$dir/dst.serial" "$at_switch"; then
    echo "== the guest goes on: the source logged $(passes "$dir/src.serial") passes before the switch, the destination has logged $(passes "$dir/dst.serial") since"
else
    echo "== the destination logged no new pass in 10 s" >&2
    failed=1
fi
echo "(qemu) info migrate_history        # on the source"
hmp "$dir/src.hmp" 'info migrate_history'
if scripts/migvm-plot --qmp "$dir/src.qmp" -o "$PLOT_OUT" >/dev/null; then
    echo "== the migration drawn by scripts/migvm-plot: $PLOT_OUT"
else
    echo "== scripts/migvm-plot failed (python3-matplotlib: scripts/install-deps.sh installs it)" >&2
    failed=1
fi
hmp "$dir/dst.hmp" 'quit' >/dev/null; hmp "$dir/src.hmp" 'quit' >/dev/null
exit "$failed"      # the demo fails when what it shows did not happen
