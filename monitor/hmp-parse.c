/*
 * HMP argument parsing (see hmp-parse.h for the args_type language).
 *
 * Behaviour follows QEMU 7.2's monitor so scripts see the same results:
 * flags are matched in the order the command declares them (a flag that
 * belongs further down the list is skipped over, an unknown one is an
 * error), a missing 'b' value is "Expected 'on' or 'off'", and whatever
 * is left after the last argument is "extraneous characters".
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "hmp-parse.h"

static const char *skip_blanks(const char *p)
{
    while (*p && isspace((unsigned char)*p)) {
        p++;
    }
    return p;
}

/* ---- words ---- */

static bool unescape_quoted(const char **pp, GString *word, GString *err)
{
    const char *p = *pp + 1;        /* after the opening quote */

    for (;;) {
        char c = *p;
        if (c == '\0') {
            g_string_append(err, "unterminated string\n");
            return false;
        }
        p++;
        if (c == '"') {
            break;
        }
        if (c == '\\') {
            char e = *p;
            switch (e) {
            case 'n':  g_string_append_c(word, '\n'); break;
            case 'r':  g_string_append_c(word, '\r'); break;
            case '\\': case '\'': case '"':
                g_string_append_c(word, e);
                break;
            case '\0':
                g_string_append(err, "unterminated string\n");
                return false;
            default:
                g_string_append_printf(err, "unsupported escape code: '\\%c'\n", e);
                return false;
            }
            p++;
            continue;
        }
        g_string_append_c(word, c);
    }
    *pp = p;
    return true;
}

char *hmp_get_word(const char **pp, GString *err)
{
    const char *p = skip_blanks(*pp);
    g_autoptr(GString) word = g_string_new(NULL);

    if (*p == '\0') {
        *pp = p;
        return NULL;
    }
    if (*p == '"') {
        if (!unescape_quoted(&p, word, err)) {
            return NULL;
        }
    } else {
        while (*p && !isspace((unsigned char)*p)) {
            g_string_append_c(word, *p++);
        }
    }
    *pp = p;
    return g_string_free(g_steal_pointer(&word), FALSE);
}

GPtrArray *hmp_split_words(const char *line, GString *err)
{
    GPtrArray *words = g_ptr_array_new_with_free_func(g_free);
    const char *p = line;
    size_t err_len = err->len;
    char *w;

    while ((w = hmp_get_word(&p, err)) != NULL) {
        g_ptr_array_add(words, w);
    }
    if (err->len != err_len) {
        g_ptr_array_free(words, TRUE);
        return NULL;
    }
    return words;
}

/* ---- expressions ----
 * sum   := prod (('+' | '-') prod)*
 * prod  := logic (('*' | '/' | '%') logic)*
 * logic := unary (('&' | '|' | '^') unary)*
 * unary := '+' unary | '-' unary | '~' unary | '(' sum ')' | number
 * (QEMU's precedence: the bit operators bind tightest.) */

typedef struct ExprState {
    const char *p;
    GString *err;
    bool failed;
} ExprState;

static void expr_fail(ExprState *s, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
static void expr_fail(ExprState *s, const char *fmt, ...)
{
    va_list ap;

    if (s->failed) {
        return;
    }
    va_start(ap, fmt);
    g_string_append_vprintf(s->err, fmt, ap);
    va_end(ap);
    g_string_append_c(s->err, '\n');
    s->failed = true;
}

static void expr_skip(ExprState *s)
{
    s->p = skip_blanks(s->p);
}

/* Consume one operator character and the blanks after it. */
static char expr_next(ExprState *s)
{
    char c = *s->p++;

    expr_skip(s);
    return c;
}

static int64_t expr_sum(ExprState *s);

static int64_t expr_unary(ExprState *s)
{
    int64_t v = 0;
    char c = *s->p;

    switch (c) {
    case '+':
        expr_next(s);
        return expr_unary(s);
    case '-':
        expr_next(s);
        return (int64_t)(0 - (uint64_t)expr_unary(s));
    case '~':
        expr_next(s);
        return ~expr_unary(s);
    case '(':
        expr_next(s);
        v = expr_sum(s);
        if (s->failed) {
            return 0;
        }
        if (*s->p != ')') {
            expr_fail(s, "')' expected");
            return 0;
        }
        expr_next(s);
        return v;
    case '\0':
        expr_fail(s, "unexpected end of expression");
        return 0;
    default: {
        char *end;
        if (!isdigit((unsigned char)c)) {
            expr_fail(s, "invalid char '%c' in expression", c);
            return 0;
        }
        errno = 0;
        v = (int64_t)strtoull(s->p, &end, 0);
        if (errno == ERANGE) {
            expr_fail(s, "number too large");
            return 0;
        }
        s->p = end;
        break;
    }
    }
    expr_skip(s);
    return v;
}

static int64_t expr_logic(ExprState *s)
{
    int64_t v = expr_unary(s);

    while (!s->failed && (*s->p == '&' || *s->p == '|' || *s->p == '^')) {
        char op = expr_next(s);
        int64_t r = expr_unary(s);
        v = op == '&' ? (v & r) : op == '|' ? (v | r) : (v ^ r);
    }
    return v;
}

static int64_t expr_prod(ExprState *s)
{
    int64_t v = expr_logic(s);

    while (!s->failed && (*s->p == '*' || *s->p == '/' || *s->p == '%')) {
        char op = expr_next(s);
        int64_t r = expr_logic(s);
        if (s->failed) {
            break;
        }
        if (op == '*') {
            v = (int64_t)((uint64_t)v * (uint64_t)r);
        } else if (r == 0) {
            expr_fail(s, "division by zero");
        } else if (r == -1) {
            v = op == '/' ? (int64_t)(0 - (uint64_t)v) : 0;  /* no INT64_MIN / -1 trap */
        } else {
            v = op == '/' ? v / r : v % r;
        }
    }
    return v;
}

static int64_t expr_sum(ExprState *s)
{
    int64_t v = expr_prod(s);

    while (!s->failed && (*s->p == '+' || *s->p == '-')) {
        char op = expr_next(s);
        uint64_t r = (uint64_t)expr_prod(s);
        v = (int64_t)(op == '+' ? (uint64_t)v + r : (uint64_t)v - r);
    }
    return v;
}

bool hmp_eval_expr(const char **pp, int64_t *val, GString *err)
{
    ExprState s = { .p = skip_blanks(*pp), .err = err };
    int64_t v = expr_sum(&s);

    if (s.failed) {
        return false;
    }
    *val = v;
    *pp = skip_blanks(s.p);
    return true;
}

/* ---- scalar words ---- */

static uint64_t size_unit(char c, uint64_t default_unit)
{
    switch (g_ascii_toupper(c)) {
    case 'B': return 1;
    case 'K': return 1ULL << 10;
    case 'M': return 1ULL << 20;
    case 'G': return 1ULL << 30;
    case 'T': return 1ULL << 40;
    case 'P': return 1ULL << 50;
    case 'E': return 1ULL << 60;
    case '\0': return default_unit;
    default: return 0;
    }
}

int hmp_parse_size(const char *text, uint64_t default_unit, uint64_t *out)
{
    const char *p = skip_blanks(text);
    bool negative = *p == '-';
    const char *digits = p + (negative || *p == '+');
    char *end;
    uint64_t whole, unit;
    double fraction = 0;
    bool hex;

    if (!isdigit((unsigned char)*digits)) {
        return -EINVAL;             /* empty or junk */
    }
    hex = !negative && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X');
    errno = 0;
    whole = strtoull(p, &end, hex ? 16 : 10);
    if (errno == ERANGE) {
        return -ERANGE;
    }
    if (negative || end == p) {
        return -EINVAL;
    }
    if (*end == '.') {
        char *fend;
        if (hex) {
            return -EINVAL;
        }
        if (isdigit((unsigned char)end[1])) {
            fraction = strtod(end, &fend);   /* ".5" parses as 0.5 */
        } else {
            fend = end + 1;                  /* "1.k" is 1k */
        }
        end = fend;
    }
    unit = size_unit(*end, default_unit);
    if (unit == 0) {
        return -EINVAL;
    }
    if (*end != '\0') {
        end++;
    }
    if (*end != '\0' || (fraction != 0 && unit == 1)) {
        return -EINVAL;
    }
    /*
     * Integer arithmetic for the limit: long double is only as wide as double
     * on some hosts (and under valgrind), where 2^64-1 would round up to 2^64.
     * The fraction is below 1 and a unit at most 2^60, so its bytes fit.
     */
    uint64_t bytes;
    if (__builtin_mul_overflow(whole, unit, &bytes) ||
        __builtin_add_overflow(bytes, (uint64_t)(fraction * (double)unit), &bytes)) {
        return -ERANGE;
    }
    *out = bytes;
    return 0;
}

bool hmp_parse_bool_word(const char *text, bool *out)
{
    static const char *const yes[] = { "on", "yes", "true", "y" };
    static const char *const no[] = { "off", "no", "false", "n" };

    for (size_t i = 0; i < G_N_ELEMENTS(yes); i++) {
        if (strcmp(text, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcmp(text, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

bool hmp_parse_uint64(const char *text, uint64_t *out)
{
    const char *p = skip_blanks(text);
    char *end;
    uint64_t v;

    if (*p == '\0') {
        return false;
    }
    errno = 0;
    v = strtoull(p, &end, 0);
    if (errno == ERANGE || end == p || *end != '\0') {
        return false;
    }
    *out = v;
    return true;
}

/* ---- args_type ---- */

static void clear_arg(void *data)
{
    HmpArg *a = data;

    g_free(a->name);
    g_free(a->str);
}

void hmp_args_free(HmpArgs *args)
{
    if (!args) {
        return;
    }
    g_array_free(args->args, TRUE);
    g_free(args);
}

static const HmpArg *find_arg(const HmpArgs *args, const char *name)
{
    for (guint i = 0; i < args->args->len; i++) {
        const HmpArg *a = &g_array_index(args->args, HmpArg, i);
        if (strcmp(a->name, name) == 0) {
            return a;
        }
    }
    return NULL;
}

bool hmp_args_has(const HmpArgs *args, const char *name)
{
    const HmpArg *a = find_arg(args, name);
    return a && a->present;
}

const char *hmp_args_str(const HmpArgs *args, const char *name)
{
    const HmpArg *a = find_arg(args, name);
    return a && a->present ? a->str : NULL;
}

bool hmp_args_bool(const HmpArgs *args, const char *name)
{
    const HmpArg *a = find_arg(args, name);
    return a && a->present && a->flag;
}

int64_t hmp_args_int(const HmpArgs *args, const char *name)
{
    const HmpArg *a = find_arg(args, name);
    return a && a->present ? a->num : 0;
}

/* One declared argument: "name:type" where type is s, S, b, i, l, -x,
 * possibly followed by '?'. */
typedef struct ArgSpec {
    char name[64];
    char kind;
    char flag_char;
    bool optional;
} ArgSpec;

static bool next_spec(const char **tp, ArgSpec *spec)
{
    const char *t = *tp;
    const char *colon, *end;
    size_t n;

    if (*t == '\0') {
        return false;
    }
    colon = strchr(t, ':');
    end = strchr(t, ',');
    if (!end) {
        end = t + strlen(t);
    }
    if (!colon || colon > end) {
        colon = end;
    }
    n = MIN((size_t)(colon - t), sizeof(spec->name) - 1);
    memcpy(spec->name, t, n);
    spec->name[n] = '\0';
    spec->kind = colon < end ? colon[1] : 's';
    spec->flag_char = spec->kind == '-' && colon + 2 < end ? colon[2] : '\0';
    spec->optional = end > colon && end[-1] == '?';
    *tp = *end ? end + 1 : end;
    return true;
}

/* Is "-c" (c = *p) declared among the flags still ahead in args_type? */
static bool flag_declared_later(char c, const char *rest)
{
    ArgSpec spec;

    while (next_spec(&rest, &spec)) {
        if (spec.kind == '-' && spec.flag_char == c) {
            return true;
        }
    }
    return false;
}

static bool parse_one(const char *cmd_name, const ArgSpec *spec, const char *rest_types,
                      const char **pp, HmpArg *arg, GString *err)
{
    const char *p = skip_blanks(*pp);

    switch (spec->kind) {
    case 's':
        if (spec->optional && *p == '\0') {
            break;
        }
        arg->str = hmp_get_word(&p, err);
        if (!arg->str) {
            g_string_append_printf(err, "%s: string expected\n", cmd_name);
            return false;
        }
        arg->present = true;
        break;
    case 'S':
        if (*p == '\0') {
            if (spec->optional) {
                break;
            }
            g_string_append_printf(err, "%s: string expected\n", cmd_name);
            return false;
        }
        arg->str = g_strdup(p);
        arg->present = true;
        p += strlen(p);
        break;
    case 'b': {
        const char *beg = p;
        while (*p && !isspace((unsigned char)*p)) {
            p++;
        }
        if (p - beg == 2 && memcmp(beg, "on", 2) == 0) {
            arg->flag = true;
        } else if (p - beg == 3 && memcmp(beg, "off", 3) == 0) {
            arg->flag = false;
        } else {
            g_string_append(err, "Expected 'on' or 'off'\n");
            return false;
        }
        arg->present = true;
        break;
    }
    case '-':
        arg->present = true;        /* flags always exist; flag tells if given */
        if (*p != '-') {
            break;
        }
        if (p[1] == '\0' || isspace((unsigned char)p[1])) {
            g_string_append_printf(err, "%s: unsupported option -\n", cmd_name);
            return false;
        }
        if (p[1] == spec->flag_char) {
            arg->flag = true;
            p += 2;
        } else if (flag_declared_later(p[1], rest_types)) {
            p = *pp;                /* leave it for a later flag */
        } else {
            g_string_append_printf(err, "%s: unsupported option -%c\n", cmd_name, p[1]);
            return false;
        }
        break;
    case 'i':
    case 'l':
        if (spec->optional && *p == '\0') {
            break;
        }
        if (!hmp_eval_expr(&p, &arg->num, err)) {
            return false;
        }
        if (spec->kind == 'i' && (arg->num >> 32) != 0) {
            g_string_append_printf(err, "'%s' has failed: integer is for 32-bit values\n", cmd_name);
            return false;
        }
        arg->present = true;
        break;
    default:
        g_string_append_printf(err, "%s: unknown argument type '%c'\n", cmd_name, spec->kind);
        return false;
    }
    *pp = p;
    return true;
}

HmpArgs *hmp_args_parse(const char *cmd_name, const char *args_type, const char *p, GString *err)
{
    HmpArgs *args = g_new0(HmpArgs, 1);
    const char *types = args_type ? args_type : "";
    ArgSpec spec;

    args->args = g_array_new(FALSE, TRUE, sizeof(HmpArg));
    g_array_set_clear_func(args->args, clear_arg);

    while (next_spec(&types, &spec)) {
        HmpArg arg = { .name = g_strdup(spec.name), .kind = spec.kind };
        bool ok = parse_one(cmd_name, &spec, types, &p, &arg, err);

        g_array_append_val(args->args, arg);
        if (!ok) {
            hmp_args_free(args);
            return NULL;
        }
    }
    p = skip_blanks(p);
    if (*p != '\0') {
        g_string_append_printf(err, "%s: extraneous characters at the end of line\n", cmd_name);
        hmp_args_free(args);
        return NULL;
    }
    return args;
}
