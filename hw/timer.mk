# hw/timer-state.c: the "timer" migration section QEMU sends for every machine.
HW_OBJS += $(BUILD)/hw/timer-state.o
MIGVM_OBJS += $(BUILD)/hw/timer-state.o
