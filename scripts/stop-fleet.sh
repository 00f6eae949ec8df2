#!/usr/bin/env bash
# Stops the local fleet started by run-fleet.sh: SIGTERM to every process in the pid files
# (stores first, then PD), a bounded wait, then SIGKILL for whatever is left.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/fleet-env.sh"

STOP_TIMEOUT=30  # seconds for a clean exit after SIGTERM

# Signals every live process among the given names; prints the pids signalled.
signal_all() {
    local signal="$1"
    shift
    for name in "$@"; do
        if pid="$(live_pid "$PIDS/$name.pid")"; then
            kill "-$signal" "$pid" 2>/dev/null || true
            echo "$pid"
        fi
    done
}

# Waits until none of the given pids is alive; returns 1 on timeout.
wait_gone() {
    local deadline=$((SECONDS + STOP_TIMEOUT)) pid alive
    while :; do
        alive=0
        for pid in "$@"; do
            kill -0 "$pid" 2>/dev/null && alive=1
        done
        [ "$alive" -eq 0 ] && return 0
        [ "$SECONDS" -ge "$deadline" ] && return 1
        sleep 0.2
    done
}

stores=()
for i in $(seq 1 "$STORES"); do stores+=("store$i"); done

stopped=0
for group in "${stores[*]}" "pd"; do
    # shellcheck disable=SC2086
    pids=($(signal_all TERM $group))
    [ "${#pids[@]}" -eq 0 ] && continue
    stopped=$((stopped + ${#pids[@]}))
    echo "sent SIGTERM to $group (pids ${pids[*]})"
    if ! wait_gone "${pids[@]}"; then
        echo "still running after ${STOP_TIMEOUT}s; sending SIGKILL"
        for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
        wait_gone "${pids[@]}" || echo "warning: some processes survived SIGKILL: ${pids[*]}" >&2
    fi
done

rm -f "$PIDS"/*.pid 2>/dev/null || true
if [ "$stopped" -eq 0 ]; then
    echo "no fleet process was running"
else
    echo "the fleet is stopped; its data stays in $DATA (make run starts it again)"
fi
