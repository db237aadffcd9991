# bench/: tools for `make bench` (never part of `make check`).
# sockbw measures this machine's own socket bandwidth, the yardstick that
# bench/migration-bench.py compares migration throughput with.

$(BUILD)/bench/sockbw: $(BUILD)/bench/sockbw.o
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ -pthread

BENCH_TARGETS += $(BUILD)/bench/sockbw

# zerobench: the zero-page check's implementations (util/buffer-zero.c) side by side.
$(BUILD)/bench/zerobench: $(BUILD)/bench/zerobench.o $(BUILD)/util/buffer-zero.o
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^

BENCH_TARGETS += $(BUILD)/bench/zerobench

# recvbench: what a destination pays per GiB to place received pages (resident, fresh, UFFDIO_COPY).
$(BUILD)/bench/recvbench: $(BUILD)/bench/recvbench.o
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ -pthread

BENCH_TARGETS += $(BUILD)/bench/recvbench

# warmhost: fault in and free memory right before a run (a host that took free memory back is cold).
$(BUILD)/bench/warmhost: $(BUILD)/bench/warmhost.o
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ -pthread

BENCH_TARGETS += $(BUILD)/bench/warmhost

# Postcopy: the 4 GiB KVM boot-sector guest rewriting 1 GiB, migvm against QEMU 7.2 (bench/postcopy-bench.py).
.PHONY: bench-postcopy
bench-postcopy: all $(BUILD)/bench/boot-sector-1g.img
	$(Q)BUILD=$(BUILD) /usr/bin/python3 bench/postcopy-bench.py

# The boot-sector guest that rewrites exactly 1 GiB (the pages in [1 MiB, 1 GiB + 1 MiB)),
# whatever its RAM size, under migvm and QEMU alike: the throughput rows.
$(BUILD)/bench/boot-sector-1g.o: guest/boot-sector.S guest/boot-entry.h guest/boot-flat32.h
	@mkdir -p $(dir $@)
	$(call say,AS,$<)
	$(Q)$(CC) -c -nostdlib -DTOP_CAP=0x40100000 -o $@ $<

$(BUILD)/bench/boot-sector-1g.img: $(BUILD)/bench/boot-sector-1g.o
	$(call say,LD,$@)
	$(Q)ld -m elf_x86_64 -nostdlib -Ttext 0x7c00 -e _start --oformat binary -o $@.tmp $<
	$(Q)test "$$(stat -c %s $@.tmp)" = 512 || { echo "$@: not 512 bytes" >&2; rm -f $@.tmp; exit 1; }
	$(Q)mv $@.tmp $@

BENCH_TARGETS += $(BUILD)/bench/boot-sector-1g.img
