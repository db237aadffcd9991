/*
 * Helpers the generated QAPI code calls (hand-written, schema independent):
 * the exact error texts of argument validation, member paths, scalar
 * converters with QEMU's range rules, and the builtin list functions
 * declared in qapi-builtin.h.
 *
 * Error texts (QEMU 7.2 wording):
 *   Parameter '<path>' is missing
 *   Invalid parameter type for '<path>', expected: <string|integer|number|boolean|object|array|null|Alternate>
 *   Parameter '<path>' is unexpected
 *   Parameter '<path>' does not accept value '<v>'
 *   Parameter '<path>' expects <uint8_t|...|int64|uint64>
 * <path> is the member name at top level, "outer[0].inner" below; a NULL
 * path at top level prints as 'null', as QEMU does.
 *
 * Integer rules (QEMU 7.2's QMP input visitor): signed members accept JSON
 * integers from INT64_MIN to INT64_MAX, anything else is "expected: integer"
 * (also a value above INT64_MAX); narrow signed types report "expects
 * int8_t" etc. when out of range. Unsigned members accept JSON integers
 * from INT64_MIN to UINT64_MAX, a negative one wrapped modulo 2^64 (-1 is
 * 2^64-1); anything else (floats such as 1.0, strings, integers the parser
 * could only keep as a double) is "expects uint64" (the 64-bit check runs
 * first, as in QEMU), and a narrow type out of range, negative included, is
 * "expects uint8_t" etc. The handlers' own range checks then see the
 * wrapped value.
 */
#ifndef QAPI_RUNTIME_H
#define QAPI_RUNTIME_H

#include "qapi-builtin.h"

/* Index of s in names[0..count), -1 if absent (NULL entries are skipped). */
int qapi_enum_lookup(const char *const names[], int count, const char *s);

/* "path.name" (or "name" at top level) / "path[index]". Newly allocated. */
char *qapi_path_member(const char *path, const char *name);
char *qapi_path_index(const char *path, size_t index);

void qapi_error_missing(Error **errp, const char *path);
void qapi_error_missing_member(Error **errp, const char *path, const char *name);
void qapi_error_type(Error **errp, const char *path, const char *expected);
void qapi_error_unexpected(Error **errp, const char *path);
void qapi_error_value(Error **errp, const char *path, const char *value);
void qapi_error_expects(Error **errp, const char *path, const char *what);

/* src must be a JSON object ("expected: object"). */
bool qapi_check_object(json_object *src, const char *path, Error **errp);
/* Every key of src must be in keys or more_keys (NULL-terminated; either may be NULL). */
bool qapi_check_unknown(json_object *src, const char *path, const char *const *keys,
                        const char *const *more_keys, Error **errp);
/* json_object_object_get_ex, readable in generated code: true if present (value may be JSON null). */
bool qapi_get_member(json_object *src, const char *name, json_object **value);

/* Scalar converters: JSON -> C (false + errp on a wrong value). */
bool qapi_from_json_str(json_object *src, const char *path, char **out, Error **errp);
bool qapi_from_json_number(json_object *src, const char *path, double *out, Error **errp);
bool qapi_from_json_bool(json_object *src, const char *path, bool *out, Error **errp);
bool qapi_from_json_int(json_object *src, const char *path, int64_t *out, Error **errp);
bool qapi_from_json_int8(json_object *src, const char *path, int8_t *out, Error **errp);
bool qapi_from_json_int16(json_object *src, const char *path, int16_t *out, Error **errp);
bool qapi_from_json_int32(json_object *src, const char *path, int32_t *out, Error **errp);
bool qapi_from_json_int64(json_object *src, const char *path, int64_t *out, Error **errp);
bool qapi_from_json_uint8(json_object *src, const char *path, uint8_t *out, Error **errp);
bool qapi_from_json_uint16(json_object *src, const char *path, uint16_t *out, Error **errp);
bool qapi_from_json_uint32(json_object *src, const char *path, uint32_t *out, Error **errp);
bool qapi_from_json_uint64(json_object *src, const char *path, uint64_t *out, Error **errp);
bool qapi_from_json_size(json_object *src, const char *path, uint64_t *out, Error **errp);
bool qapi_from_json_null(json_object *src, const char *path, Error **errp);
/* Takes a new reference (JSON null gives NULL). */
bool qapi_from_json_any(json_object *src, const char *path, json_object **out, Error **errp);
bool qapi_from_json_enum(json_object *src, const char *path, const char *const names[], int count,
                         int *out, Error **errp);

/* Scalar converters: C -> JSON (new reference; json-c's NULL is JSON null). */
json_object *qapi_to_json_str(const char *v);          /* NULL -> "" */
json_object *qapi_to_json_number(double v);
json_object *qapi_to_json_bool(bool v);
json_object *qapi_to_json_int(int64_t v);
json_object *qapi_to_json_int8(int8_t v);
json_object *qapi_to_json_int16(int16_t v);
json_object *qapi_to_json_int32(int32_t v);
json_object *qapi_to_json_int64(int64_t v);
json_object *qapi_to_json_uint8(uint8_t v);
json_object *qapi_to_json_uint16(uint16_t v);
json_object *qapi_to_json_uint32(uint32_t v);
json_object *qapi_to_json_uint64(uint64_t v);
json_object *qapi_to_json_size(uint64_t v);
json_object *qapi_to_json_any(json_object *v);         /* new reference */
json_object *qapi_to_json_null(void);

#endif
