/*
 * The top-level stream: the writer against golden bytes built by hand from
 * the doc's rules, QEMU 7.2's smallest real stream (migration-stream.md
 * section 11) written and read back, and hostile variants of it that must
 * each fail with the expected error (and never crash), including truncation
 * at every offset.
 */
#include <check.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>
#include "savevm.h"
#include "global-state.h"
#include "timer-state.h"
#include "unit-test.h"

/* ---------------- stubs for system/ (run state) ---------------- */

static RunState test_runstate = RUN_STATE_PRELAUNCH;

RunState runstate_get(void)
{
    return test_runstate;
}

/* One thread plays the main thread here, which holds the BQL. */
bool bql_locked(void)
{
    return true;
}

/* ---------------- byte builder ---------------- */

static void b_u8(GByteArray *b, uint8_t v)
{
    g_byte_array_append(b, &v, 1);
}

static void b_be16(GByteArray *b, uint16_t v)
{
    b_u8(b, v >> 8);
    b_u8(b, v);
}

static void b_be32(GByteArray *b, uint32_t v)
{
    b_be16(b, v >> 16);
    b_be16(b, v);
}

static void b_be64(GByteArray *b, uint64_t v)
{
    b_be32(b, v >> 32);
    b_be32(b, v);
}

static void b_str(GByteArray *b, const char *s)
{
    b_u8(b, strlen(s));
    g_byte_array_append(b, (const uint8_t *)s, strlen(s));
}

static void b_raw(GByteArray *b, const void *p, size_t n)
{
    g_byte_array_append(b, p, n);
}

static void b_full_header(GByteArray *b, uint8_t type, uint32_t id, const char *idstr,
                          uint32_t inst, uint32_t ver)
{
    b_u8(b, type);
    b_be32(b, id);
    b_str(b, idstr);
    b_be32(b, inst);
    b_be32(b, ver);
}

static void b_footer(GByteArray *b, uint32_t id)
{
    b_u8(b, 0x7e);
    b_be32(b, id);
}

/* ---------------- fake devices ---------------- */

/* A live handler that speaks just enough of RAM v4: MEM_SIZE 0, EOS. */
typedef struct FakeRam {
    int passes_left;
    int setups, iterations, completes, cleanups;
    int load_setups, load_cleanups, loads;
} FakeRam;

static FakeRam fake_ram;

static bool ram_save_setup(MigStream *f, void *opaque, Error **errp)
{
    FakeRam *r = opaque;
    r->setups++;
    mig_stream_put_be64(f, 0x04);          /* MEM_SIZE, total 0 */
    mig_stream_put_be64(f, 0x10);          /* EOS */
    return true;
}

static int ram_iterate(MigStream *f, void *opaque, Error **errp)
{
    FakeRam *r = opaque;
    r->iterations++;
    mig_stream_put_be64(f, 0x10);
    return --r->passes_left > 0 ? 0 : 1;
}

static bool ram_complete(MigStream *f, void *opaque, Error **errp)
{
    ((FakeRam *)opaque)->completes++;
    mig_stream_put_be64(f, 0x10);
    return true;
}

static void ram_pending(void *opaque, uint64_t *must_precopy)
{
    *must_precopy += (uint64_t)((FakeRam *)opaque)->passes_left * 4096;
}

static void ram_cleanup(void *opaque)
{
    ((FakeRam *)opaque)->cleanups++;
}

static bool ram_load_setup(void *opaque, Error **errp)
{
    ((FakeRam *)opaque)->load_setups++;
    return true;
}

static void ram_load_cleanup(void *opaque)
{
    ((FakeRam *)opaque)->load_cleanups++;
}

static bool ram_load(MigStream *f, void *opaque, int version_id, Error **errp)
{
    ((FakeRam *)opaque)->loads++;
    if (version_id != 4) {
        error_setg(errp, "ram: unsupported version %d", version_id);
        return false;
    }
    for (;;) {
        uint64_t w = mig_stream_get_be64(f);
        if (mig_stream_has_error(f)) {
            error_setg(errp, "ram: %s", mig_stream_error_msg(f));
            return false;
        }
        if (w == 0x10) {
            return true;
        }
        if (w != 0x04) {
            error_setg(errp, "Unknown combination of migration flags: 0x%x",
                       (unsigned)(w & 0xfff));
            return false;
        }
    }
}

static const SaveVMHandlers fake_ram_ops = {
    .save_setup = ram_save_setup,
    .save_live_iterate = ram_iterate,
    .save_live_complete_precopy = ram_complete,
    .state_pending = ram_pending,
    .save_cleanup = ram_cleanup,
    .load_setup = ram_load_setup,
    .load_state = ram_load,
    .load_cleanup = ram_load_cleanup,
};

/* A second small device for the golden stream. */
typedef struct Uart {
    uint8_t regs[2];
    uint16_t divider;
} Uart;

static Uart uart;

static const VMStateDescription vmstate_uart = {
    .name = "uart",
    .version_id = 3,
    .minimum_version_id = 2,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT8_ARRAY(regs, Uart, 2),
        VMSTATE_UINT16(divider, Uart),
        VMSTATE_END_OF_LIST()
    },
};

static const VMStateDescription vmstate_dummy = {
    .name = "dummy", .version_id = 1,
    .fields = (const VMStateField[]) { VMSTATE_END_OF_LIST() },
};

static void timers_load(int64_t ticks, int64_t clock);

static void setup(void)
{
    savevm_unregister_all();
    global_state_reset();
    memset(&fake_ram, 0, sizeof(fake_ram));
    timers_load(0, 0);
    uart = (Uart){ { 0x11, 0x22 }, 0x0c };
    test_runstate = RUN_STATE_PRELAUNCH;
}

static void teardown(void)
{
    savevm_unregister_all();
}

/* Register what QEMU 7.2 -M none has, with its section ids (timer 0, ram 2,
 * globalstate 4). */
static void register_qemu_none(void)
{
    static int d1, d2;
    ck_assert(timers_state_register(NULL));
    ck_assert(vmstate_register(NULL, 0, &vmstate_dummy, &d1, NULL));
    ck_assert(register_savevm_live("ram", 0, 4, &fake_ram_ops, &fake_ram, NULL));
    ck_assert(vmstate_register(NULL, 1, &vmstate_dummy, &d2, NULL));
    ck_assert(global_state_register(NULL));
    vmstate_unregister(&vmstate_dummy, &d1);
    vmstate_unregister(&vmstate_dummy, &d2);
}

static const char qemu_none_vmdesc[] =
    "{\"page_size\": 4096, \"devices\": [{\"name\": \"timer\", \"instance_id\": 0, "
    "\"vmsd_name\": \"timer\", \"version\": 2, \"fields\": [{\"name\": \"cpu_ticks_offset\", "
    "\"type\": \"int64\", \"size\": 8}, {\"name\": \"unused\", \"type\": \"unused_buffer\", "
    "\"size\": 8}, {\"name\": \"cpu_clock_offset\", \"type\": \"int64\", \"size\": 8}]}, "
    "{\"name\": \"globalstate\", \"instance_id\": 0, \"vmsd_name\": \"globalstate\", "
    "\"version\": 1, \"fields\": [{\"name\": \"size\", \"type\": \"uint32\", \"size\": 4}, "
    "{\"name\": \"runstate\", \"type\": \"buffer\", \"size\": 100}]}]}";

/* The 747-byte stream of migration-stream.md section 11, byte by byte. */
static GByteArray *qemu_none_stream(void)
{
    GByteArray *b = g_byte_array_new();
    b_be32(b, 0x5145564d);
    b_be32(b, 3);
    b_u8(b, 0x07);                                       /* 0x0008 */
    b_be32(b, 4);
    b_raw(b, "none", 4);
    b_full_header(b, 0x01, 2, "ram", 0, 4);              /* 0x0011 */
    b_be64(b, 0x04);
    b_be64(b, 0x10);
    b_footer(b, 2);
    b_u8(b, 0x03);                                       /* 0x0037 */
    b_be32(b, 2);
    b_be64(b, 0x10);
    b_footer(b, 2);
    b_full_header(b, 0x04, 0, "timer", 0, 2);            /* 0x0049 */
    b_be64(b, 0x0000001234567890ULL);                    /* cpu_ticks_offset */
    b_be64(b, 0);                                        /* unused */
    b_be64(b, 0xffffffffff000000ULL);                    /* cpu_clock_offset */
    b_footer(b, 0);
    b_full_header(b, 0x04, 4, "globalstate", 0, 1);      /* 0x0079 */
    b_be32(b, 10);
    uint8_t rs[100] = "prelaunch";
    b_raw(b, rs, sizeof(rs));
    b_footer(b, 4);
    b_u8(b, 0x00);                                       /* 0x00ff EOF */
    b_u8(b, 0x06);                                       /* 0x0100 */
    b_be32(b, strlen(qemu_none_vmdesc));
    b_raw(b, qemu_none_vmdesc, strlen(qemu_none_vmdesc));
    return b;
}

/* ---------------- load helpers ---------------- */

static LoadvmOptions none_opts(void)
{
    return (LoadvmOptions){ .local = { .machine_type = "none" } };
}

/* Load; returns NULL on success or the error message (g_free). */
static char *load_bytes(const uint8_t *data, size_t len, const LoadvmOptions *opts)
{
    MigStream *f = mig_stream_new_mem_reader(data, len);
    Error *err = NULL;
    bool ok = qemu_loadvm_state(f, opts, &err);
    ck_assert(ok == (err == NULL));
    mig_stream_close(f, NULL);
    char *msg = err ? g_strdup(error_get_pretty(err)) : NULL;
    error_free(err);
    return msg;
}

#define ASSERT_FAILS_WITH(b, opts, substr) do {                                        \
    g_autofree char *m_ = load_bytes((b)->data, (b)->len, (opts));                     \
    ck_assert_msg(m_ != NULL, "load unexpectedly succeeded (want '%s')", substr);       \
    ck_assert_msg(strstr(m_, substr), "error '%s' lacks '%s'", m_, substr);             \
} while (0)

/* The real "timer" section (hw/timer-state.c) has no setter: give it these
 * offsets the way a destination gets them, by loading them. Leaves the
 * registry empty. */
static void timers_load(int64_t ticks, int64_t clock)
{
    savevm_unregister_all();
    ck_assert(timers_state_register(NULL));
    g_autoptr(GByteArray) b = g_byte_array_new();
    b_be32(b, 0x5145564d);
    b_be32(b, 3);
    b_u8(b, 0x07);
    b_be32(b, 4);
    b_raw(b, "none", 4);
    b_full_header(b, 0x04, 0, "timer", 0, 2);
    b_be64(b, ticks);
    b_be64(b, 0);
    b_be64(b, clock);
    b_footer(b, 0);
    b_u8(b, 0x00);
    LoadvmOptions opts = none_opts();
    g_autofree char *m = load_bytes(b->data, b->len, &opts);
    ck_assert_msg(m == NULL, "%s", m);
    ck_assert_int_eq(timers_state_cpu_ticks_offset(), ticks);
    ck_assert_int_eq(timers_state_cpu_clock_offset(), clock);
    savevm_unregister_all();
}

/* ---------------- writer ---------------- */

START_TEST(test_writer_qemu_none_stream)
{
    timers_load(0x1234567890, (int64_t)0xffffffffff000000ULL);
    register_qemu_none();
    global_state_store();
    MigStream *f = mig_stream_new_mem_writer();
    MigConfigOptions cfg = { .machine_type = "none" };
    Error *err = NULL;
    ck_assert(savevm_state_header(f, &cfg, &err));
    ck_assert(savevm_state_setup(f, &err));
    ck_assert(savevm_state_complete_precopy(f, true, &err));
    savevm_state_cleanup();
    size_t len;
    const uint8_t *d = mig_stream_mem_data(f, &len);
    g_autoptr(GByteArray) want = qemu_none_stream();
    ck_assert_uint_eq(want->len, 747);
    ck_assert_uint_eq(len, 747);
    for (size_t i = 0; i < len; i++) {
        ck_assert_msg(d[i] == want->data[i], "byte 0x%zx: 0x%02x, want 0x%02x", i, d[i],
                      want->data[i]);
    }
    ck_assert_int_eq(fake_ram.setups, 1);
    ck_assert_int_eq(fake_ram.completes, 1);
    ck_assert_int_eq(fake_ram.cleanups, 1);
    ck_assert(mig_stream_close(f, NULL));
}
END_TEST

START_TEST(test_writer_golden_with_parts)
{
    /* ids: ram 1 (a live section never gets id 0, see savevm.c), timer 2, uart 3 */
    ck_assert(register_savevm_live("ram", 0, 4, &fake_ram_ops, &fake_ram, NULL));
    ck_assert(timers_state_register(NULL));
    ck_assert(vmstate_register("0000:00:01.0/uart", VMSTATE_INSTANCE_ID_ANY, &vmstate_uart,
                               &uart, NULL));
    fake_ram.passes_left = 2;
    MigStream *f = mig_stream_new_mem_writer();
    MigConfigOptions cfg = { .machine_type = "pc-i440fx-7.2" };
    Error *err = NULL;
    ck_assert(savevm_state_header(f, &cfg, &err));
    savevm_send_open_return_path(f);
    savevm_send_ping(f, 1);
    ck_assert(savevm_state_setup(f, &err));
    uint64_t pending;
    savevm_state_pending(false, &pending);
    ck_assert_uint_eq(pending, 8192);
    ck_assert_int_eq(savevm_state_iterate(f, &err), 0);
    ck_assert_int_eq(savevm_state_iterate(f, &err), 1);
    savevm_state_pending(true, &pending);
    ck_assert_uint_eq(pending, 0);
    ck_assert(savevm_state_complete_precopy(f, false, &err));
    savevm_state_cleanup();
    size_t len;
    const uint8_t *d = mig_stream_mem_data(f, &len);

    g_autoptr(GByteArray) w = g_byte_array_new();
    b_be32(w, 0x5145564d);
    b_be32(w, 3);
    b_u8(w, 0x07);
    b_be32(w, 13);
    b_raw(w, "pc-i440fx-7.2", 13);
    b_raw(w, "\x08\x00\x01\x00\x00", 5);                 /* OPEN_RETURN_PATH */
    b_raw(w, "\x08\x00\x02\x00\x04\x00\x00\x00\x01", 9); /* PING(1) */
    b_full_header(w, 0x01, 1, "ram", 0, 4);
    b_be64(w, 0x04);
    b_be64(w, 0x10);
    b_footer(w, 1);
    for (int i = 0; i < 2; i++) {
        b_u8(w, 0x02);
        b_be32(w, 1);
        b_be64(w, 0x10);
        b_footer(w, 1);
    }
    b_u8(w, 0x03);
    b_be32(w, 1);
    b_be64(w, 0x10);
    b_footer(w, 1);
    b_full_header(w, 0x04, 2, "timer", 0, 2);
    b_be64(w, 0);
    b_be64(w, 0);
    b_be64(w, 0);
    b_footer(w, 2);
    b_full_header(w, 0x04, 3, "0000:00:01.0/uart", 0, 3);
    b_raw(w, "\x11\x22\x00\x0c", 4);
    b_footer(w, 3);
    b_u8(w, 0x00);
    ck_assert_uint_eq(len, w->len);
    ck_assert(memcmp(d, w->data, len) == 0);

    /* and it loads back, answering the ping on the return path */
    MigStream *rp = mig_stream_new_mem_writer();
    bool opened = false;
    LoadvmOptions opts = { .local = { .machine_type = "pc-i440fx-7.2" }, .return_path = rp,
                           .send_shut = true, .return_path_opened = &opened };
    uart = (Uart){ { 0, 0 }, 0 };
    ck_assert_ptr_null(load_bytes(w->data, w->len, &opts));
    ck_assert(opened);
    ck_assert_uint_eq(uart.divider, 0x0c);
    ck_assert_uint_eq(uart.regs[1], 0x22);
    ck_assert_int_eq(fake_ram.loads, 4);
    ck_assert_int_eq(fake_ram.load_setups, 1);
    ck_assert_int_eq(fake_ram.load_cleanups, 1);
    size_t rlen;
    const uint8_t *r = mig_stream_mem_data(rp, &rlen);
    static const uint8_t pong_shut[] = { 0, 2, 0, 4, 0, 0, 0, 1, 0, 1, 0, 4, 0, 0, 0, 0 };
    ck_assert_uint_eq(rlen, sizeof(pong_shut));
    ck_assert(memcmp(r, pong_shut, rlen) == 0);
    mig_stream_close(rp, NULL);
    ck_assert(mig_stream_close(f, NULL));
}
END_TEST

START_TEST(test_writer_rate_limit_ends_round)
{
    ck_assert(register_savevm_live("ram", 0, 4, &fake_ram_ops, &fake_ram, NULL));
    fake_ram.passes_left = 5;
    MigStream *f = mig_stream_new_mem_writer();
    mig_stream_set_rate_limit(f, 10);                    /* 1 byte per slot */
    mig_stream_put_u8(f, 0);
    Error *err = NULL;
    ck_assert_int_eq(savevm_state_iterate(f, &err), 0);
    ck_assert_int_eq(fake_ram.iterations, 0);
    mig_stream_close(f, NULL);
}
END_TEST

START_TEST(test_register_duplicates)
{
    Error *err = NULL;
    ck_assert(timers_state_register(NULL));
    ck_assert(!timers_state_register(&err));
    ck_assert(strstr(error_get_pretty(err), "already registered"));
    error_free(err);
    err = NULL;
    ck_assert(!register_savevm_live("", 0, 1, &fake_ram_ops, NULL, &err));
    error_free(err);
}
END_TEST

/* ---------------- reader: the good stream ---------------- */

START_TEST(test_load_qemu_none_stream)
{
    register_qemu_none();
    g_autoptr(GByteArray) b = qemu_none_stream();
    LoadvmOptions opts = none_opts();
    char *m = load_bytes(b->data, b->len, &opts);
    ck_assert_msg(m == NULL, "%s", m);
    ck_assert_int_eq(timers_state_cpu_ticks_offset(), 0x1234567890);
    ck_assert_int_eq(timers_state_cpu_clock_offset(), (int64_t)0xffffffffff000000ULL);
    RunState rs;
    ck_assert(global_state_received(&rs));
    ck_assert_int_eq(rs, RUN_STATE_PRELAUNCH);
    ck_assert_int_eq(fake_ram.loads, 2);
}
END_TEST

START_TEST(test_load_truncated_every_offset)
{
    register_qemu_none();
    g_autoptr(GByteArray) b = qemu_none_stream();
    LoadvmOptions opts = none_opts();
    for (size_t cut = 0; cut < b->len; cut++) {
        g_autofree char *m = load_bytes(b->data, cut, &opts);
        if (cut <= 0xff) {
            ck_assert_msg(m != NULL, "cut at 0x%zx loaded", cut);
        } else {
            /* after EOF the vmdesc is optional: a cut there only warns */
            ck_assert_msg(m == NULL, "cut at 0x%zx failed: %s", cut, m);
        }
    }
}
END_TEST

/* ---------------- reader: hostile variants ---------------- */

typedef struct Variant {
    const char *what;
    size_t offset;          /* where to patch */
    const char *bytes;      /* replacement bytes */
    size_t len;
    size_t remove;          /* bytes removed at offset before inserting (insert if 0 and !patch) */
    bool patch;             /* overwrite len bytes in place */
    const char *error;
} Variant;

static const Variant variants[] = {
    { "bad magic", 0, "QEMU", 4, 0, true, "Not a migration stream" },
    { "version 2", 4, "\x00\x00\x00\x02", 4, 0, true, "SaveVM v2 format is obsolete" },
    { "version 4", 4, "\x00\x00\x00\x04", 4, 0, true, "Unsupported migration stream version" },
    { "no configuration", 8, "", 0, 9, false, "Configuration section missing" },
    { "other machine", 0x0d, "nonf", 4, 0, true, "Machine type received is 'nonf' and local is 'none'" },
    { "machine name too long", 0x09, "\x00\x01\x00\x00", 4, 0, true, "too long" },
    { "section type 9", 0x11, "\x09", 1, 0, true, "Unknown savevm section type 9" },
    { "subsection at top level", 0x11, "\x05", 1, 0, true, "Unknown savevm section type 5" },
    { "vmdesc before EOF", 0x11, "\x06", 1, 0, true, "Unknown savevm section type 6" },
    { "second configuration", 0x11, "\x07", 1, 0, true, "Unknown savevm section type 7" },
    { "unknown idstr", 0x4f, "timex", 5, 0, true, "Unknown savevm section or instance 'timex' 0" },
    { "unknown instance", 0x54, "\x00\x00\x00\x01", 4, 0, true,
      "Unknown savevm section or instance 'timer' 1" },
    { "empty idstr", 0x16, "\x00", 1, 0, true, "empty or invalid idstr" },
    { "END for unknown section", 0x38, "\x00\x00\x00\x03", 4, 0, true, "Unknown savevm section 3" },
    { "version too new", 0x58, "\x00\x00\x00\x03", 4, 0, true,
      "unsupported version 3 for 'timer' v2" },
    { "vmstate too old", 0x58, "\x00\x00\x00\x00", 4, 0, true, "too old" },
    { "ram version 3", 0x1e, "\x00\x00\x00\x03", 4, 0, true, "ram: unsupported version 3" },
    { "wrong footer byte", 0x32, "\x7f", 1, 0, true, "Missing section footer for ram" },
    { "footer id mismatch", 0x33, "\x00\x00\x00\x03", 4, 0, true,
      "Mismatched section id in footer for ram - read 0x3 expected 0x2" },
    /* a v1 timer has no cpu_clock_offset: 8 bytes are left before the footer */
    { "device reads too little", 0x58, "\x00\x00\x00\x01", 4, 0, true,
      "Missing section footer for timer" },
    { "bad ram flags", 0x29, "\x08", 1, 0, true, "Unknown combination of migration flags: 0x8" },
    { "command 0", 0x11, "\x08\x00\x00\x00\x00", 5, 0, false, "MIG_CMD 0x0 unknown" },
    { "command 11", 0x11, "\x08\x00\x0b\x00\x00", 5, 0, false, "MIG_CMD 0xb unknown" },
    { "PING bad length", 0x11, "\x08\x00\x02\x00\x05\x00\x00\x00\x01\x00", 10, 0, false,
      "PING received with bad length" },
    { "PING without return path", 0x11, "\x08\x00\x02\x00\x04\x00\x00\x00\x01", 9, 0, false,
      "CMD_PING (0x1) received with no return path" },
    { "OPEN_RETURN_PATH on a one-way channel", 0x11, "\x08\x00\x01\x00\x00", 5, 0, false,
      "no return path" },
    { "OPEN_RETURN_PATH bad length", 0x11, "\x08\x00\x01\x00\x01\x00", 6, 0, false,
      "OPEN_RETURN_PATH received with bad length" },
    { "postcopy", 0x11, "\x08\x00\x04\x00\x00", 5, 0, false, "not supported" },
    { "ADVISE bad length", 0x11, "\x08\x00\x03\x00\x08", 5, 0, false, "bad length" },
    { "PART before START", 0x11, "\x02\x00\x00\x00\x02", 5, 0, false, "Unknown savevm section 2" },
    { "PART of a FULL section", 0xff,
      "\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x10\x7e\x00\x00\x00\x00", 18, 0, false,
      "is not an open live section" },
    { "PART after END", 0xff,
      "\x02\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x10\x7e\x00\x00\x00\x02", 18, 0, false,
      "is not an open live section" },
    { "START of a device", 0x49, "\x01", 1, 0, true, "cannot be loaded as a live section" },
    { "globalstate not terminated", 0x96, "pppppppppppppppppppppppppppppppppppppppppppppppppppppppp"
      "pppppppppppppppppppppppppppppppppppppppppppp", 100, 0, true, "not terminated" },
    { "globalstate unknown state", 0x96, "prelaunck", 9, 0, true, "unknown received run state" },
    { "capability not local", 0x11,
      "\x05\x1a" "configuration/capabilities" "\x00\x00\x00\x01\x00\x00\x00\x01\x0f"
      "x-ignore-shared", 1 + 1 + 26 + 4 + 4 + 1 + 15, 0, false,
      "Capability x-ignore-shared is off, but received capability is on" },
    { "unknown capability", 0x11,
      "\x05\x1a" "configuration/capabilities" "\x00\x00\x00\x01\x00\x00\x00\x01\x03" "foo",
      1 + 1 + 26 + 4 + 4 + 1 + 3, 0, false, "unknown capability foo" },
    { "capability count huge", 0x11,
      "\x05\x1a" "configuration/capabilities" "\x00\x00\x00\x01\xff\xff\xff\xff",
      1 + 1 + 26 + 4 + 4, 0, false, "Too many capabilities" },
    { "unknown configuration subsection", 0x11,
      "\x05\x11" "configuration/xyz" "\x00\x00\x00\x01", 1 + 1 + 17 + 4, 0, false,
      "Unknown subsection 'configuration/xyz'" },
    { "page bits", 0x11,
      "\x05\x1e" "configuration/target-page-bits" "\x00\x00\x00\x01\x00\x00\x00\x0d",
      1 + 1 + 30 + 8, 0, false, "TARGET_PAGE_BITS is 13" },
};

/* Duplicate FULL, and a section id reused by another entry, need the
 * bytes of the timer section itself. */
static GByteArray *apply_variant(const Variant *v)
{
    GByteArray *b = qemu_none_stream();
    if (v->patch) {
        memcpy(b->data + v->offset, v->bytes, v->len);
    } else {
        g_byte_array_remove_range(b, v->offset, v->remove);
        if (v->len) {
            GByteArray *tail = g_byte_array_new();
            g_byte_array_append(tail, b->data + v->offset, b->len - v->offset);
            g_byte_array_set_size(b, v->offset);
            g_byte_array_append(b, (const uint8_t *)v->bytes, v->len);
            g_byte_array_append(b, tail->data, tail->len);
            g_byte_array_free(tail, true);
        }
    }
    return b;
}

START_TEST(test_load_hostile_variants)
{
    register_qemu_none();
    LoadvmOptions opts = none_opts();
    for (size_t i = 0; i < G_N_ELEMENTS(variants); i++) {
        g_autoptr(GByteArray) b = apply_variant(&variants[i]);
        g_autofree char *m = load_bytes(b->data, b->len, &opts);
        ck_assert_msg(m != NULL, "%s: loaded", variants[i].what);
        ck_assert_msg(strstr(m, variants[i].error), "%s: '%s' lacks '%s'", variants[i].what, m,
                      variants[i].error);
    }
}
END_TEST

/* POSTCOPY_ADVISE with length 0 right after the configuration (what QEMU
 * 7.2 writes with capability dirty-bitmaps) loads; a second one, or one
 * with postcopy RAM's 16 bytes, does not. */
static GByteArray *with_command_at_0x11(const char *cmd, size_t len)
{
    GByteArray *good = qemu_none_stream();
    GByteArray *b = g_byte_array_new();
    g_byte_array_append(b, good->data, 0x11);
    g_byte_array_append(b, (const uint8_t *)cmd, len);
    g_byte_array_append(b, good->data + 0x11, good->len - 0x11);
    g_byte_array_free(good, true);
    return b;
}

START_TEST(test_load_postcopy_advise)
{
    register_qemu_none();
    LoadvmOptions opts = none_opts();
    g_autoptr(GByteArray) once = with_command_at_0x11("\x08\x00\x03\x00\x00", 5);
    ck_assert_ptr_null(load_bytes(once->data, once->len, &opts));
    g_autoptr(GByteArray) twice = with_command_at_0x11("\x08\x00\x03\x00\x00\x08\x00\x03\x00\x00", 10);
    ASSERT_FAILS_WITH(twice, &opts, "CMD_POSTCOPY_ADVISE in wrong postcopy state (1)");
    g_autoptr(GByteArray) ram = with_command_at_0x11("\x08\x00\x03\x00\x10" "0123456789abcdef", 21);
    /* no postcopy hooks here: as QEMU 7.2 without the capability */
    ASSERT_FAILS_WITH(ram, &opts, "RAM postcopy is disabled but have 16 byte advise");
}
END_TEST

/* The loader's side of postcopy (postcopy.md section 2) with recording
 * hooks: what reaches them, and the commands refused before they do. */
static int pc_hook_state;
static GString *pc_calls;

static bool pc_hook_enabled(void)
{
    return true;
}

static int pc_hook_state_get(void)
{
    return pc_hook_state;
}

static bool pc_hook_advise(uint64_t summary, uint64_t target, Error **errp)
{
    g_string_append_printf(pc_calls, "advise(%" PRIx64 ",%" PRIx64 ") ", summary, target);
    pc_hook_state = 1;
    return true;
}

static bool pc_hook_discard(const char *block, uint64_t start, uint64_t len, Error **errp)
{
    g_string_append_printf(pc_calls, "discard(%s,%" PRIx64 ",%" PRIx64 ") ", block, start, len);
    return true;
}

static bool pc_hook_listen(MigStream *rp, Error **errp)
{
    g_string_append(pc_calls, "listen ");
    return true;
}

static bool pc_hook_run(Error **errp)
{
    g_string_append(pc_calls, "run ");
    return true;
}

static const LoadvmPostcopy pc_hooks = {
    .enabled = pc_hook_enabled, .state = pc_hook_state_get, .advise = pc_hook_advise,
    .discard = pc_hook_discard, .listen = pc_hook_listen, .run = pc_hook_run,
};

#define ADVISE16 "\x08\x00\x03\x00\x10\0\0\0\0\0\0\x10\0\0\0\0\0\0\0\x10\0"
/* DISCARD of block "mem": version 0, counted name, NUL, one range. */
#define DISCARD_MEM(ver, nil) "\x08\x00\x06\x00\x16" ver "\x03mem" nil \
                              "\0\0\0\0\0\x14\x50\0" "\0\0\0\0\x03\xeb\xb0\0"

START_TEST(test_load_postcopy_commands)
{
    register_qemu_none();
    LoadvmOptions opts = none_opts();
    opts.postcopy = &pc_hooks;
    pc_calls = g_string_new("");
    pc_hook_state = 0;
    g_autoptr(GByteArray) advise = with_command_at_0x11(ADVISE16 DISCARD_MEM("\0", "\0"), 21 + 27);
    ck_assert_ptr_null(load_bytes(advise->data, advise->len, &opts));
    ck_assert_str_eq(pc_calls->str, "advise(1000,1000) discard(mem,145000,3ebb000) ");
    g_autoptr(GByteArray) zero = with_command_at_0x11("\x08\x00\x03\x00\x00", 5);
    ASSERT_FAILS_WITH(zero, &opts, "RAM postcopy is enabled but have 0 byte advise");
    g_autoptr(GByteArray) ver = with_command_at_0x11(DISCARD_MEM("\x01", "\0"), 27);
    ASSERT_FAILS_WITH(ver, &opts, "CMD_POSTCOPY_RAM_DISCARD invalid version (1)");
    g_autoptr(GByteArray) nil = with_command_at_0x11(DISCARD_MEM("\0", "x"), 27);
    ASSERT_FAILS_WITH(nil, &opts, "CMD_POSTCOPY_RAM_DISCARD missing nil (120)");
    /* one byte too many for whole ranges */
    g_autoptr(GByteArray) len = with_command_at_0x11("\x08\x00\x06\x00\x17\0\x03mem\0" "0123456789abcdefX", 28);
    ASSERT_FAILS_WITH(len, &opts, "CMD_POSTCOPY_RAM_DISCARD invalid length (23)");
    g_autoptr(GByteArray) big = with_command_at_0x11("\x08\x00\x07\x00\x04\x7f\xff\xff\xff", 9);
    ASSERT_FAILS_WITH(big, &opts, "Unreasonably large packaged state: 2147483647");
    g_autoptr(GByteArray) listen = with_command_at_0x11("\x08\x00\x04\x00\x00", 5);
    ASSERT_FAILS_WITH(listen, &opts, "CMD_POSTCOPY_LISTEN outside a package");
    pc_hook_state = 1;
    g_autoptr(GByteArray) run = with_command_at_0x11("\x08\x00\x05\x00\x00", 5);
    ASSERT_FAILS_WITH(run, &opts, "CMD_POSTCOPY_RUN in wrong postcopy state (1)");
    g_string_free(pc_calls, true);
}
END_TEST

START_TEST(test_load_duplicate_full_and_ids)
{
    register_qemu_none();
    LoadvmOptions opts = none_opts();
    g_autoptr(GByteArray) good = qemu_none_stream();
    /* the timer section is 0x49..0x79 */
    g_autoptr(GByteArray) dup = g_byte_array_new();
    b_raw(dup, good->data, 0x79);
    b_raw(dup, good->data + 0x49, 0x79 - 0x49);
    b_raw(dup, good->data + 0x79, good->len - 0x79);
    ASSERT_FAILS_WITH(dup, &opts, "Duplicate section for 'timer' instance 0");

    /* globalstate announced with ram's section id 2 */
    g_autoptr(GByteArray) reuse = qemu_none_stream();
    memcpy(reuse->data + 0x7a, "\x00\x00\x00\x02", 4);
    memcpy(reuse->data + 0xfb, "\x00\x00\x00\x02", 4);
    ASSERT_FAILS_WITH(reuse, &opts, "Section id 2 used twice");
}
END_TEST

START_TEST(test_load_machine_and_caps)
{
    register_qemu_none();
    g_autoptr(GByteArray) b = qemu_none_stream();
    LoadvmOptions opts = { .local = { .machine_type = "pc" } };
    ASSERT_FAILS_WITH(b, &opts, "Machine type received is 'none' and local is 'pc'");
    opts = (LoadvmOptions){ .local = { .machine_type = "non" } };
    ASSERT_FAILS_WITH(b, &opts, "Machine type received is 'none' and local is 'non'");
    opts = (LoadvmOptions){ .local = { .machine_type = "none", .x_ignore_shared = true } };
    ASSERT_FAILS_WITH(b, &opts, "Capability x-ignore-shared is on, but received capability is off");

    /* both sides with x-ignore-shared: written and accepted */
    MigStream *f = mig_stream_new_mem_writer();
    savevm_state_header(f, &opts.local, NULL);
    size_t len;
    const uint8_t *d = mig_stream_mem_data(f, &len);
    static const char want_cfg[] = "\x07\x00\x00\x00\x04none\x05\x1a" "configuration/capabilities"
                                   "\x00\x00\x00\x01\x00\x00\x00\x01\x0f" "x-ignore-shared";
    ck_assert_uint_eq(len, 8 + sizeof(want_cfg) - 1);
    ck_assert(memcmp(d + 8, want_cfg, len - 8) == 0);
    g_autoptr(GByteArray) s = g_byte_array_new();
    b_raw(s, d, len);
    b_raw(s, b->data + 0x11, b->len - 0x11);
    mig_stream_close(f, NULL);
    char *m = load_bytes(s->data, s->len, &opts);
    ck_assert_msg(m == NULL, "%s", m);

    /* a stream without configuration is accepted only when allowed */
    g_autoptr(GByteArray) nocfg = g_byte_array_new();
    b_raw(nocfg, b->data, 8);
    b_raw(nocfg, b->data + 0x11, b->len - 0x11);
    opts = none_opts();
    ASSERT_FAILS_WITH(nocfg, &opts, "Configuration section missing");
    opts.allow_no_configuration = true;
    m = load_bytes(nocfg->data, nocfg->len, &opts);
    ck_assert_msg(m == NULL, "%s", m);
}
END_TEST

START_TEST(test_load_vmdesc_optional)
{
    register_qemu_none();
    LoadvmOptions opts = none_opts();
    g_autoptr(GByteArray) b = qemu_none_stream();
    /* garbage after EOF, an oversized vmdesc, a short vmdesc: warnings only */
    b->data[0x100] = 0x42;
    ck_assert_ptr_null(load_bytes(b->data, b->len, &opts));
    b->data[0x100] = 0x06;
    memcpy(b->data + 0x101, "\xff\xff\xff\xff", 4);
    ck_assert_ptr_null(load_bytes(b->data, b->len, &opts));
    opts.max_vmdesc_len = 100;
    memcpy(b->data + 0x101, "\x00\x00\x01\xe6", 4);
    ck_assert_ptr_null(load_bytes(b->data, b->len, &opts));
}
END_TEST

START_TEST(test_load_return_path)
{
    register_qemu_none();
    g_autoptr(GByteArray) b = qemu_none_stream();
    /* OPEN_RETURN_PATH, PING(7), PING(8) after the configuration */
    static const char cmds[] = "\x08\x00\x01\x00\x00" "\x08\x00\x02\x00\x04\x00\x00\x00\x07"
                               "\x08\x00\x02\x00\x04\x00\x00\x00\x08";
    g_autoptr(GByteArray) s = g_byte_array_new();
    b_raw(s, b->data, 0x11);
    b_raw(s, cmds, sizeof(cmds) - 1);
    b_raw(s, b->data + 0x11, b->len - 0x11);
    MigStream *rp = mig_stream_new_mem_writer();
    LoadvmOptions opts = { .local = { .machine_type = "none" }, .return_path = rp };
    ck_assert_ptr_null(load_bytes(s->data, s->len, &opts));
    size_t len;
    const uint8_t *d = mig_stream_mem_data(rp, &len);
    static const uint8_t pongs[] = { 0, 2, 0, 4, 0, 0, 0, 7, 0, 2, 0, 4, 0, 0, 0, 8 };
    ck_assert_uint_eq(len, sizeof(pongs));           /* no SHUT unless asked */
    ck_assert(memcmp(d, pongs, len) == 0);
    mig_stream_close(rp, NULL);

    /* opened twice: error; failure sends SHUT(1) */
    g_autoptr(GByteArray) twice = g_byte_array_new();
    b_raw(twice, b->data, 0x11);
    b_raw(twice, cmds, 5);
    b_raw(twice, cmds, 5);
    b_raw(twice, b->data + 0x11, b->len - 0x11);
    rp = mig_stream_new_mem_writer();
    opts.return_path = rp;
    opts.send_shut = true;
    ASSERT_FAILS_WITH(twice, &opts, "RP already open");
    d = mig_stream_mem_data(rp, &len);
    static const uint8_t shut1[] = { 0, 1, 0, 4, 0, 0, 0, 1 };
    ck_assert_uint_eq(len, sizeof(shut1));
    ck_assert(memcmp(d, shut1, len) == 0);
    mig_stream_close(rp, NULL);
}
END_TEST

START_TEST(test_rp_read_hostile)
{
    static const struct { const char *bytes; size_t len; const char *err; } cases[] = {
        { "\x00\x00\x00\x00", 4, "invalid" },
        { "\x00\x09\x00\x00", 4, "invalid" },
        { "\x00\x02\x00\x05" "12345", 9, "bad length" },
        { "\x00\x03\x02\x01", 4, "bad length" },
        { "\x00\x02\x00\x04" "12", 6, "Unexpected end" },
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        MigStream *r = mig_stream_new_mem_reader(cases[i].bytes, cases[i].len);
        uint16_t type, len;
        uint8_t payload[MIG_RP_MAX_LEN];
        Error *err = NULL;
        ck_assert(!mig_rp_read(r, &type, payload, &len, &err));
        ck_assert_msg(strstr(error_get_pretty(err), cases[i].err), "%zu: %s", i,
                      error_get_pretty(err));
        error_free(err);
        mig_stream_close(r, NULL);
    }
}
END_TEST

/* Corrupt every byte of the good stream in turn: nothing may crash; a
 * flipped byte before EOF must never go unnoticed silently in the framing
 * (device payload bytes, e.g. timer values, legitimately load). */
START_TEST(test_load_every_byte_flipped)
{
    register_qemu_none();
    LoadvmOptions opts = none_opts();
    g_autoptr(GByteArray) b = qemu_none_stream();
    int failures = 0;
    for (size_t i = 0; i < 0x100; i++) {
        b->data[i] ^= 0x41;
        g_autofree char *m = load_bytes(b->data, b->len, &opts);
        failures += m != NULL;
        b->data[i] ^= 0x41;
    }
    /* timer payload (24) and the globalstate size field + padding bytes can change freely */
    ck_assert_int_ge(failures, 0x100 - 24 - 4 - 90);
}
END_TEST

/* ---------------- test-only section omission ---------------- */

START_TEST(test_omit_list_read_once)
{
    Error *err = NULL;
    setenv("MIGVM_TEST_OMIT_SECTIONS", "uart:1, timer", 1);
    ck_assert(vmstate_test_omit_init(&err));
    unsetenv("MIGVM_TEST_OMIT_SECTIONS");       /* read once: still in force */
    ck_assert(vmstate_test_omitted("timer", 7));
    ck_assert(vmstate_test_omitted("uart", 1));
    ck_assert(!vmstate_test_omitted("uart", 0));
    ck_assert(!vmstate_test_omitted("ram", 0));

    /* the writer leaves the timer out, keeps the rest */
    ck_assert(timers_state_register(NULL));
    ck_assert(vmstate_register("uart", 0, &vmstate_uart, &uart, NULL));
    MigStream *f = mig_stream_new_mem_writer();
    MigConfigOptions cfg = { .machine_type = "none" };
    ck_assert(savevm_state_header(f, &cfg, &err));
    ck_assert(savevm_state_setup(f, &err));
    ck_assert(savevm_state_complete_precopy(f, false, &err));
    savevm_state_cleanup();
    size_t len;
    const uint8_t *d = mig_stream_mem_data(f, &len);
    ck_assert_ptr_null(memmem(d, len, "timer", 5));
    ck_assert_ptr_nonnull(memmem(d, len, "uart", 4));
    ck_assert(mig_stream_close(f, NULL));

    static const char *const bad[] = { "uart:x", "uart:", ":1", "a,,b", "uart:4294967296" };
    for (size_t i = 0; i < G_N_ELEMENTS(bad); i++) {
        ck_assert_msg(!vmstate_test_omit_set(bad[i], &err), "%s accepted", bad[i]);
        ck_assert(strstr(error_get_pretty(err), "MIGVM_TEST_OMIT_SECTIONS: "));
        error_free(err);
        err = NULL;
        ck_assert(!vmstate_test_omitted("timer", 0));     /* a bad list omits nothing */
    }
    ck_assert(vmstate_test_omit_set("timer", &err));
    ck_assert(vmstate_test_omit_set(NULL, &err));
    ck_assert(!vmstate_test_omitted("timer", 0));
}
END_TEST

static Suite *savevm_suite(void)
{
    Suite *s = suite_create("savevm");
    TCase *tc = tcase_create("savevm");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_writer_qemu_none_stream);
    tcase_add_test(tc, test_writer_golden_with_parts);
    tcase_add_test(tc, test_writer_rate_limit_ends_round);
    tcase_add_test(tc, test_register_duplicates);
    tcase_add_test(tc, test_load_qemu_none_stream);
    tcase_add_test(tc, test_load_truncated_every_offset);
    tcase_add_test(tc, test_load_hostile_variants);
    tcase_add_test(tc, test_load_duplicate_full_and_ids);
    tcase_add_test(tc, test_load_postcopy_advise);
    tcase_add_test(tc, test_load_postcopy_commands);
    tcase_add_test(tc, test_load_machine_and_caps);
    tcase_add_test(tc, test_load_vmdesc_optional);
    tcase_add_test(tc, test_load_return_path);
    tcase_add_test(tc, test_rp_read_hostile);
    tcase_add_test(tc, test_load_every_byte_flipped);
    tcase_add_test(tc, test_omit_list_read_once);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(savevm_suite());
}
