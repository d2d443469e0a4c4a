# Thin wrapper over CMake: make demo / make test / make bench / make table.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
TSAN_BUILD ?= build-tsan
RELEASE_BUILD ?= build-release
PREFIX     ?= /usr/local
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_ARGS ?= --output-on-failure

.PHONY: all deps deps-build release install build build-asan build-fuzz build-tsan test demo bench table clean format \
	format-check check-structure

all: build

deps:
	@scripts/install-deps

# A production build and install: the build set of packages only (no test
# tools), no tests, no benchmarks. DESTDIR is honoured.
deps-build:
	@scripts/install-deps build

release: deps-build
	@cmake -S . -B $(RELEASE_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DENS_TESTS=OFF \
	    -DENS_BENCH=OFF -DCMAKE_INSTALL_PREFIX=$(PREFIX) >/dev/null
	@cmake --build $(RELEASE_BUILD) -j $(JOBS)

install: release
	cmake --install $(RELEASE_BUILD)

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The unit tests again under AddressSanitizer and UndefinedBehaviorSanitizer.
build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DENS_SANITIZE=ON -DENS_BENCH=OFF >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

# The daemon and ensemblectl under ThreadSanitizer, for the integration tests:
# selection and snapshots run on the libuv thread pool.
build-tsan: deps
	@cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DENS_TSAN=ON -DENS_BENCH=OFF >/dev/null
	@cmake --build $(TSAN_BUILD) -j $(JOBS) --target ensembled ensemblectl man

# libFuzzer targets (clang), their short runs and the corpus replays.
build-fuzz: deps
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DENS_FUZZ=ON -DENS_BENCH=OFF >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_decode fuzz_config fuzz_journal fuzz_body

# Every test in the plain build; unit and integration tests again with the
# sanitized daemon and library (the memory bounds of the flood and of
# slow_peers are for the optimized build: ASan's quarantine and shadow
# memory are not in them; the closed loop's bounds, in loop, lockin and
# router_example, are in queries at a fixed real-time rate, which a daemon
# several times slower under a sanitizer does not keep up with); the
# integration tests against the daemon under ThreadSanitizer (a race ends it
# with status 66, a failed test); a few seconds of each fuzzer. The packages
# (integration.deb) are built once, from the plain toolchain.
test: format-check check-structure build build-asan build-tsan build-fuzz
	ctest --test-dir $(BUILD) $(CTEST_ARGS)
	ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ctest --test-dir $(ASAN_BUILD) $(CTEST_ARGS) -L 'unit|integration' -E 'flood|slow_peers|loop|lockin|router_example|valgrind|systemd|deb'
	ctest --test-dir $(TSAN_BUILD) $(CTEST_ARGS) -L integration -E 'flood|slow_peers|loop|lockin|router_example|valgrind|systemd|deb'
	ctest --test-dir $(FUZZ_BUILD) $(CTEST_ARGS) -L fuzz

# The demo builds only what it runs, quietly: the compiler's output is shown
# only when the build fails.
demo: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@echo "== building ensembled and ensemblectl (quietly; the output is shown if it fails)"
	@cmake --build $(BUILD) -j $(JOBS) --target ensembled ensemblectl >$(BUILD)/demo-build.log 2>&1 || \
	    { grep -E -B2 -A8 'error|Error' $(BUILD)/demo-build.log || cat $(BUILD)/demo-build.log; exit 1; }
	@scripts/demo $(BUILD)

bench: build
	$(BUILD)/bench/select
	$(BUILD)/bench/pipeline
	$(BUILD)/bench/ingest
	$(BUILD)/bench/snapshot
	$(BUILD)/bench/csv
	$(BUILD)/bench/memory
	$(BUILD)/bench/latency_push
	ENSEMBLED=$(BUILD)/ensembled python3 bench/status_latency.py
	ENSEMBLED=$(BUILD)/ensembled python3 bench/latency.py

table: build
	scripts/accuracy-table $(BUILD)/ensemblectl

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# The code is formatted as .clang-format says (clang-format 14).
format-check: deps
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

# Include cycles among the daemon's modules, I/O libraries in the pure core,
# functions over 80 lines (scripts/check-structure): checked first by test.
check-structure:
	scripts/check-structure

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD) $(TSAN_BUILD) $(RELEASE_BUILD)
