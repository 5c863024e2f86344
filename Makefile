# tapegrad — build, test, benchmark, install, package.
#   make            library (static + shared), examples, tests, benchmarks, tools
#   make lib        the library alone (needs only the library's own packages)
#   make test       the cmocka suite (+ examples in fast mode), release build
#   make test-asan  the same suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make run        the default experiment (Question 2.2 MLP on Fashion-MNIST)
#   make install    headers, libraries, tapegrad.pc, tools and man pages under
#                   $(DESTDIR)$(PREFIX) (PREFIX=/usr/local; LIBDIR=$(PREFIX)/lib/<multiarch>)
#   make uninstall  removes what install put there
#   make install-check  a staged install, then a program built with pkg-config against it
#   make deb        Debian packages (dpkg-buildpackage) into build/deb/; make deb-test installs
#                   them and builds a program with pkg-config
#   make docs       the API reference (Doxygen) into build/docs/api/
# The build honours CC, CFLAGS, CPPFLAGS, LDFLAGS. NATIVE=1 adds -march=native (this machine's
# instruction set: never for a library that is installed or copied elsewhere). Each target
# installs the Debian packages it needs first (scripts/setup.sh lib|test|examples|data|...);
# NO_SETUP=1 skips that (packages provided otherwise, e.g. Build-Depends).

VERSION := $(shell sed -n 's/^\#define TG_VERSION_STRING "\(.*\)"/\1/p' include/tg/core.h)
MAJOR   := $(firstword $(subst ., ,$(VERSION)))
BUILD   ?= build
MULTI   := $(shell gcc -print-multiarch 2>/dev/null || dpkg-architecture -qDEB_HOST_MULTIARCH \
             2>/dev/null || echo x86_64-linux-gnu)
# Single-threaded BLIS: the lowest per-call overhead; tapegrad splits large products across its
# own threads (autograd/blas.c). See docs/blas.md for the measurements behind this choice.
BLIS_INC := /usr/include/$(MULTI)/blis-serial
BLIS_LIB := /usr/lib/$(MULTI)/blis-serial

# libxsmm (Debian's libxsmm-dev, static) runs the small products it is faster at (autograd/xsmm.c,
# docs/blas.md). Optional: XSMM=0 builds without it. On by default, since scripts/setup.sh lib
# installs it; with NO_SETUP=1 it is on only when its header is there.
ifeq ($(NO_SETUP),1)
XSMM    ?= $(if $(wildcard /usr/include/libxsmm.h),1,0)
else
XSMM    ?= 1
endif
ifeq ($(XSMM),1)
XSMM_CFLAGS := -DTG_WITH_XSMM
XSMM_LIBS   := -lxsmm -ldl -lrt
endif

# oneDNN (Debian's libdnnl-dev) runs the large float32 convolutions it is faster at
# (ops/conv_dnnl.c, docs/conv.md). Optional the same way: DNNL=0 builds without it. -lgomp: the
# library sets OpenMP's thread count (oneDNN's runtime) itself.
ifeq ($(NO_SETUP),1)
DNNL    ?= $(if $(wildcard /usr/include/oneapi/dnnl/dnnl.h),1,0)
else
DNNL    ?= 1
endif
ifeq ($(DNNL),1)
DNNL_CFLAGS := -DTG_HAVE_DNNL
DNNL_LIBS   := -ldnnl -lgomp
endif

CFLAGS  ?= -g
OPT     ?= -O3 -DNDEBUG -fno-math-errno
ifeq ($(NATIVE),1)
OPT     += -march=native
endif
SAN     ?=
# -ffp-contract=off: no fused multiply-adds the source does not write, so every CPU (and every
# clone of autograd/cpu_clones.h) computes the same bits; gcc's default for -std=c11, not clang's.
# TLS descriptors where the compiler has them (gcc on x86-64; clang 14 does not): in -fPIC code a
# thread-local variable is otherwise reached through a call to __tls_get_addr that clobbers
# registers, and every op saves and restores them around its tape and arena accesses
# (docs/overhead.md). The initial-exec model would be cheaper still but breaks dlopen.
TLS_DIALECT := $(shell $(CC) -mtls-dialect=gnu2 -fPIC -x c -c /dev/null -o /dev/null 2>/dev/null \
                 && echo -mtls-dialect=gnu2)
TG_CFLAGS := -std=c11 -D_DEFAULT_SOURCE -Wall -Wextra -Wshadow -Wno-unused-parameter \
             -ffp-contract=off $(OPT) $(SAN) -fPIC $(TLS_DIALECT) -Iinclude -I. \
             -isystem $(BLIS_INC) $(XSMM_CFLAGS) $(DNNL_CFLAGS) $(EXTRA_CFLAGS)
ALL_CFLAGS  = $(TG_CFLAGS) $(CPPFLAGS) $(CFLAGS)
ALL_LDFLAGS = $(SAN) -L$(BLIS_LIB) -Wl,-rpath,$(BLIS_LIB) $(LDFLAGS)
LIB_LIBS := $(XSMM_LIBS) $(DNNL_LIBS) -lblis -lzip -lz -lstb -lpthread -lm
# Examples and tests also solve least squares with LAPACKE (quadratic_net, regression).
LDLIBS   := $(LIB_LIBS) -llapacke -llapack

LIB_DIRS := autograd ops nn optim data plot train
LIB_SRC  := $(sort $(wildcard $(LIB_DIRS:%=%/*.c)))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
SONAME   := libtapegrad.so.$(MAJOR)
SHLIB    := $(BUILD)/libtapegrad.so.$(VERSION)
TEST_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(sort $(wildcard tests/test_*.c)))
EX_BIN   := $(patsubst examples/%.c,$(BUILD)/examples/%,$(sort $(wildcard examples/*.c)))
# A folder examples/NAME/ of .c files (a program too big for one file) is one program too.
EX_DIRS  := $(sort $(patsubst examples/%/,%,$(dir $(wildcard examples/*/*.c))))
EX_BIN   += $(EX_DIRS:%=$(BUILD)/examples/%)
# A folder apps/NAME/ (an application, e.g. the Question 2 runner) is one program build/apps/NAME.
# Its distributed.c, if any, is its MPI mode: only in build/apps/NAME-mpi (mk/dist.mk).
APP_DIRS := $(sort $(patsubst apps/%/,%,$(dir $(wildcard apps/*/*.c))))
APP_MPI_SRC := $(wildcard apps/*/distributed.c)
EX_BIN   += $(APP_DIRS:%=$(BUILD)/apps/%)
BENCH_BIN:= $(patsubst bench/%.c,$(BUILD)/bench/%,$(sort $(wildcard bench/*.c)))
ifneq ($(XSMM),1)
BENCH_BIN:= $(filter-out $(BUILD)/bench/bench_xsmm,$(BENCH_BIN)) # it times libxsmm itself
endif
TOOL_BIN := $(patsubst tools/%.c,$(BUILD)/tools/%,$(sort $(wildcard tools/*.c)))
# Objects depend on the library's headers; tests and examples also on their folder's own.
HEADERS  := $(wildcard include/*.h include/tg/*.h $(LIB_DIRS:%=%/*.h))
# The settings objects are built with, in $(BUILD)/config.mk, rewritten only when they change;
# every object and program depends on it (as on a header), so switching DNNL, XSMM or the flags
# rebuilds them instead of linking stale objects or reporting stale programs up to date.
CONFIG   := $(BUILD)/config.mk
CONFIG_TEXT = CC=$(CC) DNNL=$(DNNL) XSMM=$(XSMM) CFLAGS=$(ALL_CFLAGS) LDFLAGS=$(ALL_LDFLAGS) \
              LIBS=$(LDLIBS)
ifneq ($(file <$(CONFIG)),$(CONFIG_TEXT))
$(shell mkdir -p $(BUILD))
$(file >$(CONFIG),$(CONFIG_TEXT))
endif
HEADERS  += $(CONFIG)
TEST_HDR := $(wildcard tests/*.h)
EX_HDR   := $(wildcard examples/*.h)
include mk/dist.mk

.PHONY: all lib tools test test-asan run bench clean install uninstall install-check \
        deb deb-test docs print-lib-libs
all: lib $(EX_BIN) $(TEST_BIN) $(BENCH_BIN) $(TOOL_BIN)
lib: $(BUILD)/libtapegrad.a $(SHLIB)
tools: $(TOOL_BIN)

# One stamp per package set, so `make lib` installs only the library's packages.
ifeq ($(NO_SETUP),1)
setup-%: ;
else
setup-%: $(BUILD)/.setup-%-done ;
.PRECIOUS: $(BUILD)/.setup-%-done
$(BUILD)/.setup-%-done: scripts/setup.sh
	@mkdir -p $(BUILD)
	bash scripts/setup.sh $*
	@touch $@
endif

$(BUILD)/%.o: %.c $(HEADERS) | setup-lib
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libtapegrad.a: $(LIB_OBJ)
	rm -f $@
	$(AR) rcs $@ $^
# Only tg_ names are exported (mk/tapegrad.map); the soname carries the major version.
$(SHLIB): $(LIB_OBJ) mk/tapegrad.map
	$(CC) -shared $(ALL_LDFLAGS) -Wl,-soname,$(SONAME) -Wl,--version-script=mk/tapegrad.map \
	  -o $@ $(LIB_OBJ) $(LIB_LIBS)
	ln -sf $(notdir $@) $(BUILD)/$(SONAME)
	ln -sf $(SONAME) $(BUILD)/libtapegrad.so

$(BUILD)/tests/%: tests/%.c $(BUILD)/libtapegrad.a $(HEADERS) $(TEST_HDR) | setup-test
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libtapegrad.a -lcmocka $(LDLIBS)
# test_question2 includes the hand-written Question 1 of the runner to test its updates.
$(BUILD)/tests/test_question2: apps/question2/question1.c apps/question2/question2.h
$(BUILD)/examples/%: examples/%.c $(BUILD)/libtapegrad.a $(HEADERS) $(EX_HDR) | setup-examples
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libtapegrad.a $(LDLIBS)
# All of a folder's files in one compiler call: small programs, and no object names to clash.
.SECONDEXPANSION:
$(EX_DIRS:%=$(BUILD)/examples/%): $(BUILD)/examples/%: $$(wildcard examples/$$*/*.c) \
                                  $$(wildcard examples/$$*/*.h) $(BUILD)/libtapegrad.a \
                                  $(HEADERS) $(EX_HDR) | setup-examples
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $(filter %.c,$^) $(BUILD)/libtapegrad.a $(LDLIBS)
$(APP_DIRS:%=$(BUILD)/apps/%): $(BUILD)/apps/%: $$(wildcard apps/$$*/*.c) \
                               $$(wildcard apps/$$*/*.h) $(BUILD)/libtapegrad.a $(HEADERS) \
                               | setup-examples
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $(filter-out $(APP_MPI_SRC),$(filter %.c,$^)) \
	  $(BUILD)/libtapegrad.a $(LDLIBS)
# Benchmarks measure this machine (bench_gemm's peak loop uses its widest FMA), so their own code
# is compiled for it; the library they link is built as everywhere else.
$(BUILD)/bench/%: bench/%.c bench/bench_util.h bench/conv_layers.h $(BUILD)/libtapegrad.a $(HEADERS) | setup-examples
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -march=native $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libtapegrad.a $(LDLIBS)
# The AlexNet step times the experiment's own network (examples/alexnet/model.c).
$(BUILD)/bench/bench_alexnet: bench/bench_alexnet.c examples/alexnet/model.c \
                              examples/alexnet/alexnet.h bench/bench_util.h \
                              $(BUILD)/libtapegrad.a $(HEADERS) | setup-examples
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -march=native $(ALL_LDFLAGS) -o $@ $(filter %.c,$^) \
	  $(BUILD)/libtapegrad.a $(LDLIBS)
$(BUILD)/tools/%: tools/%.c $(BUILD)/libtapegrad.a $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libtapegrad.a $(LIB_LIBS)

test: $(TEST_BIN) $(EX_BIN) $(TOOL_BIN) | setup-data
	@SAN="$(SAN)" LIB_LIBS="$(LIB_LIBS)" bash scripts/run_tests.sh $(BUILD)

test-asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -fno-omit-frame-pointer" \
	  SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined" test

run: $(EX_BIN) | setup-data
	$(BUILD)/apps/question2 mlp $(ARGS)

bench: $(BENCH_BIN)
	@for b in $(BENCH_BIN); do echo "== $$b"; $$b || exit 1; done

# The library's own link flags, for scripts that link programs against a build folder's
# libtapegrad.a (bench/portability/run.sh).
print-lib-libs:
	@echo $(LIB_LIBS)

include mk/install.mk

clean:
	rm -rf build build-asan

include mk/fuzz.mk
