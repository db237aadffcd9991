/*
 * ring3 guest, ring 0: a virtio-blk driver on virtio-mmio (register layout
 * version 2, virtio 1.x), just enough for the disk workload (disk.c).
 *
 * Probe: the register slots at R3_VIRTIO_MMIO_BASE + R3_VIRTIO_MMIO_STRIDE * n
 * (n < R3_VIRTIO_MMIO_SLOTS); the first one that reads magic "virt",
 * version 2 and device id 2 (block) is the disk. An empty slot reads all-ones
 * (migvm) or zeros (QEMU's unassigned memory), neither of which matches.
 *
 * Set-up (virtio 1.x, 3.1.1): reset, ACKNOWLEDGE, DRIVER, features (we take
 * VIRTIO_F_VERSION_1 and nothing else; VIRTIO_BLK_F_RO is only noted),
 * FEATURES_OK read back, queue 0 with at most R3_DISK_QSIZE entries in the
 * page at R3_DISK_QUEUE, DRIVER_OK. A device that refuses a step gets FAILED
 * and kstat.disk.problem says which step.
 *
 * Requests: one at a time, always the same three descriptors (header, data,
 * status byte). SYS_DISK fills them, publishes descriptor 0 in the available
 * ring, notifies the device and returns the used-ring index that completes
 * it; ring 3 polls the used ring and the status byte itself (the page is
 * user-accessible), so ring 0 (emulated at ~1 MIPS under PVM) spends a few
 * dozen instructions and one MMIO exit per request. Interrupts are not used:
 * the available ring asks for none (VIRTQ_AVAIL_F_NO_INTERRUPT) and IRQ
 * lines above 7 stay masked in the 8259 and the IOAPIC.
 */
#include "ring3.h"

#define R3_VIRTIO_MMIO_BASE   0xfeb00000ULL
#define R3_VIRTIO_MMIO_STRIDE 0x200
#define R3_VIRTIO_MMIO_SLOTS  32
#define R3_DISK_QSIZE         8

/* virtio-mmio registers (virtio 1.1, 4.2.2) */
#define VMMIO_MAGIC           0x000
#define VMMIO_VERSION         0x004
#define VMMIO_DEVICE_ID       0x008
#define VMMIO_DEV_FEATURES    0x010
#define VMMIO_DEV_FEATURES_SEL 0x014
#define VMMIO_DRV_FEATURES    0x020
#define VMMIO_DRV_FEATURES_SEL 0x024
#define VMMIO_QUEUE_SEL       0x030
#define VMMIO_QUEUE_NUM_MAX   0x034
#define VMMIO_QUEUE_NUM       0x038
#define VMMIO_QUEUE_READY     0x044
#define VMMIO_QUEUE_NOTIFY    0x050
#define VMMIO_STATUS          0x070
#define VMMIO_QUEUE_DESC      0x080
#define VMMIO_QUEUE_DRIVER    0x090
#define VMMIO_QUEUE_DEVICE    0x0a0
#define VMMIO_CONFIG_GEN      0x0fc
#define VMMIO_CONFIG          0x100     /* virtio_blk_config: le64 capacity first */

#define VIRTIO_MAGIC          0x74726976 /* "virt" */
#define VIRTIO_ID_BLOCK       2

#define ST_ACKNOWLEDGE        1
#define ST_DRIVER             2
#define ST_DRIVER_OK          4
#define ST_FEATURES_OK        8
#define ST_FAILED             128

#define VIRTIO_BLK_F_RO       5          /* feature word 0 */
#define VIRTIO_F_VERSION_1    0          /* feature word 1, bit 32 overall */

#define VIRTIO_BLK_T_IN       0
#define VIRTIO_BLK_T_OUT      1

#define VIRTQ_DESC_F_NEXT     1
#define VIRTQ_DESC_F_WRITE    2
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1

struct virtq_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

struct virtq_avail {
    uint16_t flags;
    uint16_t idx;
    uint16_t ring[R3_DISK_QSIZE];
};

struct virtq_used {
    uint16_t flags;
    uint16_t idx;
    struct { uint32_t id, len; } ring[R3_DISK_QSIZE];
};

struct blk_header {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

/* The queue page: offsets keep each part at the alignment virtio 1.x asks
 * (descriptors 16, available ring 2, used ring 4). */
#define Q_DESC    ((volatile struct virtq_desc *)(uintptr_t)R3_DISK_QUEUE)
#define Q_AVAIL   ((volatile struct virtq_avail *)(uintptr_t)(R3_DISK_QUEUE + 0x100))
#define Q_USED    ((volatile struct virtq_used *)(uintptr_t)(R3_DISK_QUEUE + 0x200))
#define Q_HEADER  ((volatile struct blk_header *)(uintptr_t)(R3_DISK_QUEUE + 0x400))
#define Q_STATUS  ((volatile uint8_t *)(uintptr_t)(R3_DISK_QUEUE + 0x410))

static uint64_t mmio;
static uint16_t qsize;

#define barrier() __asm__ volatile("" ::: "memory")

static uint32_t rd(uint32_t reg)
{
    return *(volatile uint32_t *)(uintptr_t)(mmio + reg);
}

static void wr(uint32_t reg, uint32_t v)
{
    *(volatile uint32_t *)(uintptr_t)(mmio + reg) = v;
}

static void wr64(uint32_t reg, uint64_t v)
{
    wr(reg, (uint32_t)v);
    wr(reg + 4, (uint32_t)(v >> 32));
}

static int probe(void)
{
    for (int n = 0; n < R3_VIRTIO_MMIO_SLOTS; n++) {
        mmio = R3_VIRTIO_MMIO_BASE + (uint64_t)n * R3_VIRTIO_MMIO_STRIDE;
        if (rd(VMMIO_MAGIC) == VIRTIO_MAGIC && rd(VMMIO_VERSION) == 2 &&
            rd(VMMIO_DEVICE_ID) == VIRTIO_ID_BLOCK) {
            return 1;
        }
    }
    mmio = 0;
    return 0;
}

/* 0 when the device is driven, else the step it refused. */
static const char *setup(void)
{
    uint8_t *q = (uint8_t *)(uintptr_t)R3_DISK_QUEUE;
    uint32_t gen, lo, hi;

    wr(VMMIO_STATUS, 0);
    for (int i = 0; rd(VMMIO_STATUS) != 0; i++) {
        if (i > 1000) {
            return "reset did not complete";
        }
    }
    wr(VMMIO_STATUS, ST_ACKNOWLEDGE);
    wr(VMMIO_STATUS, ST_ACKNOWLEDGE | ST_DRIVER);

    wr(VMMIO_DEV_FEATURES_SEL, 1);
    if (!(rd(VMMIO_DEV_FEATURES) >> VIRTIO_F_VERSION_1 & 1)) {
        return "device does not offer VIRTIO_F_VERSION_1";
    }
    wr(VMMIO_DEV_FEATURES_SEL, 0);
    kstat.disk.read_only = rd(VMMIO_DEV_FEATURES) >> VIRTIO_BLK_F_RO & 1;
    wr(VMMIO_DRV_FEATURES_SEL, 0);
    wr(VMMIO_DRV_FEATURES, 0);
    wr(VMMIO_DRV_FEATURES_SEL, 1);
    wr(VMMIO_DRV_FEATURES, 1u << VIRTIO_F_VERSION_1);
    wr(VMMIO_STATUS, ST_ACKNOWLEDGE | ST_DRIVER | ST_FEATURES_OK);
    if (!(rd(VMMIO_STATUS) & ST_FEATURES_OK)) {
        return "device refused FEATURES_OK";
    }

    wr(VMMIO_QUEUE_SEL, 0);
    uint32_t max = rd(VMMIO_QUEUE_NUM_MAX);
    if (!max) {
        return "queue 0 is not available";
    }
    if (rd(VMMIO_QUEUE_READY)) {
        return "queue 0 ready after reset";
    }
    qsize = max < R3_DISK_QSIZE ? (uint16_t)max : R3_DISK_QSIZE;
    for (int i = 0; i < 0x1000; i++) {
        q[i] = 0;
    }
    Q_AVAIL->flags = VIRTQ_AVAIL_F_NO_INTERRUPT;
    wr(VMMIO_QUEUE_NUM, qsize);
    wr64(VMMIO_QUEUE_DESC, (uint64_t)(uintptr_t)Q_DESC);
    wr64(VMMIO_QUEUE_DRIVER, (uint64_t)(uintptr_t)Q_AVAIL);
    wr64(VMMIO_QUEUE_DEVICE, (uint64_t)(uintptr_t)Q_USED);
    wr(VMMIO_QUEUE_READY, 1);

    do {                                 /* capacity: two 32-bit reads, stable generation */
        gen = rd(VMMIO_CONFIG_GEN);
        lo = rd(VMMIO_CONFIG);
        hi = rd(VMMIO_CONFIG + 4);
    } while (gen != rd(VMMIO_CONFIG_GEN));
    kstat.disk.sectors = (uint64_t)hi << 32 | lo;

    wr(VMMIO_STATUS, ST_ACKNOWLEDGE | ST_DRIVER | ST_FEATURES_OK | ST_DRIVER_OK);
    if (rd(VMMIO_STATUS) & ST_FAILED) {
        return "device failed after DRIVER_OK";
    }
    return 0;
}

void virtio_blk_init(void)
{
    if (!probe()) {
        return;
    }
    const char *problem = setup();
    if (problem) {
        wr(VMMIO_STATUS, rd(VMMIO_STATUS) | ST_FAILED);
        kstat.disk.problem = problem;
        mmio = 0;
        return;
    }
    kstat.disk.mmio = mmio;
    kstat.disk.queue_size = qsize;
    kstat.disk.used_idx = &Q_USED->idx;
    kstat.disk.status = Q_STATUS;
}

int64_t sys_disk(const struct r3_disk_req *req)
{
    uint64_t sectors = req->bytes / 512;

    if (!mmio) {
        return R3_DISK_ENODEV;
    }
    if (!req->bytes || req->bytes % 512 || req->bytes > R3_DISK_BUF_MAX ||
        req->sector > kstat.disk.sectors || sectors > kstat.disk.sectors - req->sector ||
        req->buf < R3_USTACK_TOP || req->buf + req->bytes > kstat.ram_top) {
        return R3_DISK_EINVAL;
    }
    if (Q_USED->idx != Q_AVAIL->idx) {
        return R3_DISK_EBUSY;
    }
    Q_HEADER->type = req->write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN;
    Q_HEADER->reserved = 0;
    Q_HEADER->sector = req->sector;
    *Q_STATUS = 0xff;
    Q_DESC[0].addr = (uint64_t)(uintptr_t)Q_HEADER;
    Q_DESC[0].len = sizeof(struct blk_header);
    Q_DESC[0].flags = VIRTQ_DESC_F_NEXT;
    Q_DESC[0].next = 1;
    Q_DESC[1].addr = req->buf;
    Q_DESC[1].len = req->bytes;
    Q_DESC[1].flags = VIRTQ_DESC_F_NEXT | (req->write ? 0 : VIRTQ_DESC_F_WRITE);
    Q_DESC[1].next = 2;
    Q_DESC[2].addr = (uint64_t)(uintptr_t)Q_STATUS;
    Q_DESC[2].len = 1;
    Q_DESC[2].flags = VIRTQ_DESC_F_WRITE;
    Q_DESC[2].next = 0;
    uint16_t idx = Q_AVAIL->idx;
    Q_AVAIL->ring[idx % qsize] = 0;
    barrier();                           /* x86 keeps stores in order: the ring entry, then idx */
    Q_AVAIL->idx = (uint16_t)(idx + 1);
    barrier();
    wr(VMMIO_QUEUE_NOTIFY, 0);
    kstat.disk.submitted++;
    return (uint16_t)(idx + 1);
}
