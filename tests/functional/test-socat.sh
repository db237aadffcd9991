#!/bin/bash
# QMP and HMP driven with socat, exactly as a user scripts it:
#   echo '{"execute":"qmp_capabilities"}{"execute":"query-status"}' | socat - UNIX-CONNECT:$sock
#   echo "info status" | socat - UNIX-CONNECT:$hmpsock
# Outputs are checked with grep. Closing line: "N passed, N failed".
set -u

BUILD=${BUILD:-build}
BIN=${MIGVM_TEST_BINARY:-$BUILD/migvm}
ACCEL=soft
case "$(basename "$BIN")" in qemu-system*) ACCEL=tcg ;; esac

# socat is a test dependency (scripts/install-deps.sh) and make builds migvm:
# either missing is a failure, not a skip.
cannot_run() { echo "FAIL - $1"; echo "0 passed, 1 failed"; exit 1; }
command -v socat >/dev/null || cannot_run "socat is installed (scripts/install-deps.sh installs it)"
BIN=$(command -v "$BIN" || true)
[ -n "$BIN" ] && [ -x "$BIN" ] || cannot_run "${MIGVM_TEST_BINARY:-$BUILD/migvm} is built"

tmp=$(mktemp -d /tmp/migvm-socat.XXXXXX)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

passed=0 failed=0
ok()   { echo "ok - $1"; passed=$((passed + 1)); }
fail() { echo "FAIL - $1: $2"; failed=$((failed + 1)); }
# expect NAME OUTPUT EXTENDED-REGEX
expect() { if grep -qE -- "$3" <<<"$2"; then ok "$1"; else fail "$1" "expected /$3/ in: $(head -c 400 <<<"$2")"; fi; }
# expect_fixed NAME OUTPUT STRING
expect_fixed() { if grep -qF -- "$3" <<<"$2"; then ok "$1"; else fail "$1" "expected '$3' in: $(head -c 400 <<<"$2")"; fi; }
# wait_for COMMAND...: poll up to 10 s
wait_for() {
    local deadline=$((SECONDS + 10))
    until "$@"; do
        [ $SECONDS -ge $deadline ] && return 1
        sleep 0.02
    done
}
# gone PID: exited (a child that has exited stays a zombie until `wait`)
gone() { [ ! -e "/proc/$1" ] || grep -q '^State:[[:space:]]*Z' "/proc/$1/status" 2>/dev/null; }

qmp() { socat - "UNIX-CONNECT:$QMP"; }
hmp() { socat - "UNIX-CONNECT:$HMP"; }
NEG='{"execute":"qmp_capabilities"}'

QMP=$tmp/qmp.sock HMP=$tmp/hmp.sock
"$BIN" -display none -nodefaults -accel $ACCEL -S -name socatvm \
    -qmp "unix:$QMP,server=on,wait=off" -monitor "unix:$HMP,server=on,wait=off" \
    </dev/null >"$tmp/out" 2>"$tmp/err" &
pid=$!
pids+=("$pid")
if ! wait_for test -S "$QMP" -a -S "$HMP"; then
    fail "migvm starts and creates its sockets" "$(cat "$tmp/err")"
    echo "$passed passed, $failed failed"
    exit 1
fi
ok "migvm starts and creates its sockets"

out=$(echo | qmp)
expect "QMP greeting" "$out" '^\{"QMP": ?\{"version": ?\{'
expect "greeting offers capabilities" "$out" '"capabilities": ?\['

out=$(echo '{"execute":"query-status"}' | qmp)
expect "command before negotiation is refused" "$out" '"class": ?"CommandNotFound"'
expect_fixed "negotiation error text" "$out" "Expecting capabilities negotiation with 'qmp_capabilities'"

out=$(echo '{"execute":"qmp_capabilities"}{"execute":"query-status"}' | qmp)
expect "qmp_capabilities then query-status in one line" "$out" '"status": ?"prelaunch"'
expect "query-status running is false" "$out" '"running": ?false'
n=$(grep -c '"return"' <<<"$out")
[ "$n" -eq 2 ] && ok "two returns for two commands" || fail "two returns for two commands" "$out"

out=$(printf '%s\n%s\n' "$NEG" '{"execute":"query-name"}' | qmp)
expect "query-name shows -name" "$out" '"return": ?\{"name": ?"socatvm"\}'

out=$(echo "$NEG"'{"execute":"query-status","id":1} {"execute":"query-name","id":2}
{"execute":"query-kvm","id":3}' | qmp)
ids=$(grep -oE '"id": ?[0-9]+' <<<"$out" | grep -oE '[0-9]+$' | tr -d '\n')
[ "$ids" = "123" ] && ok "responses in request order with ids" || fail "responses in request order with ids" "$out"

out=$(echo "$NEG"' garbage {"execute":"query-status","id":"after"}' | qmp)
expect_fixed "garbage answers a JSON parse error" "$out" "JSON parse error, invalid keyword 'garbage'"
expect "and the next command is answered" "$out" '"id": ?"after"'

out=$(echo "$NEG"'{"execute":"no-such-command"}' | qmp)
expect_fixed "unknown command" "$out" 'The command no-such-command has not been found'

out=$(echo "$NEG"'{"execute":"human-monitor-command","arguments":{"command-line":"info status"}}' | qmp)
expect_fixed "human-monitor-command info status" "$out" '"return": "VM status: paused (prelaunch)\r\n"'

out=$(echo "info status" | hmp)
expect_fixed "HMP banner" "$out" "monitor - type 'help' for more information"
expect_fixed "HMP info status (prelaunch)" "$out" "VM status: paused (prelaunch)"
expect_fixed "HMP prompt" "$out" "(qemu) "

out=$(echo "info name" | hmp)
expect "HMP info name" "$out" '^socatvm'$'\r''?$'

out=$(echo "help" | hmp)
expect "HMP help lists quit|q" "$out" '^quit\|q +-- '
expect "HMP help lists info" "$out" '^info '

out=$(echo "c" | hmp)
out=$(echo "info status" | hmp)
expect_fixed "HMP c then info status: running" "$out" "VM status: running"

out=$(echo "$NEG"'{"execute":"stop"}' | qmp)
expect "QMP stop: STOP event" "$out" '"event": ?"STOP"'
expect "QMP stop: timestamp on the event" "$out" '"timestamp": ?\{"seconds": ?[0-9]+, ?"microseconds": ?[0-9]+\}'
out=$(echo "info status" | hmp)
expect_fixed "HMP sees the QMP stop" "$out" "VM status: paused"

out=$(printf 'cont\ninfo status\nstop\ninfo status\n' | hmp)
expect_fixed "several HMP lines in one session: running" "$out" "VM status: running"
expect_fixed "several HMP lines in one session: paused" "$out" "VM status: paused"

out=$(echo "$NEG"'{"execute":"cont"}' | qmp)
expect "QMP cont: RESUME event" "$out" '"event": ?"RESUME"'

out=$(echo "$NEG"'{"execute":"system_reset"}' | qmp)
expect "QMP system_reset: RESET event with reason" "$out" '"event": ?"RESET"'
expect_fixed "RESET reason host-qmp-system-reset" "$out" 'host-qmp-system-reset'

out=$(echo "nosuchcmd" | hmp)
expect_fixed "HMP unknown command" "$out" "unknown command: 'nosuchcmd'"
out=$(echo "stop now" | hmp)
expect_fixed "HMP extraneous characters" "$out" "extraneous characters at the end of line"
expect_fixed "HMP points at help" "$out" 'Try "help stop" for more information'
out=$(echo "info status" | hmp)
expect_fixed "HMP still serves after errors" "$out" "VM status: running"

# TCP monitor on a second VM.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$BIN" -display none -nodefaults -accel $ACCEL -qmp "tcp:127.0.0.1:$port,server=on,wait=off" \
    </dev/null >"$tmp/out2" 2>"$tmp/err2" &
pid2=$!
pids+=("$pid2")
tcp_up() { echo | socat - "TCP:127.0.0.1:$port" 2>/dev/null | grep -q '"QMP"'; }
if wait_for tcp_up; then
    out=$(echo "$NEG"'{"execute":"query-status"}' | socat - "TCP:127.0.0.1:$port")
    expect "QMP over TCP with socat" "$out" '"status": ?"running"'
    out=$(echo "$NEG"'{"execute":"quit"}' | socat - "TCP:127.0.0.1:$port")
    expect "QMP quit over TCP: SHUTDOWN" "$out" '"event": ?"SHUTDOWN"'
    wait_for gone "$pid2" && ok "TCP VM exits after quit" || fail "TCP VM exits after quit" "still running"
else
    fail "QMP over TCP with socat" "no greeting on port $port: $(cat "$tmp/err2")"
fi

# quit through QMP: SHUTDOWN, return, exit 0, sockets removed.
out=$(echo "$NEG"'{"execute":"quit"}' | qmp)
expect "QMP quit: SHUTDOWN event" "$out" '"event": ?"SHUTDOWN"'
expect_fixed "QMP quit: reason host-qmp-quit" "$out" '"reason": "host-qmp-quit"'
n=$(grep -c '"return": {}' <<<"$out")
[ "$n" -eq 2 ] && ok "QMP quit: returns {}" || fail "QMP quit: returns {}" "$out"
if wait_for gone "$pid"; then
    wait "$pid"
    rc=$?
    [ $rc -eq 0 ] && ok "process exits with status 0" || fail "process exits with status 0" "status $rc"
else
    fail "process exits after quit" "still running"
fi
[ ! -e "$QMP" ] && ok "QMP socket removed" || fail "QMP socket removed" "$QMP still there"
[ ! -e "$HMP" ] && ok "HMP socket removed" || fail "HMP socket removed" "$HMP still there"

# SIGTERM: clean shutdown, sockets removed.
QMP=$tmp/qmp3.sock HMP=$tmp/hmp3.sock
"$BIN" -display none -nodefaults -accel $ACCEL \
    -qmp "unix:$QMP,server=on,wait=off" -monitor "unix:$HMP,server=on,wait=off" \
    </dev/null >"$tmp/out3" 2>"$tmp/err3" &
pid3=$!
pids+=("$pid3")
if wait_for test -S "$QMP" -a -S "$HMP"; then
    echo | qmp >/dev/null      # up and serving (greeting read) before the signal
    kill -TERM "$pid3"
    if wait_for gone "$pid3"; then
        wait "$pid3"
        rc=$?
        [ $rc -eq 0 ] && ok "SIGTERM: exit status 0" || fail "SIGTERM: exit status 0" "status $rc"
    else
        fail "SIGTERM: process exits" "still running"
    fi
    [ ! -e "$QMP" ] && [ ! -e "$HMP" ] && ok "SIGTERM: sockets removed" || fail "SIGTERM: sockets removed" \
        "$(ls "$tmp")"
else
    fail "third VM starts" "$(cat "$tmp/err3")"
fi

echo "$passed passed, $failed failed"
[ $failed -eq 0 ]
