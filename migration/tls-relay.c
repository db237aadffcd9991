/*
 * The relay between a TLS session and the plain socketpair its owner uses
 * (see tls.c for the protocol). One thread per channel, both directions,
 * non-blocking on both fds, so GnuTLS is never used from two threads at once:
 *
 *   owner's fd ══ socketpair ══ inner ─► gnutls_record_send ─► net
 *   owner's fd ◄═ socketpair ══ inner ◄─ gnutls_record_recv ◄─ net
 *
 * The owner shutting its writing side makes us send close_notify; the owner
 * closing every dup of its fd ends the relay once what it wrote went out
 * (bounded: FLUSH_MS without progress), an abort within ABORT_MS. A fatal
 * error from GnuTLS (an alert from the peer) is kept for
 * mig_tls_channel_error and ends it.
 */
#include "tls-int.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <glib.h>

static void relay_fail(MigTls *t, int ret, const char *what)
{
    Error *err = NULL;
    mig_tls_set_error(t, ret, what, &err);
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
    bool inner_hup;             /* the caller closed, with bytes still to carry out */
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
        if (r->flush_until && !r->abort_until) {
            r->flush_until = mig_tls_now_ms() + FLUSH_MS;     /* a slow peer that still reads is not a stopped one */
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
        r->linger_until = mig_tls_now_ms() + LINGER_MS;
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
        if (ours_done && (r->net_eof || r->inner_gone || mig_tls_now_ms() >= r->linger_until)) {
            break;
        }
        if (r->abort_until && mig_tls_now_ms() >= r->abort_until) {
            break;
        }
        if ((r->inner_gone || r->inner_hup) && !r->flush_until) {
            r->flush_until = mig_tls_now_ms() + FLUSH_MS;     /* a peer that stopped reading cannot hold us */
        }
        if (r->flush_until && mig_tls_now_ms() >= r->flush_until) {
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
        if (r->inner_hup && pfd[0].events == 0) {
            pfd[0].fd = -1;     /* it would report the hang-up at once, every time */
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
            timeout = (int)MAX(until - mig_tls_now_ms(), 0);
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
            r->abort_until = mig_tls_now_ms() + ABORT_MS;
            r->flush_until = r->flush_until ? MIN(r->flush_until, r->abort_until) : r->abort_until;
        }
        /* Both directions of the caller's end closed: nothing more to carry
         * in. POLLIN is only reported when asked for, which it is not while a
         * send waits for room: bytes the caller wrote before closing may still
         * be queued, and they go out first (relay_out reads on until EOF). */
        if ((pfd[0].revents & POLLHUP) && !(pfd[0].revents & POLLIN)) {
            int queued = 0;
            if (!r->inner_eof && ioctl(t->inner, FIONREAD, &queued) == 0 && queued > 0) {
                r->inner_hup = true;
            } else {
                r->inner_gone = true;
                r->inner_eof = true;
            }
        }
        if (r->inner_hup && r->inner_eof) {
            r->inner_gone = true;       /* what it wrote is read: as above */
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
        mig_tls_free(t);
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
        mig_tls_free(t);
    }
}

/* After a good handshake: the socketpair and the relay; ch now speaks plain. */
bool mig_tls_start_relay(MigTls *t, MigChannel *ch, Error **errp)
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
    mig_tls_set_nonblock(t->inner);
    g_thread_unref(g_thread_new("tls-relay", relay_thread, t));     /* detached: see mig_tls_layer_end */
    ch->fd = sv[0];
    ch->layer = t;
    ch->layer_end = mig_tls_layer_end;
    return true;
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
