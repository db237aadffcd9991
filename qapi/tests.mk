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
	$(Q)$(CC) -I$(QAPI_TEST_DIR) -Iqapi $(CFLAGS_ALL) $(CHECK_CFLAGS) -c -o $@ $<

$(BUILD)/tests/unit/test-qapi-json: $(BUILD)/tests/unit/test-qapi-json.o $(QAPI_TEST_OBJS) \
                                    $(BUILD)/qapi/qapi-runtime.o $(BUILD)/qapi/qapi-introspect.o \
                                    $(UTIL_OBJS)
	$(call say,LINK,$@)
	$(Q)$(CC) $(LDFLAGS_ALL) -o $@ $^ $(CHECK_LIBS) $(DEP_LIBS) -lm

UNIT_TESTS += $(BUILD)/tests/unit/test-qapi-json
