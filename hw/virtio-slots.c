/*
 * The pc board's virtio-mmio slots and the virtio-blk devices in them.
 *
 * Slot n: registers at VIRTIO_SLOT_BASE + VIRTIO_MMIO_SIZE * n (0xfeb00000,
 * 0xfeb00200, ...), ISA IRQ 10, 11, 14, 15 for slots 0-3 (free on this board:
 * no IDE, no PS/2 mouse), VMState "virtio-blk" instance n. Slots are taken in
 * creation order: each -device virtio-blk-device,drive=NAME[,id=ID] in
 * command-line order, then each -drive if=virtio that no -device took (as QEMU
 * adds the devices of if=virtio drives after the command line's).
 *
 * Spellings: virtio-blk-device is the device on a virtio-mmio transport, as
 * QEMU names it. QEMU's virtio-blk-pci (and its x86 alias virtio-blk) needs a
 * PCI bus, which this board does not have: refused with a message that says
 * which device to use instead, rather than silently giving the guest a
 * different transport than the command line asked for. The none board has no
 * slots: both refuse there with QEMU's "No 'virtio-bus' bus found" text.
 *
 * query-block's "qdev" for the drive: the id= when given, else
 * /machine/peripheral-anon/device[N] (QEMU's names for an anonymous device).
 */
#include <stdint.h>
#include <string.h>
#include <glib.h>
#include "block.h"
#include "device-spec.h"
#include "machine.h"
#include "ports.h"
#include "virtio.h"
#include "virtio-blk.h"
#include "vm.h"

#define VIRTIO_SLOT_BASE 0xfeb00000ULL
#define VIRTIO_SLOTS 4

static const int slot_irq[VIRTIO_SLOTS] = { 10, 11, 14, 15 };
static VirtIOBlock *slots[VIRTIO_SLOTS];   /* [BQL] */
static int n_slots, n_anonymous;

static void slot_set_irq(void *opaque, int level)
{
    machine_set_irq((int)(intptr_t)opaque, level);
}

static bool board_has_slots(const char *driver, Error **errp)
{
    const char *type = machine_type();

    if (type && strcmp(type, "pc")) {
        error_setg(errp, "No 'virtio-bus' bus found for device '%s'", driver);
        return false;
    }
    return true;
}

static bool virtio_blk_add(BlockBackend *blk, const char *id, Error **errp)
{
    VirtIOBlock *s;
    VirtIODevice *vdev;
    char *dev_id;

    if (n_slots == VIRTIO_SLOTS) {
        error_setg(errp, "no free virtio-mmio slot: the pc board has %d", VIRTIO_SLOTS);
        return false;
    }
    dev_id = id ? g_strdup(id) : g_strdup_printf("/machine/peripheral-anon/device[%d]", n_anonymous);
    s = virtio_blk_create(blk, dev_id, (uint32_t)n_slots, errp);
    g_free(dev_id);
    if (!s) {
        return false;
    }
    vdev = virtio_blk_vdev(s);
    vdev->set_irq = slot_set_irq;
    vdev->irq_opaque = (void *)(intptr_t)slot_irq[n_slots];
    if (!virtio_mmio_attach(vdev, VIRTIO_SLOT_BASE + VIRTIO_MMIO_SIZE * (uint64_t)n_slots, errp)) {
        virtio_blk_destroy(s);
        return false;
    }
    n_anonymous += !id;
    slots[n_slots++] = s;
    return true;
}

bool virtio_blk_device_create(DeviceSpec *spec, Error **errp)
{
    assert(bql_locked());
    const char *drive = device_spec_get(spec, "drive");
    BlockBackend *blk = drive ? blk_by_name(drive) : NULL;

    if (!board_has_slots(spec->driver, errp)) {
        return false;
    }
    if (drive && !blk) {
        error_setg(errp, "Property '%s.drive' can't find value '%s'", spec->driver, drive);
        return false;
    }
    if (!device_spec_check_unused(spec, errp)) {
        return false;
    }
    if (!drive) {
        error_setg(errp, "drive property not set");
        return false;
    }
    return virtio_blk_add(blk, spec->id, errp);
}

bool virtio_blk_pci_refuse(DeviceSpec *spec, Error **errp)
{
    error_setg(errp, "'%s' needs a PCI bus, which migvm's pc board does not have; "
               "use virtio-blk-device (virtio-mmio) instead", spec->driver);
    return false;
}

bool virtio_blk_create_drives(Error **errp)
{
    assert(bql_locked());
    for (BlockBackend *blk = blk_next(NULL); blk; blk = blk_next(blk)) {
        if (strcmp(blk_interface(blk), "virtio") || blk_get_attached_dev(blk)) {
            continue;
        }
        if (!board_has_slots("virtio-blk-device", errp) || !virtio_blk_add(blk, NULL, errp)) {
            error_prepend(errp, "-drive if=virtio,id=%s: ", blk_name(blk));
            return false;
        }
    }
    return true;
}

void virtio_blk_reset_all(void)
{
    assert(bql_locked());
    for (int i = 0; i < n_slots; i++) {
        virtio_device_reset(virtio_blk_vdev(slots[i]));
    }
}

void virtio_blk_destroy_all(void)
{
    assert(bql_locked());
    for (int i = 0; i < n_slots; i++) {
        virtio_blk_destroy(slots[i]);
        slots[i] = NULL;
    }
    n_slots = n_anonymous = 0;
}
