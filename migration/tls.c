/*
 * TLS for migration channels, QEMU 7.2's protocol (shared docs tls.md):
 *
 *   source (client)                         destination (server)
 *   connect, ClientHello  ───────────────►  accept, server handshake
 *   verify the server's chain and name      request a client certificate;
 *   (tls-hostname, else the tcp: host)      verify-peer: verify it, tls-authz
 *                                           checks its DN ("C=GB,O=...,CN=...")
 *   the migration stream  ═══ records ═══►  the incoming migration
 *   return path           ◄═══ records ═══  (same session, other direction)
 *
 * Nothing precedes the ClientHello, so a QEMU 7.2 peer works either way.
 * Priority: the creds' `priority`, else "NORMAL" (TLS 1.3 with GnuTLS 3.7).
 *
 * A side that refuses the other's certificate sends a fatal alert naming the
 * reason (unknown CA, expired, bad certificate, access denied) before it
 * closes, so the refused side can say why too. With TLS 1.3 the client's
 * handshake ends before the server has judged the client's certificate: the
 * source learns of a refusal when the relay reads the alert, and
 * mig_tls_channel_error() then gives the reason. A destination that refused
 * waits a moment for the source to close first, so its alert is not lost to
 * a reset.
 *
 * After the handshake the caller gets one end of a socketpair; a relay
 * thread per channel (tls-relay.c) moves bytes between it and the session.
 */
#include "tls-int.h"
#include "options.h"
#include "vm.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <glib.h>
#include <gnutls/x509.h>


/* ---- helpers ---------------------------------------------------------------- */

static const char *peer_role(const MigTls *t)
{
    return t->server ? "source" : "destination";
}

void mig_tls_set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

int64_t mig_tls_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wait for `events` on the connection until deadline (ms); false on timeout
 * or when cancel_fd fires (errp says which). */
static bool wait_net(MigTls *t, short events, int cancel_fd, int64_t deadline, Error **errp)
{
    struct pollfd pfd[2] = { { .fd = t->net, .events = events }, { .fd = cancel_fd, .events = POLLIN } };
    for (;;) {
        int64_t left = deadline - mig_tls_now_ms();
        if (left <= 0) {
            error_setg(errp, "TLS handshake failed: timed out after %d s", HANDSHAKE_TIMEOUT_MS / 1000);
            return false;
        }
        int n = poll(pfd, cancel_fd >= 0 ? 2 : 1, (int)left);
        if (n < 0 && errno != EINTR) {
            error_setg_errno(errp, errno, "TLS handshake failed: poll");
            return false;
        }
        if (n > 0 && (pfd[1].revents & POLLIN)) {
            error_setg(errp, "TLS handshake cancelled");
            return false;
        }
        if (n > 0) {
            return true;
        }
    }
}

/* What an alert from the peer means for the user. */
static const char *alert_hint(gnutls_alert_description_t a)
{
    switch (a) {
    case GNUTLS_A_UNKNOWN_CA:
        return "its CA does not know our certificate's issuer";
    case GNUTLS_A_CERTIFICATE_EXPIRED:
        return "our certificate has expired or is not yet valid";
    case GNUTLS_A_BAD_CERTIFICATE:
        return "our certificate does not match what it expects, e.g. the host name";
    case GNUTLS_A_ACCESS_DENIED:
        return "our certificate's name is not authorized (tls-authz)";
    case GNUTLS_A_CERTIFICATE_REQUIRED:
        return "it requires a client certificate";
    case GNUTLS_A_CERTIFICATE_REVOKED:
        return "our certificate has been revoked";
    default:
        return "see its log";
    }
}

/* errp for a GnuTLS error; a fatal alert from the peer says what it refused. */
void mig_tls_set_error(MigTls *t, int ret, const char *what, Error **errp)
{
    if (ret == GNUTLS_E_FATAL_ALERT_RECEIVED) {
        gnutls_alert_description_t a = gnutls_alert_get(t->session);
        const char *sni = "";
        g_autofree char *sni_text = NULL;
        if (t->server && a == GNUTLS_A_BAD_CERTIFICATE) {
            char name[256];
            size_t len = sizeof(name);
            unsigned type;
            if (gnutls_server_name_get(t->session, name, &len, &type, 0) == 0) {
                sni = sni_text = g_strdup_printf(" (it asked for host name '%s')", name);
            }
        }
        error_setg(errp, "%s: the %s refused the connection: %s: %s%s", what, peer_role(t),
                   gnutls_alert_get_name(a), alert_hint(a), sni);
    } else {
        error_setg(errp, "%s: %s", what, gnutls_strerror(ret));
    }
}

/* ---- certificate checks (QEMU 7.2's order and words) ---------------------- */

static gnutls_alert_description_t status_alert(unsigned status)
{
    if (status & (GNUTLS_CERT_EXPIRED | GNUTLS_CERT_NOT_ACTIVATED)) {
        return GNUTLS_A_CERTIFICATE_EXPIRED;
    }
    if (status & GNUTLS_CERT_REVOKED) {
        return GNUTLS_A_CERTIFICATE_REVOKED;
    }
    if (status & GNUTLS_CERT_SIGNER_NOT_FOUND) {
        return GNUTLS_A_UNKNOWN_CA;
    }
    return GNUTLS_A_BAD_CERTIFICATE;
}

static bool check_first_cert(MigTls *t, gnutls_x509_crt_t cert, int *alert, Error **errp)
{
    if (t->server) {
        if (!t->authz) {
            return true;
        }
        char dn[1024];
        size_t len = sizeof(dn);
        int ret = gnutls_x509_crt_get_dn(cert, dn, &len);
        if (ret < 0) {
            error_setg(errp, "Cannot get client distinguished name: %s", gnutls_strerror(ret));
            *alert = GNUTLS_A_BAD_CERTIFICATE;
            return false;
        }
        *alert = GNUTLS_A_ACCESS_DENIED;
        return tls_authz_is_allowed(t->authz, dn, errp);
    }
    *alert = GNUTLS_A_BAD_CERTIFICATE;
    if (!t->hostname) {
        error_setg(errp, "No hostname for certificate validation");
        return false;
    }
    if (!gnutls_x509_crt_check_hostname(cert, t->hostname)) {
        error_setg(errp, "Certificate does not match the hostname %s", t->hostname);
        return false;
    }
    return true;
}

static bool check_peer(MigTls *t, int *alert, Error **errp)
{
    unsigned status;
    int ret = gnutls_certificate_verify_peers2(t->session, &status);
    if (ret < 0) {
        error_setg(errp, "Verify failed: %s", gnutls_strerror(ret));
        *alert = ret == GNUTLS_E_NO_CERTIFICATE_FOUND ? GNUTLS_A_CERTIFICATE_REQUIRED : GNUTLS_A_BAD_CERTIFICATE;
        return false;
    }
    if (status) {
        error_setg(errp, "%s", tls_cert_status_reason(status));
        *alert = status_alert(status);
        return false;
    }
    unsigned n = 0;
    const gnutls_datum_t *certs = gnutls_certificate_get_peers(t->session, &n);
    if (!certs || !n) {
        error_setg(errp, "No certificate peers");
        *alert = GNUTLS_A_CERTIFICATE_REQUIRED;
        return false;
    }
    gnutls_x509_crt_t cert;
    if (gnutls_x509_crt_init(&cert) < 0) {
        error_setg(errp, "Unable to initialize a certificate");
        *alert = GNUTLS_A_INTERNAL_ERROR;
        return false;
    }
    bool ok;
    if ((ret = gnutls_x509_crt_import(cert, &certs[0], GNUTLS_X509_FMT_DER)) < 0) {
        error_setg(errp, "Unable to load certificate: %s", gnutls_strerror(ret));
        *alert = GNUTLS_A_BAD_CERTIFICATE;
        ok = false;
    } else {
        ok = check_first_cert(t, cert, alert, errp);
    }
    gnutls_x509_crt_deinit(cert);
    return ok;
}

/* GnuTLS calls this when the peer's certificate arrived: refusing here
 * ends the handshake at once (and our alert tells the peer why). */
static int verify_callback(gnutls_session_t session)
{
    MigTls *t = gnutls_session_get_ptr(session);
    t->verified = true;
    if (!tls_creds_verify_peer(t->creds) || t->verify_err) {
        return t->verify_err ? -1 : 0;
    }
    return check_peer(t, &t->verify_alert, &t->verify_err) ? 0 : -1;
}

/* ---- session setup and handshake -------------------------------------------- */

void mig_tls_free(MigTls *t)
{
    if (t->session) {
        gnutls_deinit(t->session);
    }
    user_object_unref(t->creds_ref);
    if (t->net >= 0) {
        close(t->net);
    }
    if (t->inner >= 0) {
        close(t->inner);
    }
    if (t->wake >= 0) {
        close(t->wake);
    }
    error_free(t->verify_err);
    error_free(t->err);
    pthread_mutex_destroy(&t->lock);
    g_free(t->hostname);
    g_free(t->authz);
    g_free(t);
}

static bool is_ip_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

static MigTls *tls_new(bool server, int fd, Error **errp)
{
    g_autofree char *id = migrate_tls_creds();
    MigTls *t = g_new0(MigTls, 1);
    t->server = server;
    t->net = t->inner = t->wake = -1;
    pthread_mutex_init(&t->lock, NULL);
    t->creds = tls_creds_lookup(id, &t->creds_ref, errp);
    if (!t->creds) {
        mig_tls_free(t);
        return NULL;
    }
    if (tls_creds_is_server(t->creds) != server) {
        error_setg(errp, "Expecting TLS credentials with a %s endpoint", server ? "server" : "client");
        mig_tls_free(t);
        return NULL;
    }
    int ret = gnutls_init(&t->session, server ? GNUTLS_SERVER : GNUTLS_CLIENT);
    const char *err_pos = NULL;
    if (ret >= 0) {
        ret = gnutls_priority_set_direct(t->session, tls_creds_priority(t->creds), &err_pos);
    }
    if (ret >= 0) {
        ret = gnutls_credentials_set(t->session, GNUTLS_CRD_CERTIFICATE, tls_creds_gnutls(t->creds));
    }
    if (ret < 0) {
        error_setg(errp, "Cannot set up the TLS session: %s", gnutls_strerror(ret));
        mig_tls_free(t);
        return NULL;
    }
    if (server) {
        gnutls_certificate_server_set_request(t->session, GNUTLS_CERT_REQUEST);
    }
    gnutls_session_set_ptr(t->session, t);
    gnutls_session_set_verify_function(t->session, verify_callback);
    t->net = fd;
    mig_tls_set_nonblock(fd);
    gnutls_transport_set_int(t->session, fd);
    return t;
}

static void send_alert(MigTls *t, int alert)
{
    int64_t deadline = mig_tls_now_ms() + LINGER_MS;
    int ret;
    while ((ret = gnutls_alert_send(t->session, GNUTLS_AL_FATAL, alert)) == GNUTLS_E_AGAIN ||
           ret == GNUTLS_E_INTERRUPTED) {
        if (!wait_net(t, POLLOUT, -1, deadline, NULL)) {
            return;
        }
    }
}

/* Our close (after a refusal): say nothing more, and read until the peer
 * closed too or LINGER_MS passed, so unread bytes do not turn the close
 * into a reset that could destroy the alert we sent. */
static void linger(int fd)
{
    shutdown(fd, SHUT_WR);
    int64_t deadline = mig_tls_now_ms() + LINGER_MS;
    char buf[4096];
    for (;;) {
        int64_t left = deadline - mig_tls_now_ms();
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0) {
            return;
        }
        ssize_t n = read(fd, buf, sizeof(buf));
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            return;
        }
    }
}

static bool refuse(MigTls *t, int alert)
{
    send_alert(t, alert);
    linger(t->net);
    return false;
}

static bool handshake(MigTls *t, int cancel_fd, Error **errp)
{
    int64_t deadline = mig_tls_now_ms() + HANDSHAKE_TIMEOUT_MS;
    for (;;) {
        int ret = gnutls_handshake(t->session);
        if (ret == 0) {
            break;
        }
        if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
            short ev = gnutls_record_get_direction(t->session) ? POLLOUT : POLLIN;
            if (!wait_net(t, ev, cancel_fd, deadline, errp)) {
                return false;
            }
            continue;
        }
        if (!gnutls_error_is_fatal(ret)) {
            continue;
        }
        if (t->verify_err) {        /* we refused the peer's certificate */
            error_propagate(errp, t->verify_err);
            t->verify_err = NULL;
            return refuse(t, t->verify_alert);
        }
        mig_tls_set_error(t, ret, "TLS handshake failed", errp);
        return false;
    }
    /* A server that asked for a certificate and got none: the callback never ran. */
    if (!t->verified && tls_creds_verify_peer(t->creds)) {
        int alert;
        if (!check_peer(t, &alert, errp)) {
            return refuse(t, alert);
        }
    }
    return true;
}

static bool is_socket(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode);
}

/* The connection becomes the session's: on failure it was closed here, and
 * ch->fd is -1. */
static bool channel_wrap(MigChannel *ch, MigTls *t, int cancel_fd, Error **errp)
{
    int fd = ch->fd;
    ch->fd = -1;
    if (!handshake(t, cancel_fd, errp) || !mig_tls_start_relay(t, ch, errp)) {
        mig_tls_free(t);        /* closes the connection */
        return false;
    }
    (void)fd;
    return true;
}

bool mig_tls_enabled(void)
{
    g_autofree char *id = migrate_tls_creds();
    return id[0] != '\0';
}

static bool check_socket(const MigChannel *ch, Error **errp)
{
    if (ch->child > 0 || !ch->bidirectional || !is_socket(ch->fd)) {
        error_setg(errp, "TLS needs a socket: exec:, file: and fd: migrations that are not sockets "
                   "cannot use tls-creds");
        return false;
    }
    return true;
}

bool mig_tls_channel_client(MigChannel *ch, const MigAddress *addr, int cancel_fd, Error **errp)
{
    if (!mig_tls_enabled()) {
        return true;
    }
    if (!check_socket(ch, errp)) {
        return false;
    }
    MigTls *t = tls_new(false, ch->fd, errp);
    if (!t) {
        return false;
    }
    g_autofree char *name = migrate_tls_hostname();
    if (name[0]) {
        t->hostname = g_strdup(name);
    } else if (addr->transport == MIG_TRANSPORT_TCP && addr->host && addr->host[0]) {
        t->hostname = g_strdup(addr->host);
    }
    /* SNI lets a migvm destination name the host the source expected. */
    if (t->hostname && !is_ip_literal(t->hostname)) {
        gnutls_server_name_set(t->session, GNUTLS_NAME_DNS, t->hostname, strlen(t->hostname));
    }
    return channel_wrap(ch, t, cancel_fd, errp);
}

bool mig_tls_channel_server(MigChannel *ch, Error **errp)
{
    if (!mig_tls_enabled()) {
        return true;
    }
    if (!check_socket(ch, errp)) {
        return false;
    }
    MigTls *t = tls_new(true, ch->fd, errp);
    if (!t) {
        return false;
    }
    g_autofree char *authz = migrate_tls_authz();
    t->authz = authz[0] ? g_strdup(authz) : NULL;
    return channel_wrap(ch, t, -1, errp);
}

typedef struct Accept {
    MigChannel ch;
    Error *err;
    MigTlsAcceptedFn *done;
    void *opaque;
    GThread *thread;
} Accept;

static void accept_finished(void *opaque)
{
    Accept *a = opaque;
    g_thread_join(a->thread);
    if (a->err && a->ch.fd >= 0) {
        close(a->ch.fd);
        a->ch.fd = -1;
    }
    a->done(&a->ch, a->err, a->opaque);
    g_free(a);
}

static gpointer accept_thread(gpointer opaque)
{
    Accept *a = opaque;
    mig_tls_channel_server(&a->ch, &a->err);
    main_loop_schedule(accept_finished, a);
    return NULL;
}

void mig_tls_channel_server_async(const MigChannel *ch, MigTlsAcceptedFn *done, void *opaque)
{
    Accept *a = g_new0(Accept, 1);
    a->ch = *ch;
    a->done = done;
    a->opaque = opaque;
    a->thread = g_thread_new("tls-handshake", accept_thread, a);
}
