# accel-kvm/: the KVM accelerator: VM, memory slots and in-kernel irqchip
# (kvm.c), the vCPU run loop (kvm-vcpu.c), dirty logging (kvm-dirty.c) and the
# dirty ring (kvm-dirty-ring.c), vCPU
# state and its "cpu" VMState section (kvm-cpu-state.c), VM-wide state
# (kvm-vm-state.c), the CPU model section (kvm-cpu-model.c) and the register
# dump for HMP `info registers` (kvm-cpu-dump.c).
KVM_OBJS := $(BUILD)/accel-kvm/kvm.o $(BUILD)/accel-kvm/kvm-vcpu.o $(BUILD)/accel-kvm/kvm-dirty.o \
            $(BUILD)/accel-kvm/kvm-dirty-ring.o \
            $(BUILD)/accel-kvm/kvm-cpu-state.o $(BUILD)/accel-kvm/kvm-vm-state.o \
            $(BUILD)/accel-kvm/kvm-cpu-model.o $(BUILD)/accel-kvm/kvm-cpu-dump.o
MIGVM_OBJS += $(KVM_OBJS)
