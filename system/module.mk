# system/: command line, run state and the big lock, main loop, signals,
# run-state QMP commands. (system/cpus.c and system/memory.c: hw's module.mk.)
SYSTEM_CMDLINE_OBJS := $(BUILD)/system/cmdline.o $(BUILD)/system/opts.o $(BUILD)/system/chardev-spec.o
MIGVM_OBJS += $(SYSTEM_CMDLINE_OBJS) \
              $(BUILD)/system/vm.o \
              $(BUILD)/system/main-loop.o \
              $(BUILD)/system/qmp-cmds-run-state.o


# Unit test: run states, vm_start/stop events, sizes, chardev specs, command line.
# cpus_* / machine_reset / qapi_event_emit are stubbed in the test itself.
UNIT_TESTS += $(BUILD)/tests/unit/test-runstate
TEST_RUNSTATE_OBJS := $(BUILD)/tests/unit/test-runstate.o $(SYSTEM_CMDLINE_OBJS) \
                      $(BUILD)/system/vm.o $(BUILD)/system/main-loop.o \
                      $(BUILD)/system/qmp-cmds-run-state.o $(UTIL_OBJS) \
                      $(QAPI_OBJS) $(JSON_WRITER_OBJS) $(BUILD)/system/accel.o
$(BUILD)/tests/unit/test-runstate.o: CFLAGS_ALL += $(CHECK_CFLAGS)
$(BUILD)/tests/unit/test-runstate: $(TEST_RUNSTATE_OBJS)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS) -lm
