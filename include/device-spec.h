/*
 * -device DRIVER[,id=ID][,prop=value...] or JSON (system/device-spec.c), and the
 * device types the board can create from one (hw/device-types.c).
 */
#ifndef MIGVM_DEVICE_SPEC_H
#define MIGVM_DEVICE_SPEC_H

#include <stdbool.h>
#include <glib.h>
#include "error.h"

typedef struct DeviceProp {
    char *name;
    char *value;
    bool used;                  /* a device type consumed it */
} DeviceProp;

typedef struct DeviceSpec {
    char *driver;               /* "virtio-blk-device", ... */
    char *id;                   /* id=, or NULL */
    GPtrArray *props;           /* DeviceProp*, in command-line order (id= not among them) */
    char *text;                 /* the -device argument as given, for messages */
} DeviceSpec;

/* Parse one -device argument. The driver is the first item (or driver=);
 * ",," is a literal comma. A property given twice: the last one wins, as QEMU.
 * An argument starting with '{' is QEMU's JSON form (what libvirt passes). */
bool device_spec_parse(const char *text, DeviceSpec *out, Error **errp);
void device_spec_clear(DeviceSpec *spec);

/* The value of property `name` (marking it used), or NULL. */
const char *device_spec_get(DeviceSpec *spec, const char *name);
/* False with QEMU's "Property 'DRIVER.NAME' not found" if a property was never
 * asked for with device_spec_get. Device types call it once they read theirs. */
bool device_spec_check_unused(const DeviceSpec *spec, Error **errp);

/* hw/device-types.c: create the device `spec` names on the board, or fail
 * with QEMU's "'foo' is not a valid device model name". [BQL, machine_init] */
bool device_create(DeviceSpec *spec, Error **errp);

#endif
