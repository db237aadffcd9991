/*
 * libFuzzer target: arbitrary bytes as an incoming migration stream.
 * The real "ram" handler (migration/ram.c) over two small RAM blocks ("ram"
 * 16 pages, "extra" 2 pages), a fake second live handler and a fake device
 * (arrays, a variable array, a nested struct and subsections) are
 * registered; the loader must return true or false with an error, never
 * crash, overflow or leak.
 *   make fuzz-loadvm && build/fuzz/fuzz-loadvm -max_total_time=120 CORPUS_DIR
 */
#include <stdint.h>
#include <string.h>
#include "auto-converge.h"
#include "cpu-throttle.h"
#include "memory.h"
#include "ram.h"
#include "savevm.h"
#include "vm.h"

/* ram.c's only question about the machine. */
bool runstate_is_running(void)
{
    return false;
}

/* The save side's throttle, linked in with ram.c, never runs here. */
void auto_converge_reset(AutoConverge *ac)
{
    (void)ac;
}

void auto_converge_period(AutoConverge *ac, uint64_t sent, uint64_t dirtied)
{
    (void)ac, (void)sent, (void)dirtied;
}

void cpu_throttle_stop(void)
{
}

/* The one fuzzing thread plays the main thread, which holds the BQL. */
bool bql_locked(void)
{
    return true;
}

typedef struct Inner {
    uint16_t a;
    uint8_t b[3];
} Inner;

typedef struct FuzzDev {
    uint32_t id;
    int32_t limit;
    uint8_t magic;
    uint32_t n;
    uint64_t var[4];
    Inner in[2];
    uint8_t buf[16];
    bool flag;
    uint16_t sub;
} FuzzDev;

static FuzzDev dev;

static const VMStateDescription vmstate_inner = {
    .name = "inner", .version_id = 2, .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT16(a, Inner),
        VMSTATE_UINT8_ARRAY(b, Inner, 3),
        VMSTATE_END_OF_LIST()
    },
};

static const VMStateDescription vmstate_sub = {
    .name = "fuzzdev/sub", .version_id = 1, .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT16(sub, FuzzDev),
        VMSTATE_END_OF_LIST()
    },
};

static const VMStateDescription vmstate_fuzzdev = {
    .name = "fuzzdev", .version_id = 3, .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(id, FuzzDev),
        VMSTATE_INT32_LE(limit, FuzzDev),
        VMSTATE_UINT8_EQUAL(magic, FuzzDev),
        VMSTATE_UINT32(n, FuzzDev),
        VMSTATE_VARRAY_UINT32(var, FuzzDev, n, 4, uint64_t, VMS_KIND_UINT64),
        VMSTATE_STRUCT_ARRAY(in, FuzzDev, 2, vmstate_inner, Inner),
        VMSTATE_BUFFER_V(buf, FuzzDev, 2),
        VMSTATE_BOOL_V(flag, FuzzDev, 3),
        VMSTATE_UNUSED(4),
        VMSTATE_END_OF_LIST()
    },
    .subsections = (const VMStateDescription *const[]) { &vmstate_sub, NULL },
};

/* A second live handler, RAM-like: be64 records until EOS (0x10); MEM_SIZE
 * (0x04) and ZERO (0x02 + byte). */
static bool live_load(MigStream *f, void *opaque, int version_id, Error **errp)
{
    if (version_id != 4) {
        error_setg(errp, "block: version %d", version_id);
        return false;
    }
    for (int i = 0; i < 4096; i++) {
        uint64_t w = mig_stream_get_be64(f);
        if (mig_stream_has_error(f)) {
            return mig_stream_check(f, errp, "block");
        }
        switch (w & 0xfff) {
        case 0x10:
            return true;
        case 0x04:
            break;
        case 0x02:
            mig_stream_get_u8(f);
            break;
        default:
            error_setg(errp, "Unknown combination of migration flags: 0x%x", (unsigned)(w & 0xfff));
            return false;
        }
    }
    error_setg(errp, "block: too many records");
    return false;
}

static const SaveVMHandlers live_ops = { .load_state = live_load };

static int initialized;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int d1;
    if (!initialized) {
        initialized = 1;
        if (!ram_block_add("ram", 0, 16 * MIGVM_PAGE_SIZE, NULL) ||
            !ram_block_add("extra", 1024 * MIGVM_PAGE_SIZE, 2 * MIGVM_PAGE_SIZE, NULL) ||
            !ram_mig_init(NULL, NULL)) {
            __builtin_trap();
        }
        vmstate_register(NULL, 0, &vmstate_fuzzdev, &dev, NULL);
        vmstate_register(NULL, 1, &vmstate_fuzzdev, &dev, NULL);
        register_savevm_live("block", 0, 1, &live_ops, &d1, NULL);
    }
    memset(&dev, 0, sizeof(dev));
    dev.magic = 0x42;
    dev.limit = 100;

    /* One return-path writer for many inputs: a new one each time (its
     * 1 MiB buffer) cost more than most inputs' loads. */
    static MigStream *rp;
    static unsigned uses;
    if (rp && ++uses % 4096 == 0) {
        mig_stream_close(rp, NULL);
        rp = NULL;
    }
    if (!rp) {
        rp = mig_stream_new_mem_writer();
    }
    MigStream *f = mig_stream_new_mem_reader(data, size);
    LoadvmOptions opts = {
        .local = { .machine_type = "none", .x_ignore_shared = size & 1 },
        .return_path = (size & 2) ? rp : NULL,
        .send_shut = true,
        .max_vmdesc_len = 4096,
    };
    Error *err = NULL;
    bool ok = qemu_loadvm_state(f, &opts, &err);
    if (ok == (err != NULL)) {
        __builtin_trap();           /* return value and errp must agree */
    }
    error_free(err);
    mig_stream_close(f, NULL);
    return 0;
}
