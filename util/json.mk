# JSON streamer and writer
MIGVM_OBJS += $(BUILD)/util/json-lexer.o $(BUILD)/util/json-streamer.o $(BUILD)/util/json-writer.o

JSON_STREAMER_OBJS := $(BUILD)/util/json-lexer.o $(BUILD)/util/json-streamer.o $(UTIL_OBJS)
JSON_WRITER_OBJS := $(BUILD)/util/json-lexer.o $(BUILD)/util/json-writer.o

UNIT_TESTS += $(BUILD)/tests/unit/test-json-streamer $(BUILD)/tests/unit/test-json-writer

$(BUILD)/tests/unit/test-json-streamer: $(BUILD)/tests/unit/test-json-streamer.o $(JSON_STREAMER_OBJS) \
                                        $(BUILD)/util/json-writer.o
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)

$(BUILD)/tests/unit/test-json-writer: $(BUILD)/tests/unit/test-json-writer.o $(JSON_WRITER_OBJS) \
                                      $(BUILD)/util/json-streamer.o $(UTIL_OBJS)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS)

# libFuzzer target for the streamer (not part of check): make fuzz-json
FUZZ_CC ?= clang
FUZZ_JSON_SRCS := tests/fuzz/fuzz-json-streamer.c util/json-lexer.c util/json-streamer.c \
                  util/json-writer.c util/error.c
.PHONY: fuzz-json
fuzz-json: $(BUILD)/fuzz/fuzz-json-streamer

$(BUILD)/fuzz/fuzz-json-streamer: $(FUZZ_JSON_SRCS) $(wildcard include/*.h util/json-lexer.h)
	@mkdir -p $(dir $@)
	$(call say,FUZZ,$@)
	$(Q)$(FUZZ_CC) -std=c11 -D_GNU_SOURCE -g -O1 -Iinclude $(DEP_CFLAGS) \
		-fsanitize=fuzzer,address,undefined -o $@ $(FUZZ_JSON_SRCS) $(DEP_LIBS)
