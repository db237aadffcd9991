# migvm: one non-recursive Makefile. Each folder of code has one module.mk that
# lists its own objects and the tests of its code; this file holds the rules.
#
#   make                 build build/migvm (runs ./configure, and the install script, when needed)
#   make check           build and run every test          (BUILD=build)
#   make check-sanitize  the same, built with ASan+UBSan     (BUILD=build-sanitize)
#   make check-valgrind  the unit tests under valgrind
#   make check-tsan      the same, built with ThreadSanitizer (BUILD=build-tsan)
#   make install         build/migvm, build/migvm-stream and the manual page into PREFIX (/usr/local;
#                        DESTDIR prefixes it for staging)
#   make demo            the main job: see README.md
#   make bench           migration benchmarks (not part of check)
#   make bench-converge  the convergence controller against QEMU 7.2 (also the end of make bench)
#   make fuzz-smoke      every libFuzzer target for about a minute (need clang; not part of check)
#   make fuzz-NAME       one target (tests/fuzz/README.md)
#   make check-multifd-full  every multifd transport x channels x compression, migvm and QEMU 7.2 (not in check)
#   make soak            the ring-3 KVM guest for minutes, with stop/cont (SOAK_MINUTES=3)
#   V=1                  show full command lines

BUILD ?= build
SANITIZE ?=
TSAN ?=
Q := $(if $(V),,@)
say = $(if $(V),,@printf '  %-8s %s\n' '$(1)' '$(2)';)

.DEFAULT_GOAL := all

CONFIG := $(BUILD)/config.mak
ifeq ($(filter help clean distclean,$(MAKECMDGOALS)),)
-include $(CONFIG)
endif

$(CONFIG): configure scripts/install-deps.sh
	$(Q)./configure --build-dir=$(BUILD) 2>/dev/null || { scripts/install-deps.sh && ./configure --build-dir=$(BUILD); }

CC ?= cc
OPT ?= -O2
comma := ,
SAN_FLAGS := $(if $(SANITIZE),-fsanitize=address$(comma)undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
SAN_FLAGS += $(if $(TSAN),-fsanitize=thread -fno-omit-frame-pointer)
WARN := -Wall -Wextra -Werror -Wno-unused-parameter -Wno-missing-field-initializers \
        -Wmissing-prototypes -Wstrict-prototypes -Wshadow -Wformat=2 -Wundef -Wvla
CFLAGS_ALL = -std=c11 -D_GNU_SOURCE -g $(OPT) $(WARN) $(SAN_FLAGS) -MMD -MP \
              -Iinclude -I$(BUILD)/qapi $(DEP_CFLAGS) $(CFLAGS)
LDFLAGS_ALL = $(SAN_FLAGS) $(LDFLAGS)
FUZZ_CC ?= clang
# The fuzzers' sanitizers, compile and link; a campaign may build without ASan
# in a BUILD of its own (tests/fuzz/README.md says when and how).
FUZZ_SAN := -fsanitize=fuzzer-no-link,address,undefined
FUZZ_LINK_SAN := -fsanitize=fuzzer,address,undefined
fuzz-objs = $(patsubst $(BUILD)/%,$(BUILD)/fuzz/%,$(1))

# Filled by the module.mk files.
MIGVM_OBJS :=        # objects linked into build/migvm (excluding system/main.o)
MIGVM_MAIN_OBJ := $(BUILD)/system/main.o
UNIT_TESTS :=        # check-based test binaries run by make check
FUNC_TESTS :=        # functional test scripts run by make check (after unit tests)
GENERATED_HEADERS := # headers every C file may include (built first)
EXTRA_ALL :=         # other things `make` builds (guest images, ...)
BENCH_TARGETS :=
FUZZ_TARGETS :=      # libFuzzer binaries (make fuzz-smoke runs them all)

# Order matters: a fragment's test links name the object lists of the
# fragments included before it.
include util/module.mk
include qapi/module.mk
include monitor/module.mk
include system/module.mk
include block/module.mk
include crypto/module.mk
include migration/module.mk
include hw/module.mk
include accel-soft/module.mk
include accel-kvm/module.mk
include guest/module.mk
include guest/ring3/module.mk
include tests/functional/module.mk
include tests/interop/module.mk
include bench/module.mk
include tools/module.mk
include tests/fuzz/module.mk

.PHONY: all check check-unit check-functional check-sanitize check-tsan check-valgrind demo bench bench-converge soak clean distclean help \
        install

all: $(BUILD)/migvm $(EXTRA_ALL)

$(BUILD)/migvm: $(MIGVM_MAIN_OBJ) $(MIGVM_OBJS)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(DEP_LIBS) $(GNUTLS_LIBS) -lm

# Every object waits for the generated headers (order-only: -MMD takes over after the first build).
$(BUILD)/%.o: %.c | $(GENERATED_HEADERS)
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS_ALL) -c -o $@ $<

$(BUILD)/%.o: $(BUILD)/%.c | $(GENERATED_HEADERS)
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(CFLAGS_ALL) -c -o $@ $<

# Unit tests: tests/unit/test-foo.c plus the objects its fragment lists as
# prerequisites of $(BUILD)/tests/unit/test-foo (stubs in test-only objects).
$(BUILD)/tests/unit/%.o: CFLAGS_ALL += $(CHECK_CFLAGS)
$(UNIT_TESTS): $(BUILD)/tests/unit/%: $(BUILD)/tests/unit/%.o
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS) -lm

# libFuzzer targets (not part of check, need clang): tests/fuzz/NAME.c plus the
# objects its fragment lists, compiled again by FUZZ_CC with the same flags and
# the fuzzer's instrumentation under $(BUILD)/fuzz/ (fuzz-objs maps the paths).
$(BUILD)/fuzz/%.o: %.c | $(GENERATED_HEADERS)
	@mkdir -p $(dir $@)
	$(call say,FUZZCC,$<)
	$(Q)$(FUZZ_CC) $(CFLAGS_ALL) $(FUZZ_SAN) -c -o $@ $<

$(BUILD)/fuzz/%.o: $(BUILD)/%.c | $(GENERATED_HEADERS)
	@mkdir -p $(dir $@)
	$(call say,FUZZCC,$<)
	$(Q)$(FUZZ_CC) $(CFLAGS_ALL) $(FUZZ_SAN) -c -o $@ $<

$(FUZZ_TARGETS): $(BUILD)/fuzz/%: $(BUILD)/fuzz/tests/fuzz/%.o
	$(call say,FUZZ,$@)
	$(Q)$(FUZZ_CC) $(LDFLAGS_ALL) $(FUZZ_LINK_SAN) -o $@ $^ $(DEP_LIBS) $(GNUTLS_LIBS) -lm

check: all $(UNIT_TESTS)
	$(Q)BUILD=$(BUILD) scripts/run-tests.sh $(UNIT_TESTS) -- $(FUNC_TESTS)

check-unit: all $(UNIT_TESTS)
	$(Q)BUILD=$(BUILD) scripts/run-tests.sh $(UNIT_TESTS) --

check-functional: all
	$(Q)BUILD=$(BUILD) scripts/run-tests.sh -- $(FUNC_TESTS)

check-sanitize:
	$(Q)$(MAKE) --no-print-directory BUILD=build-sanitize SANITIZE=1 OPT=-O1 check

# check under ThreadSanitizer, every test. Every race report fails the run:
# the process stops at the first one with status 66, and migvm.py fails a
# functional test on a report on its VM's stderr. tests/tsan.supp may list
# false positives inside system libraries only. Unit tests get three times
# check's per-test timeout: under TSan and load, test-qmp-session's 70 MiB of
# events took 31 s against 30.
TSAN_OPTIONS_ALL := halt_on_error=1 exitcode=66 second_deadlock_stack=1 suppressions=$(CURDIR)/tests/tsan.supp
check-tsan:
	$(Q)TSAN_OPTIONS="$(TSAN_OPTIONS_ALL) $(TSAN_OPTIONS)" CK_TIMEOUT_MULTIPLIER=3 \
		$(MAKE) --no-print-directory BUILD=build-tsan TSAN=1 OPT=-O1 check

# Unit tests under valgrind (no fork, so leaks are attributed to the test that made them).
check-valgrind: all $(UNIT_TESTS)
	$(Q)BUILD=$(BUILD) CK_FORK=no TEST_WRAPPER="valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=1" \
		scripts/run-tests.sh $(UNIT_TESTS) --

demo: all
	$(Q)BUILD=$(BUILD) scripts/demo.sh

# The ring-3 KVM guest for SOAK_MINUTES (default 3) with a stop/cont every 30 s (not part of check).
soak: all
	$(Q)BUILD=$(BUILD) /usr/bin/python3 tests/functional/ring3-soak.py $(or $(SOAK_MINUTES),3)

bench: all $(BENCH_TARGETS)
	$(Q)BUILD=$(BUILD) bench/run.sh
	$(Q)BUILD=$(BUILD) /usr/bin/python3 bench/dirty-sync-bench.py
	$(Q)BUILD=$(BUILD) /usr/bin/python3 bench/converge-bench.py
	$(Q)BUILD=$(BUILD) /usr/bin/python3 bench/postcopy-bench.py

# The convergence controller against QEMU 7.2 alone (the last part of make bench; bench/README.md).
bench-converge: all
	$(Q)BUILD=$(BUILD) /usr/bin/python3 bench/converge-bench.py

PREFIX ?= /usr/local
BINDIR = $(DESTDIR)$(PREFIX)/bin
MAN1DIR = $(DESTDIR)$(PREFIX)/share/man/man1

# migvm-stream's page is migvm's (one page documents both): a .so link.
install: all
	$(call say,INSTALL,$(DESTDIR)$(PREFIX))
	$(Q)install -d $(BINDIR) $(MAN1DIR)
	$(Q)install -m 755 $(BUILD)/migvm $(BUILD)/migvm-stream $(BINDIR)/
	$(Q)install -m 644 docs/migvm.1 $(MAN1DIR)/migvm.1
	$(Q)echo '.so man1/migvm.1' > $(MAN1DIR)/migvm-stream.1 && chmod 644 $(MAN1DIR)/migvm-stream.1

clean:
	rm -rf $(BUILD) build-sanitize build-tsan

distclean: clean

help:
	@sed -n '4,/^$$/p' Makefile | sed 's/^# \{0,1\}//'

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
