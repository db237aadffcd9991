/*
 * What the TLS session (tls.c) and its relay (tls-relay.c) share.
 */
#ifndef MIGRATION_TLS_INT_H
#define MIGRATION_TLS_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <pthread.h>
#include <gnutls/gnutls.h>
#include "tls.h"
#include "tls-creds.h"

#define HANDSHAKE_TIMEOUT_MS (60 * 1000)
#define LINGER_MS 2000          /* after our close_notify or a refusal: wait for the peer's close */
#define FLUSH_MS 5000           /* after the caller closed: at most this long without progress to deliver what it wrote */
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

int64_t mig_tls_now_ms(void);
void mig_tls_set_nonblock(int fd);
/* errp for a GnuTLS error; a fatal alert from the peer says what it refused. */
void mig_tls_set_error(MigTls *t, int ret, const char *what, Error **errp);
/* Free the session, closing its fds. */
void mig_tls_free(MigTls *t);
/* After a good handshake: the socketpair and the relay thread; ch->fd
 * becomes the plain end, ch->layer the session. */
bool mig_tls_start_relay(MigTls *t, MigChannel *ch, Error **errp);

#endif
