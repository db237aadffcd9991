/*
 * The block layer's private parts, shared by the files of block/.
 */
#ifndef MIGVM_BLOCK_INT_H
#define MIGVM_BLOCK_INT_H

#include <glib.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include "block.h"

/* What -drive asked for, after parsing (block/drive-opts.c). */
typedef struct DriveOptions {
    char *file;
    char *id;                   /* NULL: the interface's default name */
    char *interface;            /* "none", "ide", "virtio" */
    int index;                  /* -1: first free */
    bool aio_native;
    bool format_given;          /* format= was on the command line */
    bool read_only;
    bool direct;                /* cache.direct: O_DIRECT */
    bool writeback;             /* cache.writeback: off = flush after every write */
    bool no_flush;              /* cache=unsafe: flushes are ignored */
    int werror, rerror;         /* BlockdevOnError values (block-error.c) */
} DriveOptions;

/* -drive werror= / rerror= values, as QEMU's BlockdevOnError. */
enum {
    BLOCKDEV_ON_ERROR_REPORT,
    BLOCKDEV_ON_ERROR_IGNORE,
    BLOCKDEV_ON_ERROR_ENOSPC,
    BLOCKDEV_ON_ERROR_STOP,
};
/* "report" -> BLOCKDEV_ON_ERROR_REPORT, ...; -1 if unknown. */
int blockdev_on_error_parse(const char *text, bool is_read);

/* What query-blockstats counts: the requests devices make (blk_aio_*), as
 * QEMU's devices account theirs; updated at completion. [BQL] */
typedef struct BlockAcct {
    int64_t bytes[2], ops[2], failed[2], total_ns[2];   /* [0] reads, [1] writes */
    int64_t flush_ops, flush_failed, flush_ns;
    int64_t last_done_ns;       /* CLOCK_MONOTONIC of the last completion; 0: none */
} BlockAcct;

struct BlockBackend {
    char *name;
    char *node_name;            /* "#blockNNN", as QEMU names anonymous nodes */
    char *file_node_name;       /* the file node under it, as QEMU has one */
    char *filename;
    char *interface;
    int index;                  /* unit on its interface */
    int fd;
    int64_t size;
    bool read_only;
    bool direct;
    bool writeback;
    bool no_flush;
    int werror, rerror;
    uint32_t align;             /* O_DIRECT: offset, length and memory alignment; else 1 */
    /* O_DIRECT only: aligned requests take it shared, read-modify-write of a
     * partial block takes it exclusive (so two of them never interleave). */
    pthread_rwlock_t rmw_lock;
    char *attached_dev;         /* [BQL] */
    BlockAcct acct;             /* [BQL] */
    int64_t wr_highest_offset;  /* atomic: the end of the highest write, by anyone */
    bool iostatus_failed;       /* [BQL] */
    bool iostatus_nospace;      /* [BQL] */
    /* The dirty bitmaps, walked by every writer thread. */
    pthread_mutex_t bitmaps_lock;
    GPtrArray *bitmaps;         /* BdrvDirtyBitmap*, [bitmaps_lock] */
    BlockBackend *next;         /* written before the drive is published */
};

/* drive-opts.c: parse -drive text (d owns its strings on success). */
bool drive_options_parse(const char *text, DriveOptions *d, Error **errp);

/* block-backend.c */
BlockBackend *blk_open(const DriveOptions *opts, const char *name, Error **errp);
/* Add it to the list (names are unique: the caller checked). */
void blk_publish(BlockBackend *blk);
int blk_index_used(const char *interface, int index);
/* Mark every enabled bitmap of blk over [offset, offset + bytes). */
void blk_mark_dirty(BlockBackend *blk, int64_t offset, int64_t bytes);
/* The request's I/O itself, on the calling thread: preadv/pwritev/flush with
 * O_DIRECT bouncing; bitmaps marked after a successful write. */
int blk_do_preadv(BlockBackend *blk, int64_t offset, const struct iovec *iov, int iovcnt);
int blk_do_pwritev(BlockBackend *blk, int64_t offset, const struct iovec *iov, int iovcnt);
int blk_do_flush(BlockBackend *blk);

/* aio-pool.c */
typedef enum AioOp { AIO_READ, AIO_WRITE, AIO_FLUSH } AioOp;
void aio_pool_submit(BlockBackend *blk, AioOp op, int64_t offset, const struct iovec *iov, int iovcnt,
                     BlockCompletionFunc *cb, void *opaque);
/* CLOCK_MONOTONIC in nanoseconds. */
int64_t blk_clock_ns(void);
/* Stop the workers (nothing may be in flight). */
void aio_pool_shutdown(void);

/* dirty-bitmap.c */
BdrvDirtyBitmap *dirty_bitmap_new(int64_t size, uint32_t granularity, const char *name);
void dirty_bitmap_free(BdrvDirtyBitmap *bm);

#endif
