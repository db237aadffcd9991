# migration/: the stream (stream.c), VMState (vmstate.c), the save-state
# registry and writer (savevm.c), the loader (loadvm.c), the return path
# (return-path.c), the configuration section (config-section.c), the
# globalstate section, and on top of them the state machine (migration.c,
# incoming.c), transports (channel.c; channel-fd.c takes fd:NAME from the
# monitor), RAM (ram.c) and capabilities and
# parameters (options.c).
MIGRATION_CORE_OBJS := $(BUILD)/migration/stream.o $(BUILD)/migration/vmstate.o \
                       $(BUILD)/migration/savevm.o $(BUILD)/migration/loadvm.o \
                       $(BUILD)/migration/return-path.o $(BUILD)/migration/config-section.o \
                       $(BUILD)/migration/test-omit.o
MIGRATION_OBJS := $(MIGRATION_CORE_OBJS) $(BUILD)/migration/global-state.o \
                  $(BUILD)/migration/channel.o $(BUILD)/migration/channel-fd.o \
                  $(BUILD)/migration/options.o \
                  $(BUILD)/migration/ram.o $(BUILD)/migration/recv-bitmap.o $(BUILD)/migration/recovery.o $(BUILD)/migration/postcopy-ram.o $(BUILD)/migration/postcopy-queue.o $(BUILD)/migration/rp-reader.o \
                  $(BUILD)/migration/auto-converge.o $(BUILD)/migration/converge.o $(BUILD)/migration/block.o $(BUILD)/migration/block-load.o \
                  $(BUILD)/migration/block-dirty-bitmap.o \
                  $(BUILD)/migration/migration.o \
                  $(BUILD)/migration/incoming.o $(BUILD)/migration/history.o $(BUILD)/migration/preflight.o \
                  $(BUILD)/migration/dirtyrate.o $(BUILD)/migration/page-sample.o \
                  $(BUILD)/migration/tls.o $(BUILD)/migration/tls-relay.o $(BUILD)/migration/tls-multifd.o
# multifd; MULTIFD_OBJS need no transport (multifd-connect.o does), so RAM's tests and fuzz targets link them.
MULTIFD_OBJS := $(BUILD)/migration/multifd-packet.o $(BUILD)/migration/multifd-compress.o \
                $(BUILD)/migration/multifd-conn.o $(BUILD)/migration/multifd-splice.o \
                $(BUILD)/migration/multifd-send.o \
                $(BUILD)/migration/multifd-recv.o
MIGRATION_OBJS += $(MULTIFD_OBJS) $(BUILD)/migration/multifd-connect.o
MIGVM_OBJS += $(MIGRATION_OBJS)

UNIT_TESTS += $(BUILD)/tests/unit/test-vmstate $(BUILD)/tests/unit/test-savevm
$(BUILD)/tests/unit/test-vmstate.o $(BUILD)/tests/unit/test-savevm.o: CFLAGS_ALL += -Imigration
$(BUILD)/tests/unit/test-savevm.o: CFLAGS_ALL += -Ihw
$(BUILD)/tests/unit/test-vmstate: $(BUILD)/migration/stream.o $(BUILD)/migration/vmstate.o $(UTIL_OBJS)
# test-savevm stubs runstate_get(); RunState_str/parse come from the generated qapi-types.o;
# the "timer" section is the real one.
$(BUILD)/tests/unit/test-savevm: $(MIGRATION_CORE_OBJS) $(BUILD)/migration/global-state.o \
                                 $(BUILD)/hw/timer-state.o \
                                 $(BUILD)/qapi/qapi-types.o $(BUILD)/qapi/qapi-runtime.o \
                                 $(UTIL_OBJS)
# URI parsing (channel.c) and migrate-set-parameters' checks (options.c);
# test-migration-params stubs migration.c's two hooks.
UNIT_TESTS += $(BUILD)/tests/unit/test-channel-address $(BUILD)/tests/unit/test-migration-params
$(BUILD)/tests/unit/test-channel-address.o $(BUILD)/tests/unit/test-migration-params.o: CFLAGS_ALL += -Imigration
$(BUILD)/tests/unit/test-channel-address: $(BUILD)/migration/channel.o $(UTIL_OBJS)
$(BUILD)/tests/unit/test-migration-params: $(BUILD)/migration/options.o $(BUILD)/qapi/qapi-types.o \
                                           $(BUILD)/qapi/qapi-json.o $(BUILD)/qapi/qapi-runtime.o $(UTIL_OBJS)

# The "ram" section on memory streams: round trip with dirty pages, hostile records.
UNIT_TESTS += $(BUILD)/tests/unit/test-ram
$(BUILD)/tests/unit/test-ram.o $(BUILD)/tests/unit/postcopy-stubs.o: CFLAGS_ALL += -Imigration
$(BUILD)/tests/unit/test-ram: $(BUILD)/migration/ram.o $(BUILD)/migration/recv-bitmap.o $(BUILD)/tests/unit/postcopy-stubs.o $(MIGRATION_CORE_OBJS) $(MULTIFD_OBJS) \
                              $(BUILD)/system/memory.o $(BUILD)/system/ram-prefault.o $(BUILD)/system/ram-prealloc.o $(BUILD)/system/ram-untouched.o $(BUILD)/system/accel.o $(UTIL_OBJS)

# The destination's postcopy RAM on a real userfaultfd: faults, requests, placement, pause/resume.
UNIT_TESTS += $(BUILD)/tests/unit/test-postcopy-ram
$(BUILD)/tests/unit/test-postcopy-ram.o: CFLAGS_ALL += -Imigration
$(BUILD)/tests/unit/test-postcopy-ram: $(BUILD)/migration/postcopy-ram.o $(BUILD)/migration/recv-bitmap.o \
                                       $(BUILD)/migration/return-path.o $(BUILD)/migration/stream.o \
                                       $(BUILD)/system/memory.o $(BUILD)/system/ram-prefault.o $(BUILD)/system/ram-prealloc.o $(BUILD)/system/ram-untouched.o $(BUILD)/system/accel.o $(UTIL_OBJS)

# auto-converge's throttle steps; options and the throttle are stubbed in the test.
UNIT_TESTS += $(BUILD)/tests/unit/test-auto-converge
$(BUILD)/tests/unit/test-auto-converge.o: CFLAGS_ALL += -Imigration
$(BUILD)/tests/unit/test-auto-converge: $(BUILD)/migration/auto-converge.o $(BUILD)/qapi/qapi-types.o \
                                        $(BUILD)/qapi/qapi-runtime.o $(UTIL_OBJS)

# incoming.c's state machine with file: streams; the machine and main loop are stubs.
UNIT_TESTS += $(BUILD)/tests/unit/test-incoming
$(BUILD)/tests/unit/test-incoming.o: CFLAGS_ALL += -Imigration
$(BUILD)/tests/unit/test-incoming: $(BUILD)/migration/incoming.o $(BUILD)/migration/history.o $(BUILD)/migration/channel.o $(MULTIFD_OBJS) $(BUILD)/system/ram-untouched.o \
                                   $(BUILD)/migration/channel-fd.o $(BUILD)/system/bql.o \
                                   $(MIGRATION_CORE_OBJS) $(BUILD)/migration/global-state.o \
                                   $(BUILD)/qapi/qapi-types.o $(BUILD)/qapi/qapi-runtime.o $(UTIL_OBJS)

# libFuzzer target for the incoming stream: make fuzz-loadvm
#   build/fuzz/fuzz-loadvm -max_total_time=120 build/fuzz/loadvm-corpus
# The real RAM loader runs over two small blocks (system/memory.c).
FUZZ_TARGETS += $(BUILD)/fuzz/fuzz-loadvm
$(BUILD)/fuzz/tests/fuzz/fuzz-loadvm.o: CFLAGS_ALL += -Imigration
$(BUILD)/fuzz/tests/unit/postcopy-stubs.o: CFLAGS_ALL += -Imigration
$(BUILD)/fuzz/fuzz-loadvm: $(call fuzz-objs,$(MIGRATION_CORE_OBJS) $(BUILD)/migration/ram.o $(BUILD)/migration/recv-bitmap.o $(BUILD)/tests/unit/postcopy-stubs.o $(MULTIFD_OBJS) \
                                             $(BUILD)/system/memory.o $(BUILD)/system/ram-prefault.o $(BUILD)/system/ram-prealloc.o $(BUILD)/system/ram-untouched.o $(BUILD)/system/accel.o $(UTIL_OBJS))
.PHONY: fuzz-loadvm
fuzz-loadvm: $(BUILD)/fuzz/fuzz-loadvm

# The "block" section on memory streams over an in-memory block layer (the
# test's own stub of include/block.h): records, round trips, hostile input.
UNIT_TESTS += $(BUILD)/tests/unit/test-block-migration
$(BUILD)/tests/unit/test-block-migration.o: CFLAGS_ALL += -Imigration
$(BUILD)/tests/unit/test-block-migration: $(BUILD)/migration/block.o $(BUILD)/migration/block-load.o \
                                          $(MIGRATION_CORE_OBJS) $(UTIL_OBJS)

# The "dirty-bitmap" section over a fake block layer in the test's source:
# QEMU 7.2's bytes, round trips, hostile records.
UNIT_TESTS += $(BUILD)/tests/unit/test-dirty-bitmap-mig
$(BUILD)/tests/unit/test-dirty-bitmap-mig.o: CFLAGS_ALL += -Imigration
$(BUILD)/tests/unit/test-dirty-bitmap-mig: $(BUILD)/migration/block-dirty-bitmap.o $(MIGRATION_CORE_OBJS) \
                                           $(BUILD)/system/bql.o $(UTIL_OBJS)

# The flight recorder's bookkeeping: passes, phases, bounds.
UNIT_TESTS += $(BUILD)/tests/unit/test-migration-history
$(BUILD)/tests/unit/test-migration-history.o: CFLAGS_ALL += -Imigration
$(BUILD)/tests/unit/test-migration-history: $(BUILD)/migration/history.o $(BUILD)/qapi/qapi-types.o \
                                            $(BUILD)/qapi/qapi-runtime.o $(UTIL_OBJS)

# Page sampling for dirty rate estimates, on real RAM blocks.
UNIT_TESTS += $(BUILD)/tests/unit/test-page-sample
$(BUILD)/tests/unit/test-page-sample.o: CFLAGS_ALL += -Imigration
$(BUILD)/tests/unit/test-page-sample: $(BUILD)/migration/page-sample.o $(BUILD)/system/memory.o $(BUILD)/system/ram-prefault.o $(BUILD)/system/ram-prealloc.o $(BUILD)/system/ram-untouched.o \
                                      $(BUILD)/system/accel.o $(UTIL_OBJS)

# The convergence controller's decisions; options, throttle, events and the flight recorder are stubbed in the test.
UNIT_TESTS += $(BUILD)/tests/unit/test-converge
$(BUILD)/tests/unit/test-converge.o: CFLAGS_ALL += -Imigration
$(BUILD)/tests/unit/test-converge: $(BUILD)/migration/converge.o $(BUILD)/qapi/qapi-types.o \
                                   $(BUILD)/qapi/qapi-runtime.o $(UTIL_OBJS)

# Multifd's wire format and codecs: QEMU 7.2's bytes, every header check, zlib/zstd across packets.
UNIT_TESTS += $(BUILD)/tests/unit/test-multifd
$(BUILD)/tests/unit/test-multifd.o: CFLAGS_ALL += -Imigration
$(BUILD)/tests/unit/test-multifd: $(MULTIFD_OBJS) $(MIGRATION_CORE_OBJS) $(BUILD)/system/memory.o \
                                  $(BUILD)/system/ram-prefault.o $(BUILD)/system/ram-prealloc.o $(BUILD)/system/ram-untouched.o $(BUILD)/system/accel.o $(UTIL_OBJS)

# The TLS relay on a real GnuTLS session (anonymous credentials; tls.c stubbed in the test).
UNIT_TESTS += $(BUILD)/tests/unit/test-tls-relay
$(BUILD)/tests/unit/test-tls-relay.o: CFLAGS_ALL += -Imigration
$(BUILD)/tests/unit/test-tls-relay: DEP_LIBS += $(GNUTLS_LIBS)
$(BUILD)/tests/unit/test-tls-relay: $(BUILD)/migration/tls-relay.o $(UTIL_OBJS)

# The recovery handshake (recovery.c) and the received / sent maps
# (recv-bitmap.c) on memory streams and real RAM blocks: QEMU 7.2's bytes.
UNIT_TESTS += $(BUILD)/tests/unit/test-recovery
$(BUILD)/tests/unit/test-recovery.o: CFLAGS_ALL += -Imigration
$(BUILD)/tests/unit/test-recovery: $(BUILD)/migration/recovery.o $(BUILD)/migration/recv-bitmap.o \
                                   $(MIGRATION_CORE_OBJS) $(BUILD)/system/memory.o $(BUILD)/system/ram-prefault.o $(BUILD)/system/ram-prealloc.o $(BUILD)/system/ram-untouched.o $(BUILD)/system/accel.o \
                                   $(UTIL_OBJS)
