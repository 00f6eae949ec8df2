# Shared settings of the local fleet scripts (sourced, not run).
# Data, logs and pid files live under ${SHOAL_DATA:-./data}; binaries come from
# ${SHOAL_BIN:-target/release} (the release directory under $CARGO_TARGET_DIR when that is
# set, taken relative to the repository root as `make` runs cargo there). SHOAL_PORT_OFFSET shifts every port, so a second fleet (make bench) can run beside
# the one from make run.

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA="$(realpath -m "${SHOAL_DATA:-./data}")"
BIN="${SHOAL_BIN:-$(cd "$ROOT" && realpath -m "${CARGO_TARGET_DIR:-target}/release")}"
LOGS="$DATA/logs"
PIDS="$DATA/pids"

PORT_OFFSET="${SHOAL_PORT_OFFSET:-0}"
PD_GRPC="127.0.0.1:$((2379 + PORT_OFFSET))"
PD_HTTP="127.0.0.1:$((2380 + PORT_OFFSET))"
STORES=3
store_addr() { echo "127.0.0.1:$((20159 + PORT_OFFSET + $1))"; }
store_status_addr() { echo "127.0.0.1:$((20179 + PORT_OFFSET + $1))"; }

# Prints the pid in pid file $1 if that process is alive and is one of ours.
live_pid() {
    local file="$1" pid
    [ -f "$file" ] || return 1
    pid="$(cat "$file" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    # A recycled pid belonging to something else is not ours.
    tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q 'shoal-' || return 1
    echo "$pid"
}
