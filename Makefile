# The two commands of the README: `make demo` runs a local three-node cluster behind
# nginx and kills one node; `make test` runs every test suite. Both install what they
# need first (liblz4-dev, pkg-config, nginx, iproute2, iptables; pytest), so they work on
# a fresh Debian machine.

SWIFT ?= swift
BUILD_FLAGS ?=
BIN := $(shell $(SWIFT) build $(BUILD_FLAGS) --show-bin-path 2>/dev/null)

.PHONY: deps build demo example-hummingbird example-vapor test test-swift test-fault test-fuzz soak fuzz fuzz-short bench bench-apps clean

deps:
	@bash scripts/install-deps.sh

build: deps
	$(SWIFT) build $(BUILD_FLAGS)

demo: build
	"$(BIN)/session-node" demo

# The example shops of the README, three processes each behind nginx, until Ctrl-C.
example-hummingbird: build
	EXAMPLE_BIN_DIR="$(BIN)" python3 Examples/run.py hummingbird

example-vapor: build
	EXAMPLE_BIN_DIR="$(BIN)" python3 Examples/run.py vapor

# The fuzzers' short run last: it builds them in .build (reusing its C objects), which
# leaves the Swift modules there compiled with the sanitizers.
test: deps test-swift test-fault test-fuzz

# The simulation sweep keeps both cores busy for minutes, and the 1,000-pair concurrency
# suites for seconds; each runs on its own so that the real-socket tests, whose nodes must
# hear heartbeats on time, do not run starved beside them.
test-swift:
	$(SWIFT) build $(BUILD_FLAGS) --build-tests
	$(SWIFT) test $(BUILD_FLAGS) --skip-build --skip 'SweepTests|ConcurrentRequestTests'
	$(SWIFT) test $(BUILD_FLAGS) --skip-build --filter ConcurrentRequestTests
	$(SWIFT) test $(BUILD_FLAGS) --skip-build --filter SweepTests

# Kills, pauses and restarts on 127.0.0.1, then network faults between nodes in network
# namespaces (needs root: CI runs as root).
test-fault: build
	SESSION_NODE_BIN="$(BIN)/session-node" python3 -m pytest -q -p no:cacheprovider Tests/fault

# 30 minutes of random network faults on 5 nodes under load (not in CI). SOAK_ARGS="--minutes 5".
SOAK_ARGS ?= --minutes 30
soak: build
	SESSION_NODE_BIN="$(BIN)/session-node" python3 Tests/fault/soak.py $(SOAK_ARGS)

# The libFuzzer targets of Fuzz/, 10 minutes each (FUZZ_SECONDS=...); fuzz-short is CI's
# 20 seconds each. A crash fails and names its input (see README, "Fuzzing").
fuzz: deps
	bash scripts/fuzz.sh

fuzz-short: deps
	bash scripts/fuzz.sh --short

# What make test runs: every fuzz target for 20 seconds, about 4 minutes in all.
test-fuzz: deps
	FUZZ_BUILD_PATH=.build FUZZ_CONFIGURATION=debug bash scripts/fuzz.sh --short

# BENCH_ARGS=--quick: about 3 minutes instead of 15.
BENCH_ARGS ?=

bench: deps
	$(SWIFT) build -c release
	"$$($(SWIFT) build -c release --show-bin-path)/session-bench" $(BENCH_ARGS)
	python3 Benchmarks/apps/app_bench.py

# Only the app-level comparisons (Hummingbird, Vapor, session-node through nginx): ~5 minutes.
bench-apps: deps
	$(SWIFT) build -c release
	python3 Benchmarks/apps/app_bench.py $(APP_BENCH_ARGS)

clean:
	rm -rf .build .build-fuzz results
