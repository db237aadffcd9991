# system/: main() (main.c), the command line (cmdline.c, cmdline-chardev.c, cmdline-refused.c, opts.c,
# chardev-spec.c), the chardev list query-chardev reports (chardev-info.c),
# run state (vm.c), the big lock (bql.c), the main loop, guest RAM and dirty bitmaps
# (memory.c), their pre-faulting on a migration destination (ram-prefault.c), -mem-prealloc (ram-prealloc.c) and which pages were never
# populated (ram-untouched.c), the accelerator registry (accel.c), vCPU threads (cpus.c), and the
# run-state, guest-memory and vCPU-list (query-cpus-fast) QMP commands, vCPU dirty limits (dirtylimit.c).
SYSTEM_CMDLINE_OBJS := $(BUILD)/system/cmdline.o $(BUILD)/system/cmdline-chardev.o \
                       $(BUILD)/system/cmdline-refused.o $(BUILD)/system/opts.o $(BUILD)/system/chardev-spec.o \
                       $(BUILD)/system/chardev-info.o
SYSTEM_CMDLINE_OBJS += $(BUILD)/system/device-spec.o
# What a board and its accelerator run on.
SYSTEM_MACHINE_OBJS := $(BUILD)/system/bql.o $(BUILD)/system/memory.o $(BUILD)/system/ram-prefault.o $(BUILD)/system/ram-prealloc.o $(BUILD)/system/ram-untouched.o $(BUILD)/system/accel.o $(BUILD)/system/cpus.o \
                       $(BUILD)/system/cpu-throttle.o
MIGVM_OBJS += $(SYSTEM_CMDLINE_OBJS) $(SYSTEM_MACHINE_OBJS) \
              $(BUILD)/system/vm.o \
              $(BUILD)/system/main-loop.o \
              $(BUILD)/system/qmp-cmds-run-state.o \
              $(BUILD)/system/qmp-cmds-memory.o \
              $(BUILD)/system/qmp-cmds-cpus.o \
              $(BUILD)/system/dirtylimit.o

# Unit test: run states, vm_start/stop events, sizes, chardev specs, command line.
# cpus_* / machine_reset / qapi_event_emit are stubbed in the test itself.
UNIT_TESTS += $(BUILD)/tests/unit/test-runstate
$(BUILD)/tests/unit/test-runstate: $(SYSTEM_CMDLINE_OBJS) \
                                   $(BUILD)/system/vm.o $(BUILD)/system/bql.o $(BUILD)/system/main-loop.o \
                                   $(BUILD)/system/qmp-cmds-run-state.o $(UTIL_OBJS) \
                                   $(QAPI_OBJS) $(BUILD)/system/accel.o

# Unit test: -chardev, -mon and the shorthands that become chardevs.
UNIT_TESTS += $(BUILD)/tests/unit/test-cmdline-chardev
$(BUILD)/tests/unit/test-cmdline-chardev: $(SYSTEM_CMDLINE_OBJS) $(UTIL_OBJS)

# Unit test: the destination's pre-faulting window follows the data (ram-prefault.c).
UNIT_TESTS += $(BUILD)/tests/unit/test-ram-prefault
$(BUILD)/tests/unit/test-ram-prefault: $(BUILD)/system/memory.o $(BUILD)/system/ram-prefault.o $(BUILD)/system/ram-prealloc.o $(BUILD)/system/ram-untouched.o $(BUILD)/system/accel.o $(UTIL_OBJS)

# Unit test: pages never populated, as /proc/self/pagemap tells (ram-untouched.c).
UNIT_TESTS += $(BUILD)/tests/unit/test-ram-untouched
$(BUILD)/tests/unit/test-ram-untouched: $(BUILD)/system/memory.o $(BUILD)/system/ram-prefault.o $(BUILD)/system/ram-prealloc.o $(BUILD)/system/ram-untouched.o $(BUILD)/system/accel.o $(UTIL_OBJS)

# Unit test: bitmaps, concurrent dirtying vs sync, guest-physical access.
UNIT_TESTS += $(BUILD)/tests/unit/test-memory
$(BUILD)/tests/unit/test-memory: $(BUILD)/system/memory.o $(BUILD)/system/ram-prefault.o $(BUILD)/system/ram-prealloc.o $(BUILD)/system/ram-untouched.o $(BUILD)/system/accel.o $(UTIL_OBJS)
