# guest/ring3/: the second test guest: long mode, IDT/TSS, 8259 +
# PIT + LAPIC timer, interrupt-driven COM1, a memory-dirtying workload in
# ring 3 (see guest/ring3/user.c for its serial protocol). One flat raw image
# linked at 0x7c00 by guest/ring3/link.ld; the first 512 bytes boot it.
RING3_IMG := $(BUILD)/guest/ring3-guest.img
RING3_SRCS := guest/ring3/boot.S guest/ring3/regcheck.S guest/ring3/kernel.c \
              guest/ring3/user.c guest/ring3/fmt.c guest/ring3/virtio-blk.c guest/ring3/disk.c
RING3_OBJS := $(patsubst guest/ring3/%,$(BUILD)/guest/ring3/%.o,$(basename $(RING3_SRCS)))
# Ring 0 runs in KVM's emulator under PVM: general registers only, nothing
# it refuses (popcnt, endbr64 from CET, ...), no red zone.
RING3_CFLAGS := -m64 -std=gnu11 -O2 -g $(WARN) -ffreestanding -fno-builtin \
                -nostdlib -fno-pic -fno-pie -mcmodel=small -mno-red-zone -mgeneral-regs-only \
                -mno-sse -mno-mmx -mno-popcnt -fno-stack-protector -fcf-protection=none \
                -fno-asynchronous-unwind-tables -fno-unwind-tables -fno-jump-tables -MMD -MP
EXTRA_ALL += $(RING3_IMG)

$(BUILD)/guest/ring3/%.o: guest/ring3/%.c
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) $(RING3_CFLAGS) -c -o $@ $<

$(BUILD)/guest/ring3/%.o: guest/ring3/%.S guest/ring3/ring3.h guest/boot-entry.h
	@mkdir -p $(dir $@)
	$(call say,AS,$<)
	$(Q)$(CC) -m64 -nostdlib -c -o $@ $<

$(BUILD)/guest/ring3/ring3-guest.elf: $(RING3_OBJS) guest/ring3/link.ld
	$(call say,LD,$@)
	$(Q)ld -m elf_x86_64 -nostdlib -no-pie --no-warn-rwx-segments -T guest/ring3/link.ld -o $@ $(RING3_OBJS)

$(RING3_IMG): $(BUILD)/guest/ring3/ring3-guest.elf
	$(call say,OBJCOPY,$@)
	$(Q)objcopy -O binary -j .boot -j .config -j .stage2 -j .text -j .rodata -j .data $< $@.tmp
	$(Q)size=$$(stat -c %s $@.tmp); test $$((size % 512)) = 0 || { echo "$@: $$size bytes, not whole sectors" >&2; exit 1; }
	$(Q)mv $@.tmp $@

-include $(RING3_OBJS:.o=.d)
