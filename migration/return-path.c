/*
 * The return path: messages from the destination back to the source
 * (be16 type, be16 len, payload), written by the loader (PONG) and the
 * incoming state machine (SHUT: after the guest started, as QEMU 7.2), read
 * by the source's migration thread.
 *
 * migvm to migvm, the destination also reports how long starting the
 * guest took, with messages QEMU 7.2 already has and ignores: the source
 * sends PING(MIG_PING_MIGVM) after PING(1); a migvm destination answers it
 * (PONG, as any PING) and then, just before SHUT, sends PONG(MIG_PONG_STARTED_US
 * | microseconds from the stream loaded to the guest started). A QEMU 7.2
 * destination only echoes the PING, and a QEMU 7.2 source ignores a PONG
 * (it only traces it) and never sends that PING, so neither side needs
 * to know the other beforehand.
 */
#include "savevm.h"

#include <pthread.h>

/* In postcopy three threads write: the package's loader (PONG), the listen
 * thread (PONG) and the fault thread (REQ_PAGES); one message at a time. */
static pthread_mutex_t rp_write_lock = PTHREAD_MUTEX_INITIALIZER;

bool mig_rp_send(MigStream *rp, uint16_t type, const void *payload, uint16_t len, Error **errp)
{
    pthread_mutex_lock(&rp_write_lock);
    mig_stream_put_be16(rp, type);
    mig_stream_put_be16(rp, len);
    mig_stream_put_buffer(rp, payload, len);
    mig_stream_flush(rp);
    bool ok = mig_stream_check(rp, errp, "Failed to write on the return path");
    pthread_mutex_unlock(&rp_write_lock);
    return ok;
}

static bool rp_send_be32(MigStream *rp, uint16_t type, uint32_t v, Error **errp)
{
    uint8_t b[4] = { v >> 24, v >> 16, v >> 8, v };
    return mig_rp_send(rp, type, b, sizeof(b), errp);
}

bool mig_rp_send_pong(MigStream *rp, uint32_t value, Error **errp)
{
    return rp_send_be32(rp, MIG_RP_MSG_PONG, value, errp);
}

bool mig_rp_send_shut(MigStream *rp, uint32_t status, Error **errp)
{
    return rp_send_be32(rp, MIG_RP_MSG_SHUT, status, errp);
}

/* Fixed payload length of a return-path message, -1 if variable. */
static int rp_expected_len(uint16_t type)
{
    switch (type) {
    case MIG_RP_MSG_SHUT: case MIG_RP_MSG_PONG: case MIG_RP_MSG_RESUME_ACK:
        return 4;
    case MIG_RP_MSG_REQ_PAGES:
        return 12;
    case MIG_RP_MSG_SWITCHOVER_ACK:
        return 0;
    default:
        return -1;
    }
}

bool mig_rp_read(MigStream *rp, uint16_t *type, uint8_t *payload, uint16_t *len, Error **errp)
{
    *type = mig_stream_get_be16(rp);
    *len = mig_stream_get_be16(rp);
    if (!mig_stream_check(rp, errp, "Failed to read from the return path")) {
        return false;
    }
    if (*type == MIG_RP_MSG_INVALID || *type >= MIG_RP_MSG_MAX) {
        error_setg(errp, "Received invalid return-path message 0x%x", *type);
        return false;
    }
    int want = rp_expected_len(*type);
    if ((want >= 0 && *len != want) || *len > MIG_RP_MAX_LEN) {
        error_setg(errp, "Return-path message 0x%x received with bad length %u", *type, *len);
        return false;
    }
    mig_stream_get_buffer(rp, payload, *len);
    return mig_stream_check(rp, errp, "Failed to read from the return path");
}
