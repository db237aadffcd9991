# monitor/: the QMP server (monitor.c, monitor-server.c, qmp.c) and its control
# commands (qmp-cmds-control.c); the human monitor: console, command table,
# argument parser, printers and the HMP commands (hmp*.c).
MONITOR_QMP_OBJS := $(BUILD)/monitor/monitor.o $(BUILD)/monitor/monitor-server.o \
                    $(BUILD)/monitor/qmp.o $(BUILD)/monitor/qmp-cmds-control.o
# The HMP dispatcher with every command but `info registers` (hmp-cmds-cpu.c,
# which reads vCPU state through the accelerator).
HMP_DISPATCH_OBJS := $(BUILD)/monitor/hmp.o $(BUILD)/monitor/hmp-parse.o $(BUILD)/monitor/hmp-commands.o \
                     $(BUILD)/monitor/hmp-cmds.o $(BUILD)/monitor/hmp-cmds-migration.o $(BUILD)/monitor/hmp-cmds-history.o $(BUILD)/monitor/hmp-cmds-check.o \
                     $(BUILD)/monitor/hmp-cmds-dirtyrate.o $(BUILD)/monitor/hmp-cmds-dirtylimit.o \
                     $(BUILD)/monitor/hmp-print.o $(BUILD)/monitor/hmp-cmds-block.o
# Monitors open chardev specs (system/chardev-spec.c, with the option parsers it uses) and
# report their sockets to the chardev list (system/chardev-info.c).
MONITOR_SPEC_OBJS := $(BUILD)/system/chardev-spec.o $(BUILD)/system/chardev-info.o $(BUILD)/system/opts.o
MONITOR_OBJS := $(MONITOR_QMP_OBJS) $(HMP_DISPATCH_OBJS) $(BUILD)/monitor/hmp-console.o \
                $(BUILD)/monitor/hmp-cmds-cpu.o $(BUILD)/monitor/hmp-cmds-qemu-io.o
MIGVM_OBJS += $(MONITOR_OBJS)

# QMP unit tests: the server and dispatcher with util and the generated code;
# handlers of commands implemented outside monitor/ come from generated weak
# stand-ins, the rest of the process from qmp-test-stubs.c (tests only).
QMP_TEST_OBJS := $(MONITOR_QMP_OBJS) $(QAPI_DISPATCH_OBJ) $(UTIL_OBJS) $(QAPI_ALL_OBJS) $(MONITOR_SPEC_OBJS) \
                 $(BUILD)/tests/unit/qmp-test-stubs.o $(BUILD)/tests/unit/qmp-handler-stubs.o
$(BUILD)/tests/unit/qmp-handler-stubs.c: $(BUILD)/qapi/qapi-commands.h tests/unit/qmp-handler-stubs.sh
	@mkdir -p $(dir $@)
	$(call say,GEN,$@)
	$(Q)sh tests/unit/qmp-handler-stubs.sh $< > $@.tmp && mv $@.tmp $@

UNIT_TESTS += $(BUILD)/tests/unit/test-qmp-dispatch $(BUILD)/tests/unit/test-qmp-session
$(BUILD)/tests/unit/test-qmp-dispatch: $(QMP_TEST_OBJS)
$(BUILD)/tests/unit/test-qmp-session: $(QMP_TEST_OBJS)

# HMP unit tests: util and the generated QAPI types (enum names, free
# functions) with the runtime they call; test-hmp-dispatch runs on the real
# monitor core and stubs the qmp_* handlers and the system functions HMP calls.
HMP_TEST_DEPS := $(UTIL_OBJS) $(BUILD)/qapi/qapi-types.o $(BUILD)/qapi/qapi-runtime.o

UNIT_TESTS += $(BUILD)/tests/unit/test-hmp-parse $(BUILD)/tests/unit/test-hmp-print \
              $(BUILD)/tests/unit/test-hmp-dispatch
$(BUILD)/tests/unit/test-hmp-parse: $(BUILD)/monitor/hmp-parse.o
$(BUILD)/tests/unit/test-hmp-print: $(BUILD)/monitor/hmp-print.o $(HMP_TEST_DEPS)
$(BUILD)/tests/unit/test-hmp-dispatch: $(HMP_DISPATCH_OBJS) $(BUILD)/monitor/hmp-cmds-cpu.o $(BUILD)/monitor/monitor.o \
                                       $(BUILD)/monitor/monitor-server.o $(MONITOR_SPEC_OBJS) $(HMP_TEST_DEPS)
