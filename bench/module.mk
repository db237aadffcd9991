# bench/: tools for `make bench` (never part of `make check`).
# sockbw measures this machine's own socket bandwidth, the yardstick that
# bench/migration-bench.py compares migration throughput with.

$(BUILD)/bench/sockbw: bench/sockbw.c
	@mkdir -p $(dir $@)
	$(call say,LINK,$@)
	$(Q)$(CC) -std=c11 -g $(OPT) $(WARN) $(SAN_FLAGS) $(CFLAGS) $(LDFLAGS_ALL) -o $@ $< -pthread

BENCH_TARGETS += $(BUILD)/bench/sockbw
