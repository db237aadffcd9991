/*
 * The error policy of -drive werror= and rerror= (QEMU's defaults: enospc
 * for writes, report for reads) and what happens on an error: the
 * BLOCK_IO_ERROR event, and for "stop" the VM stopping in io-error (the device
 * keeps the request and retries it on cont).
 */
#include <errno.h>
#include <string.h>
#include <glib.h>
#include "block-int.h"
#include "qapi-events.h"
#include "vm.h"

int blockdev_on_error_parse(const char *text, bool is_read)
{
    static const char *const names[] = {
        [BLOCKDEV_ON_ERROR_REPORT] = "report", [BLOCKDEV_ON_ERROR_IGNORE] = "ignore",
        [BLOCKDEV_ON_ERROR_ENOSPC] = "enospc", [BLOCKDEV_ON_ERROR_STOP] = "stop",
    };

    for (int i = 0; i < (int)G_N_ELEMENTS(names); i++) {
        /* enospc is a write-only policy, as in QEMU. */
        if (!strcmp(text, names[i]) && !(is_read && i == BLOCKDEV_ON_ERROR_ENOSPC)) {
            return i;
        }
    }
    return -1;
}

BlockErrorAction blk_get_error_action(BlockBackend *blk, bool is_read, int error)
{
    int policy = is_read ? blk->rerror : blk->werror;

    error = error < 0 ? -error : error;
    switch (policy) {
    case BLOCKDEV_ON_ERROR_ENOSPC:
        return error == ENOSPC ? BLOCK_ERROR_ACTION_STOP : BLOCK_ERROR_ACTION_REPORT;
    case BLOCKDEV_ON_ERROR_STOP:
        return BLOCK_ERROR_ACTION_STOP;
    case BLOCKDEV_ON_ERROR_IGNORE:
        return BLOCK_ERROR_ACTION_IGNORE;
    default:
        return BLOCK_ERROR_ACTION_REPORT;
    }
}

static void stop_for_io_error(void *opaque)
{
    if (runstate_is_running()) {
        vm_stop(RUN_STATE_IO_ERROR, NULL);
    }
}

void blk_error_action(BlockBackend *blk, BlockErrorAction action, bool is_read, int error)
{
    assert(bql_locked());
    bool iostatus = blk->attached_dev != NULL;

    error = error < 0 ? -error : error;
    if (action == BLOCK_ERROR_ACTION_STOP && iostatus && !blk->iostatus_failed && !blk->iostatus_nospace) {
        /* The first error is the one reported until the status is reset. */
        blk->iostatus_nospace = error == ENOSPC;
        blk->iostatus_failed = error != ENOSPC;
    }
    qapi_event_send_block_io_error(blk->name, blk->node_name, is_read ? IO_OPERATION_TYPE_READ :
                                   IO_OPERATION_TYPE_WRITE, action, iostatus, error == ENOSPC,
                                   strerror(error));
    if (action == BLOCK_ERROR_ACTION_STOP) {
        /* Not now: this may run inside blk_drain_all() within vm_stop(). */
        main_loop_schedule(stop_for_io_error, NULL);
    }
}

void blk_iostatus_reset_all(void)
{
    assert(bql_locked());
    for (BlockBackend *blk = blk_next(NULL); blk; blk = blk_next(blk)) {
        blk->iostatus_failed = blk->iostatus_nospace = false;
    }
}
