#!/usr/bin/env bash
# Starts a local fleet in the background: one PD (gRPC 127.0.0.1:2379, HTTP 127.0.0.1:2380)
# and three stores (127.0.0.1:20160-20162, status 20180-20182). Running it again while the
# fleet runs only says so; after stop-fleet.sh it restarts the same cluster on its data.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/fleet-env.sh"

# Output may go to a pipe its reader closes early (`make run | head`): a failed print must not
# fail the start, let alone stop the fleet, so prints ignore SIGPIPE and write errors.
trap '' PIPE
say() { printf '%s\n' "$@" 2>/dev/null || true; }

READY_TIMEOUT=60   # seconds for each process to print its READY line
# The cluster's storage API version (make run API=1): fixed when the cluster is first
# bootstrapped; a restart on existing data must use the same one.
API="${API:-2}"
case "$API" in
    1 | 2) ;;
    *) echo "error: API must be 1 or 2, not $API" >&2; exit 1 ;;
esac
SERVE_TIMEOUT=120  # seconds for the cluster to answer a write and a read
# STORE_CONFIG=<file>: more store settings (TOML sections such as [rocksdb]) layered over the
# fleet's store config, e.g. to compare engine tunings under `make bench`.
STORE_CONFIG="${STORE_CONFIG:-}"
if [ -n "$STORE_CONFIG" ] && [ ! -r "$STORE_CONFIG" ]; then
    echo "error: STORE_CONFIG $STORE_CONFIG is not a readable file" >&2
    exit 1
fi

for b in shoal-pd shoal-server shoal-ctl; do
    if [ ! -x "$BIN/$b" ]; then
        echo "error: $BIN/$b is missing; build with: cargo build --release --workspace --bins" >&2
        exit 1
    fi
done
mkdir -p "$LOGS" "$PIDS"

# make run TLS=1: TLS with client certificates on every link. A throwaway CA and its server
# (PD, stores) and client certificates are made once under $DATA/certs and kept with the data.
TLS="${TLS:-0}"
case "$TLS" in
    0 | 1) ;;
    *) echo "error: TLS must be 0 or 1, not $TLS" >&2; exit 1 ;;
esac
CERTS="$DATA/certs"
PD_TLS=()
STORE_TLS=()
CTL_TLS=()
SCHEME=http
if [ "$TLS" = 1 ]; then
    if [ ! -f "$CERTS/ca.pem" ]; then
        "$BIN/shoal-ctl" cert generate --dir "$CERTS"
    fi
    PD_TLS=(--cacert "$CERTS/ca.pem" --cert "$CERTS/server.pem" --key "$CERTS/server-key.pem")
    STORE_TLS=(--ca-path "$CERTS/ca.pem" --cert-path "$CERTS/server.pem" --key-path "$CERTS/server-key.pem")
    CTL_TLS=(--ca-path "$CERTS/ca.pem" --cert-path "$CERTS/client.pem" --key-path "$CERTS/client-key.pem")
    SCHEME=https
fi

# The processes this run started, in order. If the run fails, it stops them again, so a
# failed start leaves nothing running behind it (a process that was already running stays).
STARTED_NAMES=()
stop_started() {
    local i name pid pids=()
    for ((i = ${#STARTED_NAMES[@]} - 1; i >= 0; i--)); do
        name="${STARTED_NAMES[$i]}"
        if pid="$(live_pid "$PIDS/$name.pid")"; then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
        rm -f "$PIDS/$name.pid"
    done
    [ "${#pids[@]}" -eq 0 ] && return 0
    local deadline=$((SECONDS + 30))
    for pid in "${pids[@]}"; do
        while kill -0 "$pid" 2>/dev/null && [ "$SECONDS" -lt "$deadline" ]; do sleep 0.2; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    echo "stopped what this run had started (${STARTED_NAMES[*]})" >&2
}
trap 'status=$?; [ "$status" -ne 0 ] && stop_started; exit "$status"' EXIT

# Starts "$name" unless it already runs; $1 name, $2 READY word, rest the command.
start() {
    local name="$1" word="$2" pid log_bytes
    shift 2
    if pid="$(live_pid "$PIDS/$name.pid")"; then
        say "$name already running (pid $pid)"
        return 0
    fi
    : >"$LOGS/$name.stdout.log"
    # The log keeps earlier runs' lines; a failure shows only this start's.
    log_bytes="$(stat -c %s "$LOGS/$name.log" 2>/dev/null || echo 0)"
    # setsid: the process keeps running after this shell and its terminal go away.
    setsid "$@" >>"$LOGS/$name.stdout.log" 2>>"$LOGS/$name.log" </dev/null &
    pid=$!
    echo "$pid" >"$PIDS/$name.pid"
    STARTED_NAMES+=("$name")
    local waited=0
    until grep -q "^$word" "$LOGS/$name.stdout.log"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            echo "error: $name exited during start-up; last lines of $LOGS/$name.log:" >&2
            tail -c "+$((log_bytes + 1))" "$LOGS/$name.log" | tail -n 20 >&2
            exit 1
        fi
        if [ "$waited" -ge $((READY_TIMEOUT * 10)) ]; then
            echo "error: $name printed no $word line in ${READY_TIMEOUT}s; see $LOGS/$name.log" >&2
            exit 1
        fi
        sleep 0.1
        waited=$((waited + 1))
    done
    say "$name started (pid $pid): $(grep -m1 "^$word" "$LOGS/$name.stdout.log")"
    STARTED=$((STARTED + 1))
}

STARTED=0
mkdir -p "$DATA/pd"
start pd PD_READY "$BIN/shoal-pd" --name pd1 --data-dir "$DATA/pd" \
    --client-urls "http://$PD_GRPC" --advertise-client-urls "http://$PD_GRPC" \
    --http-addr "$PD_HTTP" "${PD_TLS[@]}"
# The stores' config: the shared settings plus the API version, then STORE_CONFIG's settings
# layered over them (a second --config: its keys override the same keys, section by section).
STORE_TOML="$DATA/store.toml"
{
    printf '[storage]\napi-version = %s\n\n' "$API"
    cat "$ROOT/scripts/fleet-store.toml"
} >"$STORE_TOML"
STORE_CONFIGS=(--config "$STORE_TOML")
if [ -n "$STORE_CONFIG" ]; then
    cp "$STORE_CONFIG" "$DATA/store-overrides.toml"
    STORE_CONFIGS+=(--config "$DATA/store-overrides.toml")
fi
for i in $(seq 1 "$STORES"); do
    mkdir -p "$DATA/store$i"
    start "store$i" STORE_READY "$BIN/shoal-server" --pd "$PD_GRPC" \
        --addr "$(store_addr "$i")" --status-addr "$(store_status_addr "$i")" \
        --data-dir "$DATA/store$i" "${STORE_CONFIGS[@]}" "${STORE_TLS[@]}"
done

CTL=("$BIN/shoal-ctl" --pd "$PD_GRPC" --pd-http "$PD_HTTP" --api-version "$API" "${CTL_TLS[@]}")
if [ "$API" = 1 ]; then
    # PD keeps one boundary near the top of an API V1 key space (see pd/README.md).
    FIXED_SPLIT='range:    [-inf, \xff\xff\xff\xff\xff\xff\xff\xff)'
    CLIENTS="tikv-client without keyspace (API V1)"
else
    FIXED_SPLIT='range:    [r\x00\x00\x00, '
    CLIENTS="tikv-client with the default keyspace"
fi
# Fails at once when a process this run started has exited since its READY line (a store
# that aborts right after start-up), rather than waiting out SERVE_TIMEOUT.
check_started_alive() {
    local name
    for name in "${STARTED_NAMES[@]}"; do
        if ! live_pid "$PIDS/$name.pid" >/dev/null; then
            echo "error: $name exited after start-up; last lines of $LOGS/$name.log:" >&2
            tail -n 20 "$LOGS/$name.log" >&2
            exit 1
        fi
    done
}

if [ "$STARTED" -eq 0 ]; then
    say "the fleet is already running"
else
    deadline=$((SECONDS + SERVE_TIMEOUT))
    # Raw scans are only right once PD has split the key space at its fixed boundaries (the
    # default keyspace in V2, the tail in V1; until then a scan can wrap around and repeat
    # keys), so wait for that first.
    until "${CTL[@]}" region --key '' 2>/dev/null | grep -qF "$FIXED_SPLIT"; do
        check_started_alive
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "error: PD did not split the key space at its fixed boundaries within ${SERVE_TIMEOUT}s; logs in $LOGS" >&2
            exit 1
        fi
        sleep 1
    done
    # Then the cluster serves once a write and a read of a probe key go through.
    until "${CTL[@]}" put __shoal_probe ok >/dev/null 2>&1 &&
        "${CTL[@]}" get __shoal_probe >/dev/null 2>&1; do
        check_started_alive
        if [ "$SECONDS" -ge "$deadline" ]; then
            echo "error: the cluster did not serve within ${SERVE_TIMEOUT}s; logs in $LOGS" >&2
            "${CTL[@]}" put __shoal_probe ok >&2 || true
            exit 1
        fi
        sleep 1
    done
    "${CTL[@]}" delete __shoal_probe >/dev/null 2>&1 || true
    say "the fleet is serving"
fi
# The fleet is up: from here nothing may stop it.
trap - EXIT

# How to stop this fleet: `make stop` finds it by the pid files under SHOAL_DATA.
STOP_ENV=""
[ -n "${SHOAL_DATA:-}" ] && STOP_ENV="SHOAL_DATA=$DATA "

cat 2>/dev/null <<INFO || true

  PD gRPC   $PD_GRPC   (API V$API; clients: $CLIENTS)
  PD HTTP   $SCHEME://$PD_HTTP/pd/api/v1
  stores    $(for i in $(seq 1 "$STORES"); do printf '%s ' "$(store_addr "$i")"; done)
  status    $(for i in $(seq 1 "$STORES"); do printf '%s://%s ' "$SCHEME" "$(store_status_addr "$i")"; done)
  data      $DATA   (logs in $LOGS)

  try:      $BIN/shoal-ctl --pd $PD_GRPC --api-version $API put hello world
            $BIN/shoal-ctl --pd $PD_GRPC --api-version $API get hello
            $BIN/shoal-ctl --pd-http $PD_HTTP cluster
  stop:     ${STOP_ENV}make stop
INFO
if [ "$TLS" = 1 ]; then
    cat 2>/dev/null <<TLSINFO || true
  TLS:      every endpoint needs a client certificate signed by $CERTS/ca.pem
  client    certificate $CERTS/client.pem, key $CERTS/client-key.pem
            shoal-ctl: add ${CTL_TLS[*]}
            tikv-client: Config::default().with_security("$CERTS/ca.pem", "$CERTS/client.pem", "$CERTS/client-key.pem")
TLSINFO
fi
