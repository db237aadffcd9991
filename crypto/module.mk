# crypto/: user-creatable objects (user-object.c: the registry, -object /
# object-add / object-del), TLS x509 credentials (tls-creds-x509.c, GnuTLS)
# and the authorization objects that check a TLS client's name (authz.c).
CRYPTO_OBJS := $(BUILD)/crypto/user-object.o $(BUILD)/crypto/tls-creds-x509.o $(BUILD)/crypto/authz.o
MIGVM_OBJS += $(CRYPTO_OBJS)
$(CRYPTO_OBJS) $(BUILD)/migration/tls.o $(BUILD)/migration/tls-relay.o: CFLAGS_ALL += $(GNUTLS_CFLAGS)

# Unit test: the registry, -object text, authz decisions, tls-creds-x509's file errors.
UNIT_TESTS += $(BUILD)/tests/unit/test-user-object
$(BUILD)/tests/unit/test-user-object.o: CFLAGS_ALL += $(GNUTLS_CFLAGS)
$(BUILD)/tests/unit/test-user-object: $(CRYPTO_OBJS) $(BUILD)/system/opts.o $(BUILD)/qapi/qapi-types.o \
                                      $(BUILD)/qapi/qapi-json.o $(BUILD)/qapi/qapi-runtime.o $(UTIL_OBJS) -lgnutls
