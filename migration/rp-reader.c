/*
 * The source's return-path reader (postcopy-ram): one thread reads every
 * message the destination sends (framing in return-path.c):
 *   REQ_PAGES_ID  be64 start, be32 len, u8 n, n bytes block name
 *   REQ_PAGES     be64 start, be32 len (the block of the previous request)
 *   PONG          echo of a PING; migvm's start report (return-path.c)
 *   SHUT          be32 status, the last message
 * Requests go to the postcopy queue (postcopy-queue.c), which checks them;
 * a bad one ends the reader with an error, as QEMU 7.2's.
 */
#include "rp-reader.h"
#include "clock.h"
#include "postcopy-ram.h"
#include "savevm.h"

#include <stdatomic.h>
#include <string.h>
#include <glib.h>

struct RpReader {
    MigStream *rp;
    GThread *thread;
    void (*wake)(void);
    _Atomic bool done;
    /* Written by the thread before done is set; read after. */
    Error *error;
    bool shut_seen;
    uint32_t shut_status;
    int64_t started_us, shut_ns;
};

static uint32_t be32_at(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
}

static uint64_t be64_at(const uint8_t *p)
{
    return (uint64_t)be32_at(p) << 32 | be32_at(p + 4);
}

static bool handle(RpReader *r, uint16_t type, const uint8_t *p, uint16_t len, Error **errp)
{
    switch (type) {
    case MIG_RP_MSG_REQ_PAGES_ID: {
        char name[256];
        if (len < 13 || len != 13 + p[12]) {
            error_setg(errp, "RP: Received 'REQ_PAGES_ID' message (0x%04x) withincorrect length %d", type, len);
            return false;
        }
        memcpy(name, p + 13, p[12]);
        name[p[12]] = '\0';
        return postcopy_request_push(name, be64_at(p), be32_at(p + 8), errp);
    }
    case MIG_RP_MSG_REQ_PAGES:
        return postcopy_request_push(NULL, be64_at(p), be32_at(p + 8), errp);
    case MIG_RP_MSG_PONG: {
        uint32_t v = be32_at(p);
        if (v & MIG_PONG_STARTED_US) {
            r->started_us = v & ~MIG_PONG_STARTED_US;
        }
        return true;
    }
    case MIG_RP_MSG_SHUT:
        r->shut_seen = true;
        r->shut_status = be32_at(p);
        r->shut_ns = now_ns();
        return true;
    default:
        return true;        /* nothing else matters to this source */
    }
}

static gpointer reader_thread(gpointer opaque)
{
    RpReader *r = opaque;
    Error *err = NULL;
    while (!r->shut_seen) {
        uint16_t type, len;
        uint8_t payload[MIG_RP_MAX_LEN];
        if (!mig_rp_read(r->rp, &type, payload, &len, &err) || !handle(r, type, payload, len, &err)) {
            error_prepend(&err, "return path: ");
            break;
        }
    }
    r->error = err;
    atomic_store(&r->done, true);
    if (r->wake) {
        r->wake();
    }
    return NULL;
}

RpReader *rp_reader_start(MigStream *rp, void (*wake)(void))
{
    RpReader *r = g_new0(RpReader, 1);
    r->rp = rp;
    r->wake = wake;
    r->started_us = -1;
    r->thread = g_thread_new("return-path", reader_thread, r);
    return r;
}

bool rp_reader_done(RpReader *r)
{
    return atomic_load(&r->done);
}

bool rp_reader_failed(RpReader *r, Error **errp)
{
    if (!rp_reader_done(r) || !r->error) {
        return false;
    }
    error_propagate(errp, error_copy(r->error));
    return true;
}

bool rp_reader_finish(RpReader *r, int64_t *started_us, int64_t *shut_ns, Error **errp)
{
    g_thread_join(r->thread);
    bool ok = false;
    if (r->error) {
        error_propagate(errp, r->error);
    } else if (!r->shut_seen) {
        error_setg(errp, "return path: closed before SHUT");
    } else if (r->shut_status) {
        error_setg(errp, "The destination failed to load the migration stream");
    } else {
        ok = true;
    }
    *started_us = r->started_us;
    *shut_ns = r->shut_ns;
    g_free(r);
    return ok;
}
