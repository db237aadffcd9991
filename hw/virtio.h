/*
 * Virtio 1.x device core shared by the virtio-mmio transport
 * (hw/virtio-mmio.c), the split virtqueue (hw/virtqueue.c) and the devices
 * (hw/virtio-blk.c). Private to hw/.
 *
 * A VirtIODevice is the transport-independent state a guest driver sees:
 * status, feature bits, the interrupt status register, the configuration
 * generation and the queues. A device fills in a VirtioDeviceOps; the
 * transport decodes registers and calls back. Everything runs with the BQL
 * held (MMIO exits, block completions, the main loop).
 */
#ifndef MIGVM_HW_VIRTIO_H
#define MIGVM_HW_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>
#include "error.h"
#include "vmstate.h"

/* Device status bits (virtio 1.x, 2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE       0x01
#define VIRTIO_STATUS_DRIVER            0x02
#define VIRTIO_STATUS_DRIVER_OK         0x04
#define VIRTIO_STATUS_FEATURES_OK       0x08
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED            0x80

/* Transport-independent feature bits. */
#define VIRTIO_RING_F_INDIRECT_DESC     28
#define VIRTIO_RING_F_EVENT_IDX         29
#define VIRTIO_F_VERSION_1              32

/* Interrupt status bits. */
#define VIRTIO_ISR_QUEUE                0x1
#define VIRTIO_ISR_CONFIG               0x2

/* virtio-blk has one request queue (no multiqueue), the only device here. */
#define VIRTIO_QUEUE_MAX                1
/* QueueNumMax: QEMU's default queue-size for virtio-blk. */
#define VIRTQ_MAX_SIZE                  256
/* Longest chain accepted, indirect tables included (QEMU's VIRTQUEUE_MAX_SIZE). */
#define VIRTQ_MAX_CHAIN                 1024

#define VIRTIO_BIT(n) (1ULL << (n))

/* One guest buffer of a request: guest-physical, checked against RAM. */
typedef struct VirtqSeg {
    uint64_t gpa;
    uint32_t len;
} VirtqSeg;

/* A descriptor chain taken from the available ring: readable (out) segments
 * first, then writable (in) segments, as the chain orders them. */
typedef struct VirtQueueElement {
    uint16_t head;              /* descriptor index the used ring returns */
    unsigned out_num, in_num;
    VirtqSeg *out, *in;         /* g_malloc'ed */
    uint64_t out_len, in_len;   /* byte totals */
} VirtQueueElement;

typedef struct VirtQueue {
    /* Driver-visible registers (migrated). */
    uint32_t num;               /* QueueNum */
    bool ready;                 /* QueueReady */
    uint64_t desc, avail, used; /* ring addresses */
    uint16_t last_avail_idx;    /* next avail entry the device reads */
    uint16_t used_idx;          /* next used entry the device writes */
    /* EVENT_IDX: used_idx when an interrupt was last considered (valid
     * once one was): the driver's used_event is compared against it. */
    uint16_t signalled_used;
    bool signalled_used_valid;
    /* Requests taken and held back by a device (virtio-blk's STOP error
     * policy): their heads travel with the state so the destination can
     * walk the same chains again (migrated, see hw/virtio-blk.c). */
    uint32_t n_held;
    uint16_t held[VIRTQ_MAX_SIZE];
    /* Not migrated: recomputed when ready or loaded. */
    void *desc_host, *avail_host, *used_host;   /* host view of the rings */
    bool event_idx;             /* VIRTIO_RING_F_EVENT_IDX negotiated */
} VirtQueue;

typedef struct VirtIODevice VirtIODevice;

typedef struct VirtioDeviceOps {
    const char *name;           /* "virtio-blk": log messages */
    uint32_t device_id;         /* virtio device ID (2: block) */
    unsigned config_len;        /* bytes of device configuration space */
    /* Fill config_len bytes (little-endian fields) of configuration. */
    void (*get_config)(VirtIODevice *vdev, uint8_t *config);
    /* The driver notified queue `q` (ready, DRIVER_OK). */
    void (*handle_queue)(VirtIODevice *vdev, int q);
    /* Status 0 or system reset: drop device-side request state. */
    void (*reset)(VirtIODevice *vdev);
} VirtioDeviceOps;

struct VirtIODevice {
    const VirtioDeviceOps *ops;
    void *opaque;               /* the device */
    /* Migrated (vmstate_virtio_device). */
    uint32_t device_id;         /* checked equal on load */
    uint32_t status;
    uint64_t host_features;     /* what the device offers (checked on load) */
    uint64_t guest_features;    /* what the driver accepted */
    uint32_t host_features_sel, guest_features_sel;
    uint32_t queue_sel;
    uint32_t isr;               /* InterruptStatus */
    uint32_t config_generation;
    VirtQueue vq[VIRTIO_QUEUE_MAX];
    /* Not migrated. */
    int nvq;                    /* queues the device has */
    void (*set_irq)(void *opaque, int level);
    void *irq_opaque;
    bool broken_logged;         /* one log line per device and reset */
};

/* ---- device core (hw/virtio-mmio.c) ---- */

void virtio_device_init(VirtIODevice *vdev, const VirtioDeviceOps *ops, void *opaque,
                        uint64_t host_features, int nvq);
/* Back to power-on state (status 0), device reset hook included. */
void virtio_device_reset(VirtIODevice *vdev);
/* Used buffers were added to queue q: interrupt unless the driver asked not. */
void virtio_notify(VirtIODevice *vdev, int q);
/* The guest broke the protocol: DEVICE_NEEDS_RESET + config interrupt, the
 * device stops processing; logged once until reset. Never fatal to migvm. */
void virtio_error(VirtIODevice *vdev, const char *fmt, ...) MIGVM_PRINTF(2, 3);
bool virtio_has_feature(const VirtIODevice *vdev, unsigned bit);
/* The common state, for a device's VMState section (a struct field). */
extern const VMStateDescription vmstate_virtio_device;
/* After loading the common state: map ready rings again. */
bool virtio_device_post_load(VirtIODevice *vdev, Error **errp);

/* ---- virtio-mmio transport (hw/virtio-mmio.c) ---- */

#define VIRTIO_MMIO_SIZE 0x200
/* Claim [base, base + VIRTIO_MMIO_SIZE) for vdev's registers. [BQL] */
bool virtio_mmio_attach(VirtIODevice *vdev, uint64_t base, Error **errp);

/* ---- split virtqueue (hw/virtqueue.c) ---- */

/* Check the rings of a queue the driver made ready lie in guest RAM and map
 * them; false with errp when they do not. */
bool virtqueue_map(VirtQueue *vq, Error **errp);
void virtqueue_reset(VirtQueue *vq);
/* Take the next available chain into elem. 1: taken; 0: ring empty;
 * -1: the guest broke the ring (errp says how; the device must stop). */
int virtqueue_pop(VirtQueue *vq, bool indirect_ok, VirtQueueElement *elem, Error **errp);
/* Walk the chain starting at descriptor `head` again (a held request). */
bool virtqueue_read_chain(VirtQueue *vq, bool indirect_ok, uint16_t head,
                          VirtQueueElement *elem, Error **errp);
/* Return elem to the driver with `len` bytes written into its buffers. */
void virtqueue_push(VirtQueue *vq, const VirtQueueElement *elem, uint32_t len);
/* Whether used buffers added since the last call deserve an interrupt:
 * the driver's used_event with EVENT_IDX, else its NO_INTERRUPT flag. */
bool virtqueue_should_notify(VirtQueue *vq);
void virtqueue_element_free(VirtQueueElement *elem);

/* Copy between a segment list and a host buffer, from byte `offset` of the
 * list; guest writes mark the pages dirty. Segments were checked at pop. */
bool virtqueue_copy_from_guest(const VirtqSeg *segs, unsigned n, uint64_t offset,
                               void *buf, uint64_t len);
bool virtqueue_copy_to_guest(const VirtqSeg *segs, unsigned n, uint64_t offset,
                             const void *buf, uint64_t len);

#endif
