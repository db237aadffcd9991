/*
 * virtio-mmio transport, version 2 (virtio 1.x, section 4.2.2), and the
 * transport-independent device core (status, features, interrupts, reset,
 * the common VMState).
 *
 * Registers (offset from the device's base, 32-bit accesses, little-endian):
 *   0x000 MagicValue        R  0x74726976 ("virt")
 *   0x004 Version           R  2 (virtio 1.x; no legacy interface)
 *   0x008 DeviceID          R  2 for a block device
 *   0x00c VendorID          R  0x554d4551 ("QEMU", as QEMU's transports)
 *   0x010 DeviceFeatures    R  32 feature bits selected by DeviceFeaturesSel
 *   0x014 DeviceFeaturesSel W
 *   0x020 DriverFeatures    W  32 bits selected by DriverFeaturesSel
 *   0x024 DriverFeaturesSel W
 *   0x030 QueueSel          W
 *   0x034 QueueNumMax       R  0 when the selected queue does not exist
 *   0x038 QueueNum          W
 *   0x044 QueueReady        RW
 *   0x050 QueueNotify       W  queue index
 *   0x060 InterruptStatus   R  bit 0 used buffer, bit 1 configuration change
 *   0x064 InterruptACK      W
 *   0x070 Status            RW writing 0 resets the device
 *   0x080/0x084 QueueDescLow/High, 0x090/0x094 QueueDriverLow/High (available
 *   ring), 0x0a0/0x0a4 QueueDeviceLow/High (used ring)   W
 *   0x0ac SHMSel W, 0x0b0/0x0b4 SHMLen, 0x0b8/0x0bc SHMBase  R  all-ones: no
 *         shared memory regions
 *   0x0fc ConfigGeneration  R
 *   0x100 device configuration space (any access width up to 8)
 *
 * Feature negotiation: the driver's FEATURES_OK is kept only if it accepted
 * VIRTIO_F_VERSION_1 and nothing the device did not offer; otherwise the bit
 * reads back clear and the driver gives up, as the spec describes.
 *
 * The interrupt line is level-triggered in spirit: high while
 * InterruptStatus is non-zero, lowered by the driver's ACK.
 *
 * On the pc board (hw/machine.c) slot n sits at 0xfeb00000 + 0x200 * n with
 * ISA IRQ 10, 11, 14, 15 for slots 0-3: below the IOAPIC (0xfec00000), the
 * LAPIC (0xfee00000) and KVM's TSS (0xfffbd000). Nothing describes them to
 * the guest: a Linux guest is told with
 * virtio_mmio.device=512@0xfeb00000:10, the test guest probes the slots for
 * the magic value.
 */
#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <glib.h>
#include "hw-bus.h"
#include "vm.h"
#include "virtio.h"

#define VIRTIO_MMIO_MAGIC       0x74726976
#define VIRTIO_MMIO_VERSION     2
#define VIRTIO_MMIO_VENDOR      0x554d4551
#define VIRTIO_MMIO_CONFIG      0x100
#define VIRTIO_CONFIG_MAX       64

enum {
    REG_MAGIC = 0x000, REG_VERSION = 0x004, REG_DEVICE_ID = 0x008, REG_VENDOR_ID = 0x00c,
    REG_DEVICE_FEATURES = 0x010, REG_DEVICE_FEATURES_SEL = 0x014,
    REG_DRIVER_FEATURES = 0x020, REG_DRIVER_FEATURES_SEL = 0x024,
    REG_QUEUE_SEL = 0x030, REG_QUEUE_NUM_MAX = 0x034, REG_QUEUE_NUM = 0x038,
    REG_QUEUE_READY = 0x044, REG_QUEUE_NOTIFY = 0x050,
    REG_INTERRUPT_STATUS = 0x060, REG_INTERRUPT_ACK = 0x064, REG_STATUS = 0x070,
    REG_QUEUE_DESC_LOW = 0x080, REG_QUEUE_DESC_HIGH = 0x084,
    REG_QUEUE_DRIVER_LOW = 0x090, REG_QUEUE_DRIVER_HIGH = 0x094,
    REG_QUEUE_DEVICE_LOW = 0x0a0, REG_QUEUE_DEVICE_HIGH = 0x0a4,
    REG_SHM_SEL = 0x0ac, REG_SHM_LEN_LOW = 0x0b0, REG_SHM_LEN_HIGH = 0x0b4,
    REG_SHM_BASE_LOW = 0x0b8, REG_SHM_BASE_HIGH = 0x0bc,
    REG_CONFIG_GENERATION = 0x0fc,
};

/* ---- device core ---- */

void virtio_device_init(VirtIODevice *vdev, const VirtioDeviceOps *ops, void *opaque,
                        uint64_t host_features, int nvq)
{
    assert(nvq >= 1 && nvq <= VIRTIO_QUEUE_MAX && ops->config_len <= VIRTIO_CONFIG_MAX);
    *vdev = (VirtIODevice) {
        .ops = ops, .opaque = opaque, .device_id = ops->device_id,
        .host_features = host_features, .nvq = nvq,
    };
}

bool virtio_has_feature(const VirtIODevice *vdev, unsigned bit)
{
    return vdev->guest_features & VIRTIO_BIT(bit);
}

static void virtio_update_irq(VirtIODevice *vdev)
{
    if (vdev->set_irq) {
        vdev->set_irq(vdev->irq_opaque, vdev->isr != 0);
    }
}

void virtio_notify(VirtIODevice *vdev, int q)
{
    if (!virtqueue_should_notify(&vdev->vq[q])) {
        return;
    }
    vdev->isr |= VIRTIO_ISR_QUEUE;
    virtio_update_irq(vdev);
}

void virtio_error(VirtIODevice *vdev, const char *fmt, ...)
{
    va_list ap;

    if (!vdev->broken_logged) {
        char *msg;
        va_start(ap, fmt);
        msg = g_strdup_vprintf(fmt, ap);
        va_end(ap);
        error_report("%s: %s; the device needs a reset", vdev->ops->name, msg);
        g_free(msg);
        vdev->broken_logged = true;
    }
    vdev->status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
    if (vdev->status & VIRTIO_STATUS_DRIVER_OK) {
        vdev->isr |= VIRTIO_ISR_CONFIG;
        virtio_update_irq(vdev);
    }
}

void virtio_device_reset(VirtIODevice *vdev)
{
    if (vdev->ops->reset) {
        vdev->ops->reset(vdev);
    }
    for (int i = 0; i < VIRTIO_QUEUE_MAX; i++) {
        virtqueue_reset(&vdev->vq[i]);
    }
    vdev->status = 0;
    vdev->guest_features = 0;
    vdev->host_features_sel = vdev->guest_features_sel = 0;
    vdev->queue_sel = 0;
    vdev->isr = 0;
    vdev->broken_logged = false;
    virtio_update_irq(vdev);
}

static void virtio_set_status(VirtIODevice *vdev, uint32_t val)
{
    if ((val & 0xff) == 0) {
        virtio_device_reset(vdev);
        return;
    }
    if ((val & VIRTIO_STATUS_FEATURES_OK) && !(vdev->status & VIRTIO_STATUS_FEATURES_OK) &&
        ((vdev->guest_features & ~vdev->host_features) ||
         !virtio_has_feature(vdev, VIRTIO_F_VERSION_1))) {
        val &= ~VIRTIO_STATUS_FEATURES_OK;
    }
    /* DEVICE_NEEDS_RESET is the device's to set; only a reset clears it. */
    vdev->status = (val & 0xff & ~VIRTIO_STATUS_DEVICE_NEEDS_RESET) |
                   (vdev->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

static bool virtio_queue_usable(VirtIODevice *vdev, uint32_t q)
{
    return q < (uint32_t)vdev->nvq && vdev->vq[q].ready &&
           (vdev->status & VIRTIO_STATUS_DRIVER_OK) &&
           !(vdev->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

/* ---- registers ---- */

static VirtQueue *selected_queue(VirtIODevice *vdev)
{
    return vdev->queue_sel < (uint32_t)vdev->nvq ? &vdev->vq[vdev->queue_sel] : NULL;
}

static uint64_t config_read(VirtIODevice *vdev, uint64_t offset, unsigned size)
{
    uint8_t config[VIRTIO_CONFIG_MAX] = { 0 };
    uint64_t value = 0;

    if (offset + size > vdev->ops->config_len) {
        return 0;
    }
    vdev->ops->get_config(vdev, config);
    for (unsigned i = 0; i < size; i++) {
        value |= (uint64_t)config[offset + i] << (8 * i);
    }
    return value;
}

static void log_bad_access(VirtIODevice *vdev, const char *what, uint64_t offset, unsigned size)
{
    static bool logged;         /* [BQL] one line per process is enough */

    if (!logged) {
        error_report("%s: %u-byte %s at register 0x%03" PRIx64 " ignored (virtio-mmio registers are 32-bit)",
                     vdev->ops->name, size, what, offset);
        logged = true;
    }
}

static uint64_t virtio_mmio_read(void *opaque, uint64_t offset, unsigned size)
{
    VirtIODevice *vdev = opaque;
    VirtQueue *vq = selected_queue(vdev);

    if (offset >= VIRTIO_MMIO_CONFIG) {
        return config_read(vdev, offset - VIRTIO_MMIO_CONFIG, size);
    }
    if (size != 4) {
        log_bad_access(vdev, "read", offset, size);
        return 0;
    }
    switch (offset) {
    case REG_MAGIC:             return VIRTIO_MMIO_MAGIC;
    case REG_VERSION:           return VIRTIO_MMIO_VERSION;
    case REG_DEVICE_ID:         return vdev->device_id;
    case REG_VENDOR_ID:         return VIRTIO_MMIO_VENDOR;
    case REG_DEVICE_FEATURES:
        return vdev->host_features_sel > 1 ? 0 :
               (uint32_t)(vdev->host_features >> (32 * vdev->host_features_sel));
    case REG_QUEUE_NUM_MAX:     return vq ? VIRTQ_MAX_SIZE : 0;
    case REG_QUEUE_READY:       return vq ? vq->ready : 0;
    case REG_INTERRUPT_STATUS:  return vdev->isr;
    case REG_STATUS:            return vdev->status;
    case REG_SHM_LEN_LOW: case REG_SHM_LEN_HIGH:
    case REG_SHM_BASE_LOW: case REG_SHM_BASE_HIGH:
        return 0xffffffff;
    case REG_CONFIG_GENERATION: return vdev->config_generation;
    default:                    return 0;    /* write-only or reserved */
    }
}

static void set_low(uint64_t *reg, uint64_t value)
{
    *reg = (*reg & 0xffffffff00000000ULL) | (uint32_t)value;
}

static void set_high(uint64_t *reg, uint64_t value)
{
    *reg = (*reg & 0xffffffffULL) | (value << 32);
}

static void queue_set_ready(VirtIODevice *vdev, VirtQueue *vq, uint64_t value)
{
    Error *err = NULL;

    if (!value) {
        vq->ready = false;
        vq->desc_host = vq->avail_host = vq->used_host = NULL;
        return;
    }
    if (vq->ready) {
        return;
    }
    if (!virtqueue_map(vq, &err)) {
        virtio_error(vdev, "queue %u: %s", vdev->queue_sel, error_get_pretty(err));
        error_free(err);
        return;
    }
    vq->last_avail_idx = vq->used_idx = 0;
    vq->signalled_used = 0;
    vq->signalled_used_valid = false;
    vq->event_idx = virtio_has_feature(vdev, VIRTIO_RING_F_EVENT_IDX);
    vq->ready = true;
}

/* Queue layout registers: only while the queue is not live. */
static void queue_write(VirtIODevice *vdev, VirtQueue *vq, uint64_t offset, uint64_t value)
{
    if (offset == REG_QUEUE_READY) {
        queue_set_ready(vdev, vq, value);
        return;
    }
    if (vq->ready) {
        return;
    }
    switch (offset) {
    case REG_QUEUE_NUM:         vq->num = (uint32_t)value; break;
    case REG_QUEUE_DESC_LOW:    set_low(&vq->desc, value); break;
    case REG_QUEUE_DESC_HIGH:   set_high(&vq->desc, value); break;
    case REG_QUEUE_DRIVER_LOW:  set_low(&vq->avail, value); break;
    case REG_QUEUE_DRIVER_HIGH: set_high(&vq->avail, value); break;
    case REG_QUEUE_DEVICE_LOW:  set_low(&vq->used, value); break;
    case REG_QUEUE_DEVICE_HIGH: set_high(&vq->used, value); break;
    }
}

static void virtio_mmio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    VirtIODevice *vdev = opaque;
    VirtQueue *vq = selected_queue(vdev);

    if (offset >= VIRTIO_MMIO_CONFIG) {
        return;             /* no writable configuration field is offered */
    }
    if (size != 4) {
        log_bad_access(vdev, "write", offset, size);
        return;
    }
    value = (uint32_t)value;
    switch (offset) {
    case REG_DEVICE_FEATURES_SEL: vdev->host_features_sel = (uint32_t)value; break;
    case REG_DRIVER_FEATURES_SEL: vdev->guest_features_sel = (uint32_t)value; break;
    case REG_DRIVER_FEATURES:
        if (!(vdev->status & VIRTIO_STATUS_FEATURES_OK) && vdev->guest_features_sel <= 1) {
            (vdev->guest_features_sel ? set_high : set_low)(&vdev->guest_features, value);
        }
        break;
    case REG_QUEUE_SEL:         vdev->queue_sel = (uint32_t)value; break;
    case REG_QUEUE_NUM: case REG_QUEUE_READY:
    case REG_QUEUE_DESC_LOW: case REG_QUEUE_DESC_HIGH:
    case REG_QUEUE_DRIVER_LOW: case REG_QUEUE_DRIVER_HIGH:
    case REG_QUEUE_DEVICE_LOW: case REG_QUEUE_DEVICE_HIGH:
        if (vq) {
            queue_write(vdev, vq, offset, value);
        }
        break;
    case REG_QUEUE_NOTIFY:
        if (virtio_queue_usable(vdev, (uint32_t)value)) {
            vdev->ops->handle_queue(vdev, (int)value);
        }
        break;
    case REG_INTERRUPT_ACK:
        vdev->isr &= ~(uint32_t)value;
        virtio_update_irq(vdev);
        break;
    case REG_STATUS:            virtio_set_status(vdev, (uint32_t)value); break;
    default:                    break;      /* read-only or reserved */
    }
}

static const BusOps virtio_mmio_ops = {
    .read = virtio_mmio_read,
    .write = virtio_mmio_write,
};

bool virtio_mmio_attach(VirtIODevice *vdev, uint64_t base, Error **errp)
{
    assert(bql_locked());
    return mmio_register("virtio-mmio", base, VIRTIO_MMIO_SIZE, &virtio_mmio_ops, vdev, errp);
}

/* ---- migration ---- */

static const VMStateField virtqueue_fields[] = {
    VMSTATE_UINT32(num, VirtQueue),
    VMSTATE_BOOL(ready, VirtQueue),
    VMSTATE_UINT64(desc, VirtQueue),
    VMSTATE_UINT64(avail, VirtQueue),
    VMSTATE_UINT64(used, VirtQueue),
    VMSTATE_UINT16(last_avail_idx, VirtQueue),
    VMSTATE_UINT16(used_idx, VirtQueue),
    VMSTATE_UINT16(signalled_used, VirtQueue),
    VMSTATE_BOOL(signalled_used_valid, VirtQueue),
    VMSTATE_UINT32(n_held, VirtQueue),
    VMSTATE_VARRAY_UINT32(held, VirtQueue, n_held, VIRTQ_MAX_SIZE, uint16_t, VMS_KIND_UINT16),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDescription vmstate_virtqueue = {
    .name = "virtqueue",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = virtqueue_fields,
};

static const VMStateField virtio_device_fields[] = {
    VMSTATE_UINT32_EQUAL(device_id, VirtIODevice),
    VMSTATE_UINT32(status, VirtIODevice),
    VMSTATE_UINT64_EQUAL(host_features, VirtIODevice),
    VMSTATE_UINT64(guest_features, VirtIODevice),
    VMSTATE_UINT32(host_features_sel, VirtIODevice),
    VMSTATE_UINT32(guest_features_sel, VirtIODevice),
    VMSTATE_UINT32(queue_sel, VirtIODevice),
    VMSTATE_UINT32(isr, VirtIODevice),
    VMSTATE_UINT32(config_generation, VirtIODevice),
    VMSTATE_STRUCT_ARRAY(vq, VirtIODevice, VIRTIO_QUEUE_MAX, vmstate_virtqueue, VirtQueue),
    VMSTATE_END_OF_LIST(),
};

const VMStateDescription vmstate_virtio_device = {
    .name = "virtio-device",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = virtio_device_fields,
};

bool virtio_device_post_load(VirtIODevice *vdev, Error **errp)
{
    if (vdev->guest_features & ~vdev->host_features) {
        error_setg(errp, "%s: driver features 0x%" PRIx64 " not offered (0x%" PRIx64 ")",
                   vdev->ops->name, vdev->guest_features, vdev->host_features);
        return false;
    }
    for (int i = 0; i < VIRTIO_QUEUE_MAX; i++) {
        VirtQueue *vq = &vdev->vq[i];

        vq->desc_host = vq->avail_host = vq->used_host = NULL;
        vq->event_idx = virtio_has_feature(vdev, VIRTIO_RING_F_EVENT_IDX);
        if (i >= vdev->nvq && (vq->ready || vq->n_held)) {
            error_setg(errp, "%s: queue %d does not exist", vdev->ops->name, i);
            return false;
        }
        if (vq->n_held > vq->num) {
            error_setg(errp, "%s: queue %d holds %u requests, more than its size %u",
                       vdev->ops->name, i, vq->n_held, vq->num);
            return false;
        }
        if (vq->ready && !virtqueue_map(vq, errp)) {
            error_prepend(errp, "%s: queue %d: ", vdev->ops->name, i);
            return false;
        }
    }
    vdev->broken_logged = false;
    return true;
}
