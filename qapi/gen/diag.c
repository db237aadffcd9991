/* Schema errors are fatal: the first one is reported and the build stops. */
#include "diag.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void diag_fatal(const Loc *loc, const char *fmt, ...)
{
    va_list ap;

    if (loc && loc->file) {
        fprintf(stderr, "%s:%d: ", loc->file, loc->line);
    } else {
        fprintf(stderr, "qapi-gen: ");
    }
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(1);
}
