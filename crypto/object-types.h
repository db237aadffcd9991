/*
 * What each object type provides to the registry (crypto/user-object.c):
 * create from its options (checks and loads everything, QEMU 7.2's errors)
 * and free.
 */
#ifndef CRYPTO_OBJECT_TYPES_H
#define CRYPTO_OBJECT_TYPES_H

#include "user-object.h"

void *tls_creds_x509_create(const char *id, const TlsCredsX509Properties *p, Error **errp);
void tls_creds_x509_free(void *data);
void *authz_simple_create(const char *id, const AuthZSimpleProperties *p, Error **errp);
void *authz_list_create(const char *id, const AuthZListProperties *p, Error **errp);
void authz_free(void *data);

#endif
