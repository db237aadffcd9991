/*
 * Block migration records and the destination's loader
 * (shared docs: block-migration.md sections 2.2, 2.3 and 2.5).
 *
 * A section body is a list of records, each starting with a be64 word W
 * whose low 9 bits are flags, ending with the first EOS:
 *
 *   DEVICE_BLOCK  W = byte offset | 0x01, u8 name_len (1..255), name,
 *                 1 MiB of data (the last chunk of a drive too: zeros past
 *                 its end)
 *   ZERO_BLOCK    W = byte offset | 0x09, u8 name_len, name (no data)
 *   PROGRESS      W = percent << 9 | 0x04
 *   EOS           W = 0x02
 *
 * Offsets are multiples of 1 MiB (2048 sectors). The name is the drive's
 * -drive id=. Chunks come in any order and a chunk may come again (the
 * guest wrote it meanwhile): the last copy wins.
 *
 * Destination rules, stricter than QEMU 7.2's (which writes what it can and
 * fails with EIO once a chunk passes the end of a smaller drive): every
 * record is checked before anything is written; a chunk must name a
 * writable drive of ours, lie inside it, and have no data past its end, so
 * a destination drive smaller than the source's is refused with the reason
 * (migvm's source sends each drive's last chunk first, so that happens
 * before any of that drive's data is written). Only the four record forms
 * above are accepted. The loader runs on the incoming thread without the
 * BQL and writes with blk_pwrite / blk_pwrite_zeroes (all-zero 64 KiB
 * pieces become write-zeroes, keeping sparse images sparse).
 *
 * As QEMU, the destination prints "Receiving block device images" once and
 * "Completed N %" for each PROGRESS record on stdout.
 */
#include "block-migration.h"
#include "block.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <glib.h>

#define ZERO_PIECE (64u * 1024)

/* ---- records ---- */

void block_mig_put_chunk(MigStream *f, const char *name, uint64_t offset, const uint8_t *data)
{
    mig_stream_put_be64(f, offset | BLK_MIG_FLAG_DEVICE_BLOCK | (data ? 0 : BLK_MIG_FLAG_ZERO_BLOCK));
    mig_stream_put_counted_string(f, name);
    if (data) {
        /* By reference, no copy into the stream's buffer; flushed at once
         * so the caller may reuse data. */
        mig_stream_put_page(f, data, BLK_MIG_CHUNK_SIZE);
        mig_stream_flush(f);
    }
}

void block_mig_put_progress(MigStream *f, unsigned percent)
{
    mig_stream_put_be64(f, (uint64_t)percent << 9 | BLK_MIG_FLAG_PROGRESS);
}

void block_mig_put_eos(MigStream *f)
{
    mig_stream_put_be64(f, BLK_MIG_FLAG_EOS);
}

bool block_mig_buffer_is_zero(const uint8_t *p, size_t len)
{
    size_t i = 0;
    for (; i + 64 <= len; i += 64) {
        uint64_t w[8];
        memcpy(w, p + i, sizeof(w));
        if (w[0] | w[1] | w[2] | w[3] | w[4] | w[5] | w[6] | w[7]) {
            return false;
        }
    }
    for (; i < len; i++) {
        if (p[i]) {
            return false;
        }
    }
    return true;
}

/* ---- destination ---- */

/* The drive a chunk record names, checked; NULL with errp set otherwise. */
static BlockBackend *load_drive(MigStream *f, uint64_t offset, Error **errp)
{
    char name[256];
    int len = mig_stream_get_counted_string(f, name);
    if (!mig_stream_check(f, errp, "Failed to read a block device name")) {
        return NULL;
    }
    if (len == 0 || memchr(name, '\0', len)) {
        error_setg(errp, "Block migration chunk without a valid device name");
        return NULL;
    }
    BlockBackend *blk = blk_by_name(name);
    if (!blk) {
        error_setg(errp, "Unknown block device '%s': no drive with that id here", name);
        return NULL;
    }
    if (blk_is_read_only(blk)) {
        error_setg(errp, "Block device '%s' is read-only and cannot receive migrated data", name);
        return NULL;
    }
    int64_t size = blk_getlength(blk);
    if (size <= 0) {
        error_setg(errp, "Error getting length of block device %s", name);
        return NULL;
    }
    if (offset % BLK_MIG_CHUNK_SIZE) {
        error_setg(errp, "Block migration chunk of '%s' at 0x%" PRIx64 " is not 1 MiB aligned",
                   name, offset);
        return NULL;
    }
    if (offset >= (uint64_t)size) {
        error_setg(errp, "Block device '%s' is smaller than the source's: %" PRId64
                   " bytes here, the source sends data at offset %" PRIu64, name, size, offset);
        return NULL;
    }
    return blk;
}

/* Write [off, off + len) of buf, all-zero 64 KiB pieces as write-zeroes. */
static int write_chunk(BlockBackend *blk, uint64_t off, const uint8_t *buf, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        size_t piece = MIN(ZERO_PIECE, len - pos);
        bool zero = block_mig_buffer_is_zero(buf + pos, piece);
        size_t run = piece;
        while (pos + run < len) {          /* extend while the kind stays the same */
            size_t next = MIN(ZERO_PIECE, len - pos - run);
            if (block_mig_buffer_is_zero(buf + pos + run, next) != zero) {
                break;
            }
            run += next;
        }
        int ret = zero ? blk_pwrite_zeroes(blk, off + pos, run) : blk_pwrite(blk, off + pos, buf + pos, run);
        if (ret < 0) {
            return ret;
        }
        pos += run;
    }
    return 0;
}

static bool load_chunk(MigStream *f, uint64_t offset, bool zero, uint8_t **buf, Error **errp)
{
    BlockBackend *blk = load_drive(f, offset, errp);
    if (!blk) {
        return false;
    }
    uint64_t size = (uint64_t)blk_getlength(blk);
    size_t len = MIN((uint64_t)BLK_MIG_CHUNK_SIZE, size - offset);
    int ret;
    if (zero) {
        ret = blk_pwrite_zeroes(blk, offset, len);
    } else {
        if (!*buf) {
            *buf = g_malloc(BLK_MIG_CHUNK_SIZE);
        }
        mig_stream_get_buffer(f, *buf, BLK_MIG_CHUNK_SIZE);
        if (!mig_stream_check(f, errp, "Failed to read the chunk at 0x%" PRIx64 " of block device %s",
                              offset, blk_name(blk))) {
            return false;
        }
        if (!block_mig_buffer_is_zero(*buf + len, BLK_MIG_CHUNK_SIZE - len)) {
            error_setg(errp, "Block device '%s' is smaller than the source's: %" PRIu64
                       " bytes here, the source has data past that", blk_name(blk), size);
            return false;
        }
        ret = write_chunk(blk, offset, *buf, len);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to write %zu bytes at 0x%" PRIx64 " of block device %s",
                         len, offset, blk_name(blk));
        return false;
    }
    return true;
}

/* Set once at start-up (tests silence it); the incoming thread prints. */
static bool progress_silent;

void block_mig_set_progress_silent(bool silent)
{
    progress_silent = silent;
}

static void print_progress(unsigned percent)
{
    static bool banner_printed;     /* once per process, as QEMU; incoming thread only */
    if (progress_silent) {
        return;
    }
    if (!banner_printed) {
        printf("Receiving block device images\n");
        banner_printed = true;
    }
    printf("Completed %u %%%s", percent, percent == 100 ? "\n" : "\r");
    fflush(stdout);
}

bool block_mig_load(MigStream *f, int version_id, Error **errp)
{
    if (version_id != BLK_MIG_VERSION) {
        error_setg(errp, "Unsupported block migration version %d", version_id);
        return false;
    }
    uint8_t *buf = NULL;       /* one chunk, allocated on the first data record */
    bool ok = true;
    while (ok) {
        uint64_t word = mig_stream_get_be64(f);
        if (!mig_stream_check(f, errp, "Failed to read a block migration record")) {
            ok = false;
            break;
        }
        uint64_t flags = word & BLK_MIG_FLAGS_MASK, addr = word & ~(uint64_t)BLK_MIG_FLAGS_MASK;
        if (flags == BLK_MIG_FLAG_EOS && addr == 0) {
            break;
        }
        switch (flags) {
        case BLK_MIG_FLAG_DEVICE_BLOCK:
        case BLK_MIG_FLAG_DEVICE_BLOCK | BLK_MIG_FLAG_ZERO_BLOCK:
            ok = load_chunk(f, addr, flags & BLK_MIG_FLAG_ZERO_BLOCK, &buf, errp);
            break;
        case BLK_MIG_FLAG_PROGRESS:
            if ((word >> 9) > 100) {
                error_setg(errp, "Block migration progress %" PRIu64 " %% is out of range", word >> 9);
                ok = false;
            } else {
                print_progress((unsigned)(word >> 9));
            }
            break;
        default:
            error_setg(errp, "Unknown block migration flags: 0x%" PRIx64 " (record 0x%016" PRIx64 ")",
                       flags, word);
            ok = false;
        }
    }
    g_free(buf);
    return ok;
}
