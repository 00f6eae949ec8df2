# Shoal: build, test and run a local fleet.

CARGO ?= cargo

.PHONY: deps build test bench fmt clippy clean run stop

# Everything the build needs from the system: libclang for RocksDB's bindings.
deps:
	@if ! dpkg -s libclang-dev >/dev/null 2>&1; then \
		echo "installing libclang-dev (needed by RocksDB's bindings)"; \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libclang-dev clang >/dev/null; \
		else sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libclang-dev clang >/dev/null; fi; \
	fi

build: deps
	$(CARGO) build --workspace --all-targets

# The fleet tests start the real binaries, so they are built first.
test: deps
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace --no-fail-fast -- --test-threads=2

bench: deps
	$(CARGO) bench --workspace

fmt:
	$(CARGO) fmt --all

clippy: deps
	$(CARGO) clippy --workspace --all-targets -- -D warnings

clean:
	$(CARGO) clean

# A local fleet in the background: PD on 127.0.0.1:2379 (HTTP 2380) and three stores on
# 127.0.0.1:20160-20162, data under ${SHOAL_DATA:-./data}. Again while running: says so.
run: deps
	$(CARGO) build --release -p pd -p server -p shoal-ctl
	bash scripts/run-fleet.sh

# Stops the local fleet (SIGTERM, bounded wait, then SIGKILL); its data stays.
stop:
	bash scripts/stop-fleet.sh
