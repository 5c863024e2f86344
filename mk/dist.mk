# Data-parallel training over MPI (include/tg/dist.h, docs/distributed.md): libtapegrad_dist.a,
# examples/ddp_mlp and the programs tests/test_dist.c launches with mpirun. Built only where
# Open MPI's mpicc is installed (scripts/setup.sh mpi installs it); without it the core library,
# its tests and every other program build as usual, and test_dist skips saying why.
# Included by the Makefile before its first rule, so the lists below are final when rules read
# them. No shared library: the .so exports only tg_ names, and dist/ uses the tg__ allocator.

EX_BIN   := $(filter-out $(BUILD)/examples/ddp_mlp,$(EX_BIN))
DIST_SRC := $(sort $(wildcard dist/*.c))
DIST_OBJ := $(DIST_SRC:%.c=$(BUILD)/%.o)
DIST_HDR := include/tg/dist.h dist/internal.h
# The Question 2 runner's MPI mode (apps/question2/distributed.c holds it and its main):
# question2-mpi is the runner's files with that one, built with Q2_DISTRIBUTED (the runner's own
# main then steps aside). The plain runner leaves distributed.c out (APP_MPI_SRC, Makefile).
APP_MPI_BIN := $(BUILD)/apps/question2-mpi
DIST_BIN := $(BUILD)/examples/ddp_mlp $(APP_MPI_BIN) \
            $(patsubst dist/tests/%.c,$(BUILD)/dist/tests/%,$(wildcard dist/tests/*.c))

# This file's rules come before the Makefile's own: keep `make` meaning `make all`.
ifeq ($(.DEFAULT_GOAL),)
.DEFAULT_GOAL := all
endif

# mpicc exists only once set-up has run: this generated file depends on the mpi set's stamp, so
# make installs the set first, writes the file and reads the makefiles again (GNU make remakes
# included makefiles). With NO_SETUP=1 it is written once; delete it after installing MPI.
# Only the goals that build dist/ ask for MPI: `make lib` still installs only the lib set.
ifneq ($(if $(MAKECMDGOALS),$(filter all test dist install %ddp_mlp %question2-mpi %ddp_check,$(MAKECMDGOALS)),all),)
-include $(BUILD)/mpi.mk
endif
ifeq ($(NO_SETUP),1)
$(BUILD)/mpi.mk:
else
$(BUILD)/mpi.mk: $(BUILD)/.setup-mpi-done
endif
	@mkdir -p $(BUILD)
	@echo "MPICC := $$(command -v mpicc)" > $@

ifneq ($(MPICC),)
MPI_CFLAGS := $(shell mpicc --showme:compile)
MPI_LIBS   := $(shell mpicc --showme:link)

.PHONY: dist
dist: $(BUILD)/libtapegrad_dist.a $(DIST_BIN)
all: dist
test: dist

$(BUILD)/dist/%.o: dist/%.c $(HEADERS) $(DIST_HDR) | setup-lib
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(MPI_CFLAGS) -c $< -o $@
$(BUILD)/libtapegrad_dist.a: $(DIST_OBJ)
	rm -f $@
	$(AR) rcs $@ $^
$(BUILD)/examples/ddp_mlp: examples/ddp_mlp.c $(BUILD)/libtapegrad_dist.a $(BUILD)/libtapegrad.a \
                           $(HEADERS) $(DIST_HDR) $(EX_HDR) | setup-examples
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(MPI_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libtapegrad_dist.a \
	  $(BUILD)/libtapegrad.a $(MPI_LIBS) $(LDLIBS)
$(APP_MPI_BIN): $(wildcard apps/question2/*.c) $(wildcard apps/question2/*.h) \
                $(BUILD)/libtapegrad_dist.a $(BUILD)/libtapegrad.a $(HEADERS) $(DIST_HDR) \
                | setup-examples
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -DQ2_DISTRIBUTED $(MPI_CFLAGS) $(ALL_LDFLAGS) -o $@ $(filter %.c,$^) \
	  $(BUILD)/libtapegrad_dist.a $(BUILD)/libtapegrad.a $(MPI_LIBS) $(LDLIBS)
$(BUILD)/dist/tests/%: dist/tests/%.c $(BUILD)/libtapegrad_dist.a $(BUILD)/libtapegrad.a \
                       $(HEADERS) $(DIST_HDR) | setup-test
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(MPI_CFLAGS) $(ALL_LDFLAGS) -o $@ $< $(BUILD)/libtapegrad_dist.a \
	  $(BUILD)/libtapegrad.a $(MPI_LIBS) $(LDLIBS)
endif
