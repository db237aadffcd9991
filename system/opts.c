/*
 * Small parsers for QEMU-style option text, shared by the command line and
 * the character device specs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "opts.h"

GPtrArray *split_opts(const char *text)
{
    GPtrArray *items = g_ptr_array_new_with_free_func(g_free);
    GString *cur = g_string_new(NULL);

    for (const char *p = text; *p; p++) {
        if (*p == ',' && p[1] == ',') {
            g_string_append_c(cur, ',');
            p++;
        } else if (*p == ',') {
            g_ptr_array_add(items, g_string_free(cur, FALSE));
            cur = g_string_new(NULL);
        } else {
            g_string_append_c(cur, *p);
        }
    }
    g_ptr_array_add(items, g_string_free(cur, FALSE));
    return items;
}

bool parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = { "on", "yes", "true", "y" };
    static const char *const no[] = { "off", "no", "false", "n" };

    for (size_t i = 0; i < G_N_ELEMENTS(yes); i++) {
        if (!strcmp(text, yes[i])) {
            *out = true;
            return true;
        }
        if (!strcmp(text, no[i])) {
            *out = false;
            return true;
        }
    }
    return false;
}

static uint64_t size_suffix_unit(char c, uint64_t default_unit)
{
    switch (c) {
    case '\0': return default_unit;
    case 'b': case 'B': return 1;
    case 'k': case 'K': return 1ULL << 10;
    case 'm': case 'M': return 1ULL << 20;
    case 'g': case 'G': return 1ULL << 30;
    case 't': case 'T': return 1ULL << 40;
    default: return 0;
    }
}

bool parse_size(const char *text, uint64_t default_unit, uint64_t *out)
{
    char *end;
    double frac = 0;

    if (!g_ascii_isdigit(text[0])) {
        return false;
    }
    errno = 0;
    unsigned long long whole = strtoull(text, &end, 10);
    if (errno) {
        return false;
    }
    if (*end == '.') {
        const char *dot = end;
        if (!g_ascii_isdigit(dot[1])) {
            return false;
        }
        frac = strtod(dot, &end);
    }
    uint64_t unit = size_suffix_unit(*end, default_unit);
    if (!unit) {
        return false;
    }
    if (*end) {
        end++;
        /* "512MB" and "1GiB"-less forms: allow one trailing B after a prefix. */
        if ((*end == 'b' || *end == 'B') && unit > 1) {
            end++;
        }
    }
    if (*end || whole > UINT64_MAX / unit) {
        return false;
    }
    uint64_t value = whole * unit;
    uint64_t extra = (uint64_t)(frac * (double)unit);
    if (value > UINT64_MAX - extra || value + extra == 0) {
        return false;
    }
    *out = value + extra;
    return true;
}
