/*
 * The machine the whole-VM fuzz targets share: what `migvm -M pc -accel ACCEL
 * -m 8M -drive file=MEMFD,if=virtio,format=raw` builds (a 2 MiB drive on a
 * memfd, virtio0), with the migration subsystem, in run state inmigrate. The
 * vCPU thread exists but never runs. ACCEL is "soft" for every target but
 * fuzz-incoming-kvm.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include <glib.h>

#include "block.h"
#include "block-migration.h"
#include "fuzz-machine.h"
#include "machine.h"
#include "main-loop.h"
#include "migration.h"
#include "vm.h"

static void fail_setup(const char *what, Error *err)
{
    fprintf(stderr, "fuzz: machine set-up, %s: %s\n", what, err ? error_get_pretty(err) : "failed");
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

bool fuzz_machine_try_init(const char *accel, Error **errp)
{
    const MachineConfig machine = {
        .type = "pc", .ram_size = FUZZ_RAM_SIZE, .smp_cpus = 1, .accel = accel,
    };
    Error *err = NULL;

    vm_config.name = g_strdup("fuzz");
    bql_lock();
    main_loop_init();
    drive_setup();
    if (!machine_init(&machine, errp)) {
        bql_unlock();
        return false;
    }
    if (!migration_init(&err)) {
        fail_setup("migration", err);
    }
    if (!runstate_set(RUN_STATE_INMIGRATE, &err)) {
        fail_setup("run state", err);
    }
    block_mig_set_progress_silent(true);
    bql_unlock();
    return true;
}

void fuzz_machine_init(const char *accel)
{
    Error *err = NULL;

    if (!fuzz_machine_try_init(accel, &err)) {
        fail_setup("machine", err);
    }
}

