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

# Postcopy: the 4 GiB KVM boot-sector guest rewriting 1 GiB, migvm against QEMU 7.2 (bench/postcopy-bench.py).
.PHONY: bench-postcopy
bench-postcopy: all
	$(Q)BUILD=$(BUILD) /usr/bin/python3 bench/postcopy-bench.py
