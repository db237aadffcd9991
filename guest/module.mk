# guest/: the boot-sector test guest (see guest/boot-sector.S), assembled
# with the C compiler's preprocessor + GNU as and linked flat at 0x7c00.
GUEST_IMG := $(BUILD)/guest/boot-sector.img
EXTRA_ALL += $(GUEST_IMG)

$(BUILD)/guest/boot-sector.o: guest/boot-sector.S guest/boot-entry.h
	@mkdir -p $(dir $@)
	$(call say,AS,$<)
	$(Q)$(CC) -c -nostdlib -o $@ $<

$(GUEST_IMG): $(BUILD)/guest/boot-sector.o
	$(call say,LD,$@)
	$(Q)ld -m elf_x86_64 -nostdlib -Ttext 0x7c00 -e _start --oformat binary -o $@.tmp $<
	$(Q)test "$$(stat -c %s $@.tmp)" = 512 || { echo "$@: not 512 bytes" >&2; rm -f $@.tmp; exit 1; }
	$(Q)mv $@.tmp $@

# A boot sector that drives the first virtio-blk device by polling
# (tests/functional/test-virtio-blk.py).
VIRTIO_CHECK_IMG := $(BUILD)/guest/virtio-blk-check.img
EXTRA_ALL += $(VIRTIO_CHECK_IMG)

$(BUILD)/guest/virtio-blk-check.o: guest/virtio-blk-check.S guest/boot-entry.h
	@mkdir -p $(dir $@)
	$(call say,AS,$<)
	$(Q)$(CC) -c -nostdlib -o $@ $<

$(VIRTIO_CHECK_IMG): $(BUILD)/guest/virtio-blk-check.o
	$(call say,LD,$@)
	$(Q)ld -m elf_x86_64 -nostdlib -Ttext 0x7c00 -e _start --oformat binary -o $@.tmp $<
	$(Q)test "$$(stat -c %s $@.tmp)" = 1024 || { echo "$@: not 1024 bytes" >&2; rm -f $@.tmp; exit 1; }
	$(Q)mv $@.tmp $@

# A boot sector that writes a known set of pages once, on a byte from COM1
# (tests/functional/test-dirty-ring.py: the dirty ring against the bitmap).
DIRTY_SET_IMG := $(BUILD)/guest/dirty-set.img
EXTRA_ALL += $(DIRTY_SET_IMG)

$(BUILD)/guest/dirty-set.o: guest/dirty-set.S guest/boot-entry.h
	@mkdir -p $(dir $@)
	$(call say,AS,$<)
	$(Q)$(CC) -c -nostdlib -o $@ $<

$(DIRTY_SET_IMG): $(BUILD)/guest/dirty-set.o
	$(call say,LD,$@)
	$(Q)ld -m elf_x86_64 -nostdlib -Ttext 0x7c00 -e _start --oformat binary -o $@.tmp $<
	$(Q)test "$$(stat -c %s $@.tmp)" = 512 || { echo "$@: not 512 bytes" >&2; rm -f $@.tmp; exit 1; }
	$(Q)mv $@.tmp $@
