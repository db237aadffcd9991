# accel-kvm/: the KVM accelerator (VM and slots, vCPU run loop, dirty
# logging, vCPU state and its "cpu" VMState section), plus hw/loader.c
# (the boot sector loader it uses; listed here because hw/module.mk
# belongs to another room).
KVM_OBJS := $(BUILD)/accel-kvm/kvm.o $(BUILD)/accel-kvm/kvm-vcpu.o $(BUILD)/accel-kvm/kvm-dirty.o \
            $(BUILD)/accel-kvm/kvm-cpu-state.o $(BUILD)/accel-kvm/kvm-vm-state.o \
            $(BUILD)/accel-kvm/kvm-cpu-model.o $(BUILD)/accel-kvm/kvm-cpu-dump.o $(BUILD)/hw/loader.o
MIGVM_OBJS += $(KVM_OBJS)
$(BUILD)/accel-kvm/%.o: CFLAGS_ALL += -Ihw

FUNC_TESTS += tests/functional/test-kvm.py tests/functional/test-kvm-machine.py
