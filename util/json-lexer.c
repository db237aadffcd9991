/*
 * JSON lexer: bytes in, tokens out (see json-lexer.h for the token rules).
 *
 * Each byte either extends the current token, ends it (a delimiter that is
 * then looked at again from the start state: "lookahead"), or is an error.
 * Bytes that cause an error belong to the error token, as in QEMU, so the
 * error text ends with the offending byte.
 */
#include "json-lexer.h"

enum {
    LEX_START,
    LEX_DQ_STRING,
    LEX_DQ_ESCAPE,
    LEX_SQ_STRING,
    LEX_SQ_ESCAPE,
    LEX_SIGN,           /* after '-' */
    LEX_ZERO,           /* integer part is "0" */
    LEX_DIGITS,         /* integer part 1-9... */
    LEX_MANTISSA,       /* after '.' */
    LEX_MANTISSA_DIGITS,
    LEX_EXP_E,          /* after 'e'/'E' */
    LEX_EXP_SIGN,
    LEX_EXP_DIGITS,
    LEX_KEYWORD,
    LEX_RECOVERY,       /* skipping after an error */
};

/* What one byte does to the current token. */
typedef enum Step {
    STEP_EXTEND,        /* byte is part of the token, state changes to `next` */
    STEP_FINISH,        /* byte completes the token (closing quote, structural) */
    STEP_END_BEFORE,    /* token ended just before this byte: emit, re-read byte */
    STEP_SKIP,          /* byte is not part of any token (whitespace, recovery) */
    STEP_ERROR,         /* byte is invalid here: error token includes it */
} Step;

/* Largest token buffer kept between tokens; bigger ones are released. */
#define LEXER_IDLE_CAPACITY 4096

void json_lexer_init(JsonLexer *lx, JsonTokenFn *emit, void *opaque)
{
    lx->state = LEX_START;
    lx->text = g_string_sized_new(64);
    lx->keep_text = true;
    lx->truncated = false;
    lx->text_limit = G_MAXSIZE;
    lx->stop = false;
    lx->emit = emit;
    lx->opaque = opaque;
}

void json_lexer_destroy(JsonLexer *lx)
{
    g_string_free(lx->text, TRUE);
    lx->text = NULL;
}

static void clear_text(JsonLexer *lx)
{
    if (lx->text->allocated_len > LEXER_IDLE_CAPACITY) {
        g_string_free(lx->text, TRUE);
        lx->text = g_string_sized_new(64);
    } else {
        g_string_truncate(lx->text, 0);
    }
    lx->truncated = false;
}

void json_lexer_reset(JsonLexer *lx)
{
    clear_text(lx);
    lx->state = LEX_START;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_structural(unsigned char c)
{
    return c == '{' || c == '}' || c == '[' || c == ']' || c == ':' || c == ',';
}

static JsonTokenType structural_type(unsigned char c)
{
    switch (c) {
    case '{': return JSON_TOK_LCURLY;
    case '}': return JSON_TOK_RCURLY;
    case '[': return JSON_TOK_LSQUARE;
    case ']': return JSON_TOK_RSQUARE;
    case ':': return JSON_TOK_COLON;
    default:  return JSON_TOK_COMMA;
    }
}

static Step step_start(unsigned char c, int *next)
{
    if (c == ' ' || c == '\t' || c == '\r' || c == '\n') {
        return STEP_SKIP;
    }
    if (is_structural(c)) {
        return STEP_FINISH;
    }
    if (c == '"') {
        *next = LEX_DQ_STRING;
    } else if (c == '\'') {
        *next = LEX_SQ_STRING;
    } else if (c == '-') {
        *next = LEX_SIGN;
    } else if (c == '0') {
        *next = LEX_ZERO;
    } else if (c >= '1' && c <= '9') {
        *next = LEX_DIGITS;
    } else if (c >= 'a' && c <= 'z') {
        *next = LEX_KEYWORD;
    } else {
        return STEP_ERROR;
    }
    return STEP_EXTEND;
}

/* Strings take any byte 0x20..0xFD; the parser validates UTF-8 and escapes. */
static Step step_string(int state, unsigned char c, int *next)
{
    bool dq = state == LEX_DQ_STRING || state == LEX_DQ_ESCAPE;
    bool escaped = state == LEX_DQ_ESCAPE || state == LEX_SQ_ESCAPE;

    if (c < 0x20 || c >= 0xFE) {
        return STEP_ERROR;
    }
    if (escaped) {
        *next = dq ? LEX_DQ_STRING : LEX_SQ_STRING;
        return STEP_EXTEND;
    }
    if (c == (dq ? '"' : '\'')) {
        return STEP_FINISH;
    }
    if (c == '\\') {
        *next = dq ? LEX_DQ_ESCAPE : LEX_SQ_ESCAPE;
    }
    return STEP_EXTEND;
}

static Step step_number(int state, unsigned char c, int *next)
{
    switch (state) {
    case LEX_SIGN:
        if (c == '0') {
            *next = LEX_ZERO;
            return STEP_EXTEND;
        }
        if (is_digit(c)) {
            *next = LEX_DIGITS;
            return STEP_EXTEND;
        }
        return STEP_ERROR;
    case LEX_ZERO:
        if (is_digit(c)) {
            return STEP_ERROR;              /* no leading zeros */
        }
        if (c == '.') {
            *next = LEX_MANTISSA;
            return STEP_EXTEND;
        }
        return STEP_END_BEFORE;
    case LEX_DIGITS:
    case LEX_MANTISSA_DIGITS:
        if (is_digit(c)) {
            return STEP_EXTEND;
        }
        if (c == 'e' || c == 'E') {
            *next = LEX_EXP_E;
            return STEP_EXTEND;
        }
        if (c == '.' && state == LEX_DIGITS) {
            *next = LEX_MANTISSA;
            return STEP_EXTEND;
        }
        return STEP_END_BEFORE;
    case LEX_MANTISSA:
        *next = LEX_MANTISSA_DIGITS;
        return is_digit(c) ? STEP_EXTEND : STEP_ERROR;
    case LEX_EXP_E:
        if (c == '+' || c == '-') {
            *next = LEX_EXP_SIGN;
            return STEP_EXTEND;
        }
        /* fall through */
    case LEX_EXP_SIGN:
        *next = LEX_EXP_DIGITS;
        return is_digit(c) ? STEP_EXTEND : STEP_ERROR;
    default: /* LEX_EXP_DIGITS */
        return is_digit(c) ? STEP_EXTEND : STEP_END_BEFORE;
    }
}

static Step step(int state, unsigned char c, int *next)
{
    *next = state;
    switch (state) {
    case LEX_START:
        return step_start(c, next);
    case LEX_DQ_STRING:
    case LEX_DQ_ESCAPE:
    case LEX_SQ_STRING:
    case LEX_SQ_ESCAPE:
        return step_string(state, c, next);
    case LEX_KEYWORD:
        return c >= 'a' && c <= 'z' ? STEP_EXTEND : STEP_END_BEFORE;
    case LEX_RECOVERY:
        if (is_structural(c) || (c < 0x20 && c != '\t') || c >= 0xFE) {
            *next = LEX_START;
            return STEP_END_BEFORE;
        }
        return STEP_SKIP;
    default:
        return step_number(state, c, next);
    }
}

/* Type of the token that ends in `state` (numbers and keywords end by lookahead). */
static JsonTokenType finished_type(int state)
{
    switch (state) {
    case LEX_ZERO:
    case LEX_DIGITS:
        return JSON_TOK_INTEGER;
    case LEX_MANTISSA_DIGITS:
    case LEX_EXP_DIGITS:
        return JSON_TOK_FLOAT;
    case LEX_KEYWORD:
        return JSON_TOK_KEYWORD;
    default:
        return JSON_TOK_STRING;
    }
}

static void append(JsonLexer *lx, unsigned char c)
{
    if (!lx->keep_text || lx->truncated) {
        return;
    }
    if (lx->text->len + 1 > lx->text_limit) {
        lx->truncated = true;
        lx->emit(lx->opaque, JSON_TOK_OVERSIZE, lx->text->str, lx->text->len);
        return;
    }
    g_string_append_c(lx->text, c);
}

static void emit_token(JsonLexer *lx, JsonTokenType type)
{
    /* The callback may change keep_text/text_limit, never the text itself. */
    lx->emit(lx->opaque, type, lx->text->str, lx->text->len);
    clear_text(lx);
}

static void emit_error(JsonLexer *lx, unsigned char c)
{
    if (!lx->keep_text || lx->truncated) {
        /* Text was not kept: report the offending byte alone. */
        g_string_truncate(lx->text, 0);
        g_string_append_c(lx->text, c);
    } else {
        g_string_append_c(lx->text, c);
    }
    emit_token(lx, JSON_TOK_ERROR);
    lx->state = LEX_RECOVERY;
}

/* Run one byte through the machine; false if it must be looked at again. */
static bool lex_byte(JsonLexer *lx, unsigned char c)
{
    int next;

    switch (step(lx->state, c, &next)) {
    case STEP_EXTEND:
        append(lx, c);
        lx->state = next;
        return true;
    case STEP_FINISH:
        append(lx, c);
        emit_token(lx, lx->state == LEX_START ? structural_type(c) : finished_type(lx->state));
        lx->state = LEX_START;
        return true;
    case STEP_END_BEFORE:
        if (lx->state != LEX_RECOVERY) {
            emit_token(lx, finished_type(lx->state));
        }
        lx->state = LEX_START;
        return false;
    case STEP_SKIP:
        return true;
    default:
        emit_error(lx, c);
        return true;
    }
}

void json_lexer_feed(JsonLexer *lx, const char *buf, size_t len)
{
    lx->stop = false;
    for (size_t i = 0; i < len && !lx->stop; i++) {
        while (!lex_byte(lx, (unsigned char)buf[i])) {
            /* lookahead: the byte is re-read in the start state */
        }
    }
}

void json_lexer_flush(JsonLexer *lx)
{
    int next;

    switch (lx->state) {
    case LEX_START:
    case LEX_RECOVERY:
        break;
    default:
        if (step(lx->state, ' ', &next) == STEP_END_BEFORE) {
            emit_token(lx, finished_type(lx->state));
        } else {
            /* unterminated string or number: an error without an extra byte */
            emit_token(lx, JSON_TOK_ERROR);
        }
        break;
    }
    lx->state = LEX_START;
}

int json_utf8_decode(const char *s, size_t n, size_t *used)
{
    static const int min_cp[] = { 0, 0, 0x80, 0x800, 0x10000, 0x200000, 0x4000000 };
    const unsigned char *p = (const unsigned char *)s;
    unsigned lead = p[0], len = 0;
    int cp;

    *used = 1;
    if (lead < 0x80) {
        return lead;
    }
    if (lead >= 0xFE || !(lead & 0x40)) {
        return -1;                      /* impossible byte or stray continuation */
    }
    for (unsigned mask = 0x80; lead & mask; mask >>= 1) {
        len++;
    }
    cp = lead & (0x7F >> len);
    for (unsigned i = 1; i < len; i++) {
        if (i >= n || (p[i] & 0xC0) != 0x80) {
            *used = i;
            return -1;                  /* truncated */
        }
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    *used = len;
    if (cp == 0 && len == 2) {
        return 0;                       /* modified UTF-8 NUL */
    }
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)
        || (cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE) {
        return -1;
    }
    return cp;
}

bool json_utf8_append(GString *out, int cp)
{
    if (cp < 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)
        || (cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE) {
        return false;
    }
    if (cp == 0) {
        g_string_append_len(out, "\xC0\x80", 2);
    } else {
        g_string_append_unichar(out, (gunichar)cp);
    }
    return true;
}
