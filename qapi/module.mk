# qapi/: the schema (qapi/*.json), the generator build/qapi-gen (qapi/gen/),
# the generated code in $(BUILD)/qapi/ and the runtime the generated code calls.

QAPI_GEN := $(BUILD)/qapi-gen
QAPI_GEN_SRCS := $(wildcard qapi/gen/*.c)
QAPI_GEN_OBJS := $(patsubst qapi/gen/%.c,$(BUILD)/qapi-gen-objs/%.o,$(QAPI_GEN_SRCS))
# A host tool: no sanitizers, same warnings.
QAPI_GEN_CFLAGS := -std=c11 -D_GNU_SOURCE -g -O2 $(WARN) -MMD -MP $(DEP_CFLAGS)

$(BUILD)/qapi-gen-objs/%.o: qapi/gen/%.c
	@mkdir -p $(dir $@)
	$(call say,HOSTCC,$<)
	$(Q)$(CC) $(QAPI_GEN_CFLAGS) -c -o $@ $<

$(QAPI_GEN): $(QAPI_GEN_OBJS)
	$(call say,LINK,$@)
	$(Q)$(CC) -o $@ $^ $(DEP_LIBS)

QAPI_SCHEMA := qapi/qapi-schema.json
QAPI_SCHEMA_FILES := $(wildcard qapi/*.json)
QAPI_GEN_NAMES := qapi-types qapi-json qapi-commands qapi-events qapi-introspect
QAPI_GEN_HEADERS := $(BUILD)/qapi/qapi-builtin.h $(patsubst %,$(BUILD)/qapi/%.h,$(QAPI_GEN_NAMES))
QAPI_GEN_SOURCES := $(patsubst %,$(BUILD)/qapi/%.c,$(QAPI_GEN_NAMES))

# One run writes every file (files whose content did not change keep their timestamp,
# so the stamp is what make tracks).
$(BUILD)/qapi/.stamp: $(QAPI_GEN) $(QAPI_SCHEMA_FILES)
	@mkdir -p $(dir $@)
	$(call say,QAPI-GEN,$(QAPI_SCHEMA))
	$(Q)$(QAPI_GEN) -o $(BUILD)/qapi $(QAPI_SCHEMA)
	@touch $@

$(QAPI_GEN_HEADERS) $(QAPI_GEN_SOURCES): $(BUILD)/qapi/.stamp
	@test -f $@ || { rm -f $<; $(MAKE) --no-print-directory $<; }

GENERATED_HEADERS += $(QAPI_GEN_HEADERS)
MIGVM_OBJS += $(patsubst %,$(BUILD)/qapi/%.o,$(QAPI_GEN_NAMES)) $(BUILD)/qapi/qapi-runtime.o

# Generated code includes the hand-written qapi/qapi-runtime.h.
$(BUILD)/qapi/%.o: CFLAGS_ALL += -Iqapi

include qapi/tests.mk

# Everything a binary needs to use the generated types, converters and events.
QAPI_OBJS := $(patsubst %,$(BUILD)/qapi/%.o,qapi-types qapi-json qapi-events) $(BUILD)/qapi/qapi-runtime.o
