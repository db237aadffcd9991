/*
 * virtio-blk (virtio 1.x, section 5.2): a disk on a drive of the block layer.
 *
 * Features offered: VERSION_1, SEG_MAX, BLK_SIZE, FLUSH, RO when the drive is
 * read-only, INDIRECT_DESC (Linux uses it for long requests) and EVENT_IDX
 * (interrupt and notify suppression, hw/virtqueue.c).
 * Configuration space (little-endian): capacity le64 in 512-byte sectors @0,
 * size_max le32 @8 (0, not offered), seg_max le32 @12, geometry @16 (0),
 * blk_size le32 @20, topology @24 and writeback @32 (0, not offered).
 *
 * A request is a chain: a readable 16-byte header { le32 type; le32 ioprio;
 * le64 sector }, data buffers (readable for OUT, writable for IN) and a final
 * writable status byte (OK 0, IOERR 1, UNSUPP 2). Types: IN 0, OUT 1,
 * FLUSH 4, GET_ID 8 (20 bytes of serial: the drive's id, zero padded); others
 * get UNSUPP. Any layout of these bytes over the descriptors is accepted
 * (VERSION_1 implies ANY_LAYOUT). Out-of-range or unaligned sectors, writes to
 * a read-only drive and requests over VIRTIO_BLK_MAX_REQ get IOERR.
 *
 * I/O goes through the block layer's asynchronous calls with a bounce buffer
 * (aligned for cache=none): OUT copies the guest data at submission, IN copies
 * it into guest RAM at completion with guest_phys_write, which marks the pages
 * dirty so a migration sends them again.
 *
 * Errors follow the drive's werror/rerror policy: REPORT fails the request
 * (IOERR), IGNORE completes it as if it succeeded, STOP keeps it on the held
 * list and stops the VM; when the VM runs again every held request is
 * submitted again.
 *
 * Migration, VMState "virtio-blk" version 1, instance id = the device's slot:
 *   vdev   the common state (hw/virtio-mmio.c: device id, status, features,
 *          selectors, interrupt status, config generation; per queue num,
 *          ready, ring addresses, last_avail_idx, used_idx, signalled_used(_valid), n_held, held[])
 * vm_stop drains the block layer before the state is saved, so no request is
 * in flight (pre_save refuses otherwise). Requests held by an error STOP are
 * sent as their chain heads (held[]): the chains sit in guest RAM, which
 * migrates too, and the guest cannot reuse a descriptor before the device
 * returns it, so the destination walks the same chains and submits them when
 * it runs. Sending heads instead of rewinding last_avail_idx keeps this exact
 * when requests completed out of order around a held one (a rewind would run
 * the completed ones twice).
 */
#include <endian.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include "vm.h"
#include "virtio.h"
#include "virtio-blk.h"

#define VIRTIO_ID_BLOCK             2
#define VIRTIO_BLK_F_SEG_MAX        2
#define VIRTIO_BLK_F_RO             5
#define VIRTIO_BLK_F_BLK_SIZE       6
#define VIRTIO_BLK_F_FLUSH          9

#define VIRTIO_BLK_T_IN             0
#define VIRTIO_BLK_T_OUT            1
#define VIRTIO_BLK_T_FLUSH          4
#define VIRTIO_BLK_T_GET_ID         8

#define VIRTIO_BLK_S_OK             0
#define VIRTIO_BLK_S_IOERR          1
#define VIRTIO_BLK_S_UNSUPP         2

#define VIRTIO_BLK_ID_BYTES         20
#define VIRTIO_BLK_HDR_BYTES        16
#define VIRTIO_BLK_CONFIG_BYTES     36
/* The largest request served (Linux sends at most max_sectors_kb, 1280 KiB
 * by default); bigger ones fail with IOERR instead of a huge allocation. */
#define VIRTIO_BLK_MAX_REQ          (64u << 20)
#define BOUNCE_ALIGN                4096

typedef struct VirtIOBlockReq {
    VirtIOBlock *s;
    VirtQueueElement elem;
    uint32_t type;
    uint64_t sector;
    void *buf;                  /* bounce buffer, `len` bytes */
    uint64_t len;
} VirtIOBlockReq;

struct VirtIOBlock {
    VirtIODevice vdev;
    BlockBackend *blk;
    char *dev_id;
    uint32_t instance;
    unsigned inflight;          /* submitted to the block layer, not completed */
    GQueue held;                /* VirtIOBlockReq stopped by an error, in order */
    bool registered;
};

/* ---- completing requests ---- */

static void req_free(VirtIOBlockReq *req)
{
    free(req->buf);
    virtqueue_element_free(&req->elem);
    g_free(req);
}

/* Status byte at the end of the writable buffers, then the used ring. */
static void req_complete(VirtIOBlockReq *req, uint8_t status, uint64_t data_written)
{
    VirtIOBlock *s = req->s;
    VirtIODevice *vdev = &s->vdev;

    virtqueue_copy_to_guest(req->elem.in, req->elem.in_num, req->elem.in_len - 1, &status, 1);
    virtqueue_push(&vdev->vq[0], &req->elem, (uint32_t)(data_written + 1));
    virtio_notify(vdev, 0);
    req_free(req);
}

static void req_submit(VirtIOBlockReq *req);

static void req_done(void *opaque, int ret)
{
    VirtIOBlockReq *req = opaque;
    VirtIOBlock *s = req->s;
    bool is_read = req->type == VIRTIO_BLK_T_IN;
    BlockErrorAction action;

    s->inflight--;
    if (ret == 0) {
        if (is_read && !virtqueue_copy_to_guest(req->elem.in, req->elem.in_num, 0, req->buf, req->len)) {
            req_complete(req, VIRTIO_BLK_S_IOERR, 0);
            return;
        }
        req_complete(req, VIRTIO_BLK_S_OK, is_read ? req->len : 0);
        return;
    }
    action = blk_get_error_action(s->blk, is_read, -ret);
    if (action == BLOCK_ERROR_ACTION_STOP) {
        /* Kept whole; submitted again when the VM runs (or on the
         * destination of a migration). blk_error_action last: it may stop
         * the VM and drain, running other completions of ours. */
        free(req->buf);
        req->buf = NULL;
        g_queue_push_tail(&s->held, req);
        blk_error_action(s->blk, action, is_read, -ret);
        return;
    }
    blk_error_action(s->blk, action, is_read, -ret);
    req_complete(req, action == BLOCK_ERROR_ACTION_IGNORE ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR,
                 action == BLOCK_ERROR_ACTION_IGNORE && is_read ? req->len : 0);
}

/* ---- starting requests ---- */

static bool req_range_ok(VirtIOBlockReq *req)
{
    uint64_t sectors = (uint64_t)blk_getlength(req->s->blk) / BDRV_SECTOR_SIZE;

    return req->len % BDRV_SECTOR_SIZE == 0 && req->len <= VIRTIO_BLK_MAX_REQ &&
           req->sector <= sectors && req->len / BDRV_SECTOR_SIZE <= sectors - req->sector;
}

static bool req_alloc_buf(VirtIOBlockReq *req)
{
    return posix_memalign(&req->buf, BOUNCE_ALIGN, req->len ? req->len : BDRV_SECTOR_SIZE) == 0;
}

static void req_get_id(VirtIOBlockReq *req)
{
    char id[VIRTIO_BLK_ID_BYTES] = { 0 };
    uint64_t n = MIN(req->elem.in_len - 1, (uint64_t)VIRTIO_BLK_ID_BYTES);

    const char *name = blk_name(req->s->blk);

    memcpy(id, name, strnlen(name, sizeof(id)));
    virtqueue_copy_to_guest(req->elem.in, req->elem.in_num, 0, id, n);
    req_complete(req, VIRTIO_BLK_S_OK, n);
}

/* Start the block I/O a parsed request asks for (again, after a STOP). */
static void req_submit(VirtIOBlockReq *req)
{
    VirtIOBlock *s = req->s;
    struct iovec iov;
    bool is_write = req->type == VIRTIO_BLK_T_OUT;

    switch (req->type) {
    case VIRTIO_BLK_T_IN:
    case VIRTIO_BLK_T_OUT:
        if ((is_write && blk_is_read_only(s->blk)) || !req_range_ok(req) || !req_alloc_buf(req)) {
            req_complete(req, VIRTIO_BLK_S_IOERR, 0);
            return;
        }
        if (is_write && !virtqueue_copy_from_guest(req->elem.out, req->elem.out_num,
                                                   VIRTIO_BLK_HDR_BYTES, req->buf, req->len)) {
            req_complete(req, VIRTIO_BLK_S_IOERR, 0);
            return;
        }
        iov = (struct iovec) { .iov_base = req->buf, .iov_len = req->len };
        s->inflight++;
        (is_write ? blk_aio_pwritev : blk_aio_preadv)(s->blk, (int64_t)(req->sector * BDRV_SECTOR_SIZE),
                                                      &iov, 1, req_done, req);
        return;
    case VIRTIO_BLK_T_FLUSH:
        s->inflight++;
        blk_aio_flush(s->blk, req_done, req);
        return;
    case VIRTIO_BLK_T_GET_ID:
        req_get_id(req);
        return;
    default:
        req_complete(req, VIRTIO_BLK_S_UNSUPP, 0);
        return;
    }
}

/* Parse the header of a chain just taken; false: malformed (the guest broke
 * the protocol, the caller stops the device). */
static bool req_parse(VirtIOBlockReq *req)
{
    uint8_t hdr[VIRTIO_BLK_HDR_BYTES];
    uint32_t type;
    uint64_t sector;

    if (req->elem.out_len < VIRTIO_BLK_HDR_BYTES || req->elem.in_len < 1 ||
        !virtqueue_copy_from_guest(req->elem.out, req->elem.out_num, 0, hdr, sizeof(hdr))) {
        return false;
    }
    memcpy(&type, hdr, 4);
    memcpy(&sector, hdr + 8, 8);
    req->type = le32toh(type);
    req->sector = le64toh(sector);
    req->len = req->type == VIRTIO_BLK_T_IN ? req->elem.in_len - 1 :
               req->type == VIRTIO_BLK_T_OUT ? req->elem.out_len - VIRTIO_BLK_HDR_BYTES : 0;
    return true;
}

static VirtIOBlockReq *req_new(VirtIOBlock *s)
{
    VirtIOBlockReq *req = g_new0(VirtIOBlockReq, 1);

    req->s = s;
    return req;
}

static void virtio_blk_handle_queue(VirtIODevice *vdev, int q)
{
    VirtIOBlock *s = vdev->opaque;
    bool indirect = virtio_has_feature(vdev, VIRTIO_RING_F_INDIRECT_DESC);

    /* While requests wait for the VM to run again, new ones wait in the
     * ring so that order is kept. At most a ring's worth per call: another
     * vCPU refilling the ring as fast as requests complete must not keep
     * this one (and the BQL) here. Only requests answered at once (errors,
     * GET_ID) free slots meanwhile, so a driver never reaches the limit
     * otherwise; one that does may have to notify again (with EVENT_IDX its
     * next notify can be suppressed by an avail_event we left behind). */
    for (uint32_t n = 0; n < vdev->vq[q].num && g_queue_is_empty(&s->held) &&
                         !(vdev->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET); n++) {
        VirtIOBlockReq *req = req_new(s);
        Error *err = NULL;
        int r = virtqueue_pop(&vdev->vq[q], indirect, &req->elem, &err);

        if (r <= 0) {
            g_free(req);
            if (r < 0) {
                virtio_error(vdev, "%s", error_get_pretty(err));
                error_free(err);
            }
            return;
        }
        if (!req_parse(req)) {
            virtio_error(vdev, "request %u without a 16-byte header or a status byte", req->elem.head);
            req_free(req);
            return;
        }
        req_submit(req);
    }
}

/* The VM runs again: submit what an error stopped, in order. */
static void virtio_blk_vm_state_change(void *opaque, bool running)
{
    VirtIOBlock *s = opaque;
    GQueue retry;

    if (!running || g_queue_is_empty(&s->held)) {
        return;
    }
    /* Take the list first: a request failing again is held anew. */
    retry = s->held;
    g_queue_init(&s->held);
    for (VirtIOBlockReq *req; (req = g_queue_pop_head(&retry));) {
        req_submit(req);
    }
    /* Pick up what the guest queued meanwhile. */
    if (s->vdev.vq[0].ready && g_queue_is_empty(&s->held)) {
        virtio_blk_handle_queue(&s->vdev, 0);
    }
}

static void drop_held(VirtIOBlock *s)
{
    for (VirtIOBlockReq *req; (req = g_queue_pop_head(&s->held));) {
        req_free(req);
    }
}

static void virtio_blk_reset(VirtIODevice *vdev)
{
    VirtIOBlock *s = vdev->opaque;

    /* Completions write guest RAM: let them land before the rings go. */
    blk_drain_all();
    drop_held(s);
}

static void virtio_blk_get_config(VirtIODevice *vdev, uint8_t *config)
{
    VirtIOBlock *s = vdev->opaque;
    uint64_t capacity = htole64((uint64_t)blk_getlength(s->blk) / BDRV_SECTOR_SIZE);
    uint32_t seg_max = htole32(VIRTQ_MAX_SIZE - 2), blk_size = htole32(BDRV_SECTOR_SIZE);

    memset(config, 0, VIRTIO_BLK_CONFIG_BYTES);
    memcpy(config + 0, &capacity, 8);
    memcpy(config + 12, &seg_max, 4);
    memcpy(config + 20, &blk_size, 4);
}

static const VirtioDeviceOps virtio_blk_ops = {
    .name = "virtio-blk",
    .device_id = VIRTIO_ID_BLOCK,
    .config_len = VIRTIO_BLK_CONFIG_BYTES,
    .get_config = virtio_blk_get_config,
    .handle_queue = virtio_blk_handle_queue,
    .reset = virtio_blk_reset,
};

/* ---- migration ---- */

static bool virtio_blk_pre_save(void *opaque, Error **errp)
{
    VirtIOBlock *s = opaque;
    VirtQueue *vq = &s->vdev.vq[0];

    if (s->inflight) {
        error_setg(errp, "virtio-blk %s: %u requests still in flight (the drive was not drained)",
                   s->dev_id, s->inflight);
        return false;
    }
    vq->n_held = 0;
    for (GList *l = s->held.head; l; l = l->next) {
        VirtIOBlockReq *req = l->data;
        vq->held[vq->n_held++] = req->elem.head;
    }
    return true;
}

static bool virtio_blk_post_load(void *opaque, int version_id, Error **errp)
{
    VirtIOBlock *s = opaque;
    VirtIODevice *vdev = &s->vdev;
    VirtQueue *vq = &vdev->vq[0];
    bool indirect = virtio_has_feature(vdev, VIRTIO_RING_F_INDIRECT_DESC);

    drop_held(s);
    if (!virtio_device_post_load(vdev, errp)) {
        return false;
    }
    if (vq->n_held && !vq->ready) {
        error_setg(errp, "virtio-blk %s: held requests on a queue that is not ready", s->dev_id);
        return false;
    }
    for (uint32_t i = 0; i < vq->n_held; i++) {
        VirtIOBlockReq *req = req_new(s);
        if (!virtqueue_read_chain(vq, indirect, vq->held[i], &req->elem, errp) || !req_parse(req)) {
            if (errp && !*errp) {
                error_setg(errp, "request %u has no header or status byte", vq->held[i]);
            }
            error_prepend(errp, "virtio-blk %s: held request: ", s->dev_id);
            req_free(req);
            drop_held(s);
            return false;
        }
        g_queue_push_tail(&s->held, req);
    }
    return true;
}

static const VMStateField virtio_blk_fields[] = {
    VMSTATE_STRUCT(vdev, VirtIOBlock, vmstate_virtio_device, VirtIODevice),
    VMSTATE_END_OF_LIST(),
};

static const VMStateDescription vmstate_virtio_blk = {
    .name = "virtio-blk",
    .version_id = 1,
    .minimum_version_id = 1,
    .pre_save = virtio_blk_pre_save,
    .post_load = virtio_blk_post_load,
    .fields = virtio_blk_fields,
};

/* ---- life cycle ---- */

VirtIOBlock *virtio_blk_create(BlockBackend *blk, const char *dev_id, uint32_t instance,
                               Error **errp)
{
    assert(bql_locked());
    VirtIOBlock *s;
    uint64_t features = VIRTIO_BIT(VIRTIO_F_VERSION_1) | VIRTIO_BIT(VIRTIO_RING_F_INDIRECT_DESC) |
                        VIRTIO_BIT(VIRTIO_RING_F_EVENT_IDX) |
                        VIRTIO_BIT(VIRTIO_BLK_F_SEG_MAX) | VIRTIO_BIT(VIRTIO_BLK_F_BLK_SIZE) |
                        VIRTIO_BIT(VIRTIO_BLK_F_FLUSH);

    if (blk_is_read_only(blk)) {
        features |= VIRTIO_BIT(VIRTIO_BLK_F_RO);
    }
    if (!blk_attach_dev(blk, dev_id, errp)) {
        return NULL;
    }
    s = g_new0(VirtIOBlock, 1);
    s->blk = blk;
    s->dev_id = g_strdup(dev_id);
    s->instance = instance;
    g_queue_init(&s->held);
    virtio_device_init(&s->vdev, &virtio_blk_ops, s, features, 1);
    if (!vmstate_register("virtio-blk", instance, &vmstate_virtio_blk, s, errp)) {
        g_free(s->dev_id);
        g_free(s);
        return NULL;
    }
    s->registered = true;
    vm_change_state_handler_add(virtio_blk_vm_state_change, s);
    return s;
}

VirtIODevice *virtio_blk_vdev(VirtIOBlock *s)
{
    return &s->vdev;
}

unsigned virtio_blk_inflight(const VirtIOBlock *s)
{
    return s->inflight;
}

unsigned virtio_blk_held(const VirtIOBlock *s)
{
    return s->held.length;
}

void virtio_blk_destroy(VirtIOBlock *s)
{
    assert(bql_locked());
    if (!s) {
        return;
    }
    if (s->inflight) {
        blk_drain_all();
    }
    drop_held(s);
    vm_change_state_handler_del(virtio_blk_vm_state_change, s);
    if (s->registered) {
        vmstate_unregister(&vmstate_virtio_blk, s);
    }
    g_free(s->dev_id);
    g_free(s);
}
