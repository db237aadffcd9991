# migration/: the stream (stream.c), VMState (vmstate.c), the save-state registry
# and writer (savevm.c), the loader (loadvm.c), the return path (return-path.c),
# the configuration section (config-section.c), the globalstate section.
MIGRATION_CORE_OBJS := $(BUILD)/migration/stream.o $(BUILD)/migration/vmstate.o \
                       $(BUILD)/migration/savevm.o $(BUILD)/migration/loadvm.o \
                       $(BUILD)/migration/return-path.o $(BUILD)/migration/config-section.o
MIGVM_OBJS += $(MIGRATION_CORE_OBJS) $(BUILD)/migration/global-state.o

UNIT_TESTS += $(BUILD)/tests/unit/test-vmstate $(BUILD)/tests/unit/test-savevm

$(BUILD)/tests/unit/test-vmstate.o $(BUILD)/tests/unit/test-savevm.o: CFLAGS += $(CHECK_CFLAGS) -Imigration

$(BUILD)/tests/unit/test-vmstate: $(BUILD)/tests/unit/test-vmstate.o $(BUILD)/migration/stream.o \
                                  $(BUILD)/migration/vmstate.o $(UTIL_OBJS)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)

# test-savevm stubs runstate_get(); RunState_str/parse come from the generated qapi-types.o.
$(BUILD)/tests/unit/test-savevm: $(BUILD)/tests/unit/test-savevm.o $(MIGRATION_CORE_OBJS) \
                                 $(BUILD)/migration/global-state.o $(BUILD)/qapi/qapi-types.o $(BUILD)/qapi/qapi-runtime.o \
                                 $(JSON_WRITER_OBJS) $(UTIL_OBJS)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)

# libFuzzer target for the incoming stream (not part of check): make fuzz-loadvm
#   build/fuzz/fuzz-loadvm -max_total_time=120 build/fuzz/loadvm-corpus
FUZZ_CC ?= clang
FUZZ_LOADVM_SRCS := tests/fuzz/fuzz-loadvm.c migration/stream.c migration/vmstate.c \
                    migration/savevm.c migration/loadvm.c migration/return-path.c \
                    migration/config-section.c util/error.c \
                    util/json-lexer.c util/json-writer.c
.PHONY: fuzz-loadvm
fuzz-loadvm: $(BUILD)/fuzz/fuzz-loadvm

$(BUILD)/fuzz/fuzz-loadvm: $(FUZZ_LOADVM_SRCS) $(wildcard include/*.h migration/*.h util/*.h)
	@mkdir -p $(dir $@)
	$(call say,FUZZ,$@)
	$(Q)$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude -Imigration -Iutil $(DEP_CFLAGS) \
		-fsanitize=fuzzer,address,undefined -o $@ $(FUZZ_LOADVM_SRCS) $(DEP_LIBS)
