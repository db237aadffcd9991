/*
 * qapi-gen: compile a QAPI schema into C (see docs/qapi-codegen.md).
 *
 *   qapi-gen -o OUTDIR SCHEMA.json
 *
 * Writes qapi-builtin.h, qapi-types.[ch], qapi-json.[ch], qapi-commands.[ch],
 * qapi-events.[ch] and qapi-introspect.[ch] into OUTDIR. A schema error is
 * reported as "FILE:LINE: message" and the exit status is 1.
 */
#include "emit.h"

#include <stdio.h>
#include <string.h>

static void usage(void)
{
    fprintf(stderr, "usage: qapi-gen [-o OUTDIR] SCHEMA.json\n"
                    "       qapi-gen --check SCHEMA.json   (check only, write nothing)\n");
}

int main(int argc, char **argv)
{
    const char *outdir = ".";
    const char *schema_file = NULL;
    bool check_only = false;
    Pragmas pragmas = { 0 };
    SchemaExpr *exprs;
    Schema *s;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-o") == 0 && i + 1 < argc) {
            outdir = argv[++i];
        } else if (strcmp(argv[i], "--check") == 0) {
            check_only = true;
        } else if (argv[i][0] == '-' || schema_file) {
            usage();
            return 2;
        } else {
            schema_file = argv[i];
        }
    }
    if (!schema_file) {
        usage();
        return 2;
    }

    exprs = loader_read(schema_file, &pragmas);
    s = schema_build(exprs, &pragmas);
    schema_check(s);
    if (check_only) {
        return 0;
    }
    if (g_mkdir_with_parents(outdir, 0777) < 0) {
        perror(outdir);
        return 1;
    }

    Output o = { .dir = outdir, .schema_file = schema_file };
    emit_builtin_h(s, &o);
    emit_types(s, &o);
    emit_json(s, &o);
    emit_commands(s, &o);
    emit_events(s, &o);
    emit_introspect(s, &o);
    return 0;
}
