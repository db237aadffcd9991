/*
 * TLS credentials (tls-creds-x509 objects) and authorization objects
 * (authz-simple, authz-list) as the TLS sessions of migration use them
 * (crypto/tls-creds-x509.c, crypto/authz.c).
 */
#ifndef MIGVM_TLS_CREDS_H
#define MIGVM_TLS_CREDS_H

#include <stdbool.h>
#include <gnutls/gnutls.h>
#include "error.h"
#include "user-object.h"

typedef struct TlsCreds TlsCreds;

/* The tls-creds-x509 object named id, with a reference held in *ref
 * (user_object_unref it when the session ends). QEMU 7.2's errors: "No TLS
 * credentials with id 'X'" (none, or not credentials). */
TlsCreds *tls_creds_lookup(const char *id, UserObject **ref, Error **errp);
bool tls_creds_is_server(const TlsCreds *c);
bool tls_creds_verify_peer(const TlsCreds *c);
const char *tls_creds_priority(const TlsCreds *c);
gnutls_certificate_credentials_t tls_creds_gnutls(const TlsCreds *c);

/* What a gnutls_certificate_verify_peers2 / list_verify status means, as
 * QEMU 7.2 words it ("The certificate hasn't got a known issuer", ...). */
const char *tls_cert_status_reason(unsigned status);

/* Ask the authz object named authz_id whether identity may connect.
 * False + errp when denied, or when there is no such object. */
bool tls_authz_is_allowed(const char *authz_id, const char *identity, Error **errp);

#endif
