/*
 * Split virtqueue (virtio 1.x, section 2.6), device side.
 *
 * Guest memory layout, all little-endian, `num` entries:
 *   descriptor table  16-byte aligned, num x { le64 addr; le32 len;
 *                     le16 flags (NEXT 1, WRITE 2, INDIRECT 4); le16 next }
 *   available ring    2-byte aligned: le16 flags (NO_INTERRUPT 1); le16 idx;
 *                     le16 ring[num]
 *   used ring         4-byte aligned: le16 flags; le16 idx;
 *                     num x { le32 id; le32 len }
 * The driver publishes a chain head in avail.ring[idx % num] and then bumps
 * avail.idx; the device returns it in used.ring[used_idx % num] and then bumps
 * used.idx. Both indices run freely modulo 2^16. The spec's ring sizes keep
 * one more le16 at the end of each ring, used with VIRTIO_RING_F_EVENT_IDX:
 * avail.used_event (interrupt me once used.idx passes it) and
 * used.avail_event (notify me once avail.idx passes it; the device keeps it
 * at last_avail_idx, i.e. "tell me about the next one"). Without EVENT_IDX
 * the only suppression is the avail ring's NO_INTERRUPT hint.
 *
 * A guest may put anything in these structures. Every ring is checked to lie
 * in guest RAM when the queue becomes ready; every buffer and indirect table
 * when its chain is read. A chain that runs out of its table, loops (more
 * descriptors than its table holds), nests indirect tables, puts a readable
 * buffer after a writable one or points outside RAM is refused: the caller
 * marks the device broken. Nothing a guest writes can make migvm touch memory
 * outside guest RAM.
 *
 * The rings are read and written through host pointers while vCPUs run, as
 * the guest's peer would: the two indices with atomic accesses (acquire on
 * avail.idx, release on used.idx), the rest in GUEST_RAM_ACCESS functions.
 * Writes to the used ring mark their pages dirty for migration.
 */
#include <endian.h>
#include <inttypes.h>
#include <string.h>
#include <glib.h>
#include "memory.h"
#include "virtio.h"

#define VIRTQ_DESC_F_NEXT       1
#define VIRTQ_DESC_F_WRITE      2
#define VIRTQ_DESC_F_INDIRECT   4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

typedef struct VirtqDesc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
} VirtqDesc;

static uint64_t desc_table_size(uint32_t num)  { return 16ULL * num; }
static uint64_t avail_ring_size(uint32_t num)  { return 6 + 2ULL * num; }
static uint64_t used_ring_size(uint32_t num)   { return 6 + 8ULL * num; }

/* Record a VMM write to guest memory so migration sends the pages again. */
static void mark_dirty(uint64_t gpa, uint64_t len)
{
    RAMBlock *b = ram_block_by_gpa(gpa);
    uint64_t offset;

    if (b && ram_block_gpa_to_offset(b, gpa, &offset)) {
        ram_block_set_dirty_range(b, offset, len);
    }
}

static void *map_ring(const char *what, uint64_t gpa, uint64_t len, uint64_t align, Error **errp)
{
    void *host = (gpa & (align - 1)) ? NULL : guest_phys_to_host(gpa, len);

    if (!host) {
        error_setg(errp, "%s at 0x%" PRIx64 " (%" PRIu64 " bytes) is not aligned guest RAM",
                   what, gpa, len);
    }
    return host;
}

bool virtqueue_map(VirtQueue *vq, Error **errp)
{
    if (vq->num == 0 || vq->num > VIRTQ_MAX_SIZE) {
        error_setg(errp, "queue size %u out of range 1..%u", vq->num, VIRTQ_MAX_SIZE);
        return false;
    }
    vq->desc_host = map_ring("descriptor table", vq->desc, desc_table_size(vq->num), 16, errp);
    vq->avail_host = vq->desc_host ?
        map_ring("available ring", vq->avail, avail_ring_size(vq->num), 2, errp) : NULL;
    vq->used_host = vq->avail_host ?
        map_ring("used ring", vq->used, used_ring_size(vq->num), 4, errp) : NULL;
    if (!vq->used_host) {
        vq->desc_host = vq->avail_host = NULL;
        return false;
    }
    return true;
}

void virtqueue_reset(VirtQueue *vq)
{
    *vq = (VirtQueue) { 0 };
}

GUEST_RAM_ACCESS static uint16_t avail_idx(const VirtQueue *vq)
{
    const uint16_t *p = (const uint16_t *)vq->avail_host + 1;

    return le16toh(__atomic_load_n(p, __ATOMIC_ACQUIRE));
}

GUEST_RAM_ACCESS static uint16_t avail_ring_entry(const VirtQueue *vq, uint16_t idx)
{
    const uint16_t *ring = (const uint16_t *)vq->avail_host + 2;

    return le16toh(__atomic_load_n(&ring[idx % vq->num], __ATOMIC_RELAXED));
}

GUEST_RAM_ACCESS bool virtqueue_should_notify(VirtQueue *vq)
{
    const uint16_t *avail = vq->avail_host;
    uint16_t old = vq->signalled_used, now = vq->used_idx, used_event;
    bool valid = vq->signalled_used_valid;

    if (!avail) {
        return false;
    }
    /* Order our used.idx store before reading the driver's wishes. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    if (!vq->event_idx) {
        return !(le16toh(__atomic_load_n(&avail[0], __ATOMIC_RELAXED)) & VIRTQ_AVAIL_F_NO_INTERRUPT);
    }
    vq->signalled_used = now;
    vq->signalled_used_valid = true;
    used_event = le16toh(__atomic_load_n(&avail[2 + vq->num], __ATOMIC_RELAXED));
    /* The spec's vring_need_event: used_event lies in (old, now]. */
    return !valid || (uint16_t)(now - used_event - 1) < (uint16_t)(now - old);
}

/* EVENT_IDX: ask for a notify once the driver adds past last_avail_idx. */
GUEST_RAM_ACCESS static void set_avail_event(VirtQueue *vq)
{
    uint16_t *avail_event = (uint16_t *)((uint8_t *)vq->used_host + 4 + 8ULL * vq->num);

    __atomic_store_n(avail_event, htole16(vq->last_avail_idx), __ATOMIC_RELAXED);
    mark_dirty(vq->used + 4 + 8ULL * vq->num, 2);
    /* Store before reading avail.idx: the driver reads avail_event after
     * storing avail.idx, so one of the two sides sees the other. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

GUEST_RAM_ACCESS static void read_desc(const void *table, uint16_t i, VirtqDesc *d)
{
    VirtqDesc raw;

    memcpy(&raw, (const uint8_t *)table + 16ULL * i, sizeof(raw));
    d->addr = le64toh(raw.addr);
    d->len = le32toh(raw.len);
    d->flags = le16toh(raw.flags);
    d->next = le16toh(raw.next);
}

static void add_seg(VirtqSeg **segs, unsigned *n, uint64_t *total, const VirtqDesc *d)
{
    /* Grown in powers of two; a chain holds at most VIRTQ_MAX_CHAIN. */
    if ((*n & (*n - 1)) == 0) {
        *segs = g_renew(VirtqSeg, *segs, *n ? *n * 2 : 4);
    }
    (*segs)[(*n)++] = (VirtqSeg) { .gpa = d->addr, .len = d->len };
    *total += d->len;
}

void virtqueue_element_free(VirtQueueElement *elem)
{
    g_free(elem->out);
    g_free(elem->in);
    *elem = (VirtQueueElement) { 0 };
}

/* Switch to the indirect table d describes. */
static bool enter_indirect(const VirtqDesc *d, bool indirect_ok, const void **table,
                           uint32_t *tnum, Error **errp)
{
    if (!indirect_ok) {
        error_setg(errp, "indirect descriptor without VIRTIO_RING_F_INDIRECT_DESC");
        return false;
    }
    if (d->flags & VIRTQ_DESC_F_NEXT) {
        error_setg(errp, "indirect descriptor with NEXT set");
        return false;
    }
    if (d->len == 0 || d->len % 16 || d->len / 16 > VIRTQ_MAX_CHAIN) {
        error_setg(errp, "indirect table of %u bytes", d->len);
        return false;
    }
    *table = guest_phys_to_host(d->addr, d->len);
    if (!*table) {
        error_setg(errp, "indirect table at 0x%" PRIx64 " is not in guest RAM", d->addr);
        return false;
    }
    *tnum = d->len / 16;
    return true;
}

bool virtqueue_read_chain(VirtQueue *vq, bool indirect_ok, uint16_t head,
                          VirtQueueElement *elem, Error **errp)
{
    const void *table = vq->desc_host;
    uint32_t tnum = vq->num, visited = 0;
    bool indirect = false;
    uint16_t i = head;
    VirtqDesc d;

    *elem = (VirtQueueElement) { .head = head };
    if (head >= vq->num) {
        error_setg(errp, "chain head %u beyond queue size %u", head, vq->num);
        return false;
    }
    for (;;) {
        read_desc(table, i, &d);
        if (d.flags & VIRTQ_DESC_F_INDIRECT) {
            if (indirect) {
                error_setg(errp, "nested indirect table");
                goto fail;
            }
            if (!enter_indirect(&d, indirect_ok, &table, &tnum, errp)) {
                goto fail;
            }
            indirect = true;
            i = 0;
            visited = 0;
            continue;
        }
        /* More descriptors than the table holds: the chain loops. */
        if (++visited > tnum) {
            error_setg(errp, "descriptor chain from head %u loops", head);
            goto fail;
        }
        if (d.len && !guest_phys_to_host(d.addr, d.len)) {
            error_setg(errp, "buffer at 0x%" PRIx64 " (%u bytes) is not in guest RAM", d.addr, d.len);
            goto fail;
        }
        if (d.flags & VIRTQ_DESC_F_WRITE) {
            add_seg(&elem->in, &elem->in_num, &elem->in_len, &d);
        } else if (elem->in_num) {
            error_setg(errp, "readable descriptor after a writable one");
            goto fail;
        } else {
            add_seg(&elem->out, &elem->out_num, &elem->out_len, &d);
        }
        if (!(d.flags & VIRTQ_DESC_F_NEXT)) {
            return true;
        }
        if (d.next >= tnum) {
            error_setg(errp, "descriptor %u: next %u beyond its table of %u", i, d.next, tnum);
            goto fail;
        }
        i = d.next;
    }
fail:
    virtqueue_element_free(elem);
    return false;
}

int virtqueue_pop(VirtQueue *vq, bool indirect_ok, VirtQueueElement *elem, Error **errp)
{
    uint16_t avail, pending;

    if (!vq->ready || !vq->avail_host) {
        return 0;
    }
    if (vq->event_idx) {
        set_avail_event(vq);
    }
    avail = avail_idx(vq);
    pending = (uint16_t)(avail - vq->last_avail_idx);
    if (pending == 0) {
        return 0;
    }
    if (pending > vq->num) {
        error_setg(errp, "available index moved %u entries ahead of %u (queue size %u)",
                   pending, vq->last_avail_idx, vq->num);
        return -1;
    }
    if (!virtqueue_read_chain(vq, indirect_ok, avail_ring_entry(vq, vq->last_avail_idx), elem, errp)) {
        return -1;
    }
    vq->last_avail_idx++;
    return 1;
}

GUEST_RAM_ACCESS void virtqueue_push(VirtQueue *vq, const VirtQueueElement *elem, uint32_t len)
{
    uint8_t *used = vq->used_host;
    uint32_t slot = vq->used_idx % vq->num;
    uint32_t entry[2] = { htole32(elem->head), htole32(len) };

    if (!used) {
        return;
    }
    memcpy(used + 4 + 8ULL * slot, entry, sizeof(entry));
    vq->used_idx++;
    /* Release: the entry (and the data before it) is visible before idx. */
    __atomic_store_n((uint16_t *)(used + 2), htole16(vq->used_idx), __ATOMIC_RELEASE);
    mark_dirty(vq->used + 4 + 8ULL * slot, 8);
    mark_dirty(vq->used + 2, 2);
}

bool virtqueue_copy_from_guest(const VirtqSeg *segs, unsigned n, uint64_t offset,
                               void *buf, uint64_t len)
{
    uint8_t *out = buf;

    for (unsigned i = 0; i < n && len; i++) {
        if (offset >= segs[i].len) {
            offset -= segs[i].len;
            continue;
        }
        uint64_t chunk = MIN(len, segs[i].len - offset);
        if (!guest_phys_read(segs[i].gpa + offset, out, chunk, NULL)) {
            return false;
        }
        out += chunk;
        len -= chunk;
        offset = 0;
    }
    return len == 0;
}

bool virtqueue_copy_to_guest(const VirtqSeg *segs, unsigned n, uint64_t offset,
                             const void *buf, uint64_t len)
{
    const uint8_t *in = buf;

    for (unsigned i = 0; i < n && len; i++) {
        if (offset >= segs[i].len) {
            offset -= segs[i].len;
            continue;
        }
        uint64_t chunk = MIN(len, segs[i].len - offset);
        /* guest_phys_write marks the pages dirty. */
        if (!guest_phys_write(segs[i].gpa + offset, in, chunk, NULL)) {
            return false;
        }
        in += chunk;
        len -= chunk;
        offset = 0;
    }
    return len == 0;
}
