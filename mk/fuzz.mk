# Fuzzing (docs/fuzzing.md): libFuzzer harnesses fuzz/<target>.c, each handing the fuzzer's bytes
# to one public loader as a file, exactly as a user calls it; seeds in fuzz/corpus/<target>/.
#   make fuzz                  build every harness (clang, -fsanitize=fuzzer,address,undefined)
#                              and run each for FUZZ_TIME seconds (default 60); CI: FUZZ_TIME=20
#   make fuzz-<target>         one of them, e.g. make fuzz-idx FUZZ_TIME=600
#   make fuzz-seeds            rewrite fuzz/corpus/ from fuzz/seeds.c
# Corpus growth goes to build-fuzz/corpus/<target>/ (the committed seeds stay as they are); a crash
# stops the run and leaves its input in build-fuzz/crashes/<target>-crash-<sha1>: replay it with
# build-fuzz/fuzz_<target> FILE, then turn it into a test of the loader's area.
#
# Adding a format is one file and a seed, no list to edit (every fuzz/*.c but seeds.c is a
# harness, found by the wildcard below):
#   1. fuzz/<format>.c: copy the nearest harness (fuzz/npy.c: one plain file; fuzz/cifar10.c: plain
#      and .gz files); call the new loader on fuzz_file(data, size, ".<ext>"); free whatever it
#      returns on TG_OK.
#   2. a seed: a small valid file in fuzz/corpus/<format>/ (write it in fuzz/seeds.c, then
#      make fuzz-seeds).
#   3. make fuzz-<format> FUZZ_TIME=300; CI picks it up through `make fuzz`.

FUZZ_BUILD   := build-fuzz
FUZZ_TIME    ?= 60
FUZZ_CC      ?= clang
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined
FUZZ_OPT     := -O1 -g -fno-omit-frame-pointer
FUZZ_TARGETS := $(filter-out seeds,$(basename $(notdir $(wildcard fuzz/*.c))))

.PHONY: fuzz fuzz-build fuzz-lib fuzz-seeds
fuzz: $(FUZZ_TARGETS:%=fuzz-%)
fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)

# The library as the fuzzers see it: built by clang with coverage hooks and the sanitizers, by
# this Makefile's own rules in a build folder of its own.
fuzz-lib: | setup-fuzz
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD)/lib CC=$(FUZZ_CC) OPT="$(FUZZ_OPT)" \
	  SAN="-fsanitize=fuzzer-no-link $(FUZZ_SAN)" $(FUZZ_BUILD)/lib/libtapegrad.a

$(FUZZ_BUILD)/fuzz_%: fuzz/%.c fuzz/fuzz.h fuzz-lib
	$(FUZZ_CC) -std=c11 -D_DEFAULT_SOURCE $(FUZZ_OPT) -fsanitize=fuzzer $(FUZZ_SAN) -Iinclude -I. \
	  -isystem $(BLIS_INC) -o $@ $< $(FUZZ_BUILD)/lib/libtapegrad.a $(ALL_LDFLAGS) $(LIB_LIBS)

# One target: the fuzzer's own log goes to build-fuzz/<target>.log; its last lines are shown.
fuzz-%: $(FUZZ_BUILD)/fuzz_%
	@mkdir -p $(FUZZ_BUILD)/corpus/$* $(FUZZ_BUILD)/crashes
	@echo "== fuzz $* for $(FUZZ_TIME) s"
	@if $< -max_total_time=$(FUZZ_TIME) -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	    -artifact_prefix=$(FUZZ_BUILD)/crashes/$*- $(FUZZ_BUILD)/corpus/$* fuzz/corpus/$* \
	    > $(FUZZ_BUILD)/$*.log 2>&1; then \
	  grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb' $(FUZZ_BUILD)/$*.log | \
	    sed 's/^stat::/   /'; grep -E '^#[0-9]+.*(DONE|cov:)' $(FUZZ_BUILD)/$*.log | tail -n 1; \
	else tail -n 40 $(FUZZ_BUILD)/$*.log; echo "fuzz $*: FAILED (log: $(FUZZ_BUILD)/$*.log)"; \
	  exit 1; fi

fuzz-seeds: $(BUILD)/libtapegrad.a
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $(BUILD)/fuzz_seeds fuzz/seeds.c $(BUILD)/libtapegrad.a \
	  $(LIB_LIBS)
	$(BUILD)/fuzz_seeds
