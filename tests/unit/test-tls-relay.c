/*
 * The TLS relay (migration/tls-relay.c) on a real GnuTLS session over a
 * socketpair, with anonymous credentials: certificates are tls.c's, which
 * this test does not link (the four functions of it the relay calls are
 * defined below). What the owner wrote before closing
 * arrives whole, even when the relay was waiting for room on the network
 * at that moment, as a source's is when its migration completes while the
 * destination is slow.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <gnutls/gnutls.h>
#include <glib.h>

#include "tls-int.h"
#include "channel.h"

/* ---- tls.c's functions that the relay calls ---- */

static atomic_bool relay_freed;

int64_t mig_tls_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mig_tls_set_nonblock(int fd)
{
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

void mig_tls_set_error(MigTls *t, int ret, const char *what, Error **errp)
{
    (void)t;
    error_setg(errp, "%s: %s", what, gnutls_strerror(ret));
}

void mig_tls_free(MigTls *t)
{
    gnutls_deinit(t->session);
    close(t->net);
    close(t->inner);
    close(t->wake);
    error_free(t->err);
    pthread_mutex_destroy(&t->lock);
    g_free(t);
    atomic_store(&relay_freed, true);
}

/* ---- an anonymous TLS session pair ---- */

#define PRIORITY "NORMAL:-VERS-TLS1.3:+ANON-ECDH"

typedef struct Peer {
    gnutls_session_t session;
    int fd;
    int ret;
} Peer;

static void *handshake_thread(void *opaque)
{
    Peer *p = opaque;
    do {
        p->ret = gnutls_handshake(p->session);
    } while (p->ret < 0 && !gnutls_error_is_fatal(p->ret));
    return NULL;
}

static gnutls_anon_client_credentials_t client_cred;
static gnutls_anon_server_credentials_t server_cred;

/* client->session on fds[0] (for the relay), server->session on fds[1];
 * socket buffers small, so a reader that stops is felt at once. */
static void session_pair(Peer *client, Peer *server)
{
    int fds[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    int small = 16 * 1024;
    for (int i = 0; i < 2; i++) {
        setsockopt(fds[i], SOL_SOCKET, SO_SNDBUF, &small, sizeof(small));
        setsockopt(fds[i], SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
    }
    ck_assert_int_eq(gnutls_anon_allocate_client_credentials(&client_cred), 0);
    ck_assert_int_eq(gnutls_anon_allocate_server_credentials(&server_cred), 0);
    Peer *peers[2] = { client, server };
    for (int i = 0; i < 2; i++) {
        Peer *p = peers[i];
        p->fd = fds[i];
        ck_assert_int_eq(gnutls_init(&p->session, i == 0 ? GNUTLS_CLIENT : GNUTLS_SERVER), 0);
        ck_assert_int_eq(gnutls_priority_set_direct(p->session, PRIORITY, NULL), 0);
        ck_assert_int_eq(gnutls_credentials_set(p->session, GNUTLS_CRD_ANON,
                                                i == 0 ? (void *)client_cred : (void *)server_cred), 0);
        gnutls_transport_set_int(p->session, p->fd);
    }
    pthread_t th;
    pthread_create(&th, NULL, handshake_thread, server);
    handshake_thread(client);
    pthread_join(th, NULL);
    ck_assert_msg(client->ret == 0, "client handshake: %s", gnutls_strerror(client->ret));
    ck_assert_msg(server->ret == 0, "server handshake: %s", gnutls_strerror(server->ret));
}

static MigTls *relay_for(Peer *client, MigChannel *ch)
{
    MigTls *t = g_new0(MigTls, 1);
    t->session = client->session;
    t->net = client->fd;
    t->inner = -1;
    t->wake = -1;
    pthread_mutex_init(&t->lock, NULL);
    mig_tls_set_nonblock(t->net);
    Error *err = NULL;
    ck_assert_msg(mig_tls_start_relay(t, ch, &err), "start: %s", err ? error_get_pretty(err) : "");
    return t;
}

/* Byte i of the owner's stream. */
static uint8_t pattern(uint64_t i)
{
    return (uint8_t)(i * 7 + (i >> 12));
}

START_TEST(test_close_while_relay_waits_for_room)
{
    Peer client, server;
    session_pair(&client, &server);
    MigChannel ch = { .fd = -1 };
    relay_for(&client, &ch);

    /* The server reads nothing: write until no byte has gone in for 300 ms,
     * i.e. the socketpair is full behind a relay that waits for room. */
    mig_tls_set_nonblock(ch.fd);
    uint8_t buf[4096];
    uint64_t written = 0;
    for (;;) {
        for (size_t i = 0; i < sizeof(buf); i++) {
            buf[i] = pattern(written + i);
        }
        ssize_t n = write(ch.fd, buf, sizeof(buf));
        if (n > 0) {
            written += (uint64_t)n;
            continue;
        }
        ck_assert(n < 0 && errno == EAGAIN);
        struct pollfd pfd = { .fd = ch.fd, .events = POLLOUT };
        if (poll(&pfd, 1, 300) == 0) {
            break;
        }
    }
    ck_assert_uint_gt(written, 64 * 1024);      /* more than the relay's own buffer holds */

    /* The owner closes, as a source does once its migration completed. */
    close(ch.fd);
    mig_tls_layer_end(ch.layer, false);

    /* Now the server reads to the close_notify: every byte, in order. */
    struct timeval tv = { .tv_sec = 10 };
    setsockopt(server.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    uint64_t got = 0;
    bool in_order = true;
    ssize_t n;
    while ((n = gnutls_record_recv(server.session, buf, sizeof(buf))) != 0) {
        if (n == GNUTLS_E_AGAIN || n == GNUTLS_E_INTERRUPTED) {
            break;      /* the 10 s receive timeout: the relay never ended its session */
        }
        ck_assert_msg(n > 0, "server read: %s", gnutls_strerror((int)n));
        for (ssize_t i = 0; i < n; i++) {
            in_order &= buf[i] == pattern(got + (uint64_t)i);
        }
        got += (uint64_t)n;
    }
    ck_assert_msg(n == 0, "the session did not end with close_notify");
    ck_assert_msg(got == written, "the server got %llu of the %llu bytes written before the close",
                  (unsigned long long)got, (unsigned long long)written);
    ck_assert(in_order);

    /* Our close ends the relay (it was waiting for it after its own). */
    gnutls_bye(server.session, GNUTLS_SHUT_WR);
    close(server.fd);
    gnutls_deinit(server.session);
    int64_t deadline = mig_tls_now_ms() + 10000;
    while (!atomic_load(&relay_freed) && mig_tls_now_ms() < deadline) {
        poll(NULL, 0, 10);
    }
    ck_assert_msg(atomic_load(&relay_freed), "the relay did not end");
    gnutls_anon_free_client_credentials(client_cred);
    gnutls_anon_free_server_credentials(server_cred);
}
END_TEST

int main(void)
{
    gnutls_global_init();
    Suite *s = suite_create("tls-relay");
    TCase *tc = tcase_create("relay");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_close_while_relay_waits_for_room);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    gnutls_global_deinit();
    return failed ? 1 : 0;
}
