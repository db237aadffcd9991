# Guest RAM and dirty bitmaps, the accelerator registry, vCPU threads
# (included from hw/module.mk: same room as the board).
DEVICES_SYSTEM_OBJS := $(BUILD)/system/memory.o $(BUILD)/system/accel.o $(BUILD)/system/cpus.o
MIGVM_OBJS += $(DEVICES_SYSTEM_OBJS)

# Unit test: bitmaps, concurrent dirtying vs sync, guest-physical access.
UNIT_TESTS += $(BUILD)/tests/unit/test-memory
$(BUILD)/tests/unit/test-memory.o: CFLAGS_ALL += $(CHECK_CFLAGS)
$(BUILD)/tests/unit/test-memory: $(BUILD)/tests/unit/test-memory.o $(BUILD)/system/memory.o \
                                 $(BUILD)/system/accel.o $(UTIL_OBJS)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)
