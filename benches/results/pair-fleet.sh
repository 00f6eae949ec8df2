# Sourced by the paired-run scripts under benches/results/: starts a fresh fleet (1 PD + 3
# stores) from the binaries in $SHOAL_BIN on ports 100 above `make run`'s, in a temporary
# directory that is stopped and removed on exit, and defines what the scripts share:
#   common       shoal-bench flags for 100,000 records of 1 KiB with 64 clients
#   store_pids   the three stores' pids
#   cpu_ticks    the stores' CPU so far in clock ticks (user + system, from /proc)
#   hz           clock ticks per second
#   OUT          a temporary directory for the run's files
PAIR_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export SHOAL_PORT_OFFSET=100
SHOAL_DATA="$(mktemp -d /tmp/shoal-pair.XXXXXX)"
export SHOAL_DATA
OUT="$(mktemp -d /tmp/shoal-pair-out.XXXXXX)"
source "$PAIR_ROOT/scripts/fleet-env.sh"
trap 'bash "$PAIR_ROOT/scripts/stop-fleet.sh" >/dev/null || true; rm -rf "$SHOAL_DATA" "$OUT"' EXIT
bash "$PAIR_ROOT/scripts/run-fleet.sh" >/dev/null

common=(--pd "$PD_GRPC" --api raw --records 100000 --concurrency 64 --value-size 1024 --seed 42 --json)
store_pids() { local i; for i in 1 2 3; do live_pid "$PIDS/store$i.pid"; done; }
cpu_ticks() {
    local pid t=0
    for pid in $(store_pids); do t=$((t + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13}'))); done
    echo "$t"
}
hz="$(getconf CLK_TCK)"
