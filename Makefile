# tapegrad — build, test, benchmark.
#   make            library (static + shared), examples, tests, benchmarks
#   make test       the cmocka suite (+ examples in fast mode), release build
#   make test-asan  the same suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make run        the default experiment (Question 2.2 MLP on Fashion-MNIST)
# The first target of any build runs scripts/setup.sh, which installs missing Debian packages.

BUILD   ?= build
MULTI   := $(shell gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
# Single-threaded BLIS: the lowest per-call overhead; tapegrad splits large products across its
# own threads (autograd/blas.c). See docs/blas.md for the measurements behind this choice.
BLIS_INC := /usr/include/$(MULTI)/blis-serial
BLIS_LIB := /usr/lib/$(MULTI)/blis-serial

OPT     ?= -O3 -march=native -DNDEBUG -fno-math-errno
SAN     ?=
CFLAGS  := -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Wshadow -Wno-unused-parameter \
           $(OPT) $(SAN) -g -fPIC -Iinclude -I. -isystem $(BLIS_INC) $(EXTRA_CFLAGS)
LDFLAGS := $(SAN) -L$(BLIS_LIB) -Wl,-rpath,$(BLIS_LIB)
LDLIBS  := -lblis -lzip -lz -llapacke -llapack -lstb -lpthread -lm

LIB_DIRS := autograd ops nn optim data plot train
LIB_SRC  := $(sort $(wildcard $(LIB_DIRS:%=%/*.c)))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(sort $(wildcard tests/test_*.c)))
EX_BIN   := $(patsubst examples/%.c,$(BUILD)/examples/%,$(sort $(wildcard examples/*.c)))
# A folder examples/NAME/ of .c files (a program too big for one file) is one program too.
EX_DIRS  := $(sort $(patsubst examples/%/,%,$(dir $(wildcard examples/*/*.c))))
EX_BIN   += $(EX_DIRS:%=$(BUILD)/examples/%)
BENCH_BIN:= $(patsubst bench/%.c,$(BUILD)/bench/%,$(sort $(wildcard bench/*.c)))
# Objects depend on the library's headers; tests and examples also on their folder's own.
HEADERS  := $(wildcard include/*.h include/tg/*.h $(LIB_DIRS:%=%/*.h))
TEST_HDR := $(wildcard tests/*.h)
EX_HDR   := $(wildcard examples/*.h)
SETUP    := $(BUILD)/.setup-done

.PHONY: all lib test test-asan run bench clean setup
all: lib $(EX_BIN) $(TEST_BIN) $(BENCH_BIN)
lib: $(BUILD)/libtapegrad.a $(BUILD)/libtapegrad.so

setup: $(SETUP)
$(SETUP): scripts/setup.sh
	@mkdir -p $(BUILD)
	bash scripts/setup.sh
	@touch $@

$(BUILD)/%.o: %.c $(HEADERS) | $(SETUP)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libtapegrad.a: $(LIB_OBJ)
	ar rcs $@ $^
$(BUILD)/libtapegrad.so: $(LIB_OBJ)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(BUILD)/libtapegrad.a $(HEADERS) $(TEST_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libtapegrad.a -lcmocka $(LDLIBS)
$(BUILD)/examples/%: examples/%.c $(BUILD)/libtapegrad.a $(HEADERS) $(EX_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libtapegrad.a $(LDLIBS)
# All of a folder's files in one compiler call: small programs, and no object names to clash.
.SECONDEXPANSION:
$(EX_DIRS:%=$(BUILD)/examples/%): $(BUILD)/examples/%: $$(wildcard examples/$$*/*.c) \
                                  $$(wildcard examples/$$*/*.h) $(BUILD)/libtapegrad.a \
                                  $(HEADERS) $(EX_HDR)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(filter %.c,$^) $(BUILD)/libtapegrad.a $(LDLIBS)
$(BUILD)/bench/%: bench/%.c $(BUILD)/libtapegrad.a $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(BUILD)/libtapegrad.a $(LDLIBS)

test: $(TEST_BIN) $(EX_BIN)
	@SAN="$(SAN)" bash scripts/run_tests.sh $(BUILD)

test-asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -fno-omit-frame-pointer" \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" test

run: $(EX_BIN)
	$(BUILD)/examples/question2 mlp $(ARGS)

bench: $(BENCH_BIN)
	@for b in $(BENCH_BIN); do echo "== $$b"; $$b || exit 1; done

clean:
	rm -rf build build-asan
