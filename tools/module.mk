# tools/: build/migvm-stream, the offline checker of a saved or piped migration
# stream (verify, dump). It reads with migration/stream.c, the same byte stream
# code the loader uses, and needs no VM: no accelerator, board or registry.
MIGVM_STREAM_OBJS := $(BUILD)/tools/migvm-stream.o $(BUILD)/tools/stream-walk.o \
                     $(BUILD)/tools/stream-body.o $(BUILD)/tools/stream-ram.o \
                     $(BUILD)/tools/stream-block.o $(BUILD)/tools/stream-vmdesc.o \
                     $(BUILD)/tools/stream-report.o
EXTRA_ALL += $(BUILD)/migvm-stream
$(MIGVM_STREAM_OBJS): CFLAGS_ALL += -Imigration
$(BUILD)/migvm-stream: $(MIGVM_STREAM_OBJS) $(BUILD)/migration/stream.o \
                       $(BUILD)/qapi/qapi-types.o $(BUILD)/qapi/qapi-runtime.o $(UTIL_OBJS)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(DEP_LIBS) -lm
