/*
 * Address-range dispatch for port I/O and MMIO. A sorted GArray per address
 * space; lookups are a binary search (KVM exits go through here).
 *
 * An access to a port nobody claims is not an error (reads see all-ones,
 * writes vanish, as on a real ISA bus), but it is logged on stderr the first
 * time each port is read and the first time it is written, so a guest
 * probing for hardware is visible without flooding the log.
 */
#include <stdio.h>
#include <string.h>
#include <glib.h>
#include "hw-bus.h"
#include "vm.h"

typedef struct BusRange {
    char *name;
    uint64_t base, len;
    const BusOps *ops;
    void *opaque;
} BusRange;

typedef struct AddressSpaceMap {
    const char *what;
    GArray *ranges;            /* of BusRange, sorted by base, no overlaps */
} AddressSpaceMap;

static AddressSpaceMap pio_space = { "I/O port" };
/* Unclaimed ports already logged: bit `port` of [0] for reads, [1] writes. */
static uint64_t pio_unhandled_seen[2][0x10000 / 64];
static AddressSpaceMap mmio_space = { "MMIO" };

static GArray *space_ranges(AddressSpaceMap *as)
{
    if (!as->ranges) {
        as->ranges = g_array_new(FALSE, TRUE, sizeof(BusRange));
    }
    return as->ranges;
}

static bool space_add(AddressSpaceMap *as, const char *name, uint64_t base, uint64_t len,
                      const BusOps *ops, void *opaque, Error **errp)
{
    GArray *r = space_ranges(as);
    guint pos = 0;

    if (len == 0 || base + len < base) {
        error_setg(errp, "%s range of '%s' is empty or wraps", as->what, name);
        return false;
    }
    while (pos < r->len && g_array_index(r, BusRange, pos).base < base) {
        pos++;
    }
    for (guint i = pos ? pos - 1 : 0; i < r->len && i <= pos; i++) {
        BusRange *o = &g_array_index(r, BusRange, i);
        if (base < o->base + o->len && o->base < base + len) {
            error_setg(errp, "%s range 0x%llx+0x%llx of '%s' overlaps '%s'", as->what,
                       (unsigned long long)base, (unsigned long long)len, name, o->name);
            return false;
        }
    }
    BusRange nr = { g_strdup(name), base, len, ops, opaque };
    g_array_insert_val(r, pos, nr);
    return true;
}

static BusRange *space_find(AddressSpaceMap *as, uint64_t addr)
{
    GArray *r = as->ranges;
    guint lo = 0, hi = r ? r->len : 0;

    while (lo < hi) {
        guint mid = lo + (hi - lo) / 2;
        BusRange *m = &g_array_index(r, BusRange, mid);
        if (addr < m->base) {
            hi = mid;
        } else if (addr - m->base >= m->len) {
            lo = mid + 1;
        } else {
            return m;
        }
    }
    return NULL;
}

static void space_remove(AddressSpaceMap *as, uint64_t base)
{
    GArray *r = as->ranges;

    for (guint i = 0; r && i < r->len; i++) {
        BusRange *o = &g_array_index(r, BusRange, i);
        if (o->base == base) {
            g_free(o->name);
            g_array_remove_index(r, i);
            return;
        }
    }
}

static void space_clear(AddressSpaceMap *as)
{
    if (!as->ranges) {
        return;
    }
    for (guint i = 0; i < as->ranges->len; i++) {
        g_free(g_array_index(as->ranges, BusRange, i).name);
    }
    g_array_free(as->ranges, TRUE);
    as->ranges = NULL;
}

bool pio_register(const char *name, uint16_t base, uint16_t len,
                  const BusOps *ops, void *opaque, Error **errp)
{
    if ((uint32_t)base + len > 0x10000) {
        error_setg(errp, "I/O port range of '%s' exceeds 0xffff", name);
        return false;
    }
    return space_add(&pio_space, name, base, len, ops, opaque, errp);
}

bool mmio_register(const char *name, uint64_t base, uint64_t len,
                   const BusOps *ops, void *opaque, Error **errp)
{
    return space_add(&mmio_space, name, base, len, ops, opaque, errp);
}

void pio_unregister(uint16_t base)
{
    space_remove(&pio_space, base);
}

void mmio_unregister(uint64_t base)
{
    space_remove(&mmio_space, base);
}

void bus_cleanup(void)
{
    memset(pio_unhandled_seen, 0, sizeof(pio_unhandled_seen));
    space_clear(&pio_space);
    space_clear(&mmio_space);
}

static uint64_t all_ones(unsigned size)
{
    return size >= 8 ? ~0ULL : (1ULL << (8 * size)) - 1;
}

static void pio_log_unhandled(bool write, uint16_t port, uint64_t value, unsigned size)
{
    uint64_t *seen = &pio_unhandled_seen[write][port / 64];
    uint64_t bit = 1ULL << (port % 64);

    if (*seen & bit) {
        return;
    }
    *seen |= bit;
    if (write) {
        fprintf(stderr, "migvm: unhandled I/O write to port 0x%04x (size %u, value 0x%llx); "
                "ignored, logged once per port\n", port, size, (unsigned long long)value);
    } else {
        fprintf(stderr, "migvm: unhandled I/O read from port 0x%04x (size %u); reads all-ones, "
                "logged once per port\n", port, size);
    }
}

uint64_t pio_read(uint16_t port, unsigned size)
{
    assert(bql_locked());
    BusRange *r = space_find(&pio_space, port);

    if (!r) {
        pio_log_unhandled(false, port, 0, size);
    }
    if (!r || !r->ops->read) {
        return all_ones(size);
    }
    return r->ops->read(r->opaque, port - r->base, size) & all_ones(size);
}

void pio_write(uint16_t port, uint64_t value, unsigned size)
{
    assert(bql_locked());
    BusRange *r = space_find(&pio_space, port);

    if (!r) {
        pio_log_unhandled(true, port, value & all_ones(size), size);
    } else if (r->ops->write) {
        r->ops->write(r->opaque, port - r->base, value & all_ones(size), size);
    }
}

bool mmio_read(uint64_t addr, uint64_t *value, unsigned size)
{
    BusRange *r = space_find(&mmio_space, addr);

    if (!r) {
        return false;
    }
    *value = r->ops->read ? r->ops->read(r->opaque, addr - r->base, size) & all_ones(size)
                          : all_ones(size);
    return true;
}

bool mmio_write(uint64_t addr, uint64_t value, unsigned size)
{
    BusRange *r = space_find(&mmio_space, addr);

    if (!r) {
        return false;
    }
    if (r->ops->write) {
        r->ops->write(r->opaque, addr - r->base, value & all_ones(size), size);
    }
    return true;
}
