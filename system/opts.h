/*
 * Small parsers for QEMU-style option text (system/opts.c).
 */
#ifndef MIGVM_SYSTEM_OPTS_H
#define MIGVM_SYSTEM_OPTS_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

/* A size like QEMU's -m: plain numbers are in default_unit; suffixes
 * k/K, M, G, T (powers of 1024, an optional B/b is ignored); fractions allowed
 * ("1.5G"). Rejects zero, negatives, junk and overflow. */
bool parse_size(const char *text, uint64_t default_unit, uint64_t *out);

/* "on"/"off" and QEMU's synonyms (yes/no, true/false). */
bool parse_bool(const char *text, bool *out);

/* Split "a,b=c,,d" at unescaped commas (",," is a literal comma). */
GPtrArray *split_opts(const char *text);

#endif
