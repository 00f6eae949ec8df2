# Sourced by threads.sh, syscalls.sh and ../split-check-estimates/load-threads.sh: starts a
# fleet from the binaries in $1 and the scripts directory $2 (and so its fleet-store.toml) on
# ports 500 above `make run`'s, in a temporary directory stopped and removed on exit, and
# loads $RECORDS records of 1 KiB (default 100,000; none with SKIP_LOAD=1). Defines `bins`,
# `data` (the fleet's directory), `common` (shoal-bench flags for this fleet) and
# `store_pids`.
set -uo pipefail
bins="$1"; scripts="$2"
ROOTD="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
data="$(mktemp -d /tmp/shoal-rc.XXXXXX)"
trap 'SHOAL_DATA=$data bash "$ROOTD/scripts/stop-fleet.sh" >/dev/null 2>&1; rm -rf "$data"' EXIT
SHOAL_BIN="$bins" SHOAL_PORT_OFFSET=500 SHOAL_DATA="$data" bash "$scripts/run-fleet.sh" >/dev/null
common="--pd 127.0.0.1:2879 --api raw --records ${RECORDS:-100000} --concurrency 64 --value-size 1024 --seed 42 --json"
[ -n "${SKIP_LOAD:-}" ] || "$bins/shoal-bench" $common --phase load > "$data/load.json" 2>/dev/null
store_pids() { cat "$data"/pids/store*.pid; }
