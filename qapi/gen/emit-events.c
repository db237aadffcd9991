/*
 * qapi-events.h / qapi-events.c: one emitter per event. Each fills the
 * event's argument struct from its parameters, converts it to JSON and hands
 * it to the hand-written qapi_event_emit() (include/monitor.h).
 */
#include "emit.h"
#include "cname.h"

#include <string.h>

static char *event_fn_name(const Entity *e)
{
    g_autofree char *cn = c_ident(e->name);
    g_autofree char *lower = g_ascii_strdown(cn, -1);

    return g_strdup_printf("qapi_event_send_%s", lower);
}

/* Parameter list; the initializer of the local argument struct goes to init. */
static char *event_params(const Entity *e, GString *init)
{
    GString *p = g_string_new(NULL);
    g_autoptr(GPtrArray) all = NULL;

    if (!e->arg_type) {
        g_string_append(p, "void");
        return g_string_free(p, FALSE);
    }
    if (e->boxed) {
        g_autofree char *an = c_type_name(e->arg_type);
        g_string_append_printf(p, "const %s *arg", an);
        return g_string_free(p, FALSE);
    }
    all = entity_all_members(e->arg_type);
    for (guint i = 0; i < all->len; i++) {
        Member *m = all->pdata[i];
        g_autofree char *cn = c_name(m->name);
        g_autofree char *ct = c_type(m->type);
        const char *sep = p->len ? ", " : "";
        bool has = m->optional && entity_is_scalar(m->type);

        if (has) {
            g_string_append_printf(p, "%sbool has_%s", sep, cn);
            g_string_append_printf(init, "        .has_%s = has_%s,\n", cn, cn);
            sep = ", ";
        }
        if (!c_has_storage(m->type)) {
            continue;
        }
        if (c_is_pointer(m->type) && m->type->bkind != BK_ANY) {
            g_string_append_printf(p, "%sconst %s%s", sep, ct, cn);
            g_string_append_printf(init, "        .%s = (%s)%s,\n", cn, ct, cn);
        } else {
            g_string_append_printf(p, "%s%s%s%s", sep, ct, g_str_has_suffix(ct, "*") ? "" : " ", cn);
            g_string_append_printf(init, "        .%s = %s,\n", cn, cn);
        }
    }
    if (!p->len) {
        g_string_append(p, "void");
    }
    return g_string_free(p, FALSE);
}

void emit_events(const Schema *s, const Output *o)
{
    GString *h = g_string_new(NULL);
    GString *c = g_string_new(NULL);

    emit_banner(h, o, "QMP events: one emitter per event.");
    g_string_append(h, "#ifndef QAPI_EVENTS_H\n#define QAPI_EVENTS_H\n\n#include \"qapi-types.h\"\n\n");
    emit_banner(c, o, "QMP events: one emitter per event.");
    g_string_append(c, "#include \"qapi-events.h\"\n#include \"qapi-json.h\"\n#include \"monitor.h\"\n\n");
    for (guint i = 0; i < s->entities->len; i++) {
        Entity *e = s->entities->pdata[i];
        GString *init = g_string_new(NULL);
        g_autofree char *fn = NULL;
        g_autofree char *params = NULL;

        if (e->meta != META_EVENT) {
            g_string_free(init, TRUE);
            continue;
        }
        fn = event_fn_name(e);
        params = event_params(e, init);
        emit_if(h, e->cond);
        g_string_append_printf(h, "void %s(%s);\n", fn, params);
        emit_endif(h, e->cond);

        emit_if(c, e->cond);
        g_string_append_printf(c, "void %s(%s)\n{\n", fn, params);
        if (!e->arg_type) {
            g_string_append(c, "    qapi_event_emit(");
            emit_c_string(c, e->name);
            g_string_append(c, ", NULL);\n");
        } else {
            g_autofree char *an = c_type_name(e->arg_type);
            if (!e->boxed) {
                g_string_append_printf(c, "    %s data = {\n%s    };\n    const %s *arg = &data;\n\n",
                                       an, init->str, an);
            }
            g_string_append(c, "    qapi_event_emit(");
            emit_c_string(c, e->name);
            g_string_append_printf(c, ", qapi_to_json_%s(arg));\n", an);
        }
        g_string_append(c, "}\n\n");
        emit_endif(c, e->cond);
        g_string_free(init, TRUE);
    }
    g_string_append(h, "\n#endif\n");
    emit_write_file(o, "qapi-events.h", h);
    emit_write_file(o, "qapi-events.c", c);
    g_string_free(h, TRUE);
    g_string_free(c, TRUE);
}
