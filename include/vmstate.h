/*
 * Declarative device state (VMState), encoded as QEMU does
 * (shared docs: migration-stream.md section 6): fields in declaration order,
 * big-endian, no tags; then the subsections whose needed() is true.
 * Implementation: migration/vmstate.c. Registration: migration/savevm.c.
 */
#ifndef MIGVM_VMSTATE_H
#define MIGVM_VMSTATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "error.h"

typedef struct VMStateDescription VMStateDescription;
typedef struct VMStateField VMStateField;

typedef enum VMStateKind {
    VMS_KIND_END = 0,                   /* terminates a field list */
    VMS_KIND_BOOL,                      /* u8 0/1 */
    VMS_KIND_INT8, VMS_KIND_UINT8,
    VMS_KIND_INT16, VMS_KIND_UINT16,    /* be16 */
    VMS_KIND_INT32, VMS_KIND_UINT32,    /* be32 */
    VMS_KIND_INT64, VMS_KIND_UINT64,    /* be64 */
    VMS_KIND_BUFFER,                    /* raw bytes, fixed size */
    VMS_KIND_UNUSED,                    /* `size` zero bytes written, skipped on load */
    VMS_KIND_STRUCT,                    /* nested description, inline */
} VMStateKind;

typedef enum VMStateFlags {
    VMS_EQUAL = 1 << 0,        /* load fails unless the value equals ours */
    VMS_LE = 1 << 1,           /* load fails unless the value is <= ours */
    VMS_VARRAY_UINT32 = 1 << 2,/* element count is the uint32 at num_offset (checked against num = capacity) */
} VMStateFlags;

struct VMStateField {
    const char *name;
    VMStateKind kind;
    unsigned flags;            /* VMStateFlags */
    size_t offset;             /* offset of the field in the owner */
    size_t size;               /* bytes of one element in memory (BUFFER/UNUSED: total bytes) */
    unsigned num;              /* number of elements: 0 = one, not an array */
    size_t num_offset;         /* VMS_VARRAY_UINT32: offset of the uint32 count */
    int version_id;            /* field exists in sections of this version and later */
    const VMStateDescription *vmsd;                  /* VMS_KIND_STRUCT */
    bool (*field_exists)(void *opaque, int version_id); /* overrides version_id when set */
};

struct VMStateDescription {
    const char *name;
    int version_id;
    int minimum_version_id;
    bool (*needed)(void *opaque);                            /* subsections only */
    /* Top-level sections only: sent as a FULL section during the setup
     * phase, before any RAM page (and not again at completion), so the
     * destination can refuse early, e.g. a CPU model it cannot run. */
    bool early_setup;
    bool (*pre_save)(void *opaque, Error **errp);
    bool (*pre_load)(void *opaque, Error **errp);
    bool (*post_load)(void *opaque, int version_id, Error **errp);
    const VMStateField *fields;                              /* ends with VMSTATE_END_OF_LIST() */
    const VMStateDescription *const *subsections;           /* NULL-terminated, or NULL */
};

/* Compile-time check that field f of S has C type T: comparing pointers to
 * distinct types is diagnosed by gcc and clang (an error under -Werror). */
#define VMSTATE_TYPE_CHECK(S, f, T) (0 * sizeof((T *)0 == &((S *)0)->f))
#define VMSTATE_ARRAY_CHECK(S, f, T, n) (0 * sizeof((T (*)[n])0 == &((S *)0)->f))

#define VMSTATE_SCALAR_V(f, S, T, k, fl, v) {                              \
    .name = #f, .kind = (k), .flags = (fl), .version_id = (v),             \
    .offset = offsetof(S, f) + VMSTATE_TYPE_CHECK(S, f, T), .size = sizeof(T) }

#define VMSTATE_BOOL_V(f, S, v)    VMSTATE_SCALAR_V(f, S, bool, VMS_KIND_BOOL, 0, v)
#define VMSTATE_INT8_V(f, S, v)    VMSTATE_SCALAR_V(f, S, int8_t, VMS_KIND_INT8, 0, v)
#define VMSTATE_UINT8_V(f, S, v)   VMSTATE_SCALAR_V(f, S, uint8_t, VMS_KIND_UINT8, 0, v)
#define VMSTATE_INT16_V(f, S, v)   VMSTATE_SCALAR_V(f, S, int16_t, VMS_KIND_INT16, 0, v)
#define VMSTATE_UINT16_V(f, S, v)  VMSTATE_SCALAR_V(f, S, uint16_t, VMS_KIND_UINT16, 0, v)
#define VMSTATE_INT32_V(f, S, v)   VMSTATE_SCALAR_V(f, S, int32_t, VMS_KIND_INT32, 0, v)
#define VMSTATE_UINT32_V(f, S, v)  VMSTATE_SCALAR_V(f, S, uint32_t, VMS_KIND_UINT32, 0, v)
#define VMSTATE_INT64_V(f, S, v)   VMSTATE_SCALAR_V(f, S, int64_t, VMS_KIND_INT64, 0, v)
#define VMSTATE_UINT64_V(f, S, v)  VMSTATE_SCALAR_V(f, S, uint64_t, VMS_KIND_UINT64, 0, v)

#define VMSTATE_BOOL(f, S)    VMSTATE_BOOL_V(f, S, 0)
#define VMSTATE_INT8(f, S)    VMSTATE_INT8_V(f, S, 0)
#define VMSTATE_UINT8(f, S)   VMSTATE_UINT8_V(f, S, 0)
#define VMSTATE_INT16(f, S)   VMSTATE_INT16_V(f, S, 0)
#define VMSTATE_UINT16(f, S)  VMSTATE_UINT16_V(f, S, 0)
#define VMSTATE_INT32(f, S)   VMSTATE_INT32_V(f, S, 0)
#define VMSTATE_UINT32(f, S)  VMSTATE_UINT32_V(f, S, 0)
#define VMSTATE_INT64(f, S)   VMSTATE_INT64_V(f, S, 0)
#define VMSTATE_UINT64(f, S)  VMSTATE_UINT64_V(f, S, 0)

#define VMSTATE_UINT8_EQUAL(f, S)  VMSTATE_SCALAR_V(f, S, uint8_t, VMS_KIND_UINT8, VMS_EQUAL, 0)
#define VMSTATE_UINT16_EQUAL(f, S) VMSTATE_SCALAR_V(f, S, uint16_t, VMS_KIND_UINT16, VMS_EQUAL, 0)
#define VMSTATE_UINT32_EQUAL(f, S) VMSTATE_SCALAR_V(f, S, uint32_t, VMS_KIND_UINT32, VMS_EQUAL, 0)
#define VMSTATE_INT32_EQUAL(f, S)  VMSTATE_SCALAR_V(f, S, int32_t, VMS_KIND_INT32, VMS_EQUAL, 0)
#define VMSTATE_UINT64_EQUAL(f, S) VMSTATE_SCALAR_V(f, S, uint64_t, VMS_KIND_UINT64, VMS_EQUAL, 0)
#define VMSTATE_INT32_LE(f, S)     VMSTATE_SCALAR_V(f, S, int32_t, VMS_KIND_INT32, VMS_LE, 0)

/* Fixed arrays of scalars: T f[n]. */
#define VMSTATE_ARRAY_V(f, S, n, T, k, v) {                                \
    .name = #f, .kind = (k), .num = (n), .version_id = (v),                \
    .offset = offsetof(S, f) + VMSTATE_ARRAY_CHECK(S, f, T, n), .size = sizeof(T) }
#define VMSTATE_UINT8_ARRAY(f, S, n)   VMSTATE_ARRAY_V(f, S, n, uint8_t, VMS_KIND_UINT8, 0)
#define VMSTATE_UINT16_ARRAY(f, S, n)  VMSTATE_ARRAY_V(f, S, n, uint16_t, VMS_KIND_UINT16, 0)
#define VMSTATE_UINT32_ARRAY(f, S, n)  VMSTATE_ARRAY_V(f, S, n, uint32_t, VMS_KIND_UINT32, 0)
#define VMSTATE_UINT64_ARRAY(f, S, n)  VMSTATE_ARRAY_V(f, S, n, uint64_t, VMS_KIND_UINT64, 0)
#define VMSTATE_INT32_ARRAY(f, S, n)   VMSTATE_ARRAY_V(f, S, n, int32_t, VMS_KIND_INT32, 0)
#define VMSTATE_INT64_ARRAY(f, S, n)   VMSTATE_ARRAY_V(f, S, n, int64_t, VMS_KIND_INT64, 0)
#define VMSTATE_UINT64_ARRAY_V(f, S, n, v) VMSTATE_ARRAY_V(f, S, n, uint64_t, VMS_KIND_UINT64, v)

/* Variable-length array of T f[cap] whose element count is the uint32_t field nf. */
#define VMSTATE_VARRAY_UINT32(f, S, nf, cap, T, k) {                        \
    .name = #f, .kind = (k), .flags = VMS_VARRAY_UINT32, .num = (cap),      \
    .num_offset = offsetof(S, nf) + VMSTATE_TYPE_CHECK(S, nf, uint32_t),    \
    .offset = offsetof(S, f) + VMSTATE_ARRAY_CHECK(S, f, T, cap), .size = sizeof(T) }

/* uint8_t f[N]: raw bytes. */
#define VMSTATE_BUFFER_V(f, S, v) {                                         \
    .name = #f, .kind = VMS_KIND_BUFFER, .version_id = (v),                 \
    .offset = offsetof(S, f) + VMSTATE_TYPE_CHECK(S, f[0], uint8_t),        \
    .size = sizeof(((S *)0)->f) }
#define VMSTATE_BUFFER(f, S) VMSTATE_BUFFER_V(f, S, 0)

/* n bytes on the wire that mean nothing (kept for layout compatibility). */
#define VMSTATE_UNUSED_V(n, v) { .name = "unused", .kind = VMS_KIND_UNUSED, .size = (n), .version_id = (v) }
#define VMSTATE_UNUSED(n) VMSTATE_UNUSED_V(n, 0)

/* Nested struct T f, described by d (written with d's current version, no header). */
#define VMSTATE_STRUCT_V(f, S, v, d, T) {                                   \
    .name = #f, .kind = VMS_KIND_STRUCT, .version_id = (v), .vmsd = &(d),   \
    .offset = offsetof(S, f) + VMSTATE_TYPE_CHECK(S, f, T), .size = sizeof(T) }
#define VMSTATE_STRUCT(f, S, d, T) VMSTATE_STRUCT_V(f, S, 0, d, T)
#define VMSTATE_STRUCT_ARRAY(f, S, n, d, T) {                               \
    .name = #f, .kind = VMS_KIND_STRUCT, .num = (n), .vmsd = &(d),          \
    .offset = offsetof(S, f) + VMSTATE_ARRAY_CHECK(S, f, T, n), .size = sizeof(T) }

#define VMSTATE_END_OF_LIST() { .name = NULL, .kind = VMS_KIND_END }

/* Register a device's state as a FULL section (idstr NULL = vmsd->name).
 * Sections are saved in registration order. Returns false if (idstr,
 * instance_id) is taken. [BQL] (machine_init: never during a migration) */
bool vmstate_register(const char *idstr, uint32_t instance_id,
                      const VMStateDescription *vmsd, void *opaque, Error **errp);
void vmstate_unregister(const VMStateDescription *vmsd, void *opaque);

/*
 * TEST ONLY (migration/test-omit.c): true if the environment variable
 * MIGVM_TEST_OMIT_SECTIONS, read once at start-up, names
 * this section or subsection, so that the writer leaves it out of the
 * stream (tests check that a destination guest notices the damage). The
 * value is a comma-separated list of "NAME" (every instance) or
 * "NAME:INSTANCE"; NAME is a section idstr ("kvm-pit") or a subsection's
 * wire name ("cpu/lapic"). The writer consults it for top-level sections;
 * a subsection's needed() hook consults it itself. Two names are not
 * sections: "ram/final-pass" makes RAM's completion stage (vCPUs stopped)
 * send none of the pages dirtied since the last pass, "block/final-pass"
 * the block section's none of the disk chunks. Unset: always false.
 */
bool vmstate_test_omitted(const char *name, uint32_t instance_id);
/* Read MIGVM_TEST_OMIT_SECTIONS once; false on a malformed list. [start-up,
 * before any migration thread] */
bool vmstate_test_omit_init(Error **errp);
/* Replace the list with spec (NULL or "": omit nothing). [same; tests] */
bool vmstate_test_omit_set(const char *spec, Error **errp);

#endif
