# util/: small helpers shared by every subsystem: errors (error.c), whole-buffer
# fd I/O (fd-io.c), the sockets of socket chardevs (chardev-socket.c), and JSON:
# the lexer with QEMU's rules, the streamer that splits a byte stream into
# values, the writer with QEMU's output format; the zero-buffer check
# (buffer-zero.c: word, SSE2, AVX2, the fastest picked at start-up).
# UTIL_OBJS is what every test links besides its own objects.
UTIL_OBJS := $(BUILD)/util/error.o $(BUILD)/util/fd-io.o $(BUILD)/util/chardev-socket.o $(BUILD)/util/json-lexer.o \
             $(BUILD)/util/json-streamer.o $(BUILD)/util/json-writer.o $(BUILD)/util/buffer-zero.o
MIGVM_OBJS += $(UTIL_OBJS)

UNIT_TESTS += $(BUILD)/tests/unit/test-json-streamer $(BUILD)/tests/unit/test-json-writer $(BUILD)/tests/unit/test-buffer-zero
$(BUILD)/tests/unit/test-buffer-zero: $(UTIL_OBJS)
$(BUILD)/tests/unit/test-json-streamer: $(UTIL_OBJS)
$(BUILD)/tests/unit/test-json-writer: $(UTIL_OBJS)

# libFuzzer target for the streamer: make fuzz-json-streamer (or fuzz-json)
#   build/fuzz/fuzz-json-streamer -max_total_time=120
FUZZ_TARGETS += $(BUILD)/fuzz/fuzz-json-streamer
$(BUILD)/fuzz/fuzz-json-streamer: $(call fuzz-objs,$(UTIL_OBJS))
.PHONY: fuzz-json fuzz-json-streamer
fuzz-json fuzz-json-streamer: $(BUILD)/fuzz/fuzz-json-streamer
