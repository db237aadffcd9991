# migration/: the state machine, transports, RAM and options (on top of the
# stream/savevm layer in module.mk).
MIGVM_OBJS += $(BUILD)/migration/channel.o $(BUILD)/migration/options.o \
              $(BUILD)/migration/ram.o $(BUILD)/migration/migration.o \
              $(BUILD)/migration/incoming.o

# pmemsave/memsave (system/, but only meaningful with guest memory and tests of migration).
MIGVM_OBJS += $(BUILD)/system/qmp-cmds-memory.o
MIGVM_OBJS += $(HMP_MIGRATION_OBJS)
