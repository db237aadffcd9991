/*
 * The soft accelerator's disk workload (accel-soft/disk-workload.c): what the
 * ring-3 test guest does to its virtio-blk disk (guest/ring3/disk.c), done
 * through the block layer's synchronous API on every writable drive given
 * with if=virtio or if=none (an ide drive is a boot disk and is left alone).
 *
 * Each drive is a row of chunks of up to 16 blocks of 4 KiB. One step, on
 * the next drive in turn: check chunk `next` still holds generation passes,
 * write it with passes + 1, then read back chunk (next + N/2) mod N and check
 * it holds its last write. The check before the write sees, within a pass,
 * a chunk that missed a migration more than half a cycle behind `next`,
 * which the read-back half a cycle later would not reach before rewriting.
 * So chunks [0, next) hold passes + 1 and [next, N) hold passes (0: never
 * written, not checked). A block at byte address A of generation g holds
 *   word 0: g    word 1: A    words 2..510: mix(A | 1 << 63, g) ^ (i * GOLDEN)
 *   word 511: the sum of words 0..510
 * (little-endian 64-bit words; mix as in guest/ring3/ring3.h).
 *
 * Output (the serial port, whole lines):
 *   DISK <drive> pass <n> ok | DISK <drive> pass <n> errors=<k>
 *   ERROR: disk <drive> block <hex>: generation <g> expected <g'>
 *   ERROR: disk <drive> block <hex>: holds address <hex> | word <i> wrong | bad checksum
 *   ERROR: disk <drive> <read|write> at <hex>: <strerror>
 * next and passes are vCPU state, migrated in the "soft-cpu/disk"
 * subsection of "soft-cpu" (present only while the disk workload runs).
 */
#ifndef MIGVM_ACCEL_SOFT_DISK_WORKLOAD_H
#define MIGVM_ACCEL_SOFT_DISK_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>
#include "block.h"
#include "vmstate.h"

#define SOFT_DISK_MAX 8
#define SOFT_DISK_BLOCK 4096
#define SOFT_DISK_CHUNK_BLOCKS 16

typedef struct SoftDisk {
    /* Migrated. */
    uint64_t chunks;                /* must match on load (same drive size) */
    uint64_t next_chunk;
    uint64_t passes;
    /* Not migrated. */
    BlockBackend *blk;
    uint64_t chunk_blocks;
    uint64_t pass_errors;
} SoftDisk;

typedef struct SoftDiskWorkload {
    /* Migrated. */
    uint32_t ndisks;                /* must match on load */
    SoftDisk disks[SOFT_DISK_MAX];
    /* Not migrated. */
    bool enabled;                   /* disk-rate= was given */
    uint64_t bytes_per_sec;         /* written bytes; 0 = no limit */
    double bucket_start_ns;         /* token bucket, as the page throttle's */
    uint64_t bucket_bytes;
    uint32_t turn;                  /* the drive of the next step */
    uint64_t errors;                /* ERROR lines so far */
    uint8_t *buf;                   /* one chunk */
    void (*out)(void *opaque, uint8_t byte);
    void *out_opaque;
} SoftDiskWorkload;

extern const VMStateDescription vmstate_soft_disk_workload;

/* disk_rate_mib: MiB/s written, 0 = no limit. Picks the drives (at most
 * SOFT_DISK_MAX; more is an error). */
bool disk_workload_init(SoftDiskWorkload *dw, uint64_t disk_rate_mib, Error **errp);
/* Back to power-on: every drive at pass 0, chunk 0. */
void disk_workload_reset(SoftDiskWorkload *dw);
void disk_workload_cleanup(SoftDiskWorkload *dw);
bool disk_workload_active(const SoftDiskWorkload *dw);
/* Nanoseconds (now_ns() clock) when the next step is allowed; 0: now. */
double disk_workload_due_ns(const SoftDiskWorkload *dw);
/* One step (module comment); never holds the BQL across I/O. */
void disk_workload_step(SoftDiskWorkload *dw);
/* The bucket restarts (a run begins, or we fell far behind). */
void disk_workload_restart_bucket(SoftDiskWorkload *dw, double now);

#endif
