/*
 * -mem-prealloc: guest RAM allocated in full before the machine starts
 * (system/ram-prealloc.c), as QEMU 7.2 does with the same option.
 *
 * Every RAM block is populated (MADV_POPULATE_WRITE, in 2 MiB pieces so a
 * piece can be one transparent huge page) by as many threads as the board
 * has vCPUs, QEMU's default for -mem-prealloc. The process then owns all of
 * its RAM: a guest never waits on a first touch, and a migration
 * destination started with it writes incoming pages into memory that is
 * already there (the kernel's zero fill is paid at start-up instead of on
 * the incoming threads; the pre-faulting workers of include/ram-prefault.h
 * then have nothing to do and do not start). It costs the full RAM size in
 * resident memory from the start, whatever the guest uses, and a start-up
 * that takes as long as the kernel needs to clear that memory. Postcopy
 * still works: advising it drops the destination's RAM, as in QEMU.
 */
#ifndef MIGVM_RAM_PREALLOC_H
#define MIGVM_RAM_PREALLOC_H

#include <stdbool.h>
#include "error.h"

/* Populate every RAM block with `threads` threads (at least one); false
 * with an error naming the block when memory runs out.
 * [main thread, BQL, before any vCPU runs] */
bool ram_prealloc_all(int threads, Error **errp);

/* True once ram_prealloc_all succeeded (any thread). */
bool ram_preallocated(void);

#endif
