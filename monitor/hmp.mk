# HMP console and commands
#
# HMP_CORE_OBJS: the human monitor without migration commands (linked into
# build/migvm). HMP_MIGRATION_OBJS: migrate*, info migrate*; they need the
# qmp_migrate* handlers, so the lead adds them to MIGVM_OBJS once migration
# links. Until then the command table hides those commands (weak symbols).
HMP_CORE_OBJS := $(BUILD)/monitor/hmp.o $(BUILD)/monitor/hmp-parse.o $(BUILD)/monitor/hmp-commands.o \
                 $(BUILD)/monitor/hmp-cmds.o $(BUILD)/monitor/hmp-console.o $(BUILD)/monitor/hmp-print.o \
                 $(BUILD)/monitor/hmp-cmds-cpu.o
HMP_MIGRATION_OBJS := $(BUILD)/monitor/hmp-cmds-migration.o
MIGVM_OBJS += $(HMP_CORE_OBJS)

# What the HMP tests link besides their own objects: error.o and the generated
# QAPI types (enum names, free functions) with the runtime they call.
HMP_TEST_DEPS = $(UTIL_OBJS) $(BUILD)/qapi/qapi-types.o $(BUILD)/qapi/qapi-runtime.o

UNIT_TESTS += $(BUILD)/tests/unit/test-hmp-parse $(BUILD)/tests/unit/test-hmp-print \
              $(BUILD)/tests/unit/test-hmp-dispatch

$(BUILD)/tests/unit/test-hmp-parse: $(BUILD)/tests/unit/test-hmp-parse.o $(BUILD)/monitor/hmp-parse.o
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS) -lm

$(BUILD)/tests/unit/test-hmp-print: $(BUILD)/tests/unit/test-hmp-print.o $(BUILD)/monitor/hmp-print.o \
                                    $(HMP_TEST_DEPS)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS) -lm

# The dispatcher with every command, migration included; the qmp_* handlers
# and the monitor core are stubbed in the test.
$(BUILD)/tests/unit/test-hmp-dispatch: $(BUILD)/tests/unit/test-hmp-dispatch.o $(BUILD)/monitor/hmp.o \
                                       $(BUILD)/monitor/hmp-parse.o $(BUILD)/monitor/hmp-commands.o \
                                       $(BUILD)/monitor/hmp-cmds.o $(BUILD)/monitor/hmp-print.o \
                                       $(HMP_MIGRATION_OBJS) $(HMP_TEST_DEPS)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS) -lm
