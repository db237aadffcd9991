/*
 * qapi-builtin.h: QType and the lists of builtin types. The same for every
 * schema; the functions are hand-written in qapi/qapi-runtime.c.
 */
#include "emit.h"
#include "cname.h"

static const char *const qtypes[] = {
    "none", "qnull", "qnum", "qstring", "qdict", "qlist", "qbool",
};

void emit_builtin_h(const Schema *s, const Output *o)
{
    GString *h = g_string_new(NULL);

    emit_banner(h, o, "Builtin types: QType and lists of builtins (functions in qapi/qapi-runtime.c).");
    g_string_append(h, "#ifndef QAPI_BUILTIN_H\n#define QAPI_BUILTIN_H\n\n"
                    "#include <stdbool.h>\n#include <stddef.h>\n#include <stdint.h>\n"
                    "#include <json-c/json.h>\n#include \"error.h\"\n\n");
    g_string_append(h, "/* The JSON type of a value (alternates record which branch they hold). */\n"
                    "typedef enum QType {\n");
    for (size_t i = 0; i < G_N_ELEMENTS(qtypes); i++) {
        g_autofree char *up = g_ascii_strup(qtypes[i], -1);
        g_string_append_printf(h, "    QTYPE_%s,\n", up);
    }
    g_string_append(h, "    QTYPE__MAX\n} QType;\n"
                    "extern const char *const QType_names[QTYPE__MAX];\n"
                    "const char *QType_str(QType v);\n"
                    "bool QType_parse(const char *s, QType *out);\n\n");
    for (guint i = 0; i < s->entities->len; i++) {
        Entity *e = s->entities->pdata[i];
        if (e->meta != META_BUILTIN || e->bkind == BK_NULL) {
            continue;
        }
        g_string_append_printf(h, "typedef struct %sList {\n    struct %sList *next;\n    %s%svalue;\n} %sList;\n",
                               e->name, e->name, e->c_type, g_str_has_suffix(e->c_type, "*") ? "" : " ",
                               e->name);
        g_string_append_printf(h, "void qapi_free_%sList(%sList *l);\n", e->name, e->name);
        g_string_append_printf(h, "bool qapi_from_json_%sList(json_object *src, const char *path, "
                               "%sList **out, Error **errp);\n", e->name, e->name);
        g_string_append_printf(h, "json_object *qapi_to_json_%sList(const %sList *l);\n\n", e->name, e->name);
    }
    g_string_append(h, "#endif\n");
    emit_write_file(o, "qapi-builtin.h", h);
    g_string_free(h, TRUE);
}
