# QMP server, dispatcher, control commands (monitor.c, qmp.c, qapi/dispatch.c, ...)
MONITOR_CORE_OBJS := $(BUILD)/monitor/monitor.o $(BUILD)/monitor/monitor-server.o \
                     $(BUILD)/monitor/qmp.o $(BUILD)/monitor/qmp-cmds-control.o \
                     $(BUILD)/qapi/dispatch.o
MIGVM_OBJS += $(MONITOR_CORE_OBJS)

# What the QMP unit tests link besides the monitor core: util (error, JSON
# reader/writer) and the generated QAPI code, whatever their rooms named them.
# (util/ and qapi/ module.mk are included before this file.)
QMP_TEST_DEPS = $(UTIL_OBJS) $(filter $(BUILD)/util/json%.o,$(MIGVM_OBJS)) \
                $(filter $(BUILD)/qapi/qapi-%.o,$(MIGVM_OBJS))

# Weak stand-ins for the handlers of other subsystems (tests only).
QMP_TEST_STUBS := $(BUILD)/tests/unit/qmp-test-stubs.o $(BUILD)/tests/unit/qmp-handler-stubs.o
$(BUILD)/tests/unit/qmp-handler-stubs.c: $(BUILD)/qapi/qapi-commands.h tests/unit/qmp-handler-stubs.sh
	@mkdir -p $(dir $@)
	$(call say,GEN,$@)
	$(Q)sh tests/unit/qmp-handler-stubs.sh $< > $@.tmp && mv $@.tmp $@

UNIT_TESTS += $(BUILD)/tests/unit/test-qmp-dispatch $(BUILD)/tests/unit/test-qmp-session

$(BUILD)/tests/unit/test-qmp-dispatch: $(BUILD)/tests/unit/test-qmp-dispatch.o $(QMP_TEST_STUBS) \
                                       $(MONITOR_CORE_OBJS) $(QMP_TEST_DEPS)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS) -lm

$(BUILD)/tests/unit/test-qmp-session: $(BUILD)/tests/unit/test-qmp-session.o $(QMP_TEST_STUBS) \
                                      $(MONITOR_CORE_OBJS) $(QMP_TEST_DEPS)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS) -lm
