# block/: the block layer (include/block.h): drives from -drive (drive-opts.c),
# raw images and their I/O (block-backend.c), the worker thread pool for
# asynchronous requests (aio-pool.c), the error policy and BLOCK_IO_ERROR
# (block-error.c), dirty bitmaps (dirty-bitmap.c), query-block (qmp-block.c).
BLOCK_OBJS := $(BUILD)/block/block-backend.o $(BUILD)/block/drive-opts.o $(BUILD)/block/aio-pool.o \
              $(BUILD)/block/block-error.o $(BUILD)/block/dirty-bitmap.o $(BUILD)/block/qmp-block.o
# The block-dirty-bitmap-* QMP commands (QEMU 7.2's checks and texts).
MIGVM_OBJS += $(BLOCK_OBJS) $(BUILD)/block/qmp-cmds-dirty-bitmap.o

# drive-opts.c parses with system/opts.c's helpers.
$(BUILD)/block/%.o: CFLAGS_ALL += -Isystem

# Unit test: drives, sync and async I/O, O_DIRECT bouncing, drain, bitmaps,
# error policy. The main loop's work queue and qapi_event_emit are stubbed in the test.
UNIT_TESTS += $(BUILD)/tests/unit/test-block
$(BUILD)/tests/unit/test-block: $(BLOCK_OBJS) $(BUILD)/system/opts.o $(BUILD)/system/bql.o \
                                $(UTIL_OBJS) $(QAPI_OBJS)
