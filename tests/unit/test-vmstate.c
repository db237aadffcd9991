/*
 * MigStream and VMState: golden wire bytes for every field kind, versions,
 * subsections, hostile input (truncation at every offset, bad counts,
 * EQUAL/LE mismatches), vmdesc JSON, and the stream's buffering, sticky
 * errors, pages, rate accounting and fd/return-path plumbing.
 */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <glib.h>
#include "savevm.h"
#include "unit-test.h"

/* ---------------- helpers ---------------- */

typedef struct Bytes {
    uint8_t *data;
    size_t len;
} Bytes;

/* Save vmsd/opaque into memory; the test owns the result (g_free). */
static Bytes save_to_mem(const VMStateDescription *vmsd, void *opaque, json_object *desc)
{
    MigStream *f = mig_stream_new_mem_writer();
    Error *err = NULL;
    ck_assert_msg(vmstate_save(f, vmsd, opaque, desc, &err), "%s",
                  err ? error_get_pretty(err) : "");
    size_t len;
    const uint8_t *d = mig_stream_mem_data(f, &len);
    Bytes b = { g_memdup2(d, len), len };
    ck_assert(mig_stream_close(f, NULL));
    return b;
}

static void assert_bytes(Bytes b, const uint8_t *want, size_t want_len)
{
    if (b.len != want_len || memcmp(b.data, want, want_len) != 0) {
        GString *s = g_string_new(NULL);
        for (size_t i = 0; i < b.len; i++) {
            g_string_append_printf(s, "%02x ", b.data[i]);
        }
        ck_abort_msg("bytes differ (len %zu want %zu): %s", b.len, want_len, s->str);
        g_string_free(s, true);
    }
}

/* Load bytes; returns the error message (g_free) or NULL on success. */
static char *load_from_mem(const uint8_t *data, size_t len, const VMStateDescription *vmsd,
                           void *opaque, int version, size_t *consumed)
{
    MigStream *f = mig_stream_new_mem_reader(data, len);
    Error *err = NULL;
    bool ok = vmstate_load(f, vmsd, opaque, version, &err);
    ck_assert(ok == (err == NULL));
    if (consumed) {
        *consumed = mig_stream_bytes_read(f);
    }
    mig_stream_close(f, NULL);
    char *msg = err ? g_strdup(error_get_pretty(err)) : NULL;
    error_free(err);
    return msg;
}

#define ASSERT_LOAD_FAILS(data, len, vmsd, opaque, version, substr) do {               \
    g_autofree char *m_ = load_from_mem(data, len, vmsd, opaque, version, NULL);        \
    ck_assert_msg(m_ != NULL, "load unexpectedly succeeded");                            \
    ck_assert_msg(strstr(m_, substr), "error '%s' lacks '%s'", m_, substr);              \
} while (0)

/* ---------------- every scalar kind ---------------- */

typedef struct AllKinds {
    bool b;
    int8_t i8;
    uint8_t u8;
    int16_t i16;
    uint16_t u16;
    int32_t i32;
    uint32_t u32;
    int64_t i64;
    uint64_t u64;
    uint8_t buf[3];
} AllKinds;

static const VMStateDescription vmstate_all = {
    .name = "all",
    .version_id = 1,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_BOOL(b, AllKinds),
        VMSTATE_INT8(i8, AllKinds),
        VMSTATE_UINT8(u8, AllKinds),
        VMSTATE_INT16(i16, AllKinds),
        VMSTATE_UINT16(u16, AllKinds),
        VMSTATE_INT32(i32, AllKinds),
        VMSTATE_UINT32(u32, AllKinds),
        VMSTATE_INT64(i64, AllKinds),
        VMSTATE_UINT64(u64, AllKinds),
        VMSTATE_BUFFER(buf, AllKinds),
        VMSTATE_UNUSED(2),
        VMSTATE_END_OF_LIST()
    },
};

static const uint8_t all_golden[] = {
    0x01,                                           /* bool */
    0xfe,                                           /* int8 -2 */
    0xab,                                           /* uint8 */
    0xff, 0xfd,                                     /* int16 -3 */
    0x12, 0x34,                                     /* uint16 */
    0xff, 0xff, 0xff, 0xfc,                         /* int32 -4 */
    0xde, 0xad, 0xbe, 0xef,                         /* uint32 */
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfb, /* int64 -5 */
    0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef, /* uint64 */
    'x', 'y', 'z',                                  /* buffer */
    0x00, 0x00,                                     /* unused */
};

static AllKinds all_sample(void)
{
    return (AllKinds){ true, -2, 0xab, -3, 0x1234, -4, 0xdeadbeef, -5,
                       0x0123456789abcdefULL, { 'x', 'y', 'z' } };
}

START_TEST(test_all_kinds_golden)
{
    AllKinds s = all_sample();
    Bytes b = save_to_mem(&vmstate_all, &s, NULL);
    assert_bytes(b, all_golden, sizeof(all_golden));
    g_free(b.data);
}
END_TEST

START_TEST(test_all_kinds_load)
{
    AllKinds got = { 0 };
    AllKinds want = all_sample();
    size_t used;
    char *err = load_from_mem(all_golden, sizeof(all_golden), &vmstate_all, &got, 1, &used);
    ck_assert_ptr_null(err);
    ck_assert_uint_eq(used, sizeof(all_golden));
    ck_assert(got.b == want.b && got.i8 == want.i8 && got.u8 == want.u8 &&
              got.i16 == want.i16 && got.u16 == want.u16 && got.i32 == want.i32 &&
              got.u32 == want.u32 && got.i64 == want.i64 && got.u64 == want.u64 &&
              memcmp(got.buf, want.buf, 3) == 0);
    ck_assert_int_eq(got.i64, -5);
    ck_assert_int_eq(got.i16, -3);
}
END_TEST

START_TEST(test_bad_bool)
{
    uint8_t bad[sizeof(all_golden)];
    memcpy(bad, all_golden, sizeof(bad));
    bad[0] = 2;
    AllKinds got = { 0 };
    ASSERT_LOAD_FAILS(bad, sizeof(bad), &vmstate_all, &got, 1, "'b'");
}
END_TEST

START_TEST(test_truncation_every_offset)
{
    for (size_t cut = 0; cut < sizeof(all_golden); cut++) {
        AllKinds got = { 0 };
        g_autofree char *m = load_from_mem(all_golden, cut, &vmstate_all, &got, 1, NULL);
        ck_assert_msg(m != NULL, "truncated at %zu loaded", cut);
        ck_assert_msg(strstr(m, "Unexpected end of migration stream"), "%zu: %s", cut, m);
    }
}
END_TEST

/* ---------------- arrays, varrays ---------------- */

typedef struct Arrays {
    uint16_t a16[3];
    int32_t a32[2];
    uint64_t a64[2];
    uint32_t count;
    uint8_t var[4];
} Arrays;

static const VMStateDescription vmstate_arrays = {
    .name = "arrays",
    .version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT16_ARRAY(a16, Arrays, 3),
        VMSTATE_INT32_ARRAY(a32, Arrays, 2),
        VMSTATE_UINT64_ARRAY(a64, Arrays, 2),
        VMSTATE_UINT32(count, Arrays),
        VMSTATE_VARRAY_UINT32(var, Arrays, count, 4, uint8_t, VMS_KIND_UINT8),
        VMSTATE_END_OF_LIST()
    },
};

static const uint8_t arrays_golden[] = {
    0x00, 0x01, 0x00, 0x02, 0xff, 0xff,
    0x00, 0x00, 0x00, 0x07, 0xff, 0xff, 0xff, 0xff,
    0, 0, 0, 0, 0, 0, 0, 9, 0x80, 0, 0, 0, 0, 0, 0, 0,
    0x00, 0x00, 0x00, 0x02,
    0xaa, 0xbb,
};

START_TEST(test_arrays_golden)
{
    Arrays s = { { 1, 2, 0xffff }, { 7, -1 }, { 9, 1ULL << 63 }, 2, { 0xaa, 0xbb, 0xcc, 0xdd } };
    Bytes b = save_to_mem(&vmstate_arrays, &s, NULL);
    assert_bytes(b, arrays_golden, sizeof(arrays_golden));
    g_free(b.data);

    Arrays got = { 0 };
    char *err = load_from_mem(arrays_golden, sizeof(arrays_golden), &vmstate_arrays, &got, 1,
                              NULL);
    ck_assert_ptr_null(err);
    ck_assert_uint_eq(got.count, 2);
    ck_assert_uint_eq(got.var[1], 0xbb);
    ck_assert_uint_eq(got.var[2], 0);
    ck_assert_int_eq(got.a32[1], -1);
    ck_assert_uint_eq(got.a64[1], 1ULL << 63);
}
END_TEST

START_TEST(test_varray_hostile_count)
{
    uint8_t bad[sizeof(arrays_golden) + 8];
    memcpy(bad, arrays_golden, sizeof(arrays_golden));
    memset(bad + sizeof(arrays_golden), 0x55, 8);
    bad[33] = 5;                                 /* count 5 > capacity 4 */
    Arrays got = { 0 };
    ASSERT_LOAD_FAILS(bad, sizeof(bad), &vmstate_arrays, &got, 1, "'var'");
    ck_assert_uint_eq(got.var[0], 0);            /* nothing stored past the check */
    bad[30] = 0xff;                              /* count 0xff000005 */
    ASSERT_LOAD_FAILS(bad, sizeof(bad), &vmstate_arrays, &got, 1, "capacity");
}
END_TEST

START_TEST(test_varray_save_overflow)
{
    Arrays s = { .count = 9 };
    MigStream *f = mig_stream_new_mem_writer();
    Error *err = NULL;
    ck_assert(!vmstate_save(f, &vmstate_arrays, &s, NULL, &err));
    ck_assert(strstr(error_get_pretty(err), "capacity"));
    error_free(err);
    mig_stream_close(f, NULL);
}
END_TEST

/* ---------------- structs, versions, subsections ---------------- */

typedef struct Inner {
    uint8_t x;
    uint16_t y;
} Inner;

static int inner_post_loads;

static bool inner_post_load(void *opaque, int version_id, Error **errp)
{
    inner_post_loads++;
    ck_assert_int_eq(version_id, 3);
    return true;
}

static const VMStateDescription vmstate_inner = {
    .name = "inner",
    .version_id = 3,
    .minimum_version_id = 1,
    .post_load = inner_post_load,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT8(x, Inner),
        VMSTATE_UINT16(y, Inner),
        VMSTATE_END_OF_LIST()
    },
};

typedef struct Dev {
    uint32_t id;
    Inner one;
    Inner two[2];
    uint32_t v2field;
    uint8_t magic;
    int32_t limit;
    bool sub_needed;
    uint16_t sub_value;
    bool sub2_needed;
    uint8_t sub2_value;
} Dev;

static bool sub_needed(void *opaque)
{
    return ((Dev *)opaque)->sub_needed;
}

static bool sub2_needed(void *opaque)
{
    return ((Dev *)opaque)->sub2_needed;
}

static const VMStateDescription vmstate_dev_sub = {
    .name = "dev/extra",                   /* full wire name */
    .version_id = 1,
    .minimum_version_id = 1,
    .needed = sub_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT16(sub_value, Dev),
        VMSTATE_END_OF_LIST()
    },
};

static const VMStateDescription vmstate_dev_sub2 = {
    .name = "more",                        /* sent as "dev/more" */
    .version_id = 2,
    .minimum_version_id = 2,
    .needed = sub2_needed,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT8(sub2_value, Dev),
        VMSTATE_END_OF_LIST()
    },
};

static const VMStateDescription vmstate_dev = {
    .name = "dev",
    .version_id = 2,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT32(id, Dev),
        VMSTATE_STRUCT(one, Dev, vmstate_inner, Inner),
        VMSTATE_STRUCT_ARRAY(two, Dev, 2, vmstate_inner, Inner),
        VMSTATE_UINT32_V(v2field, Dev, 2),
        VMSTATE_UINT8_EQUAL(magic, Dev),
        VMSTATE_INT32_LE(limit, Dev),
        VMSTATE_END_OF_LIST()
    },
    .subsections = (const VMStateDescription *const[]) {
        &vmstate_dev_sub, &vmstate_dev_sub2, NULL
    },
};

static Dev dev_sample(void)
{
    return (Dev){ .id = 0x11223344, .one = { 1, 0x0102 }, .two = { { 2, 0x0203 }, { 3, 0x0304 } },
                  .v2field = 0xcafe, .magic = 0x42, .limit = 5 };
}

static const uint8_t dev_golden_v2[] = {
    0x11, 0x22, 0x33, 0x44,
    0x01, 0x01, 0x02,
    0x02, 0x02, 0x03, 0x03, 0x03, 0x04,
    0x00, 0x00, 0xca, 0xfe,
    0x42,
    0x00, 0x00, 0x00, 0x05,
};

/* subsections appended to the golden v2 body */
static const uint8_t dev_subs[] = {
    0x05, 9, 'd', 'e', 'v', '/', 'e', 'x', 't', 'r', 'a', 0, 0, 0, 1, 0xbe, 0xef,
    0x05, 8, 'd', 'e', 'v', '/', 'm', 'o', 'r', 'e', 0, 0, 0, 2, 0x77,
};

START_TEST(test_struct_golden_no_subsections)
{
    Dev s = dev_sample();
    Bytes b = save_to_mem(&vmstate_dev, &s, NULL);
    assert_bytes(b, dev_golden_v2, sizeof(dev_golden_v2));
    g_free(b.data);
}
END_TEST

START_TEST(test_subsections_golden_and_load)
{
    Dev s = dev_sample();
    s.sub_needed = s.sub2_needed = true;
    s.sub_value = 0xbeef;
    s.sub2_value = 0x77;
    Bytes b = save_to_mem(&vmstate_dev, &s, NULL);
    uint8_t want[sizeof(dev_golden_v2) + sizeof(dev_subs)];
    memcpy(want, dev_golden_v2, sizeof(dev_golden_v2));
    memcpy(want + sizeof(dev_golden_v2), dev_subs, sizeof(dev_subs));
    assert_bytes(b, want, sizeof(want));
    g_free(b.data);

    Dev got = { .magic = 0x42, .limit = 10 };
    inner_post_loads = 0;
    char *err = load_from_mem(want, sizeof(want), &vmstate_dev, &got, 2, NULL);
    ck_assert_ptr_null(err);
    ck_assert_int_eq(inner_post_loads, 3);
    ck_assert_uint_eq(got.sub_value, 0xbeef);
    ck_assert_uint_eq(got.sub2_value, 0x77);
    ck_assert_uint_eq(got.two[1].y, 0x0304);
    ck_assert_int_eq(got.limit, 5);

    /* truncated anywhere: clean failure, except exactly before a subsection
     * (a valid body without it) */
    for (size_t cut = 0; cut < sizeof(want); cut++) {
        Dev g = { .magic = 0x42, .limit = 10 };
        g_autofree char *m = load_from_mem(want, cut, &vmstate_dev, &g, 2, NULL);
        bool boundary = cut == sizeof(dev_golden_v2) || cut == sizeof(dev_golden_v2) + 17;
        ck_assert_msg((m == NULL) == boundary, "cut %zu: %s", cut, m ? m : "loaded");
    }
}
END_TEST

START_TEST(test_subsection_absent_and_foreign)
{
    Dev got = { .magic = 0x42, .limit = 10, .sub_value = 9 };
    /* absent: fine, default kept */
    char *err = load_from_mem(dev_golden_v2, sizeof(dev_golden_v2), &vmstate_dev, &got, 2, NULL);
    ck_assert_ptr_null(err);
    ck_assert_uint_eq(got.sub_value, 9);

    /* another device's subsection: stop, leave its bytes */
    uint8_t foreign[sizeof(dev_golden_v2) + 9];
    memcpy(foreign, dev_golden_v2, sizeof(dev_golden_v2));
    memcpy(foreign + sizeof(dev_golden_v2), "\x05\x05" "cpu/x", 7);
    memcpy(foreign + sizeof(dev_golden_v2) + 7, "\x7e\x00", 2);
    size_t used;
    err = load_from_mem(foreign, sizeof(foreign), &vmstate_dev, &got, 2, &used);
    ck_assert_ptr_null(err);
    ck_assert_uint_eq(used, sizeof(dev_golden_v2));

    /* our prefix, unknown name: error */
    uint8_t unknown[sizeof(dev_golden_v2) + 14];
    memcpy(unknown, dev_golden_v2, sizeof(dev_golden_v2));
    memcpy(unknown + sizeof(dev_golden_v2), "\x05\x07" "dev/zzz" "\x00\x00\x00\x01\x00", 14);
    ASSERT_LOAD_FAILS(unknown, sizeof(unknown), &vmstate_dev, &got, 2, "unknown subsection");

    /* known subsection, version too new */
    uint8_t newer[sizeof(dev_golden_v2) + 17];
    memcpy(newer, dev_golden_v2, sizeof(dev_golden_v2));
    memcpy(newer + sizeof(dev_golden_v2), dev_subs, 17);
    newer[sizeof(dev_golden_v2) + 14] = 2;
    ASSERT_LOAD_FAILS(newer, sizeof(newer), &vmstate_dev, &got, 2, "too new");
}
END_TEST

START_TEST(test_versioned_field)
{
    /* A v1 section has no v2field. */
    uint8_t v1[sizeof(dev_golden_v2) - 4];
    memcpy(v1, dev_golden_v2, 13);
    memcpy(v1 + 13, dev_golden_v2 + 17, sizeof(dev_golden_v2) - 17);
    Dev got = { .magic = 0x42, .limit = 10, .v2field = 77 };
    size_t used;
    char *err = load_from_mem(v1, sizeof(v1), &vmstate_dev, &got, 1, &used);
    ck_assert_ptr_null(err);
    ck_assert_uint_eq(used, sizeof(v1));
    ck_assert_uint_eq(got.v2field, 77);
    ck_assert_int_eq(got.limit, 5);
}
END_TEST

START_TEST(test_versions_too_new_too_old)
{
    Dev got = { .magic = 0x42, .limit = 10 };
    ASSERT_LOAD_FAILS(dev_golden_v2, sizeof(dev_golden_v2), &vmstate_dev, &got, 3, "too new");
    ASSERT_LOAD_FAILS(dev_golden_v2, sizeof(dev_golden_v2), &vmstate_dev, &got, 0, "too old");
}
END_TEST

START_TEST(test_equal_and_le)
{
    Dev got = { .magic = 0x43, .limit = 10 };
    ASSERT_LOAD_FAILS(dev_golden_v2, sizeof(dev_golden_v2), &vmstate_dev, &got, 2, "'magic'");
    got.magic = 0x42;
    got.limit = 4;                            /* received 5 > 4 */
    ASSERT_LOAD_FAILS(dev_golden_v2, sizeof(dev_golden_v2), &vmstate_dev, &got, 2, "'limit'");
    uint8_t neg[sizeof(dev_golden_v2)];
    memcpy(neg, dev_golden_v2, sizeof(neg));
    neg[18] = 0xff;                           /* negative limit */
    got.limit = 10;
    ASSERT_LOAD_FAILS(neg, sizeof(neg), &vmstate_dev, &got, 2, "'limit'");
}
END_TEST

/* field_exists overrides version_id */
typedef struct Opt {
    bool has;
    uint8_t v;
} Opt;

static bool opt_exists(void *opaque, int version_id)
{
    return ((Opt *)opaque)->has;
}

static const VMStateDescription vmstate_opt = {
    .name = "opt",
    .version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_BOOL(has, Opt),
        { .name = "v", .kind = VMS_KIND_UINT8, .offset = offsetof(Opt, v), .size = 1,
          .version_id = 99, .field_exists = opt_exists },
        VMSTATE_END_OF_LIST()
    },
};

START_TEST(test_field_exists)
{
    Opt o = { true, 9 };
    Bytes b = save_to_mem(&vmstate_opt, &o, NULL);
    assert_bytes(b, (const uint8_t *)"\x01\x09", 2);
    g_free(b.data);
    o.has = false;
    b = save_to_mem(&vmstate_opt, &o, NULL);
    assert_bytes(b, (const uint8_t *)"\x00", 1);
    g_free(b.data);
    Opt got = { 0 };
    ck_assert_ptr_null(load_from_mem((const uint8_t *)"\x01\x07", 2, &vmstate_opt, &got, 1, NULL));
    ck_assert_uint_eq(got.v, 7);
}
END_TEST

/* hooks */
static bool failing_pre_save(void *opaque, Error **errp)
{
    error_setg(errp, "not now");
    return false;
}

static bool failing_post_load(void *opaque, int version_id, Error **errp)
{
    return false;                              /* forgot to set errp */
}

START_TEST(test_hooks_fail)
{
    VMStateDescription d = vmstate_opt;
    d.pre_save = failing_pre_save;
    Opt o = { 0 };
    MigStream *f = mig_stream_new_mem_writer();
    Error *err = NULL;
    ck_assert(!vmstate_save(f, &d, &o, NULL, &err));
    ck_assert(strstr(error_get_pretty(err), "not now"));
    error_free(err);
    mig_stream_close(f, NULL);

    d = vmstate_opt;
    d.post_load = failing_post_load;
    g_autofree char *m = load_from_mem((const uint8_t *)"\x00", 1, &d, &o, 1, NULL);
    ck_assert(m && strstr(m, "post_load"));
}
END_TEST

/* ---------------- vmdesc ---------------- */

typedef struct Small {
    uint8_t regs[4];
    uint32_t a;
    Inner in;
    uint16_t sv;
} Small;

static bool always(void *opaque)
{
    return true;
}

static const VMStateDescription vmstate_small_sub = {
    .name = "small/sv",
    .version_id = 1,
    .needed = always,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT16(sv, Small),
        VMSTATE_END_OF_LIST()
    },
};

static const VMStateDescription vmstate_small = {
    .name = "small",
    .version_id = 2,
    .minimum_version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_UINT8_ARRAY(regs, Small, 4),
        VMSTATE_UINT32(a, Small),
        VMSTATE_UNUSED(3),
        VMSTATE_STRUCT(in, Small, vmstate_inner, Inner),
        VMSTATE_UNUSED(1),
        VMSTATE_END_OF_LIST()
    },
    .subsections = (const VMStateDescription *const[]) { &vmstate_small_sub, NULL },
};

START_TEST(test_vmdesc_json)
{
    Small s = { { 1, 2, 3, 4 }, 5, { 6, 7 }, 8 };
    json_object *desc = json_object_new_object();
    Bytes b = save_to_mem(&vmstate_small, &s, desc);
    ck_assert_uint_eq(b.len, 4 + 4 + 3 + 3 + 1 + 1 + 1 + 8 + 4 + 2);
    g_free(b.data);
    const char *want =
        "{\"vmsd_name\":\"small\",\"version\":2,\"fields\":["
        "{\"name\":\"regs\",\"array_len\":4,\"type\":\"uint8\",\"size\":1},"
        "{\"name\":\"a\",\"type\":\"uint32\",\"size\":4},"
        "{\"name\":\"unused[0]\",\"type\":\"unused_buffer\",\"size\":3},"
        "{\"name\":\"in\",\"type\":\"struct\",\"struct\":{\"vmsd_name\":\"inner\",\"version\":3,"
        "\"fields\":[{\"name\":\"x\",\"type\":\"uint8\",\"size\":1},"
        "{\"name\":\"y\",\"type\":\"uint16\",\"size\":2}]},\"size\":3},"
        "{\"name\":\"unused[1]\",\"type\":\"unused_buffer\",\"size\":1}],"
        "\"subsections\":[{\"vmsd_name\":\"small/sv\",\"version\":1,\"fields\":["
        "{\"name\":\"sv\",\"type\":\"uint16\",\"size\":2}]}]}";
    const char *got = json_object_to_json_string_ext(desc, JSON_C_TO_STRING_PLAIN |
                                                     JSON_C_TO_STRING_NOSLASHESCAPE);
    ck_assert_str_eq(got, want);
    json_object_put(desc);
}
END_TEST

/* structs that may carry subsections are described per element */
static const VMStateDescription with_sub = {
    .name = "ws", .version_id = 1,
    .fields = (const VMStateField[]) { VMSTATE_UINT8(x, Inner), VMSTATE_END_OF_LIST() },
    .subsections = (const VMStateDescription *const[]) { &vmstate_inner, NULL },
};
static const VMStateDescription outer = {
    .name = "outer", .version_id = 1,
    .fields = (const VMStateField[]) {
        VMSTATE_STRUCT_ARRAY(two, Dev, 2, with_sub, Inner),
        VMSTATE_END_OF_LIST()
    },
};

START_TEST(test_vmdesc_struct_array_with_subsections)
{
    Dev d = dev_sample();
    json_object *desc = json_object_new_object();
    Bytes b = save_to_mem(&outer, &d, desc);
    g_free(b.data);
    json_object *fields = json_object_object_get(desc, "fields");
    ck_assert_int_eq(json_object_array_length(fields), 2);
    json_object *e1 = json_object_array_get_idx(fields, 1);
    ck_assert_int_eq(json_object_get_int(json_object_object_get(e1, "index")), 1);
    json_object_put(desc);
}
END_TEST

/* ---------------- MigStream ---------------- */

START_TEST(test_stream_ints_and_strings)
{
    MigStream *f = mig_stream_new_mem_writer();
    mig_stream_put_u8(f, 0x12);
    mig_stream_put_be16(f, 0x3456);
    mig_stream_put_be32(f, 0x789abcde);
    mig_stream_put_be64(f, 0x0102030405060708ULL);
    mig_stream_put_counted_string(f, "ram");
    ck_assert_uint_eq(mig_stream_bytes_written(f), 1 + 2 + 4 + 8 + 4);
    size_t len;
    const uint8_t *d = mig_stream_mem_data(f, &len);
    static const uint8_t want[] = { 0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 1, 2, 3, 4, 5, 6, 7,
                                    8, 3, 'r', 'a', 'm' };
    ck_assert_uint_eq(len, sizeof(want));
    ck_assert(memcmp(d, want, len) == 0);

    MigStream *r = mig_stream_new_mem_reader(d, len);
    ck_assert_int_eq(mig_stream_peek_u8(r), 0x12);
    ck_assert_uint_eq(mig_stream_get_u8(r), 0x12);
    ck_assert_uint_eq(mig_stream_get_be16(r), 0x3456);
    ck_assert_uint_eq(mig_stream_get_be32(r), 0x789abcde);
    ck_assert_uint_eq(mig_stream_get_be64(r), 0x0102030405060708ULL);
    char s[256];
    ck_assert_int_eq(mig_stream_get_counted_string(r, s), 3);
    ck_assert_str_eq(s, "ram");
    ck_assert_int_eq(mig_stream_peek_u8(r), -1);
    ck_assert(!mig_stream_has_error(r));             /* peek at the end is not an error */
    ck_assert_uint_eq(mig_stream_bytes_read(r), len);
    /* sticky error: the first one wins, later gets return 0 */
    ck_assert_uint_eq(mig_stream_get_be32(r), 0);
    ck_assert_str_eq(mig_stream_error_msg(r), "Unexpected end of migration stream");
    mig_stream_set_error(r, "second");
    ck_assert_str_eq(mig_stream_error_msg(r), "Unexpected end of migration stream");
    Error *err = NULL;
    ck_assert(!mig_stream_close(r, &err));
    error_free(err);
    ck_assert(mig_stream_close(f, NULL));
}
END_TEST

START_TEST(test_stream_pages_and_large_buffers)
{
    /* Interleave small puts, zero-copy pages and buffers larger than the
     * write buffer; the bytes must come out in order. */
    static uint8_t page[4096];
    uint8_t *big = g_malloc(MIG_STREAM_BUF_SIZE + 12345);
    for (size_t i = 0; i < sizeof(page); i++) {
        page[i] = i * 7;
    }
    for (size_t i = 0; i < MIG_STREAM_BUF_SIZE + 12345; i++) {
        big[i] = i * 13;
    }
    MigStream *f = mig_stream_new_mem_writer();
    GByteArray *want = g_byte_array_new();
    for (int i = 0; i < 600; i++) {                 /* > iovec batch and > buffer */
        uint8_t hdr[8] = { 0, 0, 0, 0, 0, 0, i >> 8, i };
        mig_stream_put_be64(f, i);
        mig_stream_put_page(f, page, sizeof(page));
        g_byte_array_append(want, hdr, 8);
        g_byte_array_append(want, page, sizeof(page));
    }
    mig_stream_put_buffer(f, big, MIG_STREAM_BUF_SIZE + 12345);
    g_byte_array_append(want, big, MIG_STREAM_BUF_SIZE + 12345);
    size_t len;
    const uint8_t *d = mig_stream_mem_data(f, &len);
    ck_assert_uint_eq(len, want->len);
    ck_assert(memcmp(d, want->data, len) == 0);
    ck_assert_uint_eq(mig_stream_bytes_written(f), want->len);
    g_byte_array_free(want, true);
    g_free(big);
    ck_assert(mig_stream_close(f, NULL));
}
END_TEST

START_TEST(test_stream_rate_limit)
{
    MigStream *f = mig_stream_new_mem_writer();
    ck_assert(!mig_stream_rate_limit_exceeded(f));      /* unlimited */
    mig_stream_set_rate_limit(f, 10000);                /* 1000 bytes per 100 ms slot */
    uint8_t buf[999] = { 0 };
    mig_stream_put_buffer(f, buf, sizeof(buf));
    ck_assert(!mig_stream_rate_limit_exceeded(f));
    mig_stream_put_u8(f, 0);
    ck_assert(mig_stream_rate_limit_exceeded(f));
    ck_assert_uint_eq(mig_stream_rate_limit_used(f), 1000);
    ck_assert(mig_stream_rate_limit_slot_end_ns(f) > 0);
    mig_stream_rate_limit_new_slot(f);
    ck_assert(!mig_stream_rate_limit_exceeded(f));
    ck_assert_uint_eq(mig_stream_rate_limit_used(f), 0);
    ck_assert_uint_eq(mig_stream_bytes_written(f), 1000);
    /* Bytes past a slot's budget are owed by the next slot, at most four budgets. */
    uint8_t more[1500] = { 0 };
    mig_stream_put_buffer(f, more, sizeof(more));
    mig_stream_rate_limit_new_slot(f);
    ck_assert_uint_eq(mig_stream_rate_limit_used(f), 500);
    for (int i = 0; i < 10; i++) {
        mig_stream_put_buffer(f, more, sizeof(more));
    }
    mig_stream_rate_limit_new_slot(f);
    ck_assert_uint_eq(mig_stream_rate_limit_used(f), 4000);
    ck_assert(mig_stream_rate_limit_exceeded(f));
    mig_stream_set_rate_limit(f, 10000);                /* a new limit: nothing owed */
    ck_assert_uint_eq(mig_stream_rate_limit_used(f), 0);
    mig_stream_set_error(f, "boom");
    ck_assert(mig_stream_rate_limit_exceeded(f));       /* errors stop the writer too */
    Error *err = NULL;
    ck_assert(!mig_stream_close(f, &err));
    ck_assert_str_eq(error_get_pretty(err), "boom");
    error_free(err);
}
END_TEST

typedef struct ReaderArg {
    int fd;
    size_t total;
    uint64_t sum;
} ReaderArg;

static void *reader_thread(void *opaque)
{
    ReaderArg *a = opaque;
    MigStream *r = mig_stream_new_fd_reader(a->fd, false);
    uint8_t page[4096];
    for (;;) {
        uint64_t n = mig_stream_get_be64(r);
        if (mig_stream_has_error(r) || n == UINT64_MAX) {
            break;
        }
        mig_stream_get_buffer(r, page, sizeof(page));
        a->sum += page[n % 4096];
        a->total++;
    }
    mig_stream_close(r, NULL);
    return NULL;
}

START_TEST(test_stream_fd_and_return_path)
{
    int sv[2];
    ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    ReaderArg a = { .fd = sv[1] };
    pthread_t t;
    pthread_create(&t, NULL, reader_thread, &a);
    MigStream *w = mig_stream_new_fd_writer(sv[0], false);
    static uint8_t page[4096];
    for (size_t i = 0; i < 4096; i++) {
        page[i] = 1;
    }
    for (uint64_t i = 0; i < 2000; i++) {
        mig_stream_put_be64(w, i);
        mig_stream_put_page(w, page, sizeof(page));
    }
    mig_stream_put_be64(w, UINT64_MAX);
    ck_assert(mig_stream_flush(w));
    pthread_join(t, NULL);
    ck_assert_uint_eq(a.total, 2000);
    ck_assert_uint_eq(a.sum, 2000);

    /* return path: the reverse direction on the same socket */
    Error *err = NULL;
    MigStream *rp_in = mig_stream_open_return_path(w, &err);
    ck_assert_ptr_nonnull(rp_in);
    MigStream *dst = mig_stream_new_fd_reader(sv[1], false);
    MigStream *rp_out = mig_stream_open_return_path(dst, &err);
    ck_assert_ptr_nonnull(rp_out);
    mig_stream_put_be32(rp_out, 0x00020004);
    mig_stream_put_be32(rp_out, 7);
    ck_assert(mig_stream_flush(rp_out));
    ck_assert_uint_eq(mig_stream_get_be16(rp_in), 2);
    ck_assert_uint_eq(mig_stream_get_be16(rp_in), 4);
    ck_assert_uint_eq(mig_stream_get_be32(rp_in), 7);
    ck_assert(!mig_stream_has_error(rp_in));
    ck_assert(mig_stream_close(rp_out, NULL));
    ck_assert(mig_stream_close(rp_in, NULL));
    mig_stream_close(dst, NULL);

    /* writing to a closed peer: sticky error, no SIGPIPE */
    close(sv[1]);
    uint8_t *junk = g_malloc0(MIG_STREAM_BUF_SIZE);
    for (int i = 0; i < 4 && !mig_stream_has_error(w); i++) {
        mig_stream_put_buffer(w, junk, MIG_STREAM_BUF_SIZE);
        mig_stream_flush(w);
    }
    g_free(junk);
    ck_assert(mig_stream_has_error(w));
    ck_assert_msg(strstr(mig_stream_error_msg(w), "Unable to write to socket"), "%s",
                  mig_stream_error_msg(w));
    ck_assert(!mig_stream_close(w, &err));
    error_free(err);
    close(sv[0]);

    /* memory streams have no return path */
    MigStream *m = mig_stream_new_mem_writer();
    err = NULL;
    ck_assert_ptr_null(mig_stream_open_return_path(m, &err));
    ck_assert_ptr_nonnull(err);
    error_free(err);
    mig_stream_close(m, NULL);
}
END_TEST


static Suite *vmstate_suite(void)
{
    Suite *s = suite_create("vmstate");
    TCase *tc = tcase_create("vmstate");
    tcase_add_test(tc, test_all_kinds_golden);
    tcase_add_test(tc, test_all_kinds_load);
    tcase_add_test(tc, test_bad_bool);
    tcase_add_test(tc, test_truncation_every_offset);
    tcase_add_test(tc, test_arrays_golden);
    tcase_add_test(tc, test_varray_hostile_count);
    tcase_add_test(tc, test_varray_save_overflow);
    tcase_add_test(tc, test_struct_golden_no_subsections);
    tcase_add_test(tc, test_subsections_golden_and_load);
    tcase_add_test(tc, test_subsection_absent_and_foreign);
    tcase_add_test(tc, test_versioned_field);
    tcase_add_test(tc, test_versions_too_new_too_old);
    tcase_add_test(tc, test_equal_and_le);
    tcase_add_test(tc, test_field_exists);
    tcase_add_test(tc, test_hooks_fail);
    tcase_add_test(tc, test_vmdesc_json);
    tcase_add_test(tc, test_vmdesc_struct_array_with_subsections);
    suite_add_tcase(s, tc);
    TCase *ts = tcase_create("stream");
    tcase_set_timeout(ts, 30);
    tcase_add_test(ts, test_stream_ints_and_strings);
    tcase_add_test(ts, test_stream_pages_and_large_buffers);
    tcase_add_test(ts, test_stream_rate_limit);
    tcase_add_test(ts, test_stream_fd_and_return_path);
    suite_add_tcase(s, ts);
    return s;
}

int main(void)
{
    return check_run_suite(vmstate_suite());
}
