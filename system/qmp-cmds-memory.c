/* pmemsave / memsave: dump guest memory to a file (tests compare the
 * source's and destination's memory this way). */
#include "cpus.h"
#include "memory.h"
#include "vm.h"
#include "qapi-commands.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <glib.h>

static bool dump_guest_memory(uint64_t addr, int64_t size, const char *filename, Error **errp)
{
    if (size < 0 || addr + (uint64_t)size < addr) {
        error_setg(errp, "Invalid addr 0x%016" PRIx64 "/size %" PRId64 " specified", addr, size);
        return false;
    }
    FILE *f = fopen(filename, "wb");
    if (!f) {
        error_setg_errno(errp, errno, "Could not open '%s'", filename);
        return false;
    }
    static uint8_t buf[1 << 16];
    bool ok = true;
    while (size > 0 && ok) {
        size_t len = size < (int64_t)sizeof(buf) ? (size_t)size : sizeof(buf);
        ok = guest_phys_read(addr, buf, len, errp);
        if (ok && fwrite(buf, 1, len, f) != len) {
            error_setg(errp, "An IO error has occurred");
            ok = false;
        }
        addr += len;
        size -= (int64_t)len;
    }
    if (fclose(f) != 0 && ok) {
        error_setg(errp, "An IO error has occurred");
        ok = false;
    }
    return ok;
}

bool qmp_pmemsave(const q_obj_pmemsave_arg *arg, Error **errp)
{
    return dump_guest_memory((uint64_t)arg->val, arg->size, arg->filename, errp);
}

/* The soft accelerator's vCPUs have no paging: virtual = physical. A paging
 * accelerator (KVM) will translate through the vCPU's page tables. */
bool qmp_memsave(const q_obj_memsave_arg *arg, Error **errp)
{
    /* Without cpu-index: the monitor's CPU, the first one; a board without
     * vCPUs (-M none) has none to translate through, as in QEMU 7.2. */
    int64_t cpu = arg->has_cpu_index ? arg->cpu_index : 0;

    if (cpu < 0 || cpu >= cpus_count()) {
        error_setg(errp, "Parameter 'cpu-index' expects a CPU number");
        return false;
    }
    return dump_guest_memory((uint64_t)arg->val, arg->size, arg->filename, errp);
}
