# libFuzzer targets over the whole machine (they link every object of
# build/migvm, so this fragment comes after all the others). The JSON
# streamer's and the bare loader's targets are listed by util/ and migration/.
#   make fuzz-smoke      every target for about a minute, from its corpus
#   make fuzz-NAME       one target; tests/fuzz/README.md says how to run it

# The folders' own include paths, for their objects compiled again.
$(BUILD)/fuzz/block/%.o: CFLAGS_ALL += -Isystem
$(BUILD)/fuzz/qapi/%.o: CFLAGS_ALL += -Iqapi
$(BUILD)/fuzz/crypto/%.o $(BUILD)/fuzz/migration/tls.o: CFLAGS_ALL += $(GNUTLS_CFLAGS)
$(BUILD)/fuzz/tests/fuzz/%.o: CFLAGS_ALL += -Imigration -Isystem -Imonitor -Ihw
$(BUILD)/fuzz/tests/fuzz/fuzz-kvm-%.o: CFLAGS_ALL += -Iaccel-kvm

FUZZ_VM_OBJS := $(call fuzz-objs,$(MIGVM_OBJS)) $(BUILD)/fuzz/tests/fuzz/fuzz-machine.o

# The whole incoming stream into a -M pc machine with the soft accelerator.
FUZZ_TARGETS += $(BUILD)/fuzz/fuzz-incoming
$(BUILD)/fuzz/fuzz-incoming: $(FUZZ_VM_OBJS) $(BUILD)/fuzz/tests/fuzz/fuzz-load.o
.PHONY: fuzz-incoming
fuzz-incoming: $(BUILD)/fuzz/fuzz-incoming

# The same into a -M pc machine with the KVM accelerator. Every ioctl(2) and
# open(2) of its objects goes through fuzz-kvm-ioctl.c (once the machine is
# built, no KVM ioctl of a load reaches the kernel) and fuzz-kvm-standin.c
# (the default: no /dev/kvm needed; FUZZ_KVM_REAL=1 uses /dev/kvm).
FUZZ_TARGETS += $(BUILD)/fuzz/fuzz-incoming-kvm
$(BUILD)/fuzz/fuzz-incoming-kvm: $(FUZZ_VM_OBJS) $(BUILD)/fuzz/tests/fuzz/fuzz-load.o \
    $(BUILD)/fuzz/tests/fuzz/fuzz-kvm-ioctl.o $(BUILD)/fuzz/tests/fuzz/fuzz-kvm-standin.o
$(BUILD)/fuzz/fuzz-incoming-kvm: LDFLAGS_ALL += -Wl,--wrap=ioctl,--wrap=open
.PHONY: fuzz-incoming-kvm
fuzz-incoming-kvm: $(BUILD)/fuzz/fuzz-incoming-kvm

# QMP input: the session, dispatcher and generated marshallers of the QMP unit
# tests, with the same stand-ins for handlers outside monitor/.
FUZZ_TARGETS += $(BUILD)/fuzz/fuzz-qmp
$(BUILD)/fuzz/fuzz-qmp: $(call fuzz-objs,$(QMP_TEST_OBJS))
.PHONY: fuzz-qmp
fuzz-qmp: $(BUILD)/fuzz/fuzz-qmp

# HMP input on the same machine (real handlers; the ones that reach outside
# the process are only parsed).
FUZZ_TARGETS += $(BUILD)/fuzz/fuzz-hmp
$(BUILD)/fuzz/fuzz-hmp: $(FUZZ_VM_OBJS)
.PHONY: fuzz-hmp
fuzz-hmp: $(BUILD)/fuzz/fuzz-hmp

# Multifd packets into the machine's RAM, through one channel's decoder.
FUZZ_TARGETS += $(BUILD)/fuzz/fuzz-multifd
$(BUILD)/fuzz/fuzz-multifd: $(FUZZ_VM_OBJS)
.PHONY: fuzz-multifd
fuzz-multifd: $(BUILD)/fuzz/fuzz-multifd

# Return-path messages as the source reads them.
FUZZ_TARGETS += $(BUILD)/fuzz/fuzz-return-path
$(BUILD)/fuzz/fuzz-return-path: $(call fuzz-objs,$(MIGRATION_CORE_OBJS) $(BUILD)/system/bql.o $(UTIL_OBJS))
.PHONY: fuzz-return-path
fuzz-return-path: $(BUILD)/fuzz/fuzz-return-path

# Every target for about a minute in all (FUZZ_SMOKE_SECONDS), from the corpus.
# Last in the file: a rule's prerequisites expand where it is read, so every
# FUZZ_TARGETS += above must come first (else those targets are not built).
.PHONY: fuzz-smoke
fuzz-smoke: $(FUZZ_TARGETS)
	$(Q)tests/fuzz/smoke.sh $(FUZZ_TARGETS)
