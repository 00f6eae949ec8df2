# Shoal: build, test and run a local fleet.

CARGO ?= cargo

.PHONY: deps build test test-failpoints bench bench-micro bench-etcd fmt clippy clean run stop fuzz chaos

# Everything the build needs from the system: libclang for RocksDB's bindings; fontconfig,
# freetype and a font for the charts shoal-bench draws; libfaketime for the chaos tests' skewed
# clocks; chromium to render PD's dashboard in its fleet test; curl and jq for the benchmark
# scripts that read PD's HTTP API.
SYSTEM_PACKAGES := libclang-dev clang pkg-config libfontconfig1-dev libfreetype-dev fonts-dejavu-core faketime prometheus chromium curl jq

deps:
	@missing=""; for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing$$missing"; \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

build: deps
	$(CARGO) build --workspace --all-targets

# The fleet tests start the real binaries, so they are built first.
test: deps
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast -- --test-threads=2
	$(CARGO) test --workspace --features test-cluster/failpoints --test failpoints -- --test-threads=1

# Only the failpoint suite: stores crashed or held at precise steps (built with the
# `failpoints` feature, which production builds leave out). Selected with --workspace so the
# dependencies resolve with the workspace's features and RocksDB is not built a second time.
test-failpoints: deps
	$(CARGO) test --workspace --features test-cluster/failpoints --test failpoints -- --test-threads=1

# YCSB load + A, B, C, E on a fresh temporary fleet (100,000 records of 1 KiB, 64 clients, 30 s
# each; BENCH=large: 1,000,000 records, 60 s each; BENCH_RECORDS, BENCH_VALUE_SIZE,
# BENCH_DURATION, BENCH_CLIENTS, BENCH_CLIENT_THREADS and BENCH_WORKLOADS set each); results in bench-results/, with
# the server CPU seconds per 1,000 operations of every phase (from /proc). BENCH_API=txn runs every operation as a transaction, in
# BENCH_TXN_MODE: optimistic (the default), pessimistic (reads before a write take locks with
# get_for_update), async (async commit) or 1pc (one-phase commit); the results keep their
# shoal-txn-* names (each JSON records its mode), so set BENCH_OUT to keep several modes apart.
# The fleet runs the release shoal-server and shoal-pd, so every binary is built.
BENCH_TXN_MODE ?= optimistic
bench: deps
	$(CARGO) build --release --workspace --bins
	$(if $(BENCH_TXN_MODE),SHOAL_BENCH_TXN_MODE=$(BENCH_TXN_MODE)) bash scripts/bench-fleet.sh

# The bank on one fresh fleet, once per transaction mode in BENCH_TXN_MODES (default
# "optimistic pessimistic async 1pc"): 1,000 accounts (BENCH_ACCOUNTS), 16 clients
# (BENCH_CLIENTS), 30 s of transfers per mode (BENCH_DURATION), each run checking that one
# snapshot of all accounts holds the starting total; results in bench-results/shoal-bank-*.
.PHONY: bench-bank
bench-bank: deps
	$(CARGO) build --release --workspace --bins
	bash scripts/bench-bank.sh

# Regions by the hundred thousand on a fresh temporary fleet (REGIONS, default 100000):
# pre-split through PD with shoal-ctl presplit, then idle CPU and memory per peer of every
# process, region heartbeats reaching PD, how fast shoal-ctl and PD's HTTP API answer, and a
# store restart after SIGKILL; results in bench-results/regions-$REGIONS.md.
REGIONS ?= 100000
.PHONY: bench-regions
bench-regions: deps
	$(CARGO) build --release --workspace --bins
	REGIONS=$(REGIONS) bash scripts/bench-regions.sh

# The Grafana dashboard's panels drawn from real data: a temporary fleet and a Prometheus
# scraping it every 5 s, a YCSB load and 3 minutes of workload A with leader transfers, then
# dashboard.png (every panel) and one PNG per panel in target/dashboard/ (DASHBOARD_OUT).
.PHONY: render-dashboard
render-dashboard: deps
	$(CARGO) build --release --workspace --bins
	bash scripts/render-dashboard.sh

# The same workloads against a 3-member etcd cluster on loopback (Debian's etcd-server); the
# same settings (BENCH=large...) apply.
#
# Every release build here selects the whole workspace (--workspace --bins), never single
# packages: with -p, cargo resolves the dependencies' features for those packages alone and
# builds a second RocksDB (about 20 minutes on two cores) beside the one `make bench` built.
bench-etcd: deps
	$(CARGO) build --release --workspace --bins
	bash scripts/bench-etcd.sh

# Criterion micro-benchmarks (batch system, log writer, apply, codec, read path).
bench-micro: deps
	$(CARGO) bench -p shoal-benches --benches

fmt:
	$(CARGO) fmt --all

clippy: deps
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean

# A local fleet in the background: PD on 127.0.0.1:2379 (HTTP 2380) and three stores on
# 127.0.0.1:20160-20162, data under ${SHOAL_DATA:-./data}. Again while running: says so.
# TLS=1: TLS with client certificates on every link; a throwaway CA and certificates are made
# in ${SHOAL_DATA:-./data}/certs (shoal-ctl cert generate) and their paths printed.
# API=1: a cluster serving API V1 (keys as given, no keyspace) instead of V2; the version is
# fixed when the cluster is first bootstrapped.
run: deps
	$(CARGO) build --release --workspace --bins
	bash scripts/run-fleet.sh

# Stops the local fleet (SIGTERM, bounded wait, then SIGKILL); its data stays.
stop:
	bash scripts/stop-fleet.sh

# The decoder property tests (the `fuzz_*` tests in the `fuzz_decode.rs` test files of proto,
# keys, engine, server and pd): random bytes and damaged valid messages fed to every decoder
# of network and disk data, a million cases per property instead of the 2,000 `make test`
# runs (a property whose case reopens a database runs a hundredth as many). Under an hour
# on two cores; debug builds, so overflow checks stay on. Other counts and single
# properties:
#   PROPTEST_CASES=100000 cargo test --workspace --test fuzz_decode -- fuzz_
#   cargo test -p proto --test fuzz_decode fuzz_wire_codec_framed_mutated
fuzz: deps
	PROPTEST_CASES=1000000 $(CARGO) test --workspace --test fuzz_decode -- fuzz_ --test-threads=2

# The long fault suite (tests/src/bin/shoal-chaos.rs): each nemesis of NEMESIS runs SECONDS
# on a fresh fleet under recorded client load; histories, fault logs, per-key verdicts and a
# report go to chaos-results/<unix time>/. Exits non-zero on a non-linearizable history.
# Partitions need root (network namespaces) and are skipped without.
NEMESIS ?= kill,stop,transfer,split,membership,pd-restart,partition,clock,mixed
SECONDS ?= 300
chaos: deps
	$(CARGO) build --workspace --bins
	"$${CARGO_TARGET_DIR:-target}/debug/shoal-chaos" --nemesis $(NEMESIS) --seconds $(SECONDS)
