# guest/: the one-file boot-sector test guests, assembled with the C
# compiler's preprocessor + GNU as and linked flat at 0x7c00, each checked to
# be its number of bytes (the BIOS loads one sector; migvm's loader the file):
#   boot-sector       512   increments a byte per page forever (guest/boot-sector.S)
#   virtio-blk-check  1024  drives the first virtio-blk device by polling
#                           (tests/functional/test-virtio-blk.py)
#   dirty-set         512   writes a known set of pages once, on a byte from COM1
#                           (tests/functional/test-dirty-ring.py: the dirty ring against the bitmap)
GUEST_SECTOR_SIZE_boot-sector := 512
GUEST_SECTOR_SIZE_virtio-blk-check := 1024
GUEST_SECTOR_SIZE_dirty-set := 512
GUEST_SECTOR_IMGS := $(patsubst %,$(BUILD)/guest/%.img,boot-sector virtio-blk-check dirty-set)
EXTRA_ALL += $(GUEST_SECTOR_IMGS)

$(GUEST_SECTOR_IMGS:.img=.o): $(BUILD)/guest/%.o: guest/%.S guest/boot-entry.h guest/boot-flat32.h
	@mkdir -p $(dir $@)
	$(call say,AS,$<)
	$(Q)$(CC) -c -nostdlib -o $@ $<

$(GUEST_SECTOR_IMGS): $(BUILD)/guest/%.img: $(BUILD)/guest/%.o
	$(call say,LD,$@)
	$(Q)ld -m elf_x86_64 -nostdlib -Ttext 0x7c00 -e _start --oformat binary -o $@.tmp $<
	$(Q)test "$$(stat -c %s $@.tmp)" = $(GUEST_SECTOR_SIZE_$*) || \
		{ echo "$@: not $(GUEST_SECTOR_SIZE_$*) bytes" >&2; rm -f $@.tmp; exit 1; }
	$(Q)mv $@.tmp $@
