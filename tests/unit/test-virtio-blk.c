/*
 * virtio-blk on virtio-mmio (hw/virtio-mmio.c, hw/virtqueue.c,
 * hw/virtio-blk.c) driven as a guest driver would: through MMIO registers,
 * with rings and buffers in a real RAM block (system/memory.c), against a
 * fake drive whose asynchronous requests complete when the test says so.
 */
#include <check.h>
#include <endian.h>
#include <string.h>
#include <glib.h>
#include "block.h"
#include "hw-bus.h"
#include "memory.h"
#include "vm.h"
#include "vmstate.h"
#include "../../hw/virtio.h"
#include "../../hw/virtio-blk.h"
#include "../../migration/savevm.h"
#include "../../migration/stream.h"
#include "unit-test.h"

/* The test thread plays the main thread, which holds the BQL. */
bool bql_locked(void)
{
    return true;
}

/* ---- the fake drive ---- */

struct BlockBackend {
    const char *name;
    uint8_t *data;
    int64_t size;
    bool read_only;
    char *attached;
    int fail_errno;                 /* next requests fail with -fail_errno */
    BlockErrorAction action;        /* what the error policy says */
    int error_actions;              /* blk_error_action calls */
};

typedef struct FakeAio {
    BlockBackend *blk;
    int kind;                       /* 0 read, 1 write, 2 flush */
    int64_t offset;
    struct iovec iov;
    BlockCompletionFunc *cb;
    void *opaque;
} FakeAio;

static GQueue pending = G_QUEUE_INIT;

const char *blk_name(const BlockBackend *blk) { return blk->name; }
int64_t blk_getlength(const BlockBackend *blk) { return blk->size; }
bool blk_is_read_only(const BlockBackend *blk) { return blk->read_only; }

bool blk_attach_dev(BlockBackend *blk, const char *dev_id, Error **errp)
{
    if (blk->attached) {
        error_setg(errp, "Drive '%s' is already in use by another device", blk->name);
        return false;
    }
    blk->attached = g_strdup(dev_id);
    return true;
}

static void aio_queue(BlockBackend *blk, int kind, int64_t offset, const struct iovec *iov,
                      int iovcnt, BlockCompletionFunc *cb, void *opaque)
{
    FakeAio *a = g_new0(FakeAio, 1);

    ck_assert_int_le(iovcnt, 1);
    *a = (FakeAio) { .blk = blk, .kind = kind, .offset = offset, .cb = cb, .opaque = opaque };
    if (iovcnt) {
        a->iov = iov[0];
    }
    g_queue_push_tail(&pending, a);
}

void blk_aio_preadv(BlockBackend *blk, int64_t offset, const struct iovec *iov, int iovcnt,
                    BlockCompletionFunc *cb, void *opaque)
{
    aio_queue(blk, 0, offset, iov, iovcnt, cb, opaque);
}

void blk_aio_pwritev(BlockBackend *blk, int64_t offset, const struct iovec *iov, int iovcnt,
                     BlockCompletionFunc *cb, void *opaque)
{
    aio_queue(blk, 1, offset, iov, iovcnt, cb, opaque);
}

void blk_aio_flush(BlockBackend *blk, BlockCompletionFunc *cb, void *opaque)
{
    aio_queue(blk, 2, 0, NULL, 0, cb, opaque);
}

/* Complete every pending request (the main loop running callbacks). */
static int run_pending(void)
{
    int n = 0;

    for (FakeAio *a; (a = g_queue_pop_head(&pending)); n++) {
        BlockBackend *blk = a->blk;
        int ret = -blk->fail_errno;

        ck_assert_int_le(a->offset + (int64_t)a->iov.iov_len, blk->size);
        if (!ret && a->kind == 0) {
            memcpy(a->iov.iov_base, blk->data + a->offset, a->iov.iov_len);
        } else if (!ret && a->kind == 1) {
            memcpy(blk->data + a->offset, a->iov.iov_base, a->iov.iov_len);
        }
        a->cb(a->opaque, ret);
        g_free(a);
    }
    return n;
}

void blk_drain_all(void)
{
    run_pending();
}

BlockErrorAction blk_get_error_action(BlockBackend *blk, bool is_read, int error)
{
    ck_assert_int_eq(error, blk->fail_errno);
    return blk->action;
}

void blk_error_action(BlockBackend *blk, BlockErrorAction action, bool is_read, int error)
{
    blk->error_actions++;
}

/* ---- the rest of migvm the device calls ---- */

static const VMStateDescription *registered_vmsd;
static int registered;

bool vmstate_register(const char *idstr, uint32_t instance_id,
                      const VMStateDescription *vmsd, void *opaque, Error **errp)
{
    ck_assert_str_eq(idstr, "virtio-blk");
    registered_vmsd = vmsd;
    registered++;
    return true;
}

void vmstate_unregister(const VMStateDescription *vmsd, void *opaque)
{
    registered--;
}

static VMChangeStateHandler *state_handler;
static int state_handlers;

void vm_change_state_handler_add(VMChangeStateHandler *fn, void *opaque)
{
    state_handler = fn;
    state_handlers++;
}

void vm_change_state_handler_del(VMChangeStateHandler *fn, void *opaque)
{
    state_handlers--;
}

/* ---- the guest ---- */

#define MiB (1024 * 1024)
#define BASE 0xfeb00000ULL
#define QSIZE 16
#define DESC 0x1000
#define AVAIL 0x2000
#define USED 0x3000
#define HDR 0x8000              /* request headers, 16 bytes apart */
#define STATUS 0x9000           /* status bytes, 16 bytes apart */
#define INDIRECT 0xa000
#define DATA 0x10000
#define DATA2 0x40000
#define DISK_SIZE (1 * MiB)

enum {
    R_MAGIC = 0x000, R_VERSION = 0x004, R_DEVICE_ID = 0x008, R_VENDOR = 0x00c,
    R_DEV_FEAT = 0x010, R_DEV_FEAT_SEL = 0x014, R_DRV_FEAT = 0x020, R_DRV_FEAT_SEL = 0x024,
    R_QUEUE_SEL = 0x030, R_QUEUE_NUM_MAX = 0x034, R_QUEUE_NUM = 0x038, R_QUEUE_READY = 0x044,
    R_NOTIFY = 0x050, R_ISR = 0x060, R_ACK = 0x064, R_STATUS = 0x070,
    R_DESC_LO = 0x080, R_DESC_HI = 0x084, R_AVAIL_LO = 0x090, R_AVAIL_HI = 0x094,
    R_USED_LO = 0x0a0, R_USED_HI = 0x0a4, R_GEN = 0x0fc, R_CONFIG = 0x100,
};

enum { S_ACK = 1, S_DRIVER = 2, S_DRIVER_OK = 4, S_FEATURES_OK = 8, S_NEEDS_RESET = 0x40 };
enum { F_NEXT = 1, F_WRITE = 2, F_INDIRECT = 4 };
enum { T_IN = 0, T_OUT = 1, T_FLUSH = 4, T_GET_ID = 8, T_DISCARD = 11 };

static BlockBackend drive;
static VirtIOBlock *dev;
static int irq_level;
static uint16_t avail_idx, used_seen, next_desc;

static void set_irq(void *opaque, int level)
{
    irq_level = level;
}

static uint32_t rd(uint64_t off)
{
    uint64_t v = 0;

    ck_assert(mmio_read(BASE + off, &v, 4));
    return (uint32_t)v;
}

static void wr(uint64_t off, uint32_t v)
{
    ck_assert(mmio_write(BASE + off, v, 4));
}

static uint64_t config(uint64_t off, unsigned size)
{
    uint64_t v = 0;

    ck_assert(mmio_read(BASE + R_CONFIG + off, &v, size));
    return v;
}

static void *host(uint64_t gpa)
{
    void *p = guest_phys_to_host(gpa, 1);

    ck_assert_ptr_nonnull(p);
    return p;
}

static void put16(uint64_t gpa, uint16_t v) { v = htole16(v); memcpy(host(gpa), &v, 2); }
static void put32(uint64_t gpa, uint32_t v) { v = htole32(v); memcpy(host(gpa), &v, 4); }
static void put64(uint64_t gpa, uint64_t v) { v = htole64(v); memcpy(host(gpa), &v, 8); }
static uint16_t get16(uint64_t gpa) { uint16_t v; memcpy(&v, host(gpa), 2); return le16toh(v); }
static uint32_t get32(uint64_t gpa) { uint32_t v; memcpy(&v, host(gpa), 4); return le32toh(v); }

static void set_desc(uint64_t table, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
    uint64_t d = table + 16ULL * i;

    put64(d, addr);
    put32(d + 8, len);
    put16(d + 12, flags);
    put16(d + 14, next);
}

static void avail_push(uint16_t head)
{
    put16(AVAIL + 4 + 2 * (avail_idx % QSIZE), head);
    avail_idx++;
    put16(AVAIL + 2, avail_idx);
}

static uint16_t used_idx(void)
{
    return get16(USED + 2);
}

/* The next used entry: its head, and its length in *len. */
static uint16_t used_pop(uint32_t *len)
{
    ck_assert_uint_ne(used_idx(), used_seen);
    uint64_t e = USED + 4 + 8 * (used_seen++ % QSIZE);
    *len = get32(e + 4);
    return (uint16_t)get32(e);
}

static void create_device(bool read_only)
{
    Error *err = NULL;

    drive.read_only = read_only;
    dev = virtio_blk_create(&drive, "/machine/virtio-blk0", 0, &err);
    ck_assert_ptr_null(err);
    ck_assert_ptr_nonnull(dev);
    virtio_blk_vdev(dev)->set_irq = set_irq;
    ck_assert(virtio_mmio_attach(virtio_blk_vdev(dev), BASE, &err));
}

static void setup(void)
{
    Error *err = NULL;

    ck_assert_ptr_nonnull(ram_block_add("ram", 0, 1 * MiB, &err));
    drive = (BlockBackend) { .name = "disk0", .size = DISK_SIZE, .data = g_malloc0(DISK_SIZE) };
    for (int i = 0; i < DISK_SIZE; i++) {
        drive.data[i] = (uint8_t)(i / 512 + i);
    }
    avail_idx = used_seen = next_desc = 0;
    irq_level = 0;
    create_device(false);
}

static void teardown(void)
{
    virtio_blk_destroy(dev);
    dev = NULL;
    ck_assert_int_eq(registered, 0);
    ck_assert_int_eq(state_handlers, 0);
    ck_assert(g_queue_is_empty(&pending));
    bus_cleanup();
    ram_blocks_free_all();
    g_free(drive.data);
    g_free(drive.attached);
}

static uint64_t device_features(void)
{
    wr(R_DEV_FEAT_SEL, 0);
    uint64_t f = rd(R_DEV_FEAT);
    wr(R_DEV_FEAT_SEL, 1);
    return f | (uint64_t)rd(R_DEV_FEAT) << 32;
}

/* Negotiate `accept` (of what the device offers); returns the status read back. */
static uint32_t negotiate(uint64_t accept)
{
    wr(R_STATUS, 0);
    wr(R_STATUS, S_ACK);
    wr(R_STATUS, S_ACK | S_DRIVER);
    wr(R_DRV_FEAT_SEL, 0);
    wr(R_DRV_FEAT, (uint32_t)accept);
    wr(R_DRV_FEAT_SEL, 1);
    wr(R_DRV_FEAT, (uint32_t)(accept >> 32));
    wr(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK);
    return rd(R_STATUS);
}

static void queue_setup(uint64_t desc, uint64_t avail, uint64_t used)
{
    wr(R_QUEUE_SEL, 0);
    wr(R_QUEUE_NUM, QSIZE);
    wr(R_DESC_LO, (uint32_t)desc);
    wr(R_DESC_HI, (uint32_t)(desc >> 32));
    wr(R_AVAIL_LO, (uint32_t)avail);
    wr(R_AVAIL_HI, 0);
    wr(R_USED_LO, (uint32_t)used);
    wr(R_USED_HI, 0);
    wr(R_QUEUE_READY, 1);
}

/* A driver up and running with every offered feature. */
static void driver_start(void)
{
    ck_assert_uint_eq(negotiate(device_features()), S_ACK | S_DRIVER | S_FEATURES_OK);
    queue_setup(DESC, AVAIL, USED);
    ck_assert_uint_eq(rd(R_QUEUE_READY), 1);
    wr(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    avail_idx = used_seen = next_desc = 0;
}

static uint16_t alloc_desc(void)
{
    return next_desc++ % QSIZE;
}

static void write_header(int slot, uint32_t type, uint64_t sector)
{
    put32(HDR + 16 * slot, type);
    put32(HDR + 16 * slot + 4, 0);
    put64(HDR + 16 * slot + 8, sector);
    *(uint8_t *)host(STATUS + 16 * slot) = 0xff;
}

/* Header, one data buffer (none if len 0), status: a three-descriptor chain. */
static uint16_t request(int slot, uint32_t type, uint64_t sector, uint64_t data, uint32_t len)
{
    uint16_t h = alloc_desc(), d = len ? alloc_desc() : 0, st = alloc_desc();

    write_header(slot, type, sector);
    set_desc(DESC, h, HDR + 16 * slot, 16, F_NEXT, len ? d : st);
    if (len) {
        set_desc(DESC, d, data, len, F_NEXT | (type == T_OUT ? 0 : F_WRITE), st);
    }
    set_desc(DESC, st, STATUS + 16 * slot, 1, F_WRITE, 0);
    avail_push(h);
    return h;
}

static uint8_t status_of(int slot)
{
    return *(uint8_t *)host(STATUS + 16 * slot);
}

/* Submit one request, complete it, check the used entry; returns the status. */
static uint8_t do_request(uint32_t type, uint64_t sector, uint64_t data, uint32_t len, uint32_t used_len)
{
    uint16_t head = request(0, type, sector, data, len);
    uint32_t got_len;

    wr(R_NOTIFY, 0);
    run_pending();
    ck_assert_uint_eq(used_pop(&got_len), head);
    ck_assert_uint_eq(got_len, used_len);
    return status_of(0);
}

/* ---- tests ---- */

START_TEST(test_identity_and_negotiation)
{
    uint64_t f = device_features();

    ck_assert_uint_eq(rd(R_MAGIC), 0x74726976);
    ck_assert_uint_eq(rd(R_VERSION), 2);
    ck_assert_uint_eq(rd(R_DEVICE_ID), 2);
    ck_assert_uint_eq(rd(R_VENDOR), 0x554d4551);
    /* VERSION_1, INDIRECT_DESC, EVENT_IDX, SEG_MAX, BLK_SIZE, FLUSH; not RO. */
    ck_assert_uint_eq(f, (1ULL << 32) | (1ULL << 28) | (1ULL << 29) | (1 << 2) | (1 << 6) | (1 << 9));
    wr(R_DEV_FEAT_SEL, 2);
    ck_assert_uint_eq(rd(R_DEV_FEAT), 0);

    /* Without VERSION_1, or with a bit not offered, FEATURES_OK stays clear. */
    ck_assert_uint_eq(negotiate(f & ~(1ULL << 32)), S_ACK | S_DRIVER);
    ck_assert_uint_eq(negotiate(f | (1ULL << 5)), S_ACK | S_DRIVER);
    ck_assert_uint_eq(negotiate(1ULL << 32), S_ACK | S_DRIVER | S_FEATURES_OK);
    /* Features are frozen once FEATURES_OK is set. */
    wr(R_DRV_FEAT_SEL, 0);
    wr(R_DRV_FEAT, 1 << 9);
    ck_assert(!virtio_has_feature(virtio_blk_vdev(dev), 9));

    /* Configuration: capacity, seg_max, blk_size; 64-bit and byte reads. */
    ck_assert_uint_eq(config(0, 8), DISK_SIZE / 512);
    ck_assert_uint_eq(config(0, 4), DISK_SIZE / 512);
    ck_assert_uint_eq(config(12, 4), 254);
    ck_assert_uint_eq(config(20, 4), 512);
    ck_assert_uint_eq(config(21, 1), 2);
    ck_assert_uint_eq(config(0x80, 4), 0);
    ck_assert_uint_eq(rd(R_GEN), 0);

    wr(R_QUEUE_SEL, 0);
    ck_assert_uint_eq(rd(R_QUEUE_NUM_MAX), 256);
    wr(R_QUEUE_SEL, 1);
    ck_assert_uint_eq(rd(R_QUEUE_NUM_MAX), 0);
    /* A byte access to a register is ignored, not a crash. */
    uint64_t v = 0;
    ck_assert(mmio_read(BASE + R_MAGIC, &v, 1));
    ck_assert_uint_eq(v, 0);
}
END_TEST

START_TEST(test_write_read_round_trip)
{
    uint8_t pattern[4096], back[4096];
    RAMBlock *ram = ram_block_by_name("ram");

    driver_start();
    for (size_t i = 0; i < sizeof(pattern); i++) {
        pattern[i] = (uint8_t)(i * 7 + 3);
    }
    memcpy(host(DATA), pattern, sizeof(pattern));
    ck_assert_uint_eq(do_request(T_OUT, 8, DATA, 4096, 1), 0);
    ck_assert_mem_eq(drive.data + 8 * 512, pattern, sizeof(pattern));
    ck_assert_uint_eq(rd(R_ISR), 1);
    ck_assert_int_eq(irq_level, 1);
    wr(R_ACK, 1);
    ck_assert_uint_eq(rd(R_ISR), 0);
    ck_assert_int_eq(irq_level, 0);

    /* Read it back elsewhere; the pages the device wrote are dirty. */
    memory_global_dirty_log_sync();
    ram_block_clear_all_dirty(ram);
    memset(host(DATA2), 0, sizeof(back));
    ck_assert_uint_eq(do_request(T_IN, 8, DATA2, 4096, 4097), 0);
    memcpy(back, host(DATA2), sizeof(back));
    ck_assert_mem_eq(back, pattern, sizeof(pattern));
    memory_global_dirty_log_sync();
    ck_assert(ram_block_test_dirty(ram, DATA2 / MIGVM_PAGE_SIZE));
    ck_assert(ram_block_test_dirty(ram, STATUS / MIGVM_PAGE_SIZE));
    ck_assert(ram_block_test_dirty(ram, USED / MIGVM_PAGE_SIZE));
    ck_assert(!ram_block_test_dirty(ram, DATA / MIGVM_PAGE_SIZE));

    /* Flush, GET_ID, an unknown type, out of range and unaligned requests. */
    ck_assert_uint_eq(do_request(T_FLUSH, 0, 0, 0, 1), 0);
    memset(host(DATA), 0xee, 32);
    ck_assert_uint_eq(do_request(T_GET_ID, 0, DATA, 20, 21), 0);
    ck_assert_str_eq((char *)host(DATA), "disk0");
    ck_assert_uint_eq(*(uint8_t *)host(DATA + 19), 0);
    ck_assert_uint_eq(do_request(T_DISCARD, 0, DATA, 16, 1), 2);
    ck_assert_uint_eq(do_request(T_IN, DISK_SIZE / 512 - 1, DATA, 1024, 1), 1);
    ck_assert_uint_eq(do_request(T_IN, UINT64_MAX / 256, DATA, 512, 1), 1);
    ck_assert_uint_eq(do_request(T_OUT, 0, DATA, 100, 1), 1);
    ck_assert_uint_eq(do_request(T_IN, DISK_SIZE / 512 - 1, DATA, 512, 513), 0);
    ck_assert_uint_eq(rd(R_STATUS) & S_NEEDS_RESET, 0);
}
END_TEST

/* Header split over two descriptors, data over three of odd sizes, the
 * status byte at the end of the last data buffer; then the same through an
 * indirect table. */
START_TEST(test_chained_descriptors)
{
    uint32_t len;

    driver_start();
    write_header(0, T_IN, 3);
    set_desc(DESC, 0, HDR, 8, F_NEXT, 1);
    set_desc(DESC, 1, HDR + 8, 8, F_NEXT, 2);
    set_desc(DESC, 2, DATA, 512, F_NEXT | F_WRITE, 3);
    set_desc(DESC, 3, DATA + 0x1000, 1000, F_NEXT | F_WRITE, 4);
    set_desc(DESC, 4, DATA + 0x2000, 25, F_WRITE, 0);       /* 24 data + status */
    avail_push(0);
    wr(R_NOTIFY, 0);
    run_pending();
    ck_assert_uint_eq(used_pop(&len), 0);
    ck_assert_uint_eq(len, 1537);
    ck_assert_mem_eq(host(DATA), drive.data + 3 * 512, 512);
    ck_assert_mem_eq(host(DATA + 0x1000), drive.data + 4 * 512, 1000);
    ck_assert_mem_eq(host(DATA + 0x2000), drive.data + 4 * 512 + 1000, 24);
    ck_assert_uint_eq(*(uint8_t *)host(DATA + 0x2000 + 24), 0);

    /* Indirect: one ring descriptor pointing to a table of three. */
    memset(host(DATA2), 0x5a, 1024);
    write_header(1, T_OUT, 100);
    set_desc(INDIRECT, 0, HDR + 16, 16, F_NEXT, 1);
    set_desc(INDIRECT, 1, DATA2, 1024, F_NEXT, 2);
    set_desc(INDIRECT, 2, STATUS + 16, 1, F_WRITE, 0);
    set_desc(DESC, 5, INDIRECT, 48, F_INDIRECT, 0);
    avail_push(5);
    wr(R_NOTIFY, 0);
    run_pending();
    ck_assert_uint_eq(used_pop(&len), 5);
    ck_assert_uint_eq(len, 1);
    ck_assert_uint_eq(status_of(1), 0);
    for (int i = 0; i < 1024; i++) {
        ck_assert_uint_eq(drive.data[100 * 512 + i], 0x5a);
    }
}
END_TEST

/* Run one broken chain after a good device start: the device must flag
 * DEVICE_NEEDS_RESET, return nothing, raise the configuration interrupt,
 * and work again after a reset. */
static void expect_broken(void)
{
    wr(R_NOTIFY, 0);
    ck_assert_int_eq(run_pending(), 0);
    ck_assert_uint_eq(used_idx(), 0);
    ck_assert_uint_ne(rd(R_STATUS) & S_NEEDS_RESET, 0);
    ck_assert_uint_eq(rd(R_ISR), 2);
    ck_assert_int_eq(irq_level, 1);
    /* Further notifies are ignored until reset. */
    wr(R_NOTIFY, 0);
    ck_assert_int_eq(run_pending(), 0);

    wr(R_STATUS, 0);
    ck_assert_uint_eq(rd(R_STATUS), 0);
    ck_assert_int_eq(irq_level, 0);
    memset(host(USED), 0, 4 + 8 * QSIZE);
    memset(host(AVAIL), 0, 4 + 2 * QSIZE);
    driver_start();
    ck_assert_uint_eq(do_request(T_IN, 0, DATA, 512, 513), 0);
}

START_TEST(test_bad_descriptors)
{
    driver_start();
    int bad = _i;

    write_header(0, T_IN, 0);
    switch (bad) {
    case 0:     /* data outside RAM */
        set_desc(DESC, 0, HDR, 16, F_NEXT, 1);
        set_desc(DESC, 1, 0x7ff00000, 512, F_NEXT | F_WRITE, 2);
        set_desc(DESC, 2, STATUS, 1, F_WRITE, 0);
        break;
    case 1:     /* data running off the end of RAM */
        set_desc(DESC, 0, HDR, 16, F_NEXT, 1);
        set_desc(DESC, 1, 1 * MiB - 256, 512, F_NEXT | F_WRITE, 2);
        set_desc(DESC, 2, STATUS, 1, F_WRITE, 0);
        break;
    case 2:     /* a loop */
        set_desc(DESC, 0, HDR, 16, F_NEXT, 1);
        set_desc(DESC, 1, DATA, 512, F_NEXT | F_WRITE, 0);
        break;
    case 3:     /* next beyond the table */
        set_desc(DESC, 0, HDR, 16, F_NEXT, QSIZE);
        break;
    case 4:     /* readable after writable */
        set_desc(DESC, 0, HDR, 16, F_NEXT, 1);
        set_desc(DESC, 1, STATUS, 1, F_WRITE | F_NEXT, 2);
        set_desc(DESC, 2, DATA, 512, 0, 0);
        break;
    case 5:     /* no status byte */
        set_desc(DESC, 0, HDR, 16, 0, 0);
        break;
    case 6:     /* nested indirect tables */
        set_desc(INDIRECT, 0, INDIRECT + 0x100, 16, F_INDIRECT, 0);
        set_desc(DESC, 0, INDIRECT, 16, F_INDIRECT, 0);
        break;
    case 7:     /* indirect table outside RAM, and of a bad size */
        set_desc(DESC, 0, 0x7ff00000, 48, F_INDIRECT, 0);
        break;
    case 8:
        set_desc(DESC, 0, INDIRECT, 20, F_INDIRECT, 0);
        break;
    case 9:     /* a loop inside an indirect table */
        set_desc(INDIRECT, 0, HDR, 16, F_NEXT, 1);
        set_desc(INDIRECT, 1, DATA, 512, F_NEXT | F_WRITE, 1);
        set_desc(DESC, 0, INDIRECT, 32, F_INDIRECT, 0);
        break;
    case 10:    /* head out of range */
        put16(AVAIL + 4, 200);
        avail_idx++;
        put16(AVAIL + 2, avail_idx);
        expect_broken();
        return;
    case 11:    /* available index far ahead */
        avail_idx += QSIZE + 1;
        put16(AVAIL + 2, avail_idx);
        expect_broken();
        return;
    }
    avail_push(0);
    expect_broken();
}
END_TEST

START_TEST(test_bad_rings)
{
    ck_assert_uint_eq(negotiate(device_features()), S_ACK | S_DRIVER | S_FEATURES_OK);
    queue_setup(0x7fff0000, AVAIL, USED);           /* descriptor table outside RAM */
    ck_assert_uint_eq(rd(R_QUEUE_READY), 0);
    ck_assert_uint_ne(rd(R_STATUS) & S_NEEDS_RESET, 0);
    wr(R_STATUS, 0);
    ck_assert_uint_eq(negotiate(device_features()), S_ACK | S_DRIVER | S_FEATURES_OK);
    queue_setup(DESC, AVAIL, 1 * MiB - 16);         /* used ring running off RAM */
    ck_assert_uint_eq(rd(R_QUEUE_READY), 0);
    wr(R_STATUS, 0);
    ck_assert_uint_eq(negotiate(device_features()), S_ACK | S_DRIVER | S_FEATURES_OK);
    queue_setup(DESC + 8, AVAIL, USED);             /* misaligned */
    ck_assert_uint_eq(rd(R_QUEUE_READY), 0);
    wr(R_STATUS, 0);
    ck_assert_uint_eq(negotiate(device_features()), S_ACK | S_DRIVER | S_FEATURES_OK);
    wr(R_QUEUE_NUM, 512);                           /* larger than QueueNumMax */
    wr(R_QUEUE_READY, 1);
    ck_assert_uint_eq(rd(R_QUEUE_READY), 0);
    wr(R_STATUS, 0);
    driver_start();
    ck_assert_uint_eq(do_request(T_IN, 0, DATA, 512, 513), 0);
}
END_TEST

START_TEST(test_read_only)
{
    virtio_blk_destroy(dev);
    bus_cleanup();
    g_free(drive.attached);
    drive.attached = NULL;
    create_device(true);
    ck_assert_uint_ne(device_features() & (1 << 5), 0);
    driver_start();
    uint8_t before = drive.data[0];
    memset(host(DATA), 0x11, 512);
    ck_assert_uint_eq(do_request(T_OUT, 0, DATA, 512, 1), 1);
    ck_assert_uint_eq(drive.data[0], before);
    ck_assert_uint_eq(do_request(T_IN, 0, DATA, 512, 513), 0);
    ck_assert_uint_eq(*(uint8_t *)host(DATA), before);
}
END_TEST

START_TEST(test_attach_twice)
{
    Error *err = NULL;

    ck_assert_ptr_null(virtio_blk_create(&drive, "other", 1, &err));
    ck_assert_ptr_nonnull(err);
    error_free(err);
}
END_TEST

START_TEST(test_reset)
{
    driver_start();
    request(0, T_IN, 0, DATA, 512);
    wr(R_NOTIFY, 0);
    ck_assert_uint_eq(virtio_blk_inflight(dev), 1);
    /* A reset lets the request land first, then forgets everything. */
    wr(R_STATUS, 0);
    ck_assert_uint_eq(virtio_blk_inflight(dev), 0);
    ck_assert_uint_eq(used_idx(), 1);
    ck_assert_uint_eq(rd(R_STATUS), 0);
    ck_assert_uint_eq(rd(R_ISR), 0);
    ck_assert_int_eq(irq_level, 0);
    wr(R_QUEUE_SEL, 0);
    ck_assert_uint_eq(rd(R_QUEUE_READY), 0);
    ck_assert(!virtio_has_feature(virtio_blk_vdev(dev), 32));
    /* The board's reset does the same. */
    driver_start();
    virtio_device_reset(virtio_blk_vdev(dev));
    ck_assert_uint_eq(rd(R_STATUS), 0);
    wr(R_QUEUE_SEL, 0);
    ck_assert_uint_eq(rd(R_QUEUE_READY), 0);
}
END_TEST

START_TEST(test_error_policy)
{
    driver_start();
    drive.fail_errno = 5;
    drive.action = BLOCK_ERROR_ACTION_REPORT;
    ck_assert_uint_eq(do_request(T_IN, 0, DATA, 512, 1), 1);
    drive.action = BLOCK_ERROR_ACTION_IGNORE;
    ck_assert_uint_eq(do_request(T_OUT, 0, DATA, 512, 1), 0);
    ck_assert_int_eq(drive.error_actions, 2);

    /* STOP: the request is held, nothing returned; later requests wait. */
    drive.action = BLOCK_ERROR_ACTION_STOP;
    memset(host(DATA), 0x77, 512);
    request(0, T_OUT, 5, DATA, 512);
    wr(R_NOTIFY, 0);
    run_pending();
    ck_assert_uint_eq(virtio_blk_held(dev), 1);
    request(1, T_IN, 6, DATA2, 512);
    wr(R_NOTIFY, 0);
    ck_assert_int_eq(run_pending(), 0);
    ck_assert_uint_eq(used_idx(), used_seen);
    /* Resumed and healed: both complete, in order. */
    drive.fail_errno = 0;
    state_handler(dev, true);
    run_pending();
    run_pending();
    uint32_t len;
    ck_assert_uint_eq(used_pop(&len), 6);
    ck_assert_uint_eq(len, 1);
    ck_assert_uint_eq(used_pop(&len), 9);
    ck_assert_uint_eq(len, 513);
    ck_assert_uint_eq(status_of(0), 0);
    ck_assert_uint_eq(status_of(1), 0);
    ck_assert_uint_eq(drive.data[5 * 512], 0x77);
    ck_assert_mem_eq(host(DATA2), drive.data + 6 * 512, 512);
}
END_TEST

/* Random descriptor tables, indirect tables and available rings (a guest
 * writing garbage): the device answers or flags DEVICE_NEEDS_RESET, never
 * touches memory outside guest RAM (ASan, valgrind) and never crashes. */
START_TEST(test_random_rings)
{
    GRand *rng = g_rand_new_with_seed(20261203);
    int broken = 0, answered = 0;

    for (int round = 0; round < 400; round++) {
        driver_start();
        for (int i = 0; i < QSIZE; i++) {
            uint16_t flags = (uint16_t)g_rand_int_range(rng, 0, 8);
            uint64_t addr = g_rand_int_range(rng, 0, 10) ? (uint64_t)g_rand_int_range(rng, 0, 1 * MiB + 4096)
                                                         : g_rand_int(rng) * 4096ULL;
            uint32_t len = g_rand_int_range(rng, 0, 3) ? (uint32_t)g_rand_int_range(rng, 0, 8192) : g_rand_int(rng);
            set_desc(DESC, (uint16_t)i, addr, len, flags, (uint16_t)g_rand_int_range(rng, 0, QSIZE + 3));
            set_desc(INDIRECT, (uint16_t)i, HDR + 16 * (i % 4), (uint32_t)g_rand_int_range(rng, 0, 64),
                     (uint16_t)g_rand_int_range(rng, 0, 8), (uint16_t)g_rand_int_range(rng, 0, QSIZE + 3));
            put32(HDR + 16 * (i % 4), (uint32_t)g_rand_int_range(rng, 0, 12));
            put64(HDR + 16 * (i % 4) + 8, (uint64_t)g_rand_int_range(rng, 0, 4096));
        }
        int n = g_rand_int_range(rng, 1, QSIZE + 1);
        for (int i = 0; i < n; i++) {
            avail_push((uint16_t)g_rand_int_range(rng, 0, QSIZE + 2));
        }
        if (g_rand_int_range(rng, 0, 8) == 0) {
            put16(AVAIL + 2, (uint16_t)g_rand_int(rng));
        }
        wr(R_NOTIFY, 0);
        run_pending();
        broken += (rd(R_STATUS) & S_NEEDS_RESET) != 0;
        answered += used_idx() != 0;
        memset(host(USED), 0, 4 + 8 * QSIZE);
        memset(host(AVAIL), 0, 4 + 2 * QSIZE);
    }
    wr(R_STATUS, 0);
    g_rand_free(rng);
    /* Both outcomes happen: the test does reach request processing. */
    ck_assert_int_gt(broken, 0);
    ck_assert_int_gt(answered, 0);
}
END_TEST

static uint8_t *save_state(size_t *len, Error **errp);
static bool load_state(const uint8_t *data, size_t len, Error **errp);
static void new_destination(void);

#define USED_EVENT (AVAIL + 4 + 2 * QSIZE)
#define AVAIL_EVENT (USED + 4 + 8 * QSIZE)

/* Submit an IN request and complete it; returns InterruptStatus after it,
 * then acknowledges. */
static uint32_t isr_after_request(void)
{
    ck_assert_uint_eq(do_request(T_IN, 0, DATA, 512, 513), 0);
    uint32_t isr = rd(R_ISR);
    wr(R_ACK, isr);
    return isr;
}

START_TEST(test_no_interrupt_flag)
{
    ck_assert_uint_eq(negotiate(1ULL << 32), S_ACK | S_DRIVER | S_FEATURES_OK);
    queue_setup(DESC, AVAIL, USED);
    wr(R_STATUS, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    ck_assert_uint_eq(isr_after_request(), 1);
    put16(AVAIL, 1);                                /* VIRTQ_AVAIL_F_NO_INTERRUPT */
    ck_assert_uint_eq(isr_after_request(), 0);
    ck_assert_int_eq(irq_level, 0);
    put16(AVAIL, 0);
    ck_assert_uint_eq(isr_after_request(), 1);
}
END_TEST

/* EVENT_IDX: an interrupt only when used.idx passes the driver's used_event;
 * the device asks for a notify at its last_avail_idx; the signalled state
 * survives a migration. */
START_TEST(test_event_idx)
{
    Error *err = NULL;
    size_t len;

    driver_start();
    ck_assert(virtio_has_feature(virtio_blk_vdev(dev), 29));
    put16(USED_EVENT, 0);
    ck_assert_uint_eq(isr_after_request(), 1);      /* the first one always */
    ck_assert_uint_eq(get16(AVAIL_EVENT), 1);
    ck_assert_uint_eq(isr_after_request(), 0);      /* used.idx 2 did not pass 0 again */
    ck_assert_int_eq(irq_level, 0);
    put16(USED_EVENT, 2);
    ck_assert_uint_eq(isr_after_request(), 1);      /* used.idx 3 passed 2 */
    ck_assert_uint_eq(get16(AVAIL_EVENT), 3);
    /* NO_INTERRUPT means nothing with EVENT_IDX. */
    put16(AVAIL, 1);
    put16(USED_EVENT, 3);
    ck_assert_uint_eq(isr_after_request(), 1);
    put16(AVAIL, 0);

    /* Across a migration: used_event 0 is far behind, no interrupt, as
     * without the migration (a forgotten signalled state would send one). */
    put16(USED_EVENT, 0);
    uint8_t *state = save_state(&len, &err);
    ck_assert_ptr_null(err);
    new_destination();
    ck_assert(load_state(state, len, &err));
    g_free(state);
    ck_assert_uint_eq(isr_after_request(), 0);
    ck_assert_uint_eq(get16(AVAIL_EVENT), 5);
}
END_TEST

static uint8_t *save_state(size_t *len, Error **errp)
{
    MigStream *f = mig_stream_new_mem_writer();
    uint8_t *copy = NULL;

    if (vmstate_save(f, registered_vmsd, dev, NULL, errp)) {
        const uint8_t *data = mig_stream_mem_data(f, len);
        copy = g_memdup2(data, *len);
    }
    mig_stream_close(f, NULL);
    return copy;
}

static bool load_state(const uint8_t *data, size_t len, Error **errp)
{
    MigStream *f = mig_stream_new_mem_reader(data, len);
    bool ok = vmstate_load(f, registered_vmsd, dev, 1, errp);

    mig_stream_close(f, NULL);
    return ok;
}

/* The destination: a fresh device on the same drive and guest RAM. */
static void new_destination(void)
{
    virtio_blk_destroy(dev);
    bus_cleanup();
    g_free(drive.attached);
    drive.attached = NULL;
    create_device(drive.read_only);
}

START_TEST(test_vmstate_round_trip)
{
    Error *err = NULL;
    size_t len;
    uint32_t ulen;

    driver_start();
    ck_assert_uint_eq(do_request(T_IN, 1, DATA, 512, 513), 0);
    ck_assert_uint_eq(do_request(T_IN, 2, DATA, 512, 513), 0);
    /* In flight: saving is refused with an error. */
    request(0, T_IN, 3, DATA, 512);
    wr(R_NOTIFY, 0);
    ck_assert_ptr_null(save_state(&len, &err));
    ck_assert_ptr_nonnull(strstr(error_get_pretty(err), "in flight"));
    error_free(err);
    err = NULL;
    run_pending();
    ck_assert_uint_eq(used_pop(&ulen), 6);
    /* One request queued but not yet noticed by the device. */
    uint16_t head = request(1, T_IN, 4, DATA2, 512);

    uint8_t *state = save_state(&len, &err);
    ck_assert_ptr_null(err);
    new_destination();
    ck_assert_uint_eq(rd(R_STATUS), 0);
    ck_assert(load_state(state, len, &err));
    ck_assert_ptr_null(err);
    g_free(state);

    ck_assert_uint_eq(rd(R_STATUS), S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
    ck_assert_uint_eq(rd(R_ISR), 1);
    wr(R_QUEUE_SEL, 0);
    ck_assert_uint_eq(rd(R_QUEUE_READY), 1);
    wr(R_NOTIFY, 0);
    run_pending();
    ck_assert_uint_eq(used_pop(&ulen), head);
    ck_assert_uint_eq(ulen, 513);
    ck_assert_uint_eq(used_idx(), 4);
    ck_assert_mem_eq(host(DATA2), drive.data + 4 * 512, 512);
}
END_TEST

/* A request an error STOP holds crosses the migration as its chain head and
 * runs on the destination once it resumes; exactly once. */
START_TEST(test_vmstate_held_request)
{
    Error *err = NULL;
    size_t len;
    uint32_t ulen;

    driver_start();
    drive.fail_errno = 28;
    drive.action = BLOCK_ERROR_ACTION_STOP;
    memset(host(DATA), 0x42, 1024);
    uint16_t head = request(0, T_OUT, 10, DATA, 1024);
    wr(R_NOTIFY, 0);
    run_pending();
    ck_assert_uint_eq(virtio_blk_held(dev), 1);

    uint8_t *state = save_state(&len, &err);
    ck_assert_ptr_null(err);
    new_destination();
    drive.fail_errno = 0;
    ck_assert(load_state(state, len, &err));
    ck_assert_ptr_null(err);
    g_free(state);
    ck_assert_uint_eq(virtio_blk_held(dev), 1);
    ck_assert_uint_ne(drive.data[10 * 512], 0x42);
    state_handler(dev, true);
    ck_assert_int_eq(run_pending(), 1);
    ck_assert_uint_eq(used_pop(&ulen), head);
    ck_assert_uint_eq(used_idx(), 1);
    for (int i = 0; i < 1024; i++) {
        ck_assert_uint_eq(drive.data[10 * 512 + i], 0x42);
    }
}
END_TEST

/* A stream whose rings lie outside RAM, or that holds a bogus head, is
 * refused with an error. */
START_TEST(test_vmstate_bad_stream)
{
    Error *err = NULL;
    size_t len;

    driver_start();
    VirtIODevice *vdev = virtio_blk_vdev(dev);
    vdev->vq[0].used = 0x7fff0000;
    uint8_t *state = save_state(&len, &err);
    ck_assert_ptr_null(err);
    new_destination();
    ck_assert(!load_state(state, len, &err));
    ck_assert_ptr_nonnull(strstr(error_get_pretty(err), "used ring"));
    error_free(err);
    err = NULL;
    g_free(state);

    driver_start();
    vdev = virtio_blk_vdev(dev);
    vdev->vq[0].n_held = 1;
    vdev->vq[0].held[0] = 3;
    set_desc(DESC, 3, HDR, 16, F_NEXT, 3);          /* a loop */
    /* Save the fields as they are (pre_save would refill held[] from the device). */
    MigStream *f = mig_stream_new_mem_writer();
    ck_assert(vmstate_save(f, &vmstate_virtio_device, vdev, NULL, &err));
    const uint8_t *data = mig_stream_mem_data(f, &len);
    state = g_memdup2(data, len);
    mig_stream_close(f, NULL);
    new_destination();
    ck_assert(!load_state(state, len, &err));
    ck_assert_ptr_nonnull(strstr(error_get_pretty(err), "held request"));
    error_free(err);
    g_free(state);
    ck_assert_uint_eq(virtio_blk_held(dev), 0);
}
END_TEST

static Suite *virtio_blk_suite(void)
{
    Suite *s = suite_create("virtio-blk");
    TCase *tc = tcase_create("core");

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_identity_and_negotiation);
    tcase_add_test(tc, test_write_read_round_trip);
    tcase_add_test(tc, test_chained_descriptors);
    tcase_add_loop_test(tc, test_bad_descriptors, 0, 12);
    tcase_add_test(tc, test_bad_rings);
    tcase_add_test(tc, test_read_only);
    tcase_add_test(tc, test_attach_twice);
    tcase_add_test(tc, test_reset);
    tcase_add_test(tc, test_error_policy);
    tcase_add_test(tc, test_random_rings);
    tcase_add_test(tc, test_no_interrupt_flag);
    tcase_add_test(tc, test_event_idx);
    tcase_add_test(tc, test_vmstate_round_trip);
    tcase_add_test(tc, test_vmstate_held_request);
    tcase_add_test(tc, test_vmstate_bad_stream);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(virtio_blk_suite());
}
