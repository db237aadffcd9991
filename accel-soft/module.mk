# accel-soft/: the soft accelerator and its built-in workload.
SOFT_OBJS := $(BUILD)/accel-soft/soft.o $(BUILD)/accel-soft/workload.o $(BUILD)/accel-soft/disk-workload.o
MIGVM_OBJS += $(SOFT_OBJS)

# Unit test: the workload alone (pattern, exact dirty tracking, throttle) and
# the whole board on the soft accelerator (vCPU threads, pause/resume, serial
# file). BQL, run state, VMState registry and chardev specs are stubbed in it.
UNIT_TESTS += $(BUILD)/tests/unit/test-soft-workload
$(BUILD)/tests/unit/test-soft-workload: $(SOFT_OBJS) $(HW_OBJS) $(SYSTEM_MACHINE_OBJS) $(UTIL_OBJS) \
                                        $(BLOCK_OBJS) $(BUILD)/system/opts.o $(BUILD)/system/device-spec.o \
                                        $(BUILD)/system/chardev-info.o $(QAPI_OBJS)

# Unit test: the disk workload (disk-rate=) stepped on real drives: which
# drives, the pattern, and stale/misplaced/torn blocks reported.
UNIT_TESTS += $(BUILD)/tests/unit/test-soft-disk
$(BUILD)/tests/unit/test-soft-disk: $(BUILD)/accel-soft/disk-workload.o $(BLOCK_OBJS) $(BUILD)/system/opts.o \
                                    $(BUILD)/system/bql.o $(UTIL_OBJS) $(QAPI_OBJS)
