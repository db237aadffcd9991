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

/* A numeric property, if given, must be `want` (the one place migvm has). */
static bool prop_fixed(DeviceSpec *spec, const char *name, unsigned long long want, Error **errp)
{
    const char *text = device_spec_get(spec, name);
    char *end;

    if (!text) {
        return true;
    }
    unsigned long long v = g_ascii_strtoull(text, &end, 0);
    if (!*text || *end) {
        error_setg(errp, "Property '%s.%s' doesn't take value '%s'", spec->driver, name, text);
        return false;
    }
    if (v != want) {
        error_setg(errp, "%s=%s: only the board's one serial port is supported (index=0, iobase=0x3f8, irq=4)",
                   name, text);
        return false;
    }
    return true;
}

/* isa-serial: the board's COM1 (0x3f8, IRQ 4). The command line has already
 * put it on the chardev its chardev= names; here the rest is checked. */
static bool isa_serial_create(DeviceSpec *spec, Error **errp)
{
    device_spec_get(spec, "chardev");
    return prop_fixed(spec, "index", 0, errp) && prop_fixed(spec, "iobase", 0x3f8, errp) &&
           prop_fixed(spec, "irq", 4, errp) && device_spec_check_unused(spec, errp);
}

typedef struct DeviceType {
    const char *name;
    DeviceCreateFn *create;
} DeviceType;

/* One line per type, sorted by name. */
static const DeviceType device_types[] = {
    { "isa-serial", isa_serial_create },
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
