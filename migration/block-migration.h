/*
 * The "block" live save-state entry (version 1): the drives' contents in
 * 1 MiB chunks, QEMU 7.2's block migration format (shared docs:
 * block-migration.md sections 2-3). block.c is the source, block-load.c the
 * destination; the record layout is described at the top of block-load.c,
 * which must accept everything block.c writes and nothing else.
 */
#ifndef MIGRATION_BLOCK_MIGRATION_H
#define MIGRATION_BLOCK_MIGRATION_H

#include <stdbool.h>
#include <stdint.h>
#include "error.h"
#include "stream.h"
#include "qapi-types.h"

#define BLK_MIG_FLAG_DEVICE_BLOCK 0x01u
#define BLK_MIG_FLAG_EOS          0x02u
#define BLK_MIG_FLAG_PROGRESS     0x04u
#define BLK_MIG_FLAG_ZERO_BLOCK   0x08u
#define BLK_MIG_FLAGS_MASK        0x1ffu   /* low 9 bits of the record word */

#define BLK_MIG_CHUNK_SIZE    (1u << 20)  /* bytes per DEVICE_BLOCK record */
#define BLK_MIG_CHUNK_SECTORS (BLK_MIG_CHUNK_SIZE / 512)
#define BLK_MIG_VERSION 1

/* ---- records (block-load.c) ---- */

/* A DEVICE_BLOCK record. data NULL: ZERO_BLOCK, no payload. Otherwise the
 * stream is flushed before it returns: data may be reused at once. */
void block_mig_put_chunk(MigStream *f, const char *name, uint64_t offset, const uint8_t *data);
void block_mig_put_progress(MigStream *f, unsigned percent);
void block_mig_put_eos(MigStream *f);
/* True when len bytes at p are all zero. */
bool block_mig_buffer_is_zero(const uint8_t *p, size_t len);

/* Destination: read one section body (records up to EOS) into the drives. */
bool block_mig_load(MigStream *f, int version_id, Error **errp);

/* No "Receiving block device images" / "Completed N %" on stdout (tests). */
void block_mig_set_progress_silent(bool silent);

/* ---- source (block.c) ---- */

/* Register the "block" entry; it takes part in a migration only while the
 * `block` capability is on. [BQL, at start-up, before "ram" so the section
 * ids are QEMU 7.2's: timer 0, block 1, ram 2] */
bool block_mig_init(Error **errp);

/* query-migrate's "disk": only transferred, remaining and total set, as
 * QEMU 7.2; NULL when no block migration with at least one drive is set up.
 * Any thread. */
MigrationStats *block_mig_disk_stats(void);
/* Bytes the "block" section put on the stream in the last migration (any thread). */
uint64_t block_mig_stream_bytes(void);
/* Block migration still sends every chunk once (auto-converge waits for
 * that: RAM's progress looks stalled meanwhile). [migration thread] */
bool block_mig_bulk_active(void);
/* A new migration begins: no bytes yet. [main, no migration thread running] */
void block_mig_stats_reset(void);

#endif
