/*
 * What the stream targets (fuzz-incoming, fuzz-incoming-kvm) do with each
 * input: load it into the machine of fuzz-machine.c as the incoming thread
 * loads a channel (device sections under the BQL, RAM without it, a return
 * path to a memory writer), check that the outcome is consistent, and put
 * back what a load may leave behind so the next input starts alike: the
 * bitmaps a successful load created are dropped.
 *
 * FUZZ_VERBOSE=1 prints each input's outcome.
 */
#include <stdio.h>
#include <stdlib.h>
#include <glib.h>

#include "fuzz-load.h"
#include "block.h"
#include "global-state.h"
#include "machine.h"
#include "migration.h"
#include "savevm.h"
#include "stream.h"
#include "vm.h"

static void device_lock(bool lock)
{
    if (lock) {
        bql_lock();
    } else {
        bql_unlock();
    }
}

/* Drop every named bitmap a load left on the drives. */
static void drop_bitmaps(void)
{
    bql_lock();
    for (BlockBackend *blk = blk_next(NULL); blk; blk = blk_next(blk)) {
        BdrvDirtyBitmap *bm = NULL, *next;
        for (bm = blk_dirty_bitmap_next(blk, NULL); bm; bm = next) {
            next = blk_dirty_bitmap_next(blk, bm);
            if (dirty_bitmap_name(bm)) {
                blk_dirty_bitmap_release(blk, bm);
            }
        }
    }
    bql_unlock();
}

/* The return path's writer, made again now and then: a new one per input
 * (its 1 MiB buffer) would cost more than most inputs' loads. */
static MigStream *return_path(void)
{
    static MigStream *rp;
    static unsigned uses;

    if (rp && ++uses % 4096 == 0) {
        mig_stream_close(rp, NULL);
        rp = NULL;
    }
    if (!rp) {
        rp = mig_stream_new_mem_writer();
    }
    return rp;
}

bool fuzz_load_stream(const char *target, const uint8_t *data, size_t size)
{
    MigStream *rp = return_path();
    MigStream *f = mig_stream_new_mem_reader(data, size);
    bool rp_opened = false, peer_migvm = false;
    LoadvmOptions opts = {
        .local = { .machine_type = machine_type() },
        .return_path = rp,
        .return_path_opened = &rp_opened,
        .peer_is_migvm = &peer_migvm,
        .send_shut = true,
        .device_lock = device_lock,
    };
    Error *err = NULL;

    global_state_reset();
    bool ok = qemu_loadvm_state(f, &opts, &err);
    if (ok == (err != NULL)) {
        __builtin_trap();           /* return value and errp must agree */
    }
    const char *verbose = getenv("FUZZ_VERBOSE");   /* what a seed reaches */
    if (verbose && *verbose) {
        fprintf(stderr, "%s: %zu bytes: %s\n", target, size, ok ? "loaded" : error_get_pretty(err));
    }
    error_free(err);
    mig_stream_close(f, NULL);
    drop_bitmaps();
    return ok;
}
