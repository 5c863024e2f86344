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
# The data-parallel runner where MPI is installed (mk/dist.mk builds it, statically linked with
# libtapegrad.a and libtapegrad_dist.a: only Open MPI's own libraries are shared).
ifneq ($(MPICC),)
INST_BIN    += $(BUILD)/bin/tapegrad-question2-mpi
$(BUILD)/bin/tapegrad-question2-mpi: $(BUILD)/apps/question2-mpi
	@mkdir -p $(dir $@)
	cp $< $@
endif
MAN1        := $(wildcard man/*.1)

$(BUILD)/bin/tapegrad-question2: $(Q2_SRC) $(wildcard apps/question2/*.h) $(SHLIB) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $(SAN) $(LDFLAGS) -o $@ $(Q2_SRC) -L$(BUILD) -ltapegrad -lm

# dist.h goes with libtapegrad_dist.a, which is not installed (yet): docs/distributed.md.
INSTALLED_TG_HEADERS := $(filter-out include/tg/dist.h,$(wildcard include/tg/*.h))

$(BUILD)/tapegrad.pc: mk/tapegrad.pc.in include/tg/core.h
	sed -e 's|@PREFIX@|$(PREFIX)|; s|@LIBDIR@|$(LIBDIR)|; s|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|; s|@BLIS_LIB@|$(BLIS_LIB)|; s|@XSMM_LIBS@|$(XSMM_LIBS)|; s|@DNNL_LIBS@|$(DNNL_LIBS)|' $< > $@

install: lib $(INST_BIN) $(BUILD)/tapegrad.pc
	$(INSTALL) -d $(DESTDIR)$(INCLUDEDIR)/tg $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PKGCONFIGDIR) \
	  $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man1
	$(INSTALL) -m 644 include/tapegrad.h $(DESTDIR)$(INCLUDEDIR)/
	$(INSTALL) -m 644 $(INSTALLED_TG_HEADERS) $(DESTDIR)$(INCLUDEDIR)/tg/
	$(INSTALL) -m 644 $(BUILD)/libtapegrad.a $(DESTDIR)$(LIBDIR)/
	$(INSTALL) -m 644 $(SHLIB) $(DESTDIR)$(LIBDIR)/
	ln -sf $(notdir $(SHLIB)) $(DESTDIR)$(LIBDIR)/$(SONAME)
	ln -sf $(SONAME) $(DESTDIR)$(LIBDIR)/libtapegrad.so
	$(INSTALL) -m 644 $(BUILD)/tapegrad.pc $(DESTDIR)$(PKGCONFIGDIR)/
	$(INSTALL) -m 755 $(INST_BIN) $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 644 $(MAN1) $(DESTDIR)$(MANDIR)/man1/

uninstall:
	rm -f $(addprefix $(DESTDIR)$(INCLUDEDIR)/,tapegrad.h $(subst include/,,$(INSTALLED_TG_HEADERS)))
	-rmdir $(DESTDIR)$(INCLUDEDIR)/tg
	rm -f $(addprefix $(DESTDIR)$(LIBDIR)/,libtapegrad.a $(notdir $(SHLIB)) $(SONAME) libtapegrad.so)
	rm -f $(DESTDIR)$(PKGCONFIGDIR)/tapegrad.pc
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(notdir $(INST_BIN)) tapegrad-question2-mpi)
	rm -f $(addprefix $(DESTDIR)$(MANDIR)/man1/,$(notdir $(MAN1)))

# The issue's "done when": a staged install, a program built with pkg-config against it and run,
# the soname, no tg__ symbol exported.
install-check: lib | setup-lib
	bash scripts/install_check.sh $(BUILD)

deb: | setup-deb
	bash scripts/build_deb.sh $(BUILD)/deb
deb-test: deb
	bash scripts/deb_test.sh $(BUILD)/deb

docs: | setup-docs
	@mkdir -p $(BUILD)/docs
	( cat Doxyfile; echo "OUTPUT_DIRECTORY = $(BUILD)/docs"; echo "PROJECT_NUMBER = $(VERSION)" ) \
	  | doxygen -
