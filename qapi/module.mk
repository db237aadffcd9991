# qapi/: the schema (qapi/*.json), the generator build/qapi-gen (qapi/gen/),
# the generated code in $(BUILD)/qapi/, the runtime the generated code calls
# (qapi-runtime.c) and the QMP command dispatcher (dispatch.c).

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
# Everything a binary needs to use the generated types, converters and events.
QAPI_OBJS := $(patsubst %,$(BUILD)/qapi/%.o,qapi-types qapi-json qapi-events) $(BUILD)/qapi/qapi-runtime.o
# The generated code with the runtime (QMP servers also need the command marshallers and introspection).
QAPI_ALL_OBJS := $(patsubst %,$(BUILD)/qapi/%.o,$(QAPI_GEN_NAMES)) $(BUILD)/qapi/qapi-runtime.o
QAPI_DISPATCH_OBJ := $(BUILD)/qapi/dispatch.o
MIGVM_OBJS += $(QAPI_ALL_OBJS) $(QAPI_DISPATCH_OBJ)

# Generated code includes the hand-written qapi/qapi-runtime.h.
$(BUILD)/qapi/%.o: CFLAGS_ALL += -Iqapi

# Tests of the generator and the generated code.
#  - tests/qapi-schema/run.sh: bad schemas -> exact diagnostics (functional test).
#  - test-qapi-json: code generated from tests/qapi-schema/qapi-test.json into
#    $(BUILD)/tests/qapi-test/ (its own symbols, never linked with the real
#    schema's code except qapi-introspect.o), plus qapi-runtime and util/error.
FUNC_TESTS += tests/qapi-schema/run.sh

QAPI_TEST_DIR := $(BUILD)/tests/qapi-test
QAPI_TEST_SCHEMA := tests/qapi-schema/qapi-test.json
QAPI_TEST_NAMES := qapi-types qapi-json qapi-commands qapi-events
QAPI_TEST_OBJS := $(patsubst %,$(QAPI_TEST_DIR)/%.o,$(QAPI_TEST_NAMES))

$(QAPI_TEST_DIR)/.stamp: $(QAPI_GEN) $(QAPI_TEST_SCHEMA) tests/qapi-schema/qapi-test-common.json \
                         tests/qapi-schema/include/sub-module.json
	@mkdir -p $(dir $@)
	$(call say,QAPI-GEN,$(QAPI_TEST_SCHEMA))
	$(Q)$(QAPI_GEN) -o $(QAPI_TEST_DIR) $(QAPI_TEST_SCHEMA)
	@touch $@

$(patsubst %,$(QAPI_TEST_DIR)/%.c,$(QAPI_TEST_NAMES) qapi-introspect): $(QAPI_TEST_DIR)/.stamp
$(QAPI_TEST_OBJS): $(QAPI_TEST_DIR)/.stamp
$(QAPI_TEST_DIR)/%.o: CFLAGS_ALL += -Iqapi

# The test includes the test schema's headers (and its qapi-introspect.c, renamed):
# its directory goes before $(BUILD)/qapi in the include path.
$(BUILD)/tests/unit/test-qapi-json.o: tests/unit/test-qapi-json.c $(QAPI_TEST_DIR)/.stamp | $(GENERATED_HEADERS)
	@mkdir -p $(dir $@)
	$(call say,CC,$<)
	$(Q)$(CC) -I$(QAPI_TEST_DIR) -Iqapi $(CFLAGS_ALL) -c -o $@ $<

UNIT_TESTS += $(BUILD)/tests/unit/test-qapi-json
$(BUILD)/tests/unit/test-qapi-json: $(QAPI_TEST_OBJS) $(BUILD)/qapi/qapi-runtime.o $(BUILD)/qapi/qapi-introspect.o \
                                    $(UTIL_OBJS)
