/*
 * HMP argument parsing: the args_type mini-language, words, expressions,
 * sizes. Pure functions: errors are appended to a GString as complete
 * lines ("...\n"), which the caller prints.
 *
 * args_type is a comma-separated list of NAME:TYPE with TYPE one of
 *   s   one word, or a "quoted string" with \n \r \\ \' \" escapes
 *   S   the rest of the line
 *   b   on | off
 *   -x  a flag written "-x"; flags are matched in declared order
 *   i   integer expression that must fit 32 bits; l: 64-bit expression
 * and a trailing '?' marking the argument optional (s, S, i, l).
 */
#ifndef MIGVM_HMP_PARSE_H
#define MIGVM_HMP_PARSE_H

#include <stdbool.h>
#include <stdint.h>
#include <glib.h>

typedef struct HmpArg {
    char *name;
    char kind;              /* 's', 'S', 'b', '-', 'i', 'l' */
    bool present;
    char *str;              /* s, S */
    bool flag;              /* b value, or '-' flag given */
    int64_t num;            /* i, l */
} HmpArg;

typedef struct HmpArgs {
    GArray *args;           /* HmpArg */
} HmpArgs;

/* Parse the arguments in `p` (the text after the command name) against
 * args_type. cmd_name is the table name (aliases included) used in
 * messages. NULL on failure with the message lines appended to err. */
HmpArgs *hmp_args_parse(const char *cmd_name, const char *args_type, const char *p, GString *err);
void hmp_args_free(HmpArgs *args);

bool hmp_args_has(const HmpArgs *args, const char *name);
/* NULL when absent. */
const char *hmp_args_str(const HmpArgs *args, const char *name);
/* false when absent. */
bool hmp_args_bool(const HmpArgs *args, const char *name);
/* 0 when absent. */
int64_t hmp_args_int(const HmpArgs *args, const char *name);

/* Read one word or quoted string after leading blanks. Returns NULL at end
 * of line (err untouched) or on a malformed quoted string (err set). */
char *hmp_get_word(const char **pp, GString *err);

/* Split a line into words (hmp_get_word); NULL on a malformed string. */
GPtrArray *hmp_split_words(const char *line, GString *err);

/* Evaluate an integer expression (+ - * / % & | ^ ~ unary -, parentheses,
 * decimal/0x hex/0 octal numbers). Trailing blanks are skipped. */
bool hmp_eval_expr(const char **pp, int64_t *val, GString *err);

/* A size: number with optional fraction and suffix B K M G T P E (powers of
 * 1024, any case); no suffix means default_unit. Leading blanks allowed,
 * nothing may follow; a fraction needs a unit larger than one byte.
 * Returns 0, -ERANGE when the number does not fit 64 bits (its digits, even
 * after a minus sign, or the scaled value: QEMU 7.2 then says "out of
 * range"), or -EINVAL (negative, empty, junk). */
int hmp_parse_size(const char *text, uint64_t default_unit, uint64_t *out);

/* on/yes/true/y and off/no/false/n. */
bool hmp_parse_bool_word(const char *text, bool *out);

/* An unsigned integer (base prefixes allowed, "-N" wraps as strtoull
 * does), nothing may follow. */
bool hmp_parse_uint64(const char *text, uint64_t *out);

#endif
