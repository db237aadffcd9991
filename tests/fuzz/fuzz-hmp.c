/*
 * libFuzzer target: arbitrary bytes as HMP command lines, on the real
 * machine of fuzz-machine.c (the state the commands print and change is
 * real) through the real command table, argument parser (monitor/hmp-parse.c:
 * words, quoting, expressions, sizes, flags), handlers and printers, on a
 * capture monitor with the BQL held, as the main loop runs them.
 *
 * Commands that would reach outside the process or start the guest (migrate,
 * migrate_incoming, migrate_check: exec: runs a shell; memsave, pmemsave:
 * write files; cont; quit; calc_dirty_rate: a measuring thread) have their
 * arguments parsed and are not run. Each line (split at '\n') is a command.
 *   make fuzz-hmp && build/fuzz/fuzz-hmp -dict=tests/fuzz/fuzz-hmp.dict tests/fuzz/corpus/fuzz-hmp
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

#include "fuzz-machine.h"
#include "hmp-int.h"
#include "hmp-parse.h"
#include "monitor-int.h"
#include "vm.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static const char *const parse_only[] = {
    "migrate", "migrate_incoming", "migrate_check", "memsave", "pmemsave", "cont", "c", "quit", "q",
    "calc_dirty_rate", NULL,
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_machine_init("soft");
    return 0;
}

static bool alias_in(const char *names, const char *word, size_t len)
{
    for (const char *p = names; *p;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        if (n == len && !memcmp(p, word, len)) {
            return true;
        }
        p += n + (bar != NULL);
    }
    return false;
}

/* The table entry of a command that must only be parsed, or NULL. */
static const HmpCommand *parse_only_command(const char *line, const char **rest)
{
    const char *w = line;
    while (isspace((unsigned char)*w)) {
        w++;
    }
    const char *end = w;
    while (*end && !isspace((unsigned char)*end)) {
        end++;
    }
    for (int i = 0; parse_only[i]; i++) {
        if (strlen(parse_only[i]) == (size_t)(end - w) && !memcmp(parse_only[i], w, end - w)) {
            for (const HmpCommand *c = hmp_cmds; c->name; c++) {
                if (alias_in(c->name, w, end - w)) {
                    *rest = end;
                    return c;
                }
            }
        }
    }
    return NULL;
}

static void run_line(Monitor *mon, const char *line)
{
    const char *rest;
    const HmpCommand *c = parse_only_command(line, &rest);
    if (!c) {
        hmp_handle_command(mon, line);
        return;
    }
    while (isspace((unsigned char)*rest)) {
        rest++;
    }
    g_autoptr(GString) err = g_string_new(NULL);
    HmpArgs *args = hmp_args_parse(c->name, c->args_type, rest, err);
    if (args) {
        hmp_args_free(args);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bql_lock();
    Monitor *mon = monitor_new_capture();
    Monitor *prev = monitor_set_cur(mon);
    const char *p = (const char *)data, *end = p + size;

    while (p < end) {
        const char *nl = memchr(p, '\n', end - p);
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char *line = g_strndup(p, len);     /* a NUL in the line ends it, as on the console */
        run_line(mon, line);
        g_free(line);
        p += len + 1;
    }
    monitor_set_cur(prev);
    monitor_free(mon);
    bql_unlock();
    return 0;
}
