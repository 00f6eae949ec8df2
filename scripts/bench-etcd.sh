#!/usr/bin/env bash
# make bench-etcd: the same YCSB phases as make bench, against a 3-member etcd cluster
# (Debian's etcd-server, installed when missing) on loopback in a temporary directory, for a
# like-for-like comparison on the same machine. Results: bench-results/etcd-*.json and
# etcd-summary.md. The members are stopped and their directory removed at the end.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$ROOT/scripts/bench-phases.sh"
READY_TIMEOUT=60
CLIENT_PORT=23790 # member i serves clients on CLIENT_PORT+i and peers on CLIENT_PORT+10+i

if ! command -v etcd >/dev/null; then
    echo "installing etcd-server"
    if [ "$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi
    $SUDO apt-get update -qq
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
fi

DATA="$(mktemp -d "${TMPDIR:-/tmp}/etcd-bench.XXXXXX")"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
    done
    rm -rf "$DATA"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

client_url() { echo "http://127.0.0.1:$((CLIENT_PORT + $1))"; }
peer_url() { echo "http://127.0.0.1:$((CLIENT_PORT + 10 + $1))"; }
cluster=""
for i in 1 2 3; do cluster+="${cluster:+,}m$i=$(peer_url "$i")"; done
for i in 1 2 3; do
    etcd --name "m$i" --data-dir "$DATA/m$i" \
        --listen-client-urls "$(client_url "$i")" --advertise-client-urls "$(client_url "$i")" \
        --listen-peer-urls "$(peer_url "$i")" --initial-advertise-peer-urls "$(peer_url "$i")" \
        --initial-cluster "$cluster" --initial-cluster-state new \
        --initial-cluster-token shoal-bench >"$DATA/m$i.log" 2>&1 &
    pids+=("$!")
done
endpoints="$(client_url 1),$(client_url 2),$(client_url 3)"
deadline=$((SECONDS + READY_TIMEOUT))
# Every member's /health answers {"health":"true"} once the cluster has a leader (curl: the
# etcd-server package ships no etcdctl).
all_healthy() {
    local i
    for i in 1 2 3; do
        curl -sf --max-time 2 "$(client_url "$i")/health" | grep -q '"health":"true"' || return 1
    done
}
until all_healthy; do
    if [ "$SECONDS" -ge "$deadline" ]; then
        echo "error: etcd was not healthy within ${READY_TIMEOUT}s; last lines of its log:" >&2
        tail -n 20 "$DATA/m1.log" >&2
        exit 1
    fi
    sleep 0.5
done
echo "etcd $(etcd --version | head -1 | awk '{print $3}'): 3 members at $endpoints"

SERVER_PIDS="${pids[*]}"
run_bench_phases etcd --target etcd --etcd "$endpoints"
echo "results: $OUT (etcd-*.json, etcd-summary.md)"
if [ "$bench_failed" -ne 0 ]; then
    echo "error: some requests failed; see the tables above" >&2
    exit 1
fi
