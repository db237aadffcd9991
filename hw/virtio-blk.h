/*
 * virtio-blk device (hw/virtio-blk.c), for the board. Private to hw/.
 */
#ifndef MIGVM_HW_VIRTIO_BLK_H
#define MIGVM_HW_VIRTIO_BLK_H

#include <stdbool.h>
#include "block.h"
#include "error.h"

typedef struct VirtIOBlock VirtIOBlock;
typedef struct VirtIODevice VirtIODevice;

/* A virtio-blk device on `blk` (attached to it as dev_id), its VMState
 * section "virtio-blk" registered with instance id `instance`. [BQL] */
VirtIOBlock *virtio_blk_create(BlockBackend *blk, const char *dev_id, uint32_t instance,
                               Error **errp);
VirtIODevice *virtio_blk_vdev(VirtIOBlock *s);
/* Requests it holds: in flight in the block layer, held by an error STOP. */
unsigned virtio_blk_inflight(const VirtIOBlock *s);
unsigned virtio_blk_held(const VirtIOBlock *s);
/* Drains its requests, unregisters its state and frees it. [BQL] */
void virtio_blk_destroy(VirtIOBlock *s);

/* ---- the pc board's virtio-mmio slots (hw/virtio-slots.c) [BQL] ---- */
typedef struct DeviceSpec DeviceSpec;
/* -device virtio-blk-device,drive=NAME[,id=ID] (the device type table). */
bool virtio_blk_device_create(DeviceSpec *spec, Error **errp);
/* -device virtio-blk-pci / virtio-blk: refused, saying what to use. */
bool virtio_blk_pci_refuse(DeviceSpec *spec, Error **errp);
/* A device for each -drive if=virtio no -device took (machine_init, after
 * the -device list). */
bool virtio_blk_create_drives(Error **errp);
void virtio_blk_reset_all(void);            /* machine_reset */
void virtio_blk_destroy_all(void);          /* machine_cleanup */

#endif
