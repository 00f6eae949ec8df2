# The YCSB settings and phases shared by bench-fleet.sh and bench-etcd.sh (sourced after ROOT is
# set, not run). Every setting can be overridden from the environment.
BIN="${SHOAL_BIN:-$ROOT/target/release}"
OUT="$(realpath -m "${BENCH_OUT:-$ROOT/bench-results}")"
RECORDS="${BENCH_RECORDS:-100000}"
DURATION="${BENCH_DURATION:-30s}"
CLIENTS="${BENCH_CLIENTS:-64}"
VALUE_SIZE="${BENCH_VALUE_SIZE:-1024}"
WORKLOADS="${BENCH_WORKLOADS:-A B C E}"

# The load, then each of $WORKLOADS for $DURATION, each phase's JSON in $OUT/<name>-*.json, then
# one markdown table (<name>-summary.md). Sets bench_failed=1 when any request failed.
# Usage: run_bench_phases <name> <shoal-bench target arguments...>
run_bench_phases() {
    local name="$1" w
    shift
    local common=("$@" --records "$RECORDS" --concurrency "$CLIENTS" --value-size "$VALUE_SIZE" --seed 42 --json)
    local runs=("$OUT/$name-load.json")
    bench_failed=0
    mkdir -p "$OUT"
    echo "== load: $RECORDS records of $VALUE_SIZE bytes, $CLIENTS clients"
    "$BIN/shoal-bench" "${common[@]}" --phase load >"$OUT/$name-load.json" || bench_failed=1
    for w in $WORKLOADS; do
        echo "== workload $w: $DURATION, $CLIENTS clients"
        "$BIN/shoal-bench" "${common[@]}" --workload "$w" --phase run --duration "$DURATION" \
            >"$OUT/$name-ycsb-$w.json" || bench_failed=1
        runs+=("$OUT/$name-ycsb-$w.json")
    done
    "$BIN/shoal-bench" table "${runs[@]}" | tee "$OUT/$name-summary.md"
    bench_runs=("${runs[@]}")
}
