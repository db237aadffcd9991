/*
 * The device types -device can name, and creating one on the board.
 * machine_init creates them in command-line order, after the board's own
 * devices and the accelerator (so interrupt controllers exist), before the
 * vCPUs. A type's create function reads its properties with
 * device_spec_get, calls device_spec_check_unused, and attaches drives with
 * blk_attach_dev.
 */
#include <string.h>
#include "device-spec.h"
#include "virtio-blk.h"
#include "vm.h"

typedef bool DeviceCreateFn(DeviceSpec *spec, Error **errp);

typedef struct DeviceType {
    const char *name;
    DeviceCreateFn *create;
} DeviceType;

/* One line per type, sorted by name. */
static const DeviceType device_types[] = {
    { "virtio-blk", virtio_blk_pci_refuse },
    { "virtio-blk-device", virtio_blk_device_create },
    { "virtio-blk-pci", virtio_blk_pci_refuse },
};

bool device_create(DeviceSpec *spec, Error **errp)
{
    assert(bql_locked());
    for (size_t i = 0; i < G_N_ELEMENTS(device_types); i++) {
        if (device_types[i].name && !strcmp(device_types[i].name, spec->driver)) {
            return device_types[i].create(spec, errp);
        }
    }
    error_setg(errp, "'%s' is not a valid device model name", spec->driver);
    return false;
}
