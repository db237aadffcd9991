# util/: small helpers shared by every subsystem (errors, whole-buffer fd I/O,
# JSON I/O, ...). UTIL_OBJS is what every test links besides its own objects.
UTIL_OBJS := $(BUILD)/util/error.o $(BUILD)/util/fd-io.o
MIGVM_OBJS += $(UTIL_OBJS)
include util/json.mk
