# util/: small helpers shared by every subsystem (errors, JSON I/O, ...).
MIGVM_OBJS += $(BUILD)/util/error.o
include util/json.mk
