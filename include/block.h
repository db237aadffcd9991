/*
 * The block layer: drives backed by raw image files (block/).
 *
 * A drive is what QEMU calls a BlockBackend: one `-drive` (named by its id=),
 * an open raw image, a size, a read-only flag, at most one guest device
 * attached to it, and the dirty bitmaps that track guest writes to it.
 * Drives are created from the command line before the board is built and live
 * until block_cleanup(); the list never changes in between, so any thread may
 * walk it without a lock.
 *
 * I/O:
 *   blk_pread/blk_pwrite/...  synchronous, any thread (the soft workload, the
 *                             migration thread, the loader); never hold the BQL
 *                             across long ones.
 *   blk_aio_*                 asynchronous, submitted with the BQL held (device
 *                             emulation); the request runs on a worker thread and
 *                             its completion callback runs later with the BQL held
 *                             (main loop), or inside blk_drain_all().
 * Every completed write (sync or async, guest or migration) marks the drive's
 * enabled dirty bitmaps over the written range.
 *
 * Errors: functions return 0 or a negative errno (what QEMU's BlockBackend API
 * returns); the caller turns it into an Error or a guest status.
 */
#ifndef MIGVM_BLOCK_H
#define MIGVM_BLOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <sys/uio.h>
#include "error.h"
#include "qapi-types.h"     /* BlockErrorAction */

#define BDRV_SECTOR_SIZE 512

typedef struct BlockBackend BlockBackend;
typedef struct BdrvDirtyBitmap BdrvDirtyBitmap;

/* ---- drives ---- */

/* -drive OPTS as QEMU 7.2 spells them (file=, format=raw, if=, id=, index=,
 * media=, readonly=, cache=, werror=, rerror=, ...): opens the image and adds
 * the drive. A drive without id= gets QEMU's default name for its interface
 * (ide0-hd0, virtio0, ...). */
BlockBackend *drive_new(const char *opts, Error **errp);

/* The drive named `name` (its -drive id=), or NULL. */
BlockBackend *blk_by_name(const char *name);
/* Walk every drive in creation order: blk_next(NULL) is the first. */
BlockBackend *blk_next(BlockBackend *prev);
const char *blk_name(const BlockBackend *blk);
const char *blk_filename(const BlockBackend *blk);
/* "none", "virtio", "ide", ... as given by -drive if= (QEMU's default "ide"). */
const char *blk_interface(const BlockBackend *blk);
int64_t blk_getlength(const BlockBackend *blk);     /* bytes */
bool blk_is_read_only(const BlockBackend *blk);

/* A guest device takes the drive (one device per drive, as QEMU: a second one
 * fails with QEMU's text). dev_id: the device's id or QOM-like path, reported by
 * query-block as "qdev". [BQL] */
bool blk_attach_dev(BlockBackend *blk, const char *dev_id, Error **errp);
const char *blk_get_attached_dev(const BlockBackend *blk);   /* NULL: none */

/* ---- synchronous I/O (any thread) ---- */
int blk_pread(BlockBackend *blk, int64_t offset, void *buf, size_t bytes);
int blk_pwrite(BlockBackend *blk, int64_t offset, const void *buf, size_t bytes);
int blk_pwrite_zeroes(BlockBackend *blk, int64_t offset, size_t bytes);
int blk_flush(BlockBackend *blk);

/* ---- asynchronous I/O (submit with the BQL held) ---- */
/* ret: 0 or -errno. Runs with the BQL held. */
typedef void BlockCompletionFunc(void *opaque, int ret);
/* The iovec array (not the buffers) is copied at submission. */
void blk_aio_preadv(BlockBackend *blk, int64_t offset, const struct iovec *iov, int iovcnt,
                    BlockCompletionFunc *cb, void *opaque);
void blk_aio_pwritev(BlockBackend *blk, int64_t offset, const struct iovec *iov, int iovcnt,
                     BlockCompletionFunc *cb, void *opaque);
void blk_aio_flush(BlockBackend *blk, BlockCompletionFunc *cb, void *opaque);
/* Wait until no request of any drive is in flight, running their completion
 * callbacks in the calling thread. vm_stop calls it after the vCPUs stop, so a
 * device's state is saved with every request it started completed. [BQL] */
void blk_drain_all(void);

/* ---- error policy (-drive werror=, rerror=; QEMU's defaults enospc, report) ---- */
/* BlockErrorAction is the QAPI enum (qapi/block.json, BLOCK_IO_ERROR's action):
 *   BLOCK_ERROR_ACTION_REPORT   fail the request to the guest
 *   BLOCK_ERROR_ACTION_IGNORE   complete it as if it succeeded
 *   BLOCK_ERROR_ACTION_STOP     stop the VM (io-error); the device retries on cont */
BlockErrorAction blk_get_error_action(BlockBackend *blk, bool is_read, int error);
/* Emit BLOCK_IO_ERROR as QEMU 7.2 and, for STOP, stop the VM in io-error. [BQL] */
void blk_error_action(BlockBackend *blk, BlockErrorAction action, bool is_read, int error);
/* Every drive's io-status back to "ok" (QEMU's cont does it). [BQL] */
void blk_iostatus_reset_all(void);

/* ---- dirty bitmaps ---- */
/* Bits are granules of `granularity` bytes (a power of two, 512 B .. 2 GiB).
 * Setting, clearing and testing bits is atomic, so writers and the migration
 * thread need no lock; creating, releasing and renaming take the BQL. */

/* name NULL: an unnamed bitmap (block migration's own; never listed or
 * migrated). A named one must be unique on its drive (QEMU's error text). [BQL] */
BdrvDirtyBitmap *blk_dirty_bitmap_create(BlockBackend *blk, uint32_t granularity,
                                         const char *name, Error **errp);
void blk_dirty_bitmap_release(BlockBackend *blk, BdrvDirtyBitmap *bm);   /* [BQL] */
BdrvDirtyBitmap *blk_dirty_bitmap_find(BlockBackend *blk, const char *name);
BdrvDirtyBitmap *blk_dirty_bitmap_next(BlockBackend *blk, BdrvDirtyBitmap *prev);

const char *dirty_bitmap_name(const BdrvDirtyBitmap *bm);     /* NULL: unnamed */
uint32_t dirty_bitmap_granularity(const BdrvDirtyBitmap *bm);
int64_t dirty_bitmap_size(const BdrvDirtyBitmap *bm);         /* bytes covered */
bool dirty_bitmap_enabled(const BdrvDirtyBitmap *bm);          /* "recording" */
void dirty_bitmap_set_enabled(BdrvDirtyBitmap *bm, bool enabled);
bool dirty_bitmap_persistent(const BdrvDirtyBitmap *bm);
void dirty_bitmap_set_persistent(BdrvDirtyBitmap *bm, bool persistent);
/* Busy: in use by an operation (a migration sending it); QEMU refuses changes. */
bool dirty_bitmap_busy(const BdrvDirtyBitmap *bm);
void dirty_bitmap_set_busy(BdrvDirtyBitmap *bm, bool busy);

/* Ranges in bytes, widened to whole granules. */
void dirty_bitmap_set(BdrvDirtyBitmap *bm, int64_t offset, int64_t bytes);
void dirty_bitmap_reset(BdrvDirtyBitmap *bm, int64_t offset, int64_t bytes);
void dirty_bitmap_clear_all(BdrvDirtyBitmap *bm);
bool dirty_bitmap_get(const BdrvDirtyBitmap *bm, int64_t offset);
/* Bytes marked dirty (set granules x granularity, the last clamped to the
 * size), as query-block's "count". */
uint64_t dirty_bitmap_count(const BdrvDirtyBitmap *bm);
/* First dirty byte offset >= offset, or -1: offset itself when its granule is
 * dirty (as QEMU), else the start of the next dirty granule. */
int64_t dirty_bitmap_next_dirty(const BdrvDirtyBitmap *bm, int64_t offset);
/* dst |= src; granularities may differ (src's granules widen into dst's). */
bool dirty_bitmap_merge(BdrvDirtyBitmap *dst, const BdrvDirtyBitmap *src, Error **errp);
/* Bits of granules [first, first + count) as the migration stream carries them:
 * bit i at byte i / 8, value 1 << (i % 8). buf holds ceil(count / 8) bytes. */
void dirty_bitmap_serialize(const BdrvDirtyBitmap *bm, uint64_t first, uint64_t count, uint8_t *buf);
void dirty_bitmap_deserialize(BdrvDirtyBitmap *bm, uint64_t first, uint64_t count, const uint8_t *buf);

/* ---- life cycle ---- */
/* Flush and close every drive, releasing its bitmaps. */
void block_cleanup(void);

#endif
