# make install / uninstall, the staged-install check, Debian packages, the API reference.
# Included by the Makefile. Layout under $(DESTDIR)$(PREFIX): docs/install.md.

PREFIX      ?= /usr/local
LIBDIR      ?= $(PREFIX)/lib/$(MULTI)
INCLUDEDIR  ?= $(PREFIX)/include
BINDIR      ?= $(PREFIX)/bin
MANDIR      ?= $(PREFIX)/share/man
PKGCONFIGDIR?= $(LIBDIR)/pkgconfig
INSTALL     ?= install

# Installed programs. The Question 2 runner links the shared library (no RUNPATH: it is found
# where it is installed); to move its sources (e.g. to apps/question2/), change Q2_SRC.
# tapegrad-ls reads safetensors headers with the library's internal validator, so it links the
# static library (built by the Makefile's tools rule).
Q2_SRC      := $(filter-out apps/question2/distributed.c,$(wildcard apps/question2/*.c))
INST_BIN    := $(BUILD)/bin/tapegrad-question2 $(BUILD)/tools/tapegrad-ls
# Where MPI is installed, the data-parallel runner (mk/dist.mk builds it, statically linked with
# libtapegrad.a and libtapegrad_dist.a: only Open MPI's own libraries are shared; its man page is
# the runner's, through a .so link) and the data-parallel library: libtapegrad_dist.a, <tg/dist.h>
# and tapegrad-dist.pc. The library is static only (docs/distributed.md says why), so its .pc
# links libtapegrad.a too, and Open MPI through ompi-c.pc.
MAN1        := $(filter-out man/tapegrad-question2-mpi.1,$(wildcard man/*.1))
INSTALLED_TG_HEADERS := $(filter-out include/tg/dist.h,$(wildcard include/tg/*.h))
INST_LIB    := $(BUILD)/libtapegrad.a
INST_PC     := $(BUILD)/tapegrad.pc
ifneq ($(MPICC),)
INST_BIN    += $(BUILD)/bin/tapegrad-question2-mpi
MAN1        += man/tapegrad-question2-mpi.1
INSTALLED_TG_HEADERS += include/tg/dist.h
INST_LIB    += $(BUILD)/libtapegrad_dist.a
INST_PC     += $(BUILD)/tapegrad-dist.pc
$(BUILD)/bin/tapegrad-question2-mpi: $(BUILD)/apps/question2-mpi
	@mkdir -p $(dir $@)
	cp $< $@
endif

$(BUILD)/bin/tapegrad-question2: $(Q2_SRC) $(wildcard apps/question2/*.h) $(SHLIB) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN) $(LDFLAGS) -o $@ $(Q2_SRC) -L$(BUILD) -ltapegrad -lm

# The .pc files hold the install's paths and the build's optional libraries, so they depend on
# $(PC_VARS), rewritten (as $(CONFIG) is) only when those values change: a `make install
# PREFIX=/opt/x` after one with PREFIX=/usr writes them again instead of installing the old ones.
PC_VARS  := $(BUILD)/pc-vars.mk
PC_TEXT   = PREFIX=$(PREFIX) LIBDIR=$(LIBDIR) INCLUDEDIR=$(INCLUDEDIR) VERSION=$(VERSION) \
            BLIS_LIB=$(BLIS_LIB) XSMM_LIBS=$(XSMM_LIBS) DNNL_LIBS=$(DNNL_LIBS)
ifneq ($(file <$(PC_VARS)),$(PC_TEXT))
$(shell mkdir -p $(BUILD))
$(file >$(PC_VARS),$(PC_TEXT))
endif
$(BUILD)/%.pc: mk/%.pc.in $(PC_VARS) $(CONFIG)
	sed -e 's|@PREFIX@|$(PREFIX)|g; s|@LIBDIR@|$(LIBDIR)|g; s|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
	    -e 's|@VERSION@|$(VERSION)|g; s|@BLIS_LIB@|$(BLIS_LIB)|g' \
	    -e 's|@XSMM_LIBS@|$(XSMM_LIBS)|g; s|@DNNL_LIBS@|$(DNNL_LIBS)|g' $< > $@

install: lib $(INST_LIB) $(INST_BIN) $(INST_PC)
	$(INSTALL) -d $(DESTDIR)$(INCLUDEDIR)/tg $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) \
	  $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	$(INSTALL) -m 644 include/tapegrad.h $(DESTDIR)$(INCLUDEDIR)/
	$(INSTALL) -m 644 $(INSTALLED_TG_HEADERS) $(DESTDIR)$(INCLUDEDIR)/tg/
	$(INSTALL) -m 644 $(INST_LIB) $(DESTDIR)$(LIBDIR)/
	$(INSTALL) -m 644 $(SHLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(SHLIB)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libtapegrad.so
	$(INSTALL) -m 644 $(INST_PC) $(DESTDIR)$(PKGCONFIGDIR)/
	$(INSTALL) -m 755 $(INST_BIN) $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/

# The MPI files are removed whether or not MPI is installed now (make uninstall does not ask).
uninstall:
	rm -f $(addprefix $(DESTDIR)$(INCLUDEDIR)/,tapegrad.h \
	  $(subst include/,,$(INSTALLED_TG_HEADERS)) tg/dist.h)
	-rmdir $(DESTDIR)$(INCLUDEDIR)/tg
	rm -f $(addprefix $(DESTDIR)$(LIBDIR)/,libtapegrad.a libtapegrad_dist.a $(notdir $(SHLIB)) \
	  $(SONAME) libtapegrad.so)
	rm -f $(addprefix $(DESTDIR)$(PKGCONFIGDIR)/,tapegrad.pc tapegrad-dist.pc)
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(INST_BIN)) tapegrad-question2-mpi)
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1)) tapegrad-question2-mpi.1)

# The issue's "done when": a staged install, a program built with pkg-config against it and run,
# the soname, no tg__ symbol exported; then a second install under another PREFIX; the examples
# of a user's op and optimizer built against the install (setup-examples: LAPACKE for one of them).
install-check: lib | setup-lib setup-examples
	bash scripts/install_check.sh $(BUILD)

deb: | setup-deb
	bash scripts/build_deb.sh $(BUILD)/deb
deb-test: deb
	bash scripts/deb_test.sh $(BUILD)/deb

docs: | setup-docs
	@mkdir -p $(BUILD)/docs
	( cat Doxyfile; echo "OUTPUT_DIRECTORY = $(BUILD)/docs"; echo "PROJECT_NUMBER = $(VERSION)" ) \
	  | doxygen -
