#!/usr/bin/env bash
# Failover of one region on a local fleet: kills (SIGKILL) the store leading the region of a
# probe key and times, from the kill, (1) until PD names a leader of the region on another
# store and (2) until a write of the probe key goes through again. The killed store is then
# restarted and the next round waits for the fleet to settle.
#
#   SHOAL_BIN=<release dir> SHOAL_PORT_OFFSET=<n> SHOAL_DATA=<dir> \
#       bash benches/results/failover/measure.sh <rounds> <busy|idle>
#
# busy: a write of the probe key every 100 ms keeps the region awake until the kill.
# idle: nothing is written for 30 s before the kill, so the region is hibernated.
# The fleet (scripts/run-fleet.sh) is started if it does not run, and left running.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
source "$ROOT/scripts/fleet-env.sh"

ROUNDS="${1:?usage: measure.sh <rounds> <busy|idle>}"
MODE="${2:?usage: measure.sh <rounds> <busy|idle>}"
case "$MODE" in busy | idle) ;; *) echo "mode must be busy or idle" >&2; exit 1 ;; esac
KEY="failover-probe"
LIMIT=120 # seconds a round may wait for a new leader or a write

CTL=("$BIN/shoal-ctl" --pd "$PD_GRPC" --pd-http "$PD_HTTP")
bash "$ROOT/scripts/run-fleet.sh" >/dev/null

leader_store() {
    "${CTL[@]}" region --key "$KEY" 2>/dev/null |
        sed -n 's/^  leader:   peer [0-9]* on store \([0-9]*\)$/\1/p'
}

# The fleet index (1..3) of the store with PD id $1, by its address.
store_index() {
    local addr
    addr="$(curl -sf "http://$PD_HTTP/pd/api/v1/stores" |
        jq -r --argjson id "$1" '.stores[] | select(.store.id == $id) | .store.address')"
    for i in $(seq 1 "$STORES"); do
        [ "$(store_addr "$i")" = "$addr" ] && echo "$i" && return 0
    done
    return 1
}

now_ms() { date +%s%3N; }

for round in $(seq 1 "$ROUNDS"); do
    "${CTL[@]}" put "$KEY" "round-$round" >/dev/null
    writer=""
    if [ "$MODE" = busy ]; then
        (while :; do "${CTL[@]}" put "$KEY" busy >/dev/null 2>&1 || true; sleep 0.1; done) &
        writer=$!
        sleep 5
    else
        sleep 30
    fi
    old="$(leader_store)"
    index="$(store_index "$old")"
    pid="$(cat "$PIDS/store$index.pid")"
    killed="$(now_ms)"
    kill -KILL "$pid"
    [ -n "$writer" ] && kill "$writer" 2>/dev/null && wait "$writer" 2>/dev/null || true
    elected=""
    written=""
    while [ $(($(now_ms) - killed)) -lt $((LIMIT * 1000)) ]; do
        if [ -z "$elected" ]; then
            current="$(leader_store)"
            if [ -n "$current" ] && [ "$current" != "$old" ]; then
                elected="$(now_ms)"
            fi
        fi
        if [ -z "$written" ] && timeout 2 "${CTL[@]}" put "$KEY" after >/dev/null 2>&1; then
            written="$(now_ms)"
        fi
        [ -n "$elected" ] && [ -n "$written" ] && break
        sleep 0.2
    done
    fmt() { if [ -n "$1" ]; then awk -v ms="$(($1 - killed))" 'BEGIN { printf "%.1f", ms / 1000 }'; else echo "none"; fi; }
    echo "round $round ($MODE): killed store $old (store$index); new leader named by PD after $(fmt "$elected") s; first write after $(fmt "$written") s"
    bash "$ROOT/scripts/run-fleet.sh" >/dev/null
    sleep 10
done
