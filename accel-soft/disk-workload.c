/*
 * The soft accelerator's disk workload (see disk-workload.h): runs on vCPU 0
 * between page chunks (workload.c), so a stop request waits for at most one
 * step, and every write it made is complete, and marked in the drive's dirty
 * bitmaps by the block layer, before the vCPU reports stopped.
 */
#include <string.h>
#include <glib.h>
#include "clock.h"
#include "disk-workload.h"

#define WORDS (SOFT_DISK_BLOCK / 8)
#define GOLDEN 0x9e3779b97f4a7c15ULL
#define ADDR_SALT (1ULL << 63)

static uint64_t mix(uint64_t addr, uint64_t gen)
{
    uint64_t x = addr ^ (gen * GOLDEN);

    x ^= x >> 31;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 29;
    return x;
}

static void out_text(SoftDiskWorkload *dw, const char *text)
{
    for (const char *p = text; dw->out && *p; p++) {
        dw->out(dw->out_opaque, (uint8_t)*p);
    }
}

static void disk_error(SoftDiskWorkload *dw, SoftDisk *d, const char *fmt, ...) G_GNUC_PRINTF(3, 4);
static void disk_error(SoftDiskWorkload *dw, SoftDisk *d, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    g_autofree char *what = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_autofree char *line = g_strdup_printf("ERROR: disk %s %s\n", blk_name(d->blk), what);
    out_text(dw, line);
    d->pass_errors++;
    dw->errors++;
}

/* Drives the workload writes: writable, if=virtio or if=none. */
static bool drive_wanted(BlockBackend *blk)
{
    const char *itf = blk_interface(blk);

    return !blk_is_read_only(blk) && (!strcmp(itf, "virtio") || !strcmp(itf, "none"));
}

bool disk_workload_init(SoftDiskWorkload *dw, uint64_t disk_rate_mib, Error **errp)
{
    if (disk_rate_mib > UINT64_MAX / (1024 * 1024)) {
        error_setg(errp, "disk-rate %llu is too large", (unsigned long long)disk_rate_mib);
        return false;
    }
    memset(dw->disks, 0, sizeof(dw->disks));
    dw->ndisks = 0;
    for (BlockBackend *blk = blk_next(NULL); blk; blk = blk_next(blk)) {
        if (!drive_wanted(blk)) {
            continue;
        }
        if (dw->ndisks == SOFT_DISK_MAX) {
            error_setg(errp, "soft accelerator: disk-rate writes at most %d drives", SOFT_DISK_MAX);
            return false;
        }
        SoftDisk *d = &dw->disks[dw->ndisks++];
        uint64_t blocks = (uint64_t)blk_getlength(blk) / SOFT_DISK_BLOCK;
        d->blk = blk;
        d->chunk_blocks = MIN(blocks, SOFT_DISK_CHUNK_BLOCKS);
        d->chunks = d->chunk_blocks ? blocks / d->chunk_blocks : 0;
    }
    dw->enabled = true;
    dw->bytes_per_sec = disk_rate_mib * 1024 * 1024;
    dw->buf = g_malloc(SOFT_DISK_CHUNK_BLOCKS * SOFT_DISK_BLOCK);
    disk_workload_reset(dw);
    return true;
}

void disk_workload_reset(SoftDiskWorkload *dw)
{
    for (uint32_t i = 0; i < dw->ndisks; i++) {
        dw->disks[i].next_chunk = 0;
        dw->disks[i].passes = 0;
        dw->disks[i].pass_errors = 0;
    }
    dw->turn = 0;
}

void disk_workload_cleanup(SoftDiskWorkload *dw)
{
    g_free(dw->buf);
    memset(dw, 0, sizeof(*dw));
}

bool disk_workload_active(const SoftDiskWorkload *dw)
{
    for (uint32_t i = 0; dw->enabled && i < dw->ndisks; i++) {
        if (dw->disks[i].chunks) {
            return true;
        }
    }
    return false;
}

void disk_workload_restart_bucket(SoftDiskWorkload *dw, double now)
{
    dw->bucket_start_ns = now;
    dw->bucket_bytes = 0;
}

double disk_workload_due_ns(const SoftDiskWorkload *dw)
{
    if (!dw->bytes_per_sec) {
        return 0;
    }
    return dw->bucket_start_ns + dw->bucket_bytes * 1e9 / (double)dw->bytes_per_sec;
}

static uint64_t chunk_offset(const SoftDisk *d, uint64_t chunk)
{
    return chunk * d->chunk_blocks * SOFT_DISK_BLOCK;
}

static void fill_block(uint64_t *w, uint64_t a, uint64_t gen)
{
    uint64_t s = mix(a | ADDR_SALT, gen), sum = gen + a;

    w[0] = GUINT64_TO_LE(gen);
    w[1] = GUINT64_TO_LE(a);
    for (uint64_t i = 2; i < WORDS - 1; i++) {
        uint64_t v = s ^ (i * GOLDEN);
        w[i] = GUINT64_TO_LE(v);
        sum += v;
    }
    w[WORDS - 1] = GUINT64_TO_LE(sum);
}

/* The first thing wrong with a block, as one ERROR line. */
static void check_block(SoftDiskWorkload *dw, SoftDisk *d, const uint64_t *w, uint64_t a, uint64_t gen)
{
    uint64_t s = mix(a | ADDR_SALT, gen), sum = 0;

    for (uint64_t i = 0; i < WORDS - 1; i++) {
        sum += GUINT64_FROM_LE(w[i]);
    }
    if (GUINT64_FROM_LE(w[0]) != gen) {
        disk_error(dw, d, "block 0x%" G_GINT64_MODIFIER "x: generation %" G_GUINT64_FORMAT
                   " expected %" G_GUINT64_FORMAT, a, GUINT64_FROM_LE(w[0]), gen);
        return;
    }
    if (GUINT64_FROM_LE(w[1]) != a) {
        disk_error(dw, d, "block 0x%" G_GINT64_MODIFIER "x: holds address 0x%" G_GINT64_MODIFIER "x",
                   a, GUINT64_FROM_LE(w[1]));
        return;
    }
    for (uint64_t i = 2; i < WORDS - 1; i++) {
        if (GUINT64_FROM_LE(w[i]) != (s ^ (i * GOLDEN))) {
            disk_error(dw, d, "block 0x%" G_GINT64_MODIFIER "x: word %" G_GUINT64_FORMAT " wrong", a, i);
            return;
        }
    }
    if (GUINT64_FROM_LE(w[WORDS - 1]) != sum) {
        disk_error(dw, d, "block 0x%" G_GINT64_MODIFIER "x: bad checksum", a);
    }
}

static void end_pass(SoftDiskWorkload *dw, SoftDisk *d)
{
    d->next_chunk = 0;
    d->passes++;
    g_autofree char *line = d->pass_errors
        ? g_strdup_printf("DISK %s pass %" G_GUINT64_FORMAT " errors=%" G_GUINT64_FORMAT "\n",
                          blk_name(d->blk), d->passes, d->pass_errors)
        : g_strdup_printf("DISK %s pass %" G_GUINT64_FORMAT " ok\n", blk_name(d->blk), d->passes);
    out_text(dw, line);
    d->pass_errors = 0;
}

static void write_chunk(SoftDiskWorkload *dw, SoftDisk *d)
{
    uint64_t off = chunk_offset(d, d->next_chunk), gen = d->passes + 1;
    size_t bytes = d->chunk_blocks * SOFT_DISK_BLOCK;

    for (uint64_t k = 0; k < d->chunk_blocks; k++) {
        fill_block((uint64_t *)(dw->buf + k * SOFT_DISK_BLOCK), off + k * SOFT_DISK_BLOCK, gen);
    }
    int ret = blk_pwrite(d->blk, (int64_t)off, dw->buf, bytes);
    if (ret < 0) {
        disk_error(dw, d, "write at 0x%" G_GINT64_MODIFIER "x: %s", off, g_strerror(-ret));
    }
    dw->bucket_bytes += bytes;
    if (++d->next_chunk == d->chunks) {
        end_pass(dw, d);
    }
}

static void verify_chunk(SoftDiskWorkload *dw, SoftDisk *d, uint64_t chunk)
{
    uint64_t gen = chunk < d->next_chunk ? d->passes + 1 : d->passes;
    uint64_t off = chunk_offset(d, chunk);

    if (!gen) {
        return;                          /* not written since power-on */
    }
    int ret = blk_pread(d->blk, (int64_t)off, dw->buf, d->chunk_blocks * SOFT_DISK_BLOCK);
    if (ret < 0) {
        disk_error(dw, d, "read at 0x%" G_GINT64_MODIFIER "x: %s", off, g_strerror(-ret));
        return;
    }
    for (uint64_t k = 0; k < d->chunk_blocks; k++) {
        check_block(dw, d, (const uint64_t *)(dw->buf + k * SOFT_DISK_BLOCK), off + k * SOFT_DISK_BLOCK, gen);
    }
}

void disk_workload_step(SoftDiskWorkload *dw)
{
    for (uint32_t tries = 0; tries < dw->ndisks; tries++) {
        SoftDisk *d = &dw->disks[dw->turn];
        dw->turn = (dw->turn + 1) % dw->ndisks;
        if (!d->chunks) {
            continue;
        }
        uint64_t written = d->next_chunk;
        verify_chunk(dw, d, written);        /* what it holds before being overwritten */
        write_chunk(dw, d);
        verify_chunk(dw, d, d->chunks > 1 ? (written + d->chunks / 2) % d->chunks : written);
        return;
    }
}

/* ---- VMState: the "soft-cpu/disk" subsection's body ---- */

static bool disk_post_load(void *opaque, int version_id, Error **errp)
{
    SoftDisk *d = opaque;

    if (d->next_chunk >= d->chunks && !(d->chunks == 0 && d->next_chunk == 0)) {
        error_setg(errp, "soft-cpu/disk: chunk %llu outside a drive of %llu chunks",
                   (unsigned long long)d->next_chunk, (unsigned long long)d->chunks);
        return false;
    }
    return true;
}

static const VMStateField soft_disk_fields[] = {
    VMSTATE_UINT64_EQUAL(chunks, SoftDisk),
    VMSTATE_UINT64(next_chunk, SoftDisk),
    VMSTATE_UINT64(passes, SoftDisk),
    VMSTATE_END_OF_LIST()
};

static const VMStateDescription vmstate_soft_disk = {
    .name = "soft-disk",
    .version_id = 1,
    .minimum_version_id = 1,
    .post_load = disk_post_load,
    .fields = soft_disk_fields,
};

static const VMStateField soft_disk_workload_fields[] = {
    VMSTATE_UINT32_EQUAL(ndisks, SoftDiskWorkload),
    VMSTATE_STRUCT_ARRAY(disks, SoftDiskWorkload, SOFT_DISK_MAX, vmstate_soft_disk, SoftDisk),
    VMSTATE_END_OF_LIST()
};

const VMStateDescription vmstate_soft_disk_workload = {
    .name = "soft-disk-workload",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = soft_disk_workload_fields,
};
