# hw/timer-state.c: the "timer" migration section QEMU sends for every machine.
MIGVM_OBJS += $(BUILD)/hw/timer-state.o
