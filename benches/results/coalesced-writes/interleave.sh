#!/usr/bin/env bash
# Usage: benches/results/coalesced-writes/interleave.sh <bins-a> <bins-b> <workload> <rounds> <duration>
# Two fleets loaded with 100,000 records each, then the workload on each in turn: the runs in
# results.txt. The script now lives with the later runs that extended it (which fleet goes
# first alternates by round; more workloads, record counts and the bench's CPU).
exec bash "$(dirname "${BASH_SOURCE[0]}")/../grpc-yield/interleave.sh" "$@"
