# hw/: the board (machine.c), port I/O and MMIO dispatch (bus.c), character
# backends (chardev.c), the 16550 UART (serial.c) and the small port devices
# (ports.c: 0x80, 0x92/0xcf9/i8042 reset, debug exit).
HW_OBJS := $(BUILD)/hw/machine.o $(BUILD)/hw/bus.o $(BUILD)/hw/chardev.o $(BUILD)/hw/serial.o
# ports.c registers itself with the board; not in HW_OBJS, so unit tests that
# link the board without system/vm.c leave it out.
MIGVM_OBJS += $(HW_OBJS) $(BUILD)/hw/ports.o

# system/memory.c, system/accel.c, system/cpus.c belong to this room too.
include system/devices.mk

# Unit test: 16550 registers and the "serial" VMState round trip.
UNIT_TESTS += $(BUILD)/tests/unit/test-serial
$(BUILD)/tests/unit/test-serial.o: CFLAGS_ALL += $(CHECK_CFLAGS)
$(BUILD)/tests/unit/test-serial: $(BUILD)/tests/unit/test-serial.o $(BUILD)/hw/serial.o \
                                 $(BUILD)/hw/chardev.o $(BUILD)/hw/bus.o \
                                 $(BUILD)/migration/vmstate.o $(BUILD)/migration/stream.o \
                                 $(UTIL_OBJS)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)
include hw/timer.mk
