# libFuzzer targets over the whole machine (they link every object of
# build/migvm, so this fragment comes after all the others). The JSON
# streamer's and the bare loader's targets are listed by util/ and migration/.
#   make fuzz-smoke      every target for about a minute, from its corpus
#   make fuzz-NAME       one target; tests/fuzz/README.md says how to run it

# The folders' own include paths, for their objects compiled again.
$(BUILD)/fuzz/block/%.o: CFLAGS_ALL += -Isystem
$(BUILD)/fuzz/qapi/%.o: CFLAGS_ALL += -Iqapi
$(BUILD)/fuzz/tests/fuzz/%.o: CFLAGS_ALL += -Imigration -Isystem -Imonitor -Ihw

FUZZ_VM_OBJS := $(call fuzz-objs,$(MIGVM_OBJS))

# The whole incoming stream into a -M pc machine with the soft accelerator.
FUZZ_TARGETS += $(BUILD)/fuzz/fuzz-incoming
$(BUILD)/fuzz/fuzz-incoming: $(FUZZ_VM_OBJS)
.PHONY: fuzz-incoming
fuzz-incoming: $(BUILD)/fuzz/fuzz-incoming

# Every target for about a minute in all (FUZZ_SMOKE_SECONDS), from the corpus.
.PHONY: fuzz-smoke
fuzz-smoke: $(FUZZ_TARGETS)
	$(Q)tests/fuzz/smoke.sh $(FUZZ_TARGETS)
