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
 * thread per channel moves bytes between it and the session (non-blocking
 * both ways, one thread, so GnuTLS is never used from two threads at once).
 */
#include "tls.h"
#include "options.h"
#include "tls-creds.h"
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

#define HANDSHAKE_TIMEOUT_MS (60 * 1000)
#define LINGER_MS 2000          /* after our close_notify or a refusal: wait for the peer's close */
#define FLUSH_MS 5000           /* after the caller closed: at most this long to deliver what it wrote */
#define ABORT_MS 100            /* after an abort: what is already written may still go out this long */
#define RELAY_BUF (64 * 1024)

typedef struct MigTls {
    gnutls_session_t session;
    UserObject *creds_ref;
    const TlsCreds *creds;
    bool server;
    char *hostname;             /* client: the name the server's certificate must match */
    char *authz;                /* server: tls-authz, or NULL */
    int net;                    /* the connection (non-blocking) */
    int inner;                  /* the relay's end of the socketpair (non-blocking) */
    int wake;                   /* eventfd: stop the relay at once */
    /* Set by the verify callback during the handshake [handshake thread]: */
    Error *verify_err;
    int verify_alert;
    bool verified;
    pthread_mutex_t lock;
    Error *err;                 /* the relay's failure [lock] */
    bool released;              /* the owner ended it (mig_tls_layer_end) [lock] */
    bool finished;              /* the relay thread is done [lock] */
} MigTls;

/* ---- helpers ---------------------------------------------------------------- */

static const char *peer_role(const MigTls *t)
{
    return t->server ? "source" : "destination";
}

static void set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static int64_t now_ms(void)
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
        int64_t left = deadline - now_ms();
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
static void set_gnutls_error(MigTls *t, int ret, const char *what, Error **errp)
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

static void tls_free(MigTls *t)
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
        tls_free(t);
        return NULL;
    }
    if (tls_creds_is_server(t->creds) != server) {
        error_setg(errp, "Expecting TLS credentials with a %s endpoint", server ? "server" : "client");
        tls_free(t);
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
        tls_free(t);
        return NULL;
    }
    if (server) {
        gnutls_certificate_server_set_request(t->session, GNUTLS_CERT_REQUEST);
    }
    gnutls_session_set_ptr(t->session, t);
    gnutls_session_set_verify_function(t->session, verify_callback);
    t->net = fd;
    set_nonblock(fd);
    gnutls_transport_set_int(t->session, fd);
    return t;
}

static void send_alert(MigTls *t, int alert)
{
    int64_t deadline = now_ms() + LINGER_MS;
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
    int64_t deadline = now_ms() + LINGER_MS;
    char buf[4096];
    for (;;) {
        int64_t left = deadline - now_ms();
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
    int64_t deadline = now_ms() + HANDSHAKE_TIMEOUT_MS;
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
        set_gnutls_error(t, ret, "TLS handshake failed", errp);
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

/* ---- the relay ------------------------------------------------------------- */

static void relay_fail(MigTls *t, int ret, const char *what)
{
    Error *err = NULL;
    set_gnutls_error(t, ret, what, &err);
    pthread_mutex_lock(&t->lock);
    if (!t->err) {
        t->err = err;
        err = NULL;
    }
    pthread_mutex_unlock(&t->lock);
    error_free(err);
}

typedef struct Relay {
    uint8_t out[RELAY_BUF];     /* plain bytes read from inner, for the session */
    size_t out_len;
    uint8_t in[RELAY_BUF];      /* plain bytes from the session, for inner */
    size_t in_off, in_len;
    bool inner_eof;             /* the caller shut its writing side */
    bool inner_gone;            /* nobody reads inner any more */
    bool net_eof;               /* the peer ended the session */
    bool send_blocked;          /* record_send said AGAIN: call again with the same data */
    bool bye_done;
    int64_t linger_until;       /* 0, or when to stop waiting for the peer's close */
    int64_t flush_until;        /* 0, or when to give up delivering once the caller closed */
    int64_t abort_until;        /* 0, or the end of the grace an abort leaves */
} Relay;

/* inner -> session. False on a fatal error. */
static bool relay_out(MigTls *t, Relay *r)
{
    if (r->out_len == 0 && !r->inner_eof) {
        ssize_t n = read(t->inner, r->out, sizeof(r->out));
        if (n > 0) {
            r->out_len = n;
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            r->inner_eof = true;
        }
    }
    while (r->out_len > 0) {
        ssize_t n = gnutls_record_send(t->session, r->send_blocked ? NULL : r->out,
                                       r->send_blocked ? 0 : r->out_len);
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
            r->send_blocked = true;
            return true;
        }
        r->send_blocked = false;
        if (n < 0) {
            relay_fail(t, n, "Cannot write to TLS channel");
            return false;
        }
        memmove(r->out, r->out + n, r->out_len - n);
        r->out_len -= n;
    }
    if (r->inner_eof && !r->bye_done) {
        int ret = gnutls_bye(t->session, GNUTLS_SHUT_WR);
        if (ret == GNUTLS_E_AGAIN || ret == GNUTLS_E_INTERRUPTED) {
            return true;
        }
        r->bye_done = true;
        shutdown(t->net, SHUT_WR);
        r->linger_until = now_ms() + LINGER_MS;
    }
    return true;
}

/* session -> inner. False on a fatal error. */
static bool relay_in(MigTls *t, Relay *r)
{
    if (r->in_off == r->in_len && !r->net_eof) {
        ssize_t n = gnutls_record_recv(t->session, r->in, sizeof(r->in));
        if (n > 0) {
            r->in_off = 0;
            r->in_len = n;
        } else if (n == 0 || n == GNUTLS_E_PREMATURE_TERMINATION) {
            /* QEMU 7.2 closes without close_notify: an end like any other. */
            r->net_eof = true;
            shutdown(t->inner, SHUT_WR);
        } else if (n != GNUTLS_E_AGAIN && n != GNUTLS_E_INTERRUPTED && gnutls_error_is_fatal(n)) {
            relay_fail(t, n, "Cannot read from TLS channel");
            return false;
        }
    }
    if (r->in_off < r->in_len) {
        if (r->inner_gone) {
            r->in_off = r->in_len;      /* nobody reads: drop */
            return true;
        }
        ssize_t n = write(t->inner, r->in + r->in_off, r->in_len - r->in_off);
        if (n > 0) {
            r->in_off += n;
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            r->inner_gone = true;
            r->in_off = r->in_len;
        }
    }
    return true;
}

static gpointer relay_thread(gpointer opaque)
{
    MigTls *t = opaque;
    Relay *r = g_new0(Relay, 1);
    for (;;) {
        if (!relay_out(t, r) || !relay_in(t, r)) {
            break;
        }
        bool ours_done = r->inner_eof && r->out_len == 0 && r->bye_done;
        if (ours_done && (r->net_eof || r->inner_gone || now_ms() >= r->linger_until)) {
            break;
        }
        if (r->abort_until && now_ms() >= r->abort_until) {
            break;
        }
        if (r->inner_gone && !r->flush_until) {
            r->flush_until = now_ms() + FLUSH_MS;     /* a peer that stopped reading cannot hold us */
        }
        if (r->flush_until && now_ms() >= r->flush_until) {
            break;
        }
        struct pollfd pfd[3] = {
            { .fd = t->inner, .events = 0 },
            { .fd = t->net, .events = 0 },
            { .fd = t->wake, .events = POLLIN },
        };
        if (r->out_len == 0 && !r->inner_eof) {
            pfd[0].events |= POLLIN;
        }
        if (r->in_off < r->in_len && !r->inner_gone) {
            pfd[0].events |= POLLOUT;
        }
        if (r->in_off == r->in_len && !r->net_eof) {
            pfd[1].events |= POLLIN;
        }
        if (r->send_blocked || (r->inner_eof && !r->bye_done)) {
            /* Only sending can block here (a record_recv that would block
             * just returns): wait for room, whatever get_direction says of
             * the last call. */
            pfd[1].events |= POLLOUT;
        }
        int timeout = -1;
        if (gnutls_record_check_pending(t->session) && r->in_off == r->in_len) {
            timeout = 0;                /* decrypted bytes already buffered */
        } else if (r->linger_until || r->flush_until) {
            int64_t until = r->linger_until && r->flush_until ? MIN(r->linger_until, r->flush_until)
                                                              : MAX(r->linger_until, r->flush_until);
            timeout = (int)MAX(until - now_ms(), 0);
        }
        if (poll(pfd, 3, timeout) < 0 && errno != EINTR) {
            break;
        }
        if ((pfd[2].revents & POLLIN) && !r->abort_until) {
            /* Aborted: a last message already written (a failure report on
             * the return path) may still go out, briefly. */
            uint64_t v;
            ssize_t n = read(t->wake, &v, sizeof(v));
            (void)n;
            r->abort_until = now_ms() + ABORT_MS;
            r->flush_until = r->flush_until ? MIN(r->flush_until, r->abort_until) : r->abort_until;
        }
        /* Both directions of the caller's end closed: nothing more to carry in. */
        if ((pfd[0].revents & POLLHUP) && !(pfd[0].revents & POLLIN)) {
            r->inner_gone = true;
            r->inner_eof = true;
        }
    }
    g_free(r);
    /* The caller's side sees the end (and a write there fails) at once. */
    shutdown(t->inner, SHUT_RDWR);
    pthread_mutex_lock(&t->lock);
    t->finished = true;
    bool released = t->released;
    pthread_mutex_unlock(&t->lock);
    if (released) {
        tls_free(t);
    }
    return NULL;
}

/* The owner may still hold a dup of the plain fd (a return path closed
 * later): the relay cannot end before that, so nobody waits for it here.
 * Whichever of the owner and the (detached) relay comes last frees. */
void mig_tls_layer_end(void *layer, bool abort)
{
    MigTls *t = layer;
    if (abort) {
        uint64_t one = 1;
        ssize_t n = write(t->wake, &one, sizeof(one));
        (void)n;
    }
    pthread_mutex_lock(&t->lock);
    t->released = true;
    bool finished = t->finished;
    pthread_mutex_unlock(&t->lock);
    if (finished) {
        tls_free(t);
    }
}

/* After a good handshake: the socketpair and the relay; ch now speaks plain. */
static bool start_relay(MigTls *t, MigChannel *ch, Error **errp)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        error_setg_errno(errp, errno, "Unable to create the TLS relay socket");
        return false;
    }
    t->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (t->wake < 0) {
        error_setg_errno(errp, errno, "Unable to create the TLS relay socket");
        close(sv[0]);
        close(sv[1]);
        return false;
    }
    t->inner = sv[1];
    set_nonblock(t->inner);
    g_thread_unref(g_thread_new("tls-relay", relay_thread, t));     /* detached: see mig_tls_layer_end */
    ch->fd = sv[0];
    ch->layer = t;
    ch->layer_end = mig_tls_layer_end;
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
    if (!handshake(t, cancel_fd, errp) || !start_relay(t, ch, errp)) {
        tls_free(t);        /* closes the connection */
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

bool mig_tls_channel_error(const MigChannel *ch, Error **errp)
{
    if (!ch->layer || ch->layer_end != mig_tls_layer_end) {
        return true;
    }
    MigTls *t = ch->layer;
    pthread_mutex_lock(&t->lock);
    Error *err = t->err ? error_copy(t->err) : NULL;
    pthread_mutex_unlock(&t->lock);
    if (err) {
        error_propagate(errp, err);
        return false;
    }
    return true;
}
