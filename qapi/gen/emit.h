/* The emitters: one per generated file, plus shared output helpers. */
#ifndef QAPI_GEN_EMIT_H
#define QAPI_GEN_EMIT_H

#include <glib.h>
#include "schema.h"

typedef struct Output {
    const char *dir;             /* output directory */
    const char *schema_file;     /* for the "generated from" banner */
} Output;

/* Write buf to dir/name unless the file already holds exactly that (keeps make from rebuilding). */
void emit_write_file(const Output *o, const char *name, GString *buf);
/* Banner comment at the top of a generated file. */
void emit_banner(GString *b, const Output *o, const char *what);
/* "#if COND\n" / "#endif\n" when cond is not NULL. */
void emit_if(GString *b, const char *cond);
void emit_endif(GString *b, const char *cond);
/* Append a C string literal for s (quotes included). */
void emit_c_string(GString *b, const char *s);

/* Types that get C code: enums, structs, unions, alternates and lists of those, in definition order. */
bool emit_wants_type(const Entity *e);
/* fn(b, e) for every type emit_wants_type() accepts, each inside its #if. */
void emit_each_type(GString *b, const Schema *s, void (*fn)(GString *b, const Entity *e));

void emit_builtin_h(const Schema *s, const Output *o);
void emit_types(const Schema *s, const Output *o);
void emit_json(const Schema *s, const Output *o);
void emit_commands(const Schema *s, const Output *o);
void emit_events(const Schema *s, const Output *o);
void emit_introspect(const Schema *s, const Output *o);

#endif
