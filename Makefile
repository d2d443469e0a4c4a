# Thin wrapper over CMake: make demo / make test / make bench / make table.
BUILD      ?= build
ASAN_BUILD ?= build-asan
FUZZ_BUILD ?= build-fuzz
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
CTEST_ARGS ?= --output-on-failure

.PHONY: all deps build build-asan build-fuzz test demo bench table clean format format-check

all: build

deps:
	@scripts/install-deps

build: deps
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j $(JOBS)

# The unit tests again under AddressSanitizer and UndefinedBehaviorSanitizer.
build-asan: deps
	@cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DENS_SANITIZE=ON -DENS_BENCH=OFF >/dev/null
	@cmake --build $(ASAN_BUILD) -j $(JOBS)

# libFuzzer targets (clang), their short runs and the corpus replays.
build-fuzz: deps
	@CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DENS_FUZZ=ON -DENS_BENCH=OFF >/dev/null
	@cmake --build $(FUZZ_BUILD) -j $(JOBS) --target fuzz_decode fuzz_config fuzz_journal

# Every test in the plain build; unit and integration tests again with the
# sanitized daemon and library (the flood's timing and memory bounds are
# for the optimized build); a few seconds of each fuzzer.
test: format-check build build-asan build-fuzz
	ctest --test-dir $(BUILD) $(CTEST_ARGS)
	ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    ctest --test-dir $(ASAN_BUILD) $(CTEST_ARGS) -L 'unit|integration' -E 'flood|valgrind|systemd'
	ctest --test-dir $(FUZZ_BUILD) $(CTEST_ARGS) -L fuzz

demo: build
	@scripts/demo $(BUILD)

bench: build
	$(BUILD)/bench/select

table: build
	scripts/accuracy-table $(BUILD)/ensemblectl

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# The code is formatted as .clang-format says (clang-format 14).
format-check: deps
	clang-format --dry-run -Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
