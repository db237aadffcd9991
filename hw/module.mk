# hw/: the board (machine.c), port I/O and MMIO dispatch (bus.c), character
# backends (chardev.c), the 16550 UART (serial.c), the boot image loader
# (loader.c), the "timer" migration section QEMU sends for every machine
# (timer-state.c) and the small port devices (ports.c: 0x80, 0x92/0xcf9/i8042
# reset, debug exit), virtio-blk on virtio-mmio in the board's slots.

# virtio-mmio transport, split virtqueue and virtio-blk (a disk on a drive of
# the block layer); virtio-slots.c puts them in the pc board's slots.
VIRTIO_OBJS := $(BUILD)/hw/virtio-mmio.o $(BUILD)/hw/virtqueue.o $(BUILD)/hw/virtio-blk.o
HW_OBJS := $(BUILD)/hw/machine.o $(BUILD)/hw/device-types.o $(BUILD)/hw/bus.o $(BUILD)/hw/chardev.o $(BUILD)/hw/serial.o \
           $(BUILD)/hw/loader.o $(BUILD)/hw/timer-state.o \
           $(VIRTIO_OBJS) $(BUILD)/hw/virtio-slots.o
# ports.c registers itself with the board and requests resets from system/vm.c:
# not in HW_OBJS, so unit tests that link the board without vm.c leave it out.
MIGVM_OBJS += $(HW_OBJS) $(BUILD)/hw/ports.o
# What the board and chardev.c call outside hw/ (chardev specs, the option
# parsers they use, the chardev list), for unit tests that link them (the program has them anyway).
HW_SPEC_OBJS := $(BUILD)/system/chardev-spec.o $(BUILD)/system/chardev-info.o $(BUILD)/system/opts.o

# Unit test: 16550 registers and the "serial" VMState round trip.
UNIT_TESTS += $(BUILD)/tests/unit/test-serial
$(BUILD)/tests/unit/test-serial: $(BUILD)/hw/serial.o $(BUILD)/hw/chardev.o $(BUILD)/hw/bus.o \
                                 $(BUILD)/migration/vmstate.o $(BUILD)/migration/stream.o \
                                 $(HW_SPEC_OBJS) $(UTIL_OBJS)

# Unit test: virtio-blk driven through its MMIO registers, guest RAM and a fake drive.
UNIT_TESTS += $(BUILD)/tests/unit/test-virtio-blk
$(BUILD)/tests/unit/test-virtio-blk: $(VIRTIO_OBJS) $(BUILD)/hw/bus.o $(BUILD)/system/memory.o $(BUILD)/system/ram-prefault.o $(BUILD)/system/ram-prealloc.o $(BUILD)/system/ram-untouched.o \
                                     $(BUILD)/system/accel.o $(BUILD)/migration/vmstate.o \
                                     $(BUILD)/migration/stream.o $(UTIL_OBJS)
