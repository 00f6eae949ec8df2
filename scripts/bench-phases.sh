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
CLK_TCK="$(getconf CLK_TCK)"

# CPU seconds (user + system) the processes $SERVER_PIDS (the system under test, set by the
# caller) have used so far, from /proc/<pid>/stat; a process that is gone counts 0.
server_cpu_seconds() {
    local pid ticks=0 t
    for pid in $SERVER_PIDS; do
        # Fields after the command name: state is 1st, utime 12th, stime 13th.
        t="$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null | awk '{print $12 + $13}')" || t=0
        ticks=$((ticks + ${t:-0}))
    done
    awk -v t="$ticks" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", t / hz }'
}

# One row of the CPU table: phase, successful operations (from the phase's JSON), the server
# CPU seconds it took and CPU seconds per 1,000 operations.
cpu_row() {
    local phase="$1" json="$2" cpu="$3" ops
    ops="$(grep -o '"total_ops": *[0-9]*' "$json" | head -1 | tr -dc '0-9')"
    awk -v p="$phase" -v o="${ops:-0}" -v c="$cpu" \
        'BEGIN { printf "| %s | %d | %.1f | %.3f |\n", p, o, c, (o > 0 ? c * 1000 / o : 0) }'
}

# The load, then each of $WORKLOADS for $DURATION, each phase's JSON in $OUT/<name>-*.json, then
# one markdown table (<name>-summary.md). Sets bench_failed=1 when any request failed.
# Usage: run_bench_phases <name> <shoal-bench target arguments...>
run_bench_phases() {
    local name="$1" w
    shift
    local common=("$@" --records "$RECORDS" --concurrency "$CLIENTS" --client-threads "$CLIENT_THREADS" --value-size "$VALUE_SIZE" --seed 42 --json)
    local runs=("$OUT/$name-load.json")
    local cpu_rows=() before after
    bench_failed=0
    mkdir -p "$OUT"
    echo "== load: $RECORDS records of $VALUE_SIZE bytes, $CLIENTS clients"
    before="$(server_cpu_seconds)"
    "$BIN/shoal-bench" "${common[@]}" --phase load >"$OUT/$name-load.json" || bench_failed=1
    after="$(server_cpu_seconds)"
    cpu_rows+=("$(cpu_row load "$OUT/$name-load.json" "$(awk -v a="$after" -v b="$before" 'BEGIN { print a - b }')")")
    for w in $WORKLOADS; do
        echo "== workload $w: $DURATION, $CLIENTS clients"
        before="$(server_cpu_seconds)"
        "$BIN/shoal-bench" "${common[@]}" --workload "$w" --phase run --duration "$DURATION" \
            >"$OUT/$name-ycsb-$w.json" || bench_failed=1
        after="$(server_cpu_seconds)"
        cpu_rows+=("$(cpu_row "$w" "$OUT/$name-ycsb-$w.json" "$(awk -v a="$after" -v b="$before" 'BEGIN { print a - b }')")")
        runs+=("$OUT/$name-ycsb-$w.json")
    done
    {
        "$BIN/shoal-bench" table "${runs[@]}"
        echo
        echo "Server CPU ($name processes: $SERVER_PIDS; user + system from /proc):"
        echo
        echo "| phase | operations | server CPU s | CPU s per 1,000 ops |"
        echo "|---|---:|---:|---:|"
        printf '%s\n' "${cpu_rows[@]}"
    } | tee "$OUT/$name-summary.md"
    bench_runs=("${runs[@]}")
}
