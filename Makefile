# Convenience front end: every target installs missing dependencies first.
BUILD ?= build
ASAN_BUILD ?= build-asan

.PHONY: all deps build check check-asan check-slow demo bench fuzz clean
all: build

deps:
	@scripts/install-deps.sh

$(BUILD)/build.ninja:
	@scripts/install-deps.sh
	./configure --builddir=$(BUILD) --werror

build: deps $(BUILD)/build.ninja
	ninja -C $(BUILD)

check: build
	@scripts/run-checks.py --build $(BUILD)

check-slow: build
	@scripts/run-checks.py --build $(BUILD) --slow

$(ASAN_BUILD)/build.ninja:
	@scripts/install-deps.sh
	./configure --builddir=$(ASAN_BUILD) --asan --werror --debug

check-asan: deps $(ASAN_BUILD)/build.ninja
	ninja -C $(ASAN_BUILD)
	@ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    scripts/run-checks.py --build $(ASAN_BUILD) --no-interop

demo: build
	@QBLOCK_BUILD=$(abspath $(BUILD)) scripts/demo

bench: build
	@scripts/bench
	@for b in qcow2 bitmaps qmp nbd; do scripts/bench-$$b --build $(BUILD) || exit 1; done

# libFuzzer targets (tests/fuzz/): clang build with coverage + ASan/UBSan,
# then replay each seed corpus and fuzz FUZZ_SECONDS per target.
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 10
$(FUZZ_BUILD)/build.ninja:
	@scripts/install-deps.sh
	CC=clang ./configure --builddir=$(FUZZ_BUILD) -Dfuzzing=true -Db_lundef=false

fuzz: deps $(FUZZ_BUILD)/build.ninja
	ninja -C $(FUZZ_BUILD) -j2
	@tests/fuzz/run-fuzzers.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
