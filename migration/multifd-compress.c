/*
 * Multifd compression as QEMU 7.2 does it: one zlib or zstd stream per
 * channel for the whole migration, never ended; each packet's pages are fed
 * in order and the last one flushes (zlib Z_SYNC_FLUSH, zstd flush), so each
 * payload decodes on its own given the ones before it on the same channel.
 * The decoder inflates straight into guest RAM, a page at a time, and must
 * produce exactly the packet's pages.
 */
#include "multifd.h"
#include "tsan.h"

#include <string.h>
#include <zlib.h>
#include <zstd.h>
#include <glib.h>

#define PACKET_BYTES (MULTIFD_PACKET_PAGES * MIGVM_PAGE_SIZE)

struct MultifdCodec {
    MultiFDCompression method;
    bool encoder;
    z_stream z;
    ZSTD_CStream *zc;
    ZSTD_DStream *zd;
    uint8_t *buf;               /* encoder output */
    size_t buf_size;
};

MultifdCodec *multifd_codec_new_encoder(MultiFDCompression method, int level, Error **errp)
{
    if (method == MULTIFD_COMPRESSION_NONE) {
        return NULL;
    }
    MultifdCodec *c = g_new0(MultifdCodec, 1);
    c->method = method;
    c->encoder = true;
    if (method == MULTIFD_COMPRESSION_ZLIB) {
        if (deflateInit(&c->z, level) != Z_OK) {
            error_setg(errp, "multifd: deflate init failed");
            g_free(c);
            return NULL;
        }
        c->buf_size = compressBound(PACKET_BYTES);
    } else {
        c->zc = ZSTD_createCStream();
        if (!c->zc || ZSTD_isError(ZSTD_initCStream(c->zc, level))) {
            error_setg(errp, "multifd: zstd init failed");
            multifd_codec_free(c);
            return NULL;
        }
        c->buf_size = ZSTD_compressBound(PACKET_BYTES);
    }
    c->buf = g_malloc(c->buf_size);
    return c;
}

MultifdCodec *multifd_codec_new_decoder(MultiFDCompression method, Error **errp)
{
    if (method == MULTIFD_COMPRESSION_NONE) {
        return NULL;
    }
    MultifdCodec *c = g_new0(MultifdCodec, 1);
    c->method = method;
    if (method == MULTIFD_COMPRESSION_ZLIB) {
        if (inflateInit(&c->z) != Z_OK) {
            error_setg(errp, "multifd: inflate init failed");
            g_free(c);
            return NULL;
        }
    } else {
        c->zd = ZSTD_createDStream();
        if (!c->zd || ZSTD_isError(ZSTD_initDStream(c->zd))) {
            error_setg(errp, "multifd: zstd init failed");
            multifd_codec_free(c);
            return NULL;
        }
    }
    return c;
}

void multifd_codec_free(MultifdCodec *c)
{
    if (!c) {
        return;
    }
    if (c->method == MULTIFD_COMPRESSION_ZLIB) {
        if (c->encoder) {
            deflateEnd(&c->z);
        } else {
            inflateEnd(&c->z);
        }
    }
    ZSTD_freeCStream(c->zc);
    ZSTD_freeDStream(c->zd);
    g_free(c->buf);
    g_free(c);
}

static bool zlib_compress(MultifdCodec *c, uint8_t *const *pages, unsigned n, uint32_t *len, Error **errp)
{
    z_stream *z = &c->z;
    z->next_out = c->buf;
    z->avail_out = (uInt)c->buf_size;
    for (unsigned i = 0; i < n; i++) {
        int flush = i == n - 1 ? Z_SYNC_FLUSH : Z_NO_FLUSH;
        z->next_in = pages[i];
        z->avail_in = MIGVM_PAGE_SIZE;
        int ret;
        do {
            tsan_ignore_begin();        /* guest RAM (include/tsan.h) */
            ret = deflate(z, flush);
            tsan_ignore_end();
        } while (ret == Z_OK && z->avail_in && z->avail_out);
        if (ret != Z_OK || z->avail_in) {
            error_setg(errp, "multifd: zlib compression failed (%d)", ret);
            return false;
        }
    }
    *len = (uint32_t)(c->buf_size - z->avail_out);
    return true;
}

static bool zstd_compress(MultifdCodec *c, uint8_t *const *pages, unsigned n, uint32_t *len, Error **errp)
{
    ZSTD_outBuffer out = { c->buf, c->buf_size, 0 };
    for (unsigned i = 0; i < n; i++) {
        ZSTD_EndDirective end = i == n - 1 ? ZSTD_e_flush : ZSTD_e_continue;
        ZSTD_inBuffer in = { pages[i], MIGVM_PAGE_SIZE, 0 };
        size_t ret;
        do {
            tsan_ignore_begin();
            ret = ZSTD_compressStream2(c->zc, &out, &in, end);
            tsan_ignore_end();
        } while (!ZSTD_isError(ret) && out.pos < out.size &&
                 (in.pos < in.size || (end == ZSTD_e_flush && ret > 0)));
        if (ZSTD_isError(ret) || in.pos < in.size || (end == ZSTD_e_flush && ret > 0)) {
            error_setg(errp, "multifd: zstd compression failed: %s",
                       ZSTD_isError(ret) ? ZSTD_getErrorName(ret) : "output full");
            return false;
        }
    }
    *len = (uint32_t)out.pos;
    return true;
}

bool multifd_codec_compress(MultifdCodec *c, uint8_t *const *pages, unsigned n,
                            const uint8_t **out, uint32_t *len, Error **errp)
{
    bool ok = c->method == MULTIFD_COMPRESSION_ZLIB ? zlib_compress(c, pages, n, len, errp)
                                                    : zstd_compress(c, pages, n, len, errp);
    *out = c->buf;
    return ok;
}

static bool zlib_decompress(MultifdCodec *c, const uint8_t *in, uint32_t len, uint8_t *const *pages,
                            unsigned n, Error **errp)
{
    z_stream *z = &c->z;
    z->next_in = (Bytef *)in;
    z->avail_in = len;
    uint64_t produced = 0;
    for (unsigned i = 0; i < n; i++) {
        int flush = i == n - 1 ? Z_SYNC_FLUSH : Z_NO_FLUSH;
        z->next_out = pages[i];
        z->avail_out = MIGVM_PAGE_SIZE;
        int ret;
        do {
            uLong before = z->total_out;
            tsan_ignore_begin();
            ret = inflate(z, flush);
            tsan_ignore_end();
            if (ret == Z_BUF_ERROR && z->total_out != before) {
                ret = Z_OK;
            }
        } while (ret == Z_OK && z->avail_out && z->avail_in);
        produced += MIGVM_PAGE_SIZE - z->avail_out;
        if (ret != Z_OK && !(ret == Z_BUF_ERROR && !z->avail_out)) {
            error_setg(errp, "multifd: inflate returned %d (%s)", ret, z->msg ? z->msg : "stream end or error");
            return false;
        }
        if (z->avail_out) {
            break;
        }
    }
    if (produced == (uint64_t)n * MIGVM_PAGE_SIZE && z->avail_in) {
        /* The pages are out; what is left is the flush's empty block. */
        uint8_t none;
        z->next_out = &none;
        z->avail_out = 0;
        inflate(z, Z_SYNC_FLUSH);
        if (z->avail_in) {
            error_setg(errp, "multifd: %u compressed bytes left after the packet's pages", z->avail_in);
            return false;
        }
    }
    if (produced != (uint64_t)n * MIGVM_PAGE_SIZE) {
        error_setg(errp, "multifd: packet size received %" G_GUINT64_FORMAT " size expected %u", produced,
                   (unsigned)(n * MIGVM_PAGE_SIZE));
        return false;
    }
    return true;
}

static bool zstd_decompress(MultifdCodec *c, const uint8_t *in, uint32_t len, uint8_t *const *pages,
                            unsigned n, Error **errp)
{
    ZSTD_inBuffer ib = { in, len, 0 };
    for (unsigned i = 0; i < n; i++) {
        ZSTD_outBuffer ob = { pages[i], MIGVM_PAGE_SIZE, 0 };
        for (;;) {
            size_t before_in = ib.pos, before_out = ob.pos;
            tsan_ignore_begin();
            size_t ret = ZSTD_decompressStream(c->zd, &ob, &ib);
            tsan_ignore_end();
            if (ZSTD_isError(ret)) {
                error_setg(errp, "multifd: zstd decompression failed: %s", ZSTD_getErrorName(ret));
                return false;
            }
            if (ob.pos == ob.size) {
                break;
            }
            if (ib.pos == before_in && ob.pos == before_out) {
                error_setg(errp, "multifd: packet size received %u size expected %u",
                           (unsigned)(i * MIGVM_PAGE_SIZE + ob.pos), (unsigned)(n * MIGVM_PAGE_SIZE));
                return false;
            }
        }
    }
    while (ib.pos < ib.size) {
        /* The pages are out; what is left carries no data (block ends). */
        size_t before = ib.pos;
        ZSTD_outBuffer none = { NULL, 0, 0 };
        size_t ret = ZSTD_decompressStream(c->zd, &none, &ib);
        if (ZSTD_isError(ret) || ib.pos == before) {
            error_setg(errp, "multifd: %u compressed bytes left after the packet's pages",
                       (unsigned)(ib.size - ib.pos));
            return false;
        }
    }
    return true;
}

bool multifd_codec_decompress(MultifdCodec *c, const uint8_t *in, uint32_t len,
                              uint8_t *const *pages, unsigned n, Error **errp)
{
    if (c->method == MULTIFD_COMPRESSION_ZLIB) {
        return zlib_decompress(c, in, len, pages, n, errp);
    }
    return zstd_decompress(c, in, len, pages, n, errp);
}
