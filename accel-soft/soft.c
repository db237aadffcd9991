/*
 * The soft accelerator: no guest code, just the built-in workload
 * (workload.h) on vCPU 0; other vCPUs halt at once.
 *
 * Options (-accel soft,OPTS; AccelConfig.opts):
 *   dirty-rate=N   MiB/s of page writes, 0 (default) = as fast as possible
 *   disk-rate=N    MiB/s written to the drives given with if=virtio or
 *                  if=none (disk-workload.h), 0 = as fast as possible;
 *                  without it the drives are left alone
 *   top=SIZE       work on guest addresses [1 MiB, SIZE) (K/M/G suffixes;
 *                  default: the end of the RAM block, above 4 GiB too
 *                  when -m splits it)
 *
 * Dirty tracking: the workload records each write in the RAM block's
 * software log (always on), so no dirty_log_* hooks are needed. The vCPU
 * polls cpu_should_stop() between pages, so kick has nothing to do.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include "accel.h"
#include "cpus.h"
#include "hw-bus.h"
#include "vm.h"
#include "workload.h"

#define WORKLOAD_START (1ULL << 20)
#define SERIAL_PORT 0x3f8

static SoftWorkload workload;
static bool workload_registered;

static bool parse_size(const char *text, uint64_t *out)
{
    char *end;
    errno = 0;
    uint64_t v = g_ascii_strtoull(text, &end, 10);
    int shift = 0;

    if (errno || end == text) {
        return false;
    }
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case 't': case 'T': shift = 40; end++; break;
    case 'b': case 'B': end++; break;
    default: break;
    }
    if (*end || (shift && v > (UINT64_MAX >> shift))) {
        return false;
    }
    *out = v << shift;
    return true;
}

static bool parse_count(const char *text, uint64_t *out)
{
    char *end;
    errno = 0;
    *out = g_ascii_strtoull(text, &end, 10);
    return !errno && end != text && !*end;
}

/* disk_rate: UINT64_MAX when not given. */
static bool soft_parse_opts(const char *opts, uint64_t *rate, uint64_t *disk_rate, uint64_t *top,
                            Error **errp)
{
    g_auto(GStrv) items = g_strsplit(opts ? opts : "", ",", -1);

    for (int i = 0; items[i]; i++) {
        const char *item = items[i];
        const char *eq = strchr(item, '=');
        if (!*item) {
            continue;
        }
        bool ok = false;
        if (eq && !strncmp(item, "dirty-rate=", 11)) {
            ok = parse_count(eq + 1, rate);
        } else if (eq && !strncmp(item, "disk-rate=", 10)) {
            ok = parse_count(eq + 1, disk_rate) && *disk_rate != UINT64_MAX;
        } else if (eq && !strncmp(item, "top=", 4)) {
            ok = parse_size(eq + 1, top);
        } else {
            error_setg(errp, "Invalid parameter '%.*s' for accelerator soft",
                       (int)(eq ? eq - item : (long)strlen(item)), item);
            return false;
        }
        if (!ok) {
            error_setg(errp, "Parameter '%.*s' expects a number", (int)(eq - item), item);
            return false;
        }
    }
    return true;
}

/* Serial output from the "guest": device I/O happens under the BQL. */
static void soft_serial_out(void *opaque, uint8_t byte)
{
    bql_lock();
    pio_write(SERIAL_PORT, byte, 1);
    bql_unlock();
}

/* The page workload on "pc.ram" (else the first RAM block; none: no pages). */
static bool soft_init_pages(uint64_t rate, uint64_t top, Error **errp)
{
    RAMBlock *block = ram_block_by_name("pc.ram");
    if (!block) {
        block = ram_block_first();
    }
    if (!block) {
        return true;                        /* no RAM: nothing to dirty */
    }
    if (top && top <= block->gpa) {
        error_setg(errp, "soft accelerator: top=0x%llx is below RAM",
                   (unsigned long long)top);
        return false;
    }
    uint64_t start = WORKLOAD_START > block->gpa ? WORKLOAD_START - block->gpa : 0;
    /* top is a guest address; the workload counts block offsets, which on a
     * split block continue from the low part into the high one. */
    uint64_t end = 0;
    RAMMapping m[RAM_BLOCK_MAX_MAPPINGS];
    for (int i = 0, n = ram_block_mappings(block, m); top && i < n; i++) {
        if (top > m[i].gpa) {
            end = m[i].offset + MIN(top - m[i].gpa, m[i].len);
        }
    }
    if (!workload_init(&workload, block, start, end, rate, errp)) {
        return false;
    }
    workload.out = soft_serial_out;
    return true;
}

static bool soft_init(const AccelConfig *cfg, Error **errp)
{
    uint64_t rate = 0, disk_rate = UINT64_MAX, top = 0;

    memset(&workload, 0, sizeof(workload));
    if (!soft_parse_opts(cfg->opts, &rate, &disk_rate, &top, errp) || !soft_init_pages(rate, top, errp)) {
        return false;
    }
    if (disk_rate != UINT64_MAX && !disk_workload_init(&workload.disk, disk_rate, errp)) {
        return false;
    }
    workload.disk.out = soft_serial_out;
    return true;
}

static bool soft_vcpu_init(CPUState *cpu, Error **errp)
{
    if (cpu->index != 0) {
        return true;
    }
    if (!vmstate_register("soft-cpu", 0, &vmstate_soft_workload, &workload, errp)) {
        return false;
    }
    workload_registered = true;
    return true;
}

static bool soft_should_stop(void *opaque)
{
    return cpu_should_stop(opaque);
}

static VcpuExit soft_vcpu_exec(CPUState *cpu)
{
    if (cpu->index != 0 || (!workload.block && !disk_workload_active(&workload.disk))) {
        return VCPU_EXIT_HALT;
    }
    workload_run(&workload, soft_should_stop, cpu);
    return workload_has_work(&workload) ? VCPU_EXIT_STOP : VCPU_EXIT_HALT;
}

static void soft_vcpu_destroy(CPUState *cpu)
{
    if (cpu->index == 0 && workload_registered) {
        vmstate_unregister(&vmstate_soft_workload, &workload);
        workload_registered = false;
    }
}

static bool soft_reset(Error **errp)
{
    workload_reset(&workload);
    return true;
}

static void soft_cleanup(void)
{
    disk_workload_cleanup(&workload.disk);
    memset(&workload, 0, sizeof(workload));
}

static const AccelOps soft_ops = {
    .name = "soft",
    .init = soft_init,
    .vcpu_init = soft_vcpu_init,
    .vcpu_exec = soft_vcpu_exec,
    .vcpu_destroy = soft_vcpu_destroy,
    .reset = soft_reset,
    .cleanup = soft_cleanup,
};

ACCEL_REGISTER(soft_ops)
