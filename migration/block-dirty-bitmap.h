/*
 * The "dirty-bitmap" live save-state entry: named dirty bitmaps of the
 * drives, QEMU 7.2's format (block-dirty-bitmap.c).
 */
#ifndef MIGRATION_BLOCK_DIRTY_BITMAP_H
#define MIGRATION_BLOCK_DIRTY_BITMAP_H

#include <stdbool.h>
#include "error.h"

/* Register the entry (after "ram", as QEMU 7.2 numbers it). [BQL, at start-up] */
bool dirty_bitmap_mig_init(Error **errp);

#endif
