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

#endif
