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
#include <sys/mman.h>
#include <unistd.h>
#include <glib.h>

#include "block.h"
#include "block-migration.h"
#include "global-state.h"
#include "machine.h"
#include "main-loop.h"
#include "migration.h"
#include "savevm.h"
#include "stream.h"
#include "vm.h"

#define FUZZ_RAM_SIZE (8u << 20)
#define FUZZ_DRIVE_SIZE (2u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static void fail_setup(const char *what, Error *err)
{
    fprintf(stderr, "fuzz-incoming: %s: %s\n", what, err ? error_get_pretty(err) : "failed");
    abort();
}

/* A raw drive on a memfd: no file left behind, no disk I/O. */
static void drive_setup(void)
{
    Error *err = NULL;
    int fd = memfd_create("fuzz-drive", 0);

    if (fd < 0 || ftruncate(fd, FUZZ_DRIVE_SIZE) < 0) {
        fail_setup("memfd", NULL);
    }
    g_autofree char *opts = g_strdup_printf("file=/proc/self/fd/%d,if=virtio,format=raw", fd);
    if (!drive_new(opts, &err)) {
        fail_setup("drive", err);
    }
    close(fd);          /* the drive opened its own descriptor */
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    const MachineConfig machine = {
        .type = "pc", .ram_size = FUZZ_RAM_SIZE, .smp_cpus = 1, .accel = "soft",
    };
    Error *err = NULL;

    vm_config.name = g_strdup("fuzz");
    bql_lock();
    main_loop_init();
    drive_setup();
    if (!machine_init(&machine, &err)) {
        fail_setup("machine", err);
    }
    if (!migration_init(&err)) {
        fail_setup("migration", err);
    }
    if (!runstate_set(RUN_STATE_INMIGRATE, &err)) {
        fail_setup("run state", err);
    }
    block_mig_set_progress_silent(true);
    bql_unlock();
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
