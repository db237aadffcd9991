/*
 * libFuzzer target: arbitrary bytes as the whole incoming migration stream
 * of a real machine. Built once per process as `migvm -M pc -m 8M -accel
 * soft -drive file=MEMFD,if=virtio,format=raw` (a 2 MiB in-memory drive,
 * virtio0) builds it: the real board, its devices' sections ("timer",
 * "cpu", serial, PIT/PIC..., "virtio-blk"), the real RAM block pc.ram and
 * the real "ram", "block", "dirty-bitmap" and globalstate handlers. The
 * vCPU thread exists but never runs (the run state stays inmigrate).
 *
 * Each input is loaded as the incoming thread loads a channel: device
 * sections under the BQL, RAM without it, a return path to a memory
 * writer. The loader must return true or false with an error and never
 * crash, overflow, leak or allocate past its bounds (docs/hostile-streams.md).
 * Between inputs the bitmaps a successful load created are dropped, so the
 * next input starts from the same drive state.
 *
 * FUZZ_VERBOSE=1 prints each input's outcome.
 *   make fuzz-incoming && build/fuzz/fuzz-incoming -dict=tests/fuzz/incoming.dict \
 *       -max_len=65536 tests/fuzz/corpus/fuzz-incoming
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "fuzz-machine.h"
#include "block.h"
#include "global-state.h"
#include "machine.h"
#include "migration.h"
#include "savevm.h"
#include "stream.h"
#include "vm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_machine_init();
    return 0;
}

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
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
        fprintf(stderr, "fuzz-incoming: %zu bytes: %s\n", size, ok ? "loaded" : error_get_pretty(err));
    }
    error_free(err);
    mig_stream_close(f, NULL);
    drop_bitmaps();
    return 0;
}
