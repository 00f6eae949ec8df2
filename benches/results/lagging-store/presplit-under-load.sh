#!/usr/bin/env bash
# A 300,000-region pre-split while a clean-clone `make test` competes for the machine, with
# each store's memory sampled every 5 s: jemalloc's allocated and active bytes (MiB),
# raft-engine's memory (MiB), raft messages received, and raft messages for unknown regions
# dropped because the store FSM's mailbox was full.
# Usage: presplit-under-load.sh <bin-dir> <out-dir> [settle seconds, default 600]
# Fleet on ports 300 above `make run`'s; data, logs and the clone under <out-dir>.
set -uo pipefail
BINS="$(cd "$1" && pwd)"; OUT="$2"; SETTLE="${3:-600}"
ROOTD="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
mkdir -p "$OUT"; OUT="$(cd "$OUT" && pwd)"
D="$OUT/data"; rm -rf "$D" "$OUT/check"; mkdir -p "$D"
SHOAL_BIN="$BINS" SHOAL_PORT_OFFSET=300 SHOAL_DATA="$D" bash "$ROOTD/scripts/run-fleet.sh" > "$OUT/fleet.log" 2>&1 || exit 1
stop() {
  kill "${SAMPLER:-}" 2>/dev/null
  [ -n "${TESTS:-}" ] && kill -- "-$TESTS" 2>/dev/null
  SHOAL_PORT_OFFSET=300 SHOAL_DATA="$D" bash "$ROOTD/scripts/stop-fleet.sh" > /dev/null 2>&1
}
trap stop EXIT
git clone -q "$ROOTD" "$OUT/check"
# In a session of its own, so that stopping it stops cargo and the tests too.
( cd "$OUT/check" && exec setsid bash -c \
    'CARGO_TARGET_DIR="$0/target" make test > "$1/test.log" 2>&1; echo "exit $?" >> "$1/test.log"' \
    "$ROOTD" "$OUT" ) &
TESTS=$!
metric() { echo "$1" | awk -v n="$2" 'index($0, n) == 1 {printf "%d", $2 / '"${3:-1}"'}'; }
sample() {
  while :; do
    local line; line="$(date +%s)"
    for i in 0 1 2; do
      local m; m=$(curl -s -m 3 "http://127.0.0.1:$((20480 + i))/metrics")
      line="$line | s$((i + 1)) alloc=$(metric "$m" 'shoal_allocator_bytes{kind="allocated"}' 1048576)"
      line="$line active=$(metric "$m" 'shoal_allocator_bytes{kind="active"}' 1048576)"
      line="$line re=$(metric "$m" 'raft_engine_memory_usage ' 1048576)"
      line="$line rx=$(metric "$m" 'shoal_server_raft_messages_received_total ')"
      line="$line dropped=$(metric "$m" 'shoal_raftstore_raft_messages_dropped_mailbox_full_total{mailbox="store"}')"
    done
    echo "$line" >> "$OUT/samples.txt"
    sleep 5
  done
}
: > "$OUT/samples.txt"
sample & SAMPLER=$!
sleep 60
start=$(date +%s)
"$BINS/shoal-ctl" --pd 127.0.0.1:2679 --pd-http 127.0.0.1:2680 presplit --prefix user \
  --digits 20 --max 18446744073709551615 --regions 300000 > "$OUT/presplit.log" 2>&1
echo "presplit done after $(( $(date +%s) - start )) s" | tee -a "$OUT/samples.txt"
sleep "$SETTLE"
