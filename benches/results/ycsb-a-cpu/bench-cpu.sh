#!/usr/bin/env bash
# The bench client's own CPU per operation against each system: runs `make bench`'s and `make
# bench-etcd`'s phases (scripts/bench-fleet.sh and scripts/bench-etcd.sh, results in a temporary
# directory) with only the load and $WORKLOADS (default "A"), each shoal-bench run timed by
# /usr/bin/time, and prints per phase the operations, the servers' and the bench's CPU seconds
# per 1,000 operations. $1: the directory with the release binaries.
# Example: bash bench-cpu.sh target/release
set -uo pipefail
bins="$(realpath "$1")"
ROOTD="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
work="$(mktemp -d /tmp/bench-cpu.XXXXXX)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin"
for b in shoal-server shoal-pd shoal-ctl; do ln -s "$bins/$b" "$work/bin/$b"; done
# A shoal-bench that appends its own user + system seconds to times.txt after every run.
cat > "$work/bin/shoal-bench" <<EOS
#!/usr/bin/env bash
exec /usr/bin/time -a -o "$work/times.txt" -f "%U %S" "$bins/shoal-bench" "\$@"
EOS
chmod +x "$work/bin/shoal-bench"
for sys in fleet etcd; do
  : > "$work/times.txt"
  SHOAL_BIN="$work/bin" BENCH_OUT="$work/out-$sys" BENCH_WORKLOADS="${WORKLOADS:-A}" \
    bash "$ROOTD/scripts/bench-$sys.sh" > "$work/$sys.log" 2>&1
  name=shoal; [ $sys = etcd ] && name=etcd
  # The summary's CPU table rows (phase, operations, server CPU s, per 1,000) beside the
  # bench's seconds of the same phase, in order (the last line of times.txt is `table`).
  grep -E '^\| (load|[A-F]) \|' "$work/out-$sys/$name-summary.md" |
    awk -F'|' '$3 + 0 > 0 {print $2, $3, $5}' | paste -d' ' - <(grep -E '^[0-9.]+ [0-9.]+$' "$work/times.txt" | head -n -1) |
    awk -v n=$name '{printf "%-6s %-5s %8d ops  servers %.3f  bench %.4f CPU s per 1,000 ops\n", n, $1, $2, $3, ($4 + $5) * 1000 / $2}'
done
