/*
 * The recovery handshake on a new connection, as QEMU 7.2 does it for
 * postcopy (shared docs: postcopy.md 6.3). The new channel carries no
 * header, no CONFIGURATION and no OPEN_RETURN_PATH: it continues the old
 * stream, with the return path open from the first byte.
 *
 *   source                                   destination
 *   COMMAND RECV_BITMAP(idstr) per block ─►
 *                                         ◄─ RP RECV_BITMAP (u8 n, idstr) followed,
 *                                            outside the message, by the received
 *                                            map (recv-bitmap.c): be64 size, size
 *                                            bytes of LE words, be64 end mark
 *   (pages not received become dirty)
 *   COMMAND POSTCOPY_RESUME (len 0)      ─►
 *                                         ◄─ RP RESUME_ACK (be32 1)
 *   SECTION_PART ram ... (first record names its block: no CONTINUE)
 *
 * RECV_BITMAP's length must be 1 + the name's length. The source waits for
 * one answer per block it asked about, in any order, ignoring PONGs.
 */
#include "recovery.h"
#include "recv-bitmap.h"
#include "savevm.h"

#include <inttypes.h>
#include <string.h>
#include <glib.h>

static void send_command(MigStream *f, uint16_t cmd, uint16_t len, const void *data)
{
    mig_stream_put_u8(f, QEMU_VM_COMMAND);
    mig_stream_put_be16(f, cmd);
    mig_stream_put_be16(f, len);
    mig_stream_put_buffer(f, data, len);
}

/* u8 length + name, as the command and the RP message carry it. */
static uint16_t counted_name(const char *name, uint8_t buf[256])
{
    size_t n = strlen(name);        /* RAM block names are at most 255 bytes (memory.c) */
    buf[0] = (uint8_t)n;
    memcpy(buf + 1, name, n);
    return (uint16_t)(n + 1);
}

/* The block a counted name of len bytes in payload names, or NULL. */
static RAMBlock *block_named(const uint8_t *payload, uint16_t len, char name[256])
{
    if (len < 1 || payload[0] + 1 != len) {
        return NULL;
    }
    memcpy(name, payload + 1, payload[0]);
    name[payload[0]] = '\0';
    return ram_block_by_name(name);
}

static bool read_answer(MigStream *rp, uint16_t want, uint8_t *payload, uint16_t *len, Error **errp)
{
    for (;;) {
        uint16_t type;
        if (!mig_rp_read(rp, &type, payload, len, errp)) {
            error_prepend(errp, "recovery: ");
            return false;
        }
        if (type == want) {
            return true;
        }
        if (type != MIG_RP_MSG_PONG) {
            error_setg(errp, "recovery: unexpected return-path message 0x%x", type);
            return false;
        }
    }
}

bool recovery_source_handshake(MigStream *f, MigStream *rp, bool precopy, uint64_t *marked,
                               Error **errp)
{
    GHashTable *asked = g_hash_table_new(g_direct_hash, g_direct_equal);
    RAMBLOCK_FOREACH(b) {
        uint8_t buf[256];
        send_command(f, MIG_CMD_RECV_BITMAP, counted_name(b->name, buf), buf);
        g_hash_table_add(asked, b);
    }
    mig_stream_flush(f);
    bool ok = mig_stream_check(f, errp, "recovery: failed to ask for the received bitmaps");
    *marked = 0;
    while (ok && g_hash_table_size(asked) > 0) {
        uint8_t payload[MIG_RP_MAX_LEN];
        uint16_t len;
        char name[256];
        ok = read_answer(rp, MIG_RP_MSG_RECV_BITMAP, payload, &len, errp);
        if (!ok) {
            break;
        }
        RAMBlock *b = block_named(payload, len, name);
        if (!b || !g_hash_table_remove(asked, b)) {
            error_setg(errp, "recovery: received bitmap for unexpected RAM block '%s'",
                       len >= 1 && payload[0] + 1 == len ? name : "?");
            ok = false;
            break;
        }
        ok = recv_bitmap_read_merge(rp, b, precopy, marked, errp);
    }
    g_hash_table_destroy(asked);
    if (!ok) {
        return false;
    }
    send_command(f, MIG_CMD_POSTCOPY_RESUME, 0, NULL);
    mig_stream_flush(f);
    if (!mig_stream_check(f, errp, "recovery: failed to send RESUME")) {
        return false;
    }
    uint8_t ack[MIG_RP_MAX_LEN];
    uint16_t len;
    if (!read_answer(rp, MIG_RP_MSG_RESUME_ACK, ack, &len, errp)) {
        return false;
    }
    uint32_t v = (uint32_t)ack[0] << 24 | ack[1] << 16 | ack[2] << 8 | ack[3];
    if (v != 1) {
        error_setg(errp, "illegal resume_ack value %" PRIu32, v);
        return false;
    }
    return true;
}

static bool load_recv_bitmap(uint16_t len, MigStream *f, MigStream *rp, bool recovering,
                             RecoveryReceivedMapFn *received_map, Error **errp)
{
    uint8_t payload[256];
    payload[0] = mig_stream_get_u8(f);
    if (!mig_stream_check(f, errp, "Failed to read RECV_BITMAP")) {
        return false;
    }
    if (len != payload[0] + 1) {
        error_setg(errp, "CMD_RECV_BITMAP: invalid length %u for a %u-byte block name", len, payload[0]);
        return false;
    }
    mig_stream_get_buffer(f, payload + 1, payload[0]);
    if (!mig_stream_check(f, errp, "Failed to read RECV_BITMAP")) {
        return false;
    }
    char name[256];
    RAMBlock *b = block_named(payload, len, name);
    if (!recovering) {
        error_setg(errp, "CMD_RECV_BITMAP: only allowed in postcopy-recover state");
        return false;
    }
    if (!b) {
        error_setg(errp, "CMD_RECV_BITMAP: failed to find block %s", name);
        return false;
    }
    if (!rp) {
        error_setg(errp, "CMD_RECV_BITMAP received with no return path");
        return false;
    }
    mig_stream_put_be16(rp, MIG_RP_MSG_RECV_BITMAP);
    mig_stream_put_be16(rp, len);
    mig_stream_put_buffer(rp, payload, len);
    if (received_map) {
        unsigned long *map = g_new0(unsigned long, recv_bitmap_wire_size(b) / 8);
        received_map(b, map);
        recv_bitmap_write_map(rp, b, map);
        g_free(map);
    } else {
        recv_bitmap_write(rp, b);
    }
    mig_stream_flush(rp);
    return mig_stream_check(rp, errp, "Failed to write on the return path");
}

bool recovery_load_command(uint16_t cmd, uint16_t len, MigStream *f, MigStream *rp,
                           bool recovering, RecoveryReceivedMapFn *received_map, bool *resumed,
                           Error **errp)
{
    if (cmd == MIG_CMD_RECV_BITMAP) {
        return load_recv_bitmap(len, f, rp, recovering, received_map, errp);
    }
    if (cmd != MIG_CMD_POSTCOPY_RESUME) {
        error_setg(errp, "MIG_CMD 0x%x is not a recovery command", cmd);
        return false;
    }
    if (!recovering) {
        warn_report("illegal resume received");     /* QEMU 7.2 ignores it */
        return true;
    }
    if (!rp) {
        error_setg(errp, "CMD_POSTCOPY_RESUME received with no return path");
        return false;
    }
    uint8_t one[4] = { 0, 0, 0, 1 };
    if (!mig_rp_send(rp, MIG_RP_MSG_RESUME_ACK, one, sizeof(one), errp)) {
        return false;
    }
    *resumed = true;
    return true;
}
