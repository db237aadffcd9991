/* Diagnostics of the schema compiler: "FILE:LINE: message" on stderr, exit status 1. */
#ifndef QAPI_GEN_DIAG_H
#define QAPI_GEN_DIAG_H

/* Where something was written in the schema. */
typedef struct Loc {
    const char *file;
    int line;
} Loc;

/* Report a schema error at loc (NULL: no position) and exit(1). */
void diag_fatal(const Loc *loc, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));

#endif
