/*
 * Drives: the registry, raw image files and the I/O itself.
 *
 * A drive is an open file descriptor on a raw image. cache=none and
 * directsync open it with O_DIRECT: the kernel then wants the offset, the
 * length and every buffer aligned to the device's logical block size
 * (probed at open: 512 or 4096 bytes). Requests that are not aligned go
 * through an aligned bounce buffer; a write that covers part of a block
 * reads the whole block first, under the drive's rmw_lock held exclusively,
 * while aligned requests hold it shared, so no read-modify-write can undo a
 * concurrent write to the same block.
 *
 * The drive list is built before the board exists and freed by
 * block_cleanup(); in between it never changes, so it is walked without a
 * lock (block.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <unistd.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <glib.h>
#include "block-int.h"
#include "tsan.h"
#include "vm.h"

#define BOUNCE_MAX (1 << 20)            /* bounce buffers go in pieces of this */

static BlockBackend *drives;            /* the list, creation order */
static unsigned node_counter;

/* ---- registry ---------------------------------------------------------------- */

BlockBackend *blk_next(BlockBackend *prev)
{
    return prev ? prev->next : drives;
}

BlockBackend *blk_by_name(const char *name)
{
    for (BlockBackend *blk = drives; blk; blk = blk->next) {
        if (!strcmp(blk->name, name)) {
            return blk;
        }
    }
    return NULL;
}

int blk_index_used(const char *interface, int index)
{
    for (BlockBackend *blk = drives; blk; blk = blk->next) {
        if (!strcmp(blk->interface, interface) && blk->index == index) {
            return true;
        }
    }
    return false;
}

void blk_publish(BlockBackend *blk)
{
    BlockBackend **tail = &drives;

    while (*tail) {
        tail = &(*tail)->next;
    }
    *tail = blk;
}

const char *blk_name(const BlockBackend *blk)
{
    return blk->name;
}

const char *blk_filename(const BlockBackend *blk)
{
    return blk->filename;
}

const char *blk_interface(const BlockBackend *blk)
{
    return blk->interface;
}

int64_t blk_getlength(const BlockBackend *blk)
{
    return blk->size;
}

bool blk_is_read_only(const BlockBackend *blk)
{
    return blk->read_only;
}

bool blk_attach_dev(BlockBackend *blk, const char *dev_id, Error **errp)
{
    assert(bql_locked());
    if (blk->attached_dev) {
        /* QEMU's text for a drive a device already uses. */
        error_setg(errp, "Drive '%s' is already in use by another device", blk->name);
        return false;
    }
    blk->attached_dev = g_strdup(dev_id);
    return true;
}

const char *blk_get_attached_dev(const BlockBackend *blk)
{
    return blk->attached_dev;
}

/* ---- open --------------------------------------------------------------------- */

static int64_t fd_size(int fd)
{
    struct stat st;
    uint64_t bytes;

    if (fstat(fd, &st) < 0) {
        return -errno;
    }
    if (S_ISBLK(st.st_mode)) {
        return ioctl(fd, BLKGETSIZE64, &bytes) < 0 ? -errno : (int64_t)bytes;
    }
    return st.st_size;
}

/* O_DIRECT's alignment: a block device says; for a file, try a 512-byte read. */
static uint32_t probe_alignment(int fd, int64_t size)
{
    int sector;
    void *buf;
    uint32_t align = 4096;

    if (ioctl(fd, BLKSSZGET, &sector) == 0 && sector >= 512) {
        return sector;
    }
    if (size >= 1024 && posix_memalign(&buf, 4096, 1024) == 0) {
        /* 512 bytes at offset 512 from a buffer 512 past a page boundary. */
        if (pread(fd, (char *)buf + 512, 512, 512) == 512) {
            align = 512;
        }
        free(buf);
    }
    return align;
}

BlockBackend *blk_open(const DriveOptions *opts, const char *name, Error **errp)
{
    int flags = (opts->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC | (opts->direct ? O_DIRECT : 0);
    int fd = open(opts->file, flags);

    if (fd < 0) {
        error_setg_errno(errp, errno, "Could not open '%s'", opts->file);
        return NULL;
    }
    int64_t size = fd_size(fd);
    if (size < 0) {
        error_setg_errno(errp, (int)-size, "Could not get the size of '%s'", opts->file);
        close(fd);
        return NULL;
    }
    BlockBackend *blk = g_new0(BlockBackend, 1);
    blk->name = g_strdup(name);
    /* Distinct for a thousand nodes (157 is prime to 1000), QEMU-like. */
    blk->file_node_name = g_strdup_printf("#block%03u", (++node_counter * 157) % 1000);
    blk->node_name = g_strdup_printf("#block%03u", (++node_counter * 157) % 1000);
    blk->filename = g_strdup(opts->file);
    blk->interface = g_strdup(opts->interface);
    blk->index = opts->index;
    blk->fd = fd;
    /* As QEMU: a drive is whole sectors; the tail of the last one reads as
     * zeros and a write there extends the file. */
    blk->size = (size + BDRV_SECTOR_SIZE - 1) / BDRV_SECTOR_SIZE * BDRV_SECTOR_SIZE;
    blk->read_only = opts->read_only;
    blk->direct = opts->direct;
    blk->writeback = opts->writeback;
    blk->no_flush = opts->no_flush;
    blk->werror = opts->werror;
    blk->rerror = opts->rerror;
    blk->align = opts->direct ? probe_alignment(fd, size) : 1;
    pthread_rwlock_init(&blk->rmw_lock, NULL);
    pthread_mutex_init(&blk->bitmaps_lock, NULL);
    blk->bitmaps = g_ptr_array_new();
    return blk;
}

static void blk_close(BlockBackend *blk)
{
    if (!blk->read_only && !blk->no_flush) {
        fdatasync(blk->fd);
    }
    close(blk->fd);
    for (guint i = 0; i < blk->bitmaps->len; i++) {
        dirty_bitmap_free(blk->bitmaps->pdata[i]);
    }
    g_ptr_array_free(blk->bitmaps, TRUE);
    pthread_mutex_destroy(&blk->bitmaps_lock);
    pthread_rwlock_destroy(&blk->rmw_lock);
    g_free(blk->name);
    g_free(blk->node_name);
    g_free(blk->file_node_name);
    g_free(blk->filename);
    g_free(blk->interface);
    g_free(blk->attached_dev);
    g_free(blk);
}

void block_cleanup(void)
{
    if (bql_locked()) {
        blk_drain_all();        /* callbacks run before the drives go away */
    }
    aio_pool_shutdown();
    while (drives) {
        BlockBackend *blk = drives;
        drives = blk->next;
        blk_close(blk);
    }
}

/* ---- the I/O ----------------------------------------------------------------------- */

static int check_request(const BlockBackend *blk, int64_t offset, size_t bytes)
{
    if (offset < 0 || bytes > INT64_MAX || offset > blk->size || (int64_t)bytes > blk->size - offset) {
        return -EIO;            /* QEMU: a request beyond the end fails with EIO */
    }
    return 0;
}

/* preadv/pwritev until done: short transfers continue; reading past the end of
 * the file (a block device never does) yields zeros. */
static int rw_full(BlockBackend *blk, bool write, int64_t offset, const struct iovec *iov, int iovcnt)
{
    struct iovec *v = g_memdup2(iov, sizeof(*iov) * iovcnt);
    struct iovec *cur = v;
    int left = iovcnt, ret = 0;

    while (left > 0) {
        if (cur->iov_len == 0) {
            cur++, left--;
            continue;
        }
        /* The buffers are often guest RAM (a device's request): include/tsan.h. */
        tsan_ignore_begin();
        ssize_t n = write ? pwritev(blk->fd, cur, MIN(left, IOV_MAX), offset)
                          : preadv(blk->fd, cur, MIN(left, IOV_MAX), offset);
        tsan_ignore_end();
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            ret = -errno;
            break;
        }
        if (n == 0) {
            if (write) {
                ret = -EIO;
                break;
            }
            tsan_ignore_begin();
            for (int i = 0; i < left; i++) {
                memset(cur[i].iov_base, 0, cur[i].iov_len);
            }
            tsan_ignore_end();
            break;
        }
        offset += n;
        while (n > 0) {
            size_t step = MIN((size_t)n, cur->iov_len);
            cur->iov_base = (char *)cur->iov_base + step;
            cur->iov_len -= step;
            n -= step;
            if (cur->iov_len == 0) {
                cur++, left--;
            }
        }
    }
    g_free(v);
    return ret;
}

static bool iov_aligned(const BlockBackend *blk, int64_t offset, const struct iovec *iov, int iovcnt)
{
    if (offset % blk->align) {
        return false;
    }
    for (int i = 0; i < iovcnt; i++) {
        if ((uintptr_t)iov[i].iov_base % blk->align || iov[i].iov_len % blk->align) {
            return false;
        }
    }
    return true;
}

static size_t iov_size(const struct iovec *iov, int iovcnt)
{
    size_t n = 0;

    for (int i = 0; i < iovcnt; i++) {
        n += iov[i].iov_len;
    }
    return n;
}

/* Copy between an iovec (starting `skip` bytes in) and a flat buffer. */
static void iov_copy(const struct iovec *iov, int iovcnt, size_t skip, void *buf, size_t len, bool to_iov)
{
    for (int i = 0; i < iovcnt && len; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        size_t n = MIN(len, iov[i].iov_len - skip);
        tsan_ignore_begin();            /* guest RAM, as in rw_full */
        if (to_iov) {
            memcpy((char *)iov[i].iov_base + skip, buf, n);
        } else {
            memcpy(buf, (char *)iov[i].iov_base + skip, n);
        }
        tsan_ignore_end();
        buf = (char *)buf + n;
        len -= n;
        skip = 0;
    }
}

/* An O_DIRECT request that is not aligned: through an aligned buffer, in
 * pieces of at most BOUNCE_MAX. A write reads the blocks it covers only in
 * part first. [rmw_lock held exclusively for writes] */
static int rw_bounced(BlockBackend *blk, bool write, int64_t offset, const struct iovec *iov, int iovcnt)
{
    size_t total = iov_size(iov, iovcnt), done = 0;
    void *buf;
    int ret = 0;

    if (posix_memalign(&buf, MAX(blk->align, 4096), BOUNCE_MAX + 2 * blk->align)) {
        return -ENOMEM;
    }
    while (done < total && ret == 0) {
        int64_t pos = offset + done;
        size_t len = MIN(total - done, BOUNCE_MAX);
        int64_t start = pos / blk->align * blk->align;
        int64_t end = (pos + len + blk->align - 1) / blk->align * blk->align;
        struct iovec b = { buf, end - start };

        if (!write || start != pos || end != (int64_t)(pos + len)) {
            ret = rw_full(blk, false, start, &b, 1);
        }
        if (ret == 0 && write) {
            iov_copy(iov, iovcnt, done, (char *)buf + (pos - start), len, false);
            ret = rw_full(blk, true, start, &b, 1);
        } else if (ret == 0) {
            iov_copy(iov, iovcnt, done, (char *)buf + (pos - start), len, true);
        }
        done += len;
    }
    free(buf);
    return ret;
}

static void note_write_end(BlockBackend *blk, int64_t end)
{
    int64_t cur = __atomic_load_n(&blk->wr_highest_offset, __ATOMIC_RELAXED);

    while (end > cur && !__atomic_compare_exchange_n(&blk->wr_highest_offset, &cur, end, false,
                                                     __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

static int blk_rw(BlockBackend *blk, bool write, int64_t offset, const struct iovec *iov, int iovcnt)
{
    size_t bytes = iov_size(iov, iovcnt);
    int ret = check_request(blk, offset, bytes);

    if (ret < 0 || bytes == 0) {
        return ret;
    }
    if (write && blk->read_only) {
        return -EPERM;
    }
    if (blk->align == 1) {
        ret = rw_full(blk, write, offset, iov, iovcnt);
    } else if (iov_aligned(blk, offset, iov, iovcnt)) {
        pthread_rwlock_rdlock(&blk->rmw_lock);
        ret = rw_full(blk, write, offset, iov, iovcnt);
        pthread_rwlock_unlock(&blk->rmw_lock);
    } else {
        if (write) {
            pthread_rwlock_wrlock(&blk->rmw_lock);
        } else {
            pthread_rwlock_rdlock(&blk->rmw_lock);
        }
        ret = rw_bounced(blk, write, offset, iov, iovcnt);
        pthread_rwlock_unlock(&blk->rmw_lock);
    }
    if (ret == 0 && write) {
        /* writethrough and directsync: the data is stable before completion. */
        if (!blk->writeback && !blk->no_flush && fdatasync(blk->fd) < 0) {
            ret = -errno;
        }
        blk_mark_dirty(blk, offset, bytes);
        note_write_end(blk, offset + bytes);
    }
    return ret;
}

int blk_do_preadv(BlockBackend *blk, int64_t offset, const struct iovec *iov, int iovcnt)
{
    return blk_rw(blk, false, offset, iov, iovcnt);
}

int blk_do_pwritev(BlockBackend *blk, int64_t offset, const struct iovec *iov, int iovcnt)
{
    return blk_rw(blk, true, offset, iov, iovcnt);
}

int blk_do_flush(BlockBackend *blk)
{
    if (blk->read_only || blk->no_flush) {
        return 0;
    }
    return fdatasync(blk->fd) < 0 ? -errno : 0;
}

int blk_pread(BlockBackend *blk, int64_t offset, void *buf, size_t bytes)
{
    struct iovec v = { buf, bytes };

    return blk_rw(blk, false, offset, &v, 1);
}

int blk_pwrite(BlockBackend *blk, int64_t offset, const void *buf, size_t bytes)
{
    struct iovec v = { (void *)buf, bytes };

    return blk_rw(blk, true, offset, &v, 1);
}

int blk_pwrite_zeroes(BlockBackend *blk, int64_t offset, size_t bytes)
{
    int ret = check_request(blk, offset, bytes);

    if (ret < 0 || bytes == 0) {
        return ret;
    }
    if (blk->read_only) {
        return -EPERM;
    }
    /* Whole blocks: let the file system zero them (no data written). */
    if (offset % MAX(blk->align, 512) == 0 && bytes % MAX(blk->align, 512) == 0) {
        pthread_rwlock_rdlock(&blk->rmw_lock);
        ret = fallocate(blk->fd, FALLOC_FL_ZERO_RANGE, offset, bytes) < 0 ? -errno : 0;
        if (ret == -EOPNOTSUPP) {
            /* tmpfs, memfd: a hole reads as zeros and costs nothing */
            ret = fallocate(blk->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, offset, bytes) < 0 ? -errno : 0;
        }
        pthread_rwlock_unlock(&blk->rmw_lock);
        if (ret == 0) {
            if (!blk->writeback && !blk->no_flush && fdatasync(blk->fd) < 0) {
                return -errno;
            }
            blk_mark_dirty(blk, offset, bytes);
            note_write_end(blk, offset + bytes);
            return 0;
        }
    }
    /* Neither is supported here, or a partial block: write zeros. */
    ret = 0;
    void *zeros;
    size_t chunk = MIN(bytes, (size_t)BOUNCE_MAX);
    if (posix_memalign(&zeros, 4096, chunk)) {
        return -ENOMEM;
    }
    memset(zeros, 0, chunk);
    for (size_t done = 0; done < bytes && ret >= 0; done += chunk) {
        ret = blk_pwrite(blk, offset + done, zeros, MIN(chunk, bytes - done));
    }
    free(zeros);
    return ret < 0 ? ret : 0;
}

int blk_flush(BlockBackend *blk)
{
    return blk_do_flush(blk);
}

/* ---- dirty bitmaps of a drive -------------------------------------------------------- */

void blk_mark_dirty(BlockBackend *blk, int64_t offset, int64_t bytes)
{
    pthread_mutex_lock(&blk->bitmaps_lock);
    for (guint i = 0; i < blk->bitmaps->len; i++) {
        BdrvDirtyBitmap *bm = blk->bitmaps->pdata[i];
        if (dirty_bitmap_enabled(bm)) {
            dirty_bitmap_set(bm, offset, bytes);
        }
    }
    pthread_mutex_unlock(&blk->bitmaps_lock);
}

BdrvDirtyBitmap *blk_dirty_bitmap_create(BlockBackend *blk, uint32_t granularity, const char *name,
                                         Error **errp)
{
    assert(bql_locked());
    if (granularity < 512 || granularity > (1u << 31) || (granularity & (granularity - 1))) {
        error_setg(errp, "Granularity must be power of 2, and at least 512");
        return NULL;
    }
    if (name && blk_dirty_bitmap_find(blk, name)) {
        error_setg(errp, "Bitmap already exists: %s", name);
        return NULL;
    }
    BdrvDirtyBitmap *bm = dirty_bitmap_new(blk->size, granularity, name);
    pthread_mutex_lock(&blk->bitmaps_lock);
    g_ptr_array_add(blk->bitmaps, bm);
    pthread_mutex_unlock(&blk->bitmaps_lock);
    return bm;
}

void blk_dirty_bitmap_release(BlockBackend *blk, BdrvDirtyBitmap *bm)
{
    assert(bql_locked());
    pthread_mutex_lock(&blk->bitmaps_lock);
    bool found = g_ptr_array_remove(blk->bitmaps, bm);
    pthread_mutex_unlock(&blk->bitmaps_lock);
    if (found) {
        dirty_bitmap_free(bm);
    }
}

BdrvDirtyBitmap *blk_dirty_bitmap_find(BlockBackend *blk, const char *name)
{
    BdrvDirtyBitmap *found = NULL;

    pthread_mutex_lock(&blk->bitmaps_lock);
    for (guint i = 0; i < blk->bitmaps->len && !found; i++) {
        const char *n = dirty_bitmap_name(blk->bitmaps->pdata[i]);
        if (n && !strcmp(n, name)) {
            found = blk->bitmaps->pdata[i];
        }
    }
    pthread_mutex_unlock(&blk->bitmaps_lock);
    return found;
}

BdrvDirtyBitmap *blk_dirty_bitmap_next(BlockBackend *blk, BdrvDirtyBitmap *prev)
{
    BdrvDirtyBitmap *next = NULL;
    guint i = 0;

    pthread_mutex_lock(&blk->bitmaps_lock);
    if (prev) {
        while (i < blk->bitmaps->len && blk->bitmaps->pdata[i] != prev) {
            i++;
        }
        i++;
    }
    if (i < blk->bitmaps->len) {
        next = blk->bitmaps->pdata[i];
    }
    pthread_mutex_unlock(&blk->bitmaps_lock);
    return next;
}
