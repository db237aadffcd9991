/*
 * tls-creds-x509: certificates and keys from fixed file names in `dir`,
 * loaded and checked when the object is created, as QEMU 7.2 does:
 *   ca-cert.pem (required), ca-crl.pem (optional),
 *   server: server-cert.pem, server-key.pem (required), dh-params.pem (optional)
 *   client: client-cert.pem, client-key.pem (optional; a server that verifies
 *           its peers needs them)
 * sanity-check (default on) checks our own certificate's dates, that the CA
 * is a CA and ours is not, and our certificate against the CA.
 */
#include "object-types.h"
#include "tls-creds.h"

#include <errno.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <glib.h>
#include <gnutls/x509.h>

struct TlsCreds {
    bool server;
    bool verify_peer;
    char *priority;
    gnutls_certificate_credentials_t cred;
    gnutls_dh_params_t dh;
};

bool tls_creds_is_server(const TlsCreds *c)
{
    return c->server;
}

bool tls_creds_verify_peer(const TlsCreds *c)
{
    return c->verify_peer;
}

const char *tls_creds_priority(const TlsCreds *c)
{
    return c->priority ? c->priority : "NORMAL";
}

gnutls_certificate_credentials_t tls_creds_gnutls(const TlsCreds *c)
{
    return c->cred;
}

TlsCreds *tls_creds_lookup(const char *id, UserObject **ref, Error **errp)
{
    UserObject *obj = user_object_get(id);
    if (!obj || user_object_type(obj) != OBJECT_TYPE_TLS_CREDS_X509) {
        user_object_unref(obj);
        error_setg(errp, "No TLS credentials with id '%s'", id);
        return NULL;
    }
    *ref = obj;
    return user_object_data(obj);
}

/* dir/name if it exists; NULL if it does not, an error only when required. */
static bool creds_path(const char *dir, const char *name, bool required, char **out, Error **errp)
{
    char *path = g_build_filename(dir, name, NULL);
    if (access(path, R_OK) < 0) {
        if (required || errno != ENOENT) {
            error_setg_errno(errp, errno, "Unable to access credentials %s", path);
            g_free(path);
            return false;
        }
        g_free(path);
        path = NULL;
    }
    *out = path;
    return true;
}

/* ---- sanity check ------------------------------------------------------ */

static bool load_certs(const char *file, gnutls_x509_crt_t **certs, unsigned *n, Error **errp)
{
    gnutls_datum_t data;
    int ret = gnutls_load_file(file, &data);
    if (ret < 0) {
        error_setg(errp, "Cannot load certificate %s: %s", file, gnutls_strerror(ret));
        return false;
    }
    ret = gnutls_x509_crt_list_import2(certs, n, &data, GNUTLS_X509_FMT_PEM, 0);
    gnutls_free(data.data);
    if (ret < 0 || *n == 0) {
        error_setg(errp, "Unable to import certificate %s: %s", file,
                   ret < 0 ? gnutls_strerror(ret) : "no certificate in the file");
        return false;
    }
    return true;
}

static void free_certs(gnutls_x509_crt_t *certs, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        gnutls_x509_crt_deinit(certs[i]);
    }
    gnutls_free(certs);
}

static bool check_times(gnutls_x509_crt_t cert, const char *file, const char *what, Error **errp)
{
    time_t now = time(NULL);
    if (gnutls_x509_crt_get_expiration_time(cert) < now) {
        error_setg(errp, "The %s certificate %s has expired", what, file);
        return false;
    }
    if (gnutls_x509_crt_get_activation_time(cert) > now) {
        error_setg(errp, "The %s certificate %s is not yet active", what, file);
        return false;
    }
    return true;
}

static bool check_is_ca(gnutls_x509_crt_t cert, const char *file, bool want_ca, const char *what,
                        Error **errp)
{
    unsigned critical;
    int ca = gnutls_x509_crt_get_basic_constraints(cert, &critical, NULL, NULL);
    if (want_ca && ca <= 0) {
        error_setg(errp, "The certificate %s basic constraints do not show a CA", file);
        return false;
    }
    if (!want_ca && ca > 0) {
        error_setg(errp, "The certificate %s basic constraints show a CA, but we need one for a %s",
                   file, what);
        return false;
    }
    return true;
}

static bool sanity_check(bool server, const char *cacert, const char *cert, Error **errp)
{
    gnutls_x509_crt_t *cas = NULL, *own = NULL;
    unsigned ncas = 0, nown = 0;
    const char *what = server ? "server" : "client";
    bool ok = load_certs(cacert, &cas, &ncas, errp) && load_certs(cert, &own, &nown, errp) &&
              check_times(cas[0], cacert, "CA", errp) && check_is_ca(cas[0], cacert, true, "CA", errp) &&
              check_times(own[0], cert, what, errp) && check_is_ca(own[0], cert, false, what, errp);
    if (ok) {
        unsigned status = 0;
        int ret = gnutls_x509_crt_list_verify(own, 1, cas, ncas, NULL, 0, 0, &status);
        if (ret < 0 || status) {
            error_setg(errp, "Our own certificate %s failed validation against %s: %s", cert, cacert,
                       ret < 0 ? gnutls_strerror(ret) : tls_cert_status_reason(status));
            ok = false;
        }
    }
    free_certs(cas, ncas);
    free_certs(own, nown);
    return ok;
}

/* QEMU 7.2's reasons, except that a date problem is named first (GnuTLS sets
 * INVALID with it, which QEMU reports as "not trusted"). */
const char *tls_cert_status_reason(unsigned status)
{
    if (status & GNUTLS_CERT_EXPIRED) {
        return "The certificate has expired";
    }
    if (status & GNUTLS_CERT_NOT_ACTIVATED) {
        return "The certificate is not yet activated";
    }
    if (status & GNUTLS_CERT_INSECURE_ALGORITHM) {
        return "The certificate uses an insecure algorithm";
    }
    if (status & GNUTLS_CERT_REVOKED) {
        return "The certificate has been revoked";
    }
    if (status & GNUTLS_CERT_SIGNER_NOT_FOUND) {
        return "The certificate hasn't got a known issuer";
    }
    if (status & GNUTLS_CERT_INVALID) {
        return "The certificate is not trusted";
    }
    return "Invalid certificate";
}

/* ---- loading ------------------------------------------------------------- */

static bool load_dh(TlsCreds *c, const char *file, Error **errp)
{
    gnutls_datum_t data;
    int ret = gnutls_load_file(file, &data);
    if (ret >= 0) {
        gnutls_dh_params_init(&c->dh);
        ret = gnutls_dh_params_import_pkcs3(c->dh, &data, GNUTLS_X509_FMT_PEM);
        gnutls_free(data.data);
    }
    if (ret < 0) {
        error_setg(errp, "Unable to load DH parameters from %s: %s", file, gnutls_strerror(ret));
        return false;
    }
    gnutls_certificate_set_dh_params(c->cred, c->dh);
    return true;
}

static bool creds_load(TlsCreds *c, const char *dir, bool sanity, Error **errp)
{
    g_autofree char *cacert = NULL, *cacrl = NULL, *cert = NULL, *key = NULL, *dh = NULL;
    const char *cert_name = c->server ? "server-cert.pem" : "client-cert.pem";
    const char *key_name = c->server ? "server-key.pem" : "client-key.pem";
    if (!creds_path(dir, "ca-cert.pem", true, &cacert, errp) ||
        !creds_path(dir, "ca-crl.pem", false, &cacrl, errp) ||
        !creds_path(dir, cert_name, c->server, &cert, errp) ||
        !creds_path(dir, key_name, c->server, &key, errp) ||
        (c->server && !creds_path(dir, "dh-params.pem", false, &dh, errp))) {
        return false;
    }
    if (sanity && cert && !sanity_check(c->server, cacert, cert, errp)) {
        return false;
    }
    int ret = gnutls_certificate_allocate_credentials(&c->cred);
    if (ret < 0) {
        error_setg(errp, "Cannot allocate credentials: %s", gnutls_strerror(ret));
        return false;
    }
    ret = gnutls_certificate_set_x509_trust_file(c->cred, cacert, GNUTLS_X509_FMT_PEM);
    if (ret < 0) {
        error_setg(errp, "Cannot load CA certificate %s: %s", cacert, gnutls_strerror(ret));
        return false;
    }
    if (cacrl && (ret = gnutls_certificate_set_x509_crl_file(c->cred, cacrl, GNUTLS_X509_FMT_PEM)) < 0) {
        error_setg(errp, "Cannot load CRL %s: %s", cacrl, gnutls_strerror(ret));
        return false;
    }
    if (cert && key &&
        (ret = gnutls_certificate_set_x509_key_file(c->cred, cert, key, GNUTLS_X509_FMT_PEM)) < 0) {
        error_setg(errp, "Cannot load certificate '%s' & key '%s': %s", cert, key, gnutls_strerror(ret));
        return false;
    }
    return !dh || load_dh(c, dh, errp);
}

void tls_creds_x509_free(void *data)
{
    TlsCreds *c = data;
    if (c->cred) {
        gnutls_certificate_free_credentials(c->cred);
    }
    if (c->dh) {
        gnutls_dh_params_deinit(c->dh);
    }
    g_free(c->priority);
    g_free(c);
}

void *tls_creds_x509_create(const char *id, const TlsCredsX509Properties *p, Error **errp)
{
    if (!p->dir) {
        error_setg(errp, "Missing 'dir' property value");
        return NULL;
    }
    if (p->passwordid) {
        error_setg(errp, "Parameter 'passwordid' is not supported by migvm (encrypted keys)");
        return NULL;
    }
    TlsCreds *c = g_new0(TlsCreds, 1);
    c->server = p->has_endpoint && p->endpoint == QCRYPTO_TLS_CREDS_ENDPOINT_SERVER;
    c->verify_peer = !p->has_verify_peer || p->verify_peer;
    c->priority = g_strdup(p->priority);
    if (!creds_load(c, p->dir, !p->has_sanity_check || p->sanity_check, errp)) {
        tls_creds_x509_free(c);
        return NULL;
    }
    return c;
}
