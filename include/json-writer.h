/*
 * Write JSON the way QEMU's QMP does: one line, ", " between members and
 * elements, ": " after keys, pure ASCII (non-ASCII as \uXXXX with upper-case
 * hex, surrogate pairs above U+FFFF), integers exactly (int64 and uint64),
 * doubles with 17 significant digits like QEMU ("774.76199999999994"), or,
 * with pretty=true, indented over several lines.
 */
#ifndef MIGVM_JSON_WRITER_H
#define MIGVM_JSON_WRITER_H

#include <stdbool.h>
#include <glib.h>
#include <json-c/json.h>

void json_write(GString *out, json_object *obj, bool pretty);
/* Newly allocated compact string (g_free it). */
char *json_to_string(json_object *obj);
/*
 * OBJ is never changed nor freed from now on (the QMP schema): its compact
 * text is made once and copied wherever OBJ is written compact. One such
 * value per process; a second call for another object is ignored.
 */
void json_write_set_constant(json_object *obj);

#endif
