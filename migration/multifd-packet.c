/*
 * Multifd wire format, QEMU 7.2's (all integers big-endian):
 *
 * Each multifd connection opens with one 64-byte initial packet:
 *   be32 magic 0x11223344, be32 version 1, 16 bytes uuid (the VM's; zero
 *   without -uuid), u8 channel id (0..N-1), 39 zero bytes.
 * Then only packets, each a fixed 1344-byte header and a payload:
 *   be32 magic, be32 version, be32 flags (0x1 SYNC; bits 1-3 compression:
 *   0 none, 0x2 zlib, 0x4 zstd), be32 pages_alloc (128), be32 normal_pages,
 *   be32 next_packet_size (payload bytes), be64 packet_num (one sequence
 *   over all channels), 32 zero bytes, 256 bytes RAM block name
 *   (NUL-padded), 128 x be64 page offsets inside the block (the first
 *   normal_pages count; the rest, and the name and size of an empty packet,
 *   may be stale: readers ignore them).
 * Payload: normal_pages pages (none: 4096 bytes each, in offset order;
 * zlib/zstd: next_packet_size bytes of the channel's one compression stream,
 * sync-flushed per packet). An empty packet has no payload.
 * Zero pages never travel here: they stay on the main channel.
 */
#include "multifd.h"

#include <inttypes.h>
#include <string.h>

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

static void put_be64(uint8_t *p, uint64_t v)
{
    put_be32(p, v >> 32);
    put_be32(p + 4, (uint32_t)v);
}

static uint32_t get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
    return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

void multifd_init_encode(const MultifdInit *init, uint8_t buf[MULTIFD_INIT_SIZE])
{
    memset(buf, 0, MULTIFD_INIT_SIZE);
    put_be32(buf, MULTIFD_MAGIC);
    put_be32(buf + 4, MULTIFD_VERSION);
    memcpy(buf + 8, init->uuid, 16);
    buf[24] = init->id;
}

bool multifd_init_parse(const uint8_t buf[MULTIFD_INIT_SIZE], MultifdInit *init, Error **errp)
{
    uint32_t magic = get_be32(buf), version = get_be32(buf + 4);
    if (magic != MULTIFD_MAGIC) {
        error_setg(errp, "multifd: received packet magic %x expected %x", magic, MULTIFD_MAGIC);
        return false;
    }
    if (version != MULTIFD_VERSION) {
        error_setg(errp, "multifd: received packet version %u expected %u", version, MULTIFD_VERSION);
        return false;
    }
    memcpy(init->uuid, buf + 8, 16);
    init->id = buf[24];
    return true;
}

void multifd_packet_encode(const MultifdPacket *p, uint8_t buf[MULTIFD_HEADER_SIZE])
{
    put_be32(buf, MULTIFD_MAGIC);
    put_be32(buf + 4, MULTIFD_VERSION);
    put_be32(buf + 8, p->flags);
    put_be32(buf + 12, p->pages_alloc);
    put_be32(buf + 16, p->normal_pages);
    put_be32(buf + 20, p->next_packet_size);
    put_be64(buf + 24, p->packet_num);
    memset(buf + 32, 0, 32);
    memset(buf + 64, 0, 256);
    memcpy(buf + 64, p->ramblock, strnlen(p->ramblock, 255));
    for (unsigned i = 0; i < MULTIFD_PACKET_PAGES; i++) {
        put_be64(buf + 320 + 8 * i, i < p->normal_pages ? p->offset[i] : 0);
    }
}

bool multifd_packet_parse(const uint8_t buf[MULTIFD_HEADER_SIZE], MultifdPacket *p, Error **errp)
{
    uint32_t magic = get_be32(buf), version = get_be32(buf + 4);
    if (magic != MULTIFD_MAGIC) {
        error_setg(errp, "multifd: received packet magic %x and expected magic %x", magic, MULTIFD_MAGIC);
        return false;
    }
    if (version != MULTIFD_VERSION) {
        error_setg(errp, "multifd: received packet version %u and expected version %u", version,
                   MULTIFD_VERSION);
        return false;
    }
    p->flags = get_be32(buf + 8);
    p->pages_alloc = get_be32(buf + 12);
    p->normal_pages = get_be32(buf + 16);
    p->next_packet_size = get_be32(buf + 20);
    p->packet_num = get_be64(buf + 24);
    if (p->pages_alloc > MULTIFD_PACKET_PAGES) {
        error_setg(errp, "multifd: received packet with size %u and expected a size of %u",
                   p->pages_alloc, (unsigned)MULTIFD_PACKET_PAGES);
        return false;
    }
    if (p->normal_pages > p->pages_alloc) {
        error_setg(errp, "multifd: received packet with %u pages and expected maximum pages are %u",
                   p->normal_pages, p->pages_alloc);
        return false;
    }
    memcpy(p->ramblock, buf + 64, 256);
    p->ramblock[255] = '\0';
    for (unsigned i = 0; i < p->normal_pages; i++) {
        p->offset[i] = get_be64(buf + 320 + 8 * i);
    }
    return true;
}

uint32_t multifd_compression_flag(MultiFDCompression method)
{
    switch (method) {
    case MULTIFD_COMPRESSION_ZLIB:
        return MULTIFD_FLAG_ZLIB;
    case MULTIFD_COMPRESSION_ZSTD:
        return MULTIFD_FLAG_ZSTD;
    default:
        return MULTIFD_FLAG_NOCOMP;
    }
}

bool multifd_packet_check(const MultifdPacket *p, unsigned id, uint32_t expected_comp, RAMBlock **block,
                          Error **errp)
{
    *block = NULL;
    if (p->normal_pages == 0) {
        return true;        /* name, size and offsets are stale: ignored */
    }
    uint32_t comp = p->flags & MULTIFD_FLAG_COMPRESSION_MASK;
    if (comp != expected_comp) {
        error_setg(errp, "multifd %u: flags received %x flags expected %x", id, comp, expected_comp);
        return false;
    }
    RAMBlock *b = ram_block_by_name(p->ramblock);
    if (!b) {
        error_setg(errp, "multifd: unknown ram block %s", p->ramblock);
        return false;
    }
    for (unsigned i = 0; i < p->normal_pages; i++) {
        uint64_t off = p->offset[i];
        /* QEMU 7.2 does not check alignment; an unaligned page would straddle two. */
        if (off > b->used_length - MIGVM_PAGE_SIZE || (off & (MIGVM_PAGE_SIZE - 1))) {
            error_setg(errp, "multifd: offset too long %" PRIu64 " (max %" PRIx64 ")", off,
                       (uint64_t)(b->used_length - MIGVM_PAGE_SIZE));
            return false;
        }
    }
    if ((p->flags & MULTIFD_FLAG_COMPRESSION_MASK) && p->next_packet_size > MULTIFD_MAX_COMPRESSED) {
        error_setg(errp, "multifd: compressed packet of %u bytes exceeds %u", p->next_packet_size,
                   MULTIFD_MAX_COMPRESSED);
        return false;
    }
    *block = b;
    return true;
}
