# The YCSB settings and phases shared by bench-fleet.sh and bench-etcd.sh (sourced after ROOT is
# set, not run). Every setting can be overridden from the environment.
BIN="${SHOAL_BIN:-$(cd "$ROOT" && realpath -m "${CARGO_TARGET_DIR:-target}/release")}"
OUT="$(realpath -m "${BENCH_OUT:-$ROOT/bench-results}")"
RECORDS="${BENCH_RECORDS:-100000}"
DURATION="${BENCH_DURATION:-30s}"
CLIENTS="${BENCH_CLIENTS:-64}"
# Threads of the bench's own client runtime (shoal-bench --client-threads): one leaves the
# most of a small machine's cores to the servers under test.
CLIENT_THREADS="${BENCH_CLIENT_THREADS:-1}"
VALUE_SIZE="${BENCH_VALUE_SIZE:-1024}"
WORKLOADS="${BENCH_WORKLOADS:-A B C E}"
# BENCH=large: 1,000,000 records of 1 KiB (about 1 GiB of values, many regions), 60 s each.
if [ "${BENCH:-}" = "large" ]; then
    RECORDS="${BENCH_RECORDS:-1000000}"
    DURATION="${BENCH_DURATION:-60s}"
fi
# After each phase, wait (at most this many seconds; 0: not at all) until the system under
# test has finished the background work the phase left behind (an LSM tree's flushes and
# compactions after a load, region splits), so that each workload starts on a quiet system and
# the phase that caused the work is charged its CPU. Quiet: the servers together below a tenth
# of one core for three seconds in a row.
SETTLE_TIMEOUT="${BENCH_SETTLE_TIMEOUT:-300}"
if ! [[ "$SETTLE_TIMEOUT" =~ ^[0-9]+$ ]]; then
    echo "error: BENCH_SETTLE_TIMEOUT must be a whole number of seconds, not '$SETTLE_TIMEOUT'" >&2
    exit 2
fi
CLK_TCK="$(getconf CLK_TCK)"

# CPU ticks (user + system) the processes $SERVER_PIDS (the system under test, set by the
# caller) have used so far, from /proc/<pid>/stat; a process that is gone counts 0.
server_cpu_ticks() {
    local pid ticks=0 t
    for pid in $SERVER_PIDS; do
        # Fields after the command name: state is 1st, utime 12th, stime 13th.
        t="$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}')" || t=0
        ticks=$((ticks + ${t:-0}))
    done
    echo "$ticks"
}

# The same in seconds.
server_cpu_seconds() {
    awk -v t="$(server_cpu_ticks)" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }'
}

# Waits until the servers are quiet (see SETTLE_TIMEOUT) or the timeout has passed; prints the
# seconds waited, and a warning on stderr when they never went quiet.
settle() {
    local waited=0 quiet=0 prev now
    prev="$(server_cpu_ticks)"
    while [ "$waited" -lt "$SETTLE_TIMEOUT" ] && [ "$quiet" -lt 3 ]; do
        sleep 1
        waited=$((waited + 1))
        now="$(server_cpu_ticks)"
        if [ $(((now - prev) * 10)) -lt "$CLK_TCK" ]; then
            quiet=$((quiet + 1))
        else
            quiet=0
        fi
        prev="$now"
    done
    if [ "$quiet" -lt 3 ] && [ "$SETTLE_TIMEOUT" -gt 0 ]; then
        echo "warning: the servers were still busy ${SETTLE_TIMEOUT}s after the phase" >&2
    fi
    echo "$waited"
}

# One row of the CPU table: phase, successful operations (from the phase's JSON), the server
# CPU seconds it took (the quiet-down after it included), CPU seconds per 1,000 operations and
# the seconds the servers took to go quiet after it.
cpu_row() {
    local phase="$1" json="$2" cpu="$3" settled="$4" ops
    ops="$(grep -o '"total_ops": *[0-9]*' "$json" | head -1 | tr -dc '0-9')"
    awk -v p="$phase" -v o="${ops:-0}" -v c="$cpu" -v s="$settled" \
        'BEGIN { printf "| %s | %d | %.1f | %.3f | %d |\n", p, o, c, (o > 0 ? c * 1000 / o : 0), s }'
}

# Runs one phase: its name in the CPU table ($1), where its JSON goes ($2), then shoal-bench's
# arguments. Waits for the servers to go quiet and adds the phase's row to cpu_rows.
run_phase() {
    local phase="$1" json="$2" before after settled
    shift 2
    before="$(server_cpu_seconds)"
    "$BIN/shoal-bench" "$@" >"$json" || bench_failed=1
    settled="$(settle)"
    if [ "$SETTLE_TIMEOUT" -gt 0 ]; then
        echo "   servers quiet ${settled}s after $phase"
    fi
    after="$(server_cpu_seconds)"
    cpu_rows+=("$(cpu_row "$phase" "$json" "$(awk -v a="$after" -v b="$before" 'BEGIN { print a - b }')" "$settled")")
}

# The load, then each of $WORKLOADS for $DURATION, each phase's JSON in $OUT/<name>-*.json, then
# one markdown table (<name>-summary.md). Sets bench_failed=1 when any request failed.
# Usage: run_bench_phases <name> <shoal-bench target arguments...>
run_bench_phases() {
    local name="$1" w
    shift
    local common=("$@" --records "$RECORDS" --concurrency "$CLIENTS" --client-threads "$CLIENT_THREADS" --value-size "$VALUE_SIZE" --seed 42 --json)
    local runs=("$OUT/$name-load.json")
    local cpu_rows=()
    bench_failed=0
    mkdir -p "$OUT"
    echo "== load: $RECORDS records of $VALUE_SIZE bytes, $CLIENTS clients"
    run_phase load "$OUT/$name-load.json" "${common[@]}" --phase load
    for w in $WORKLOADS; do
        echo "== workload $w: $DURATION, $CLIENTS clients"
        run_phase "$w" "$OUT/$name-ycsb-$w.json" "${common[@]}" --workload "$w" --phase run --duration "$DURATION"
        runs+=("$OUT/$name-ycsb-$w.json")
    done
    {
        "$BIN/shoal-bench" table "${runs[@]}"
        echo
        echo "Server CPU ($name processes: $SERVER_PIDS; user + system from /proc)."
        if [ "$SETTLE_TIMEOUT" -gt 0 ]; then
            echo "Each phase started once the servers were quiet, and its row counts the CPU of"
            echo "the quiet-down after it (BENCH_SETTLE_TIMEOUT=$SETTLE_TIMEOUT s at most):"
        else
            echo "Each phase started as soon as the one before ended (BENCH_SETTLE_TIMEOUT=0):"
        fi
        echo
        echo "| phase | operations | server CPU s | CPU s per 1,000 ops | quiet after, s |"
        echo "|---|---:|---:|---:|---:|"
        printf '%s\n' "${cpu_rows[@]}"
    } | tee "$OUT/$name-summary.md"
    bench_runs=("${runs[@]}")
}
