/*
 * JSON lexical layer for the QMP input streamer (private to util/).
 *
 * A byte-at-a-time state machine that cuts input into tokens the way QEMU's
 * QMP lexer does: RFC 8259 tokens plus single-quoted strings, keywords as
 * [a-z]+ (the parser rejects unknown ones), escapes checked by the parser.
 * A byte that fits no token ends the token with JSON_TOK_ERROR; the lexer
 * then skips input until a structural character, an ASCII control character
 * other than TAB, or 0xFE/0xFF, and resumes there.
 *
 * Also holds the modified-UTF-8 rules shared by the parser and the writer.
 */
#ifndef MIGVM_JSON_LEXER_H
#define MIGVM_JSON_LEXER_H

#include <stdbool.h>
#include <stddef.h>
#include <glib.h>

typedef enum JsonTokenType {
    JSON_TOK_LCURLY,
    JSON_TOK_RCURLY,
    JSON_TOK_LSQUARE,
    JSON_TOK_RSQUARE,
    JSON_TOK_COLON,
    JSON_TOK_COMMA,
    JSON_TOK_STRING,    /* text includes the quotes, escapes undecoded */
    JSON_TOK_INTEGER,
    JSON_TOK_FLOAT,
    JSON_TOK_KEYWORD,
    JSON_TOK_ERROR,     /* lexical error: text is the bad token so far */
    JSON_TOK_OVERSIZE,  /* token text passed text_limit; the rest is not kept */
} JsonTokenType;

/* text is NUL-terminated and only valid during the call. */
typedef void JsonTokenFn(void *opaque, JsonTokenType type, const char *text, size_t len);

typedef struct JsonLexer {
    int state;
    GString *text;        /* text of the token being lexed */
    bool keep_text;       /* false: run the state machine only (discarding) */
    bool truncated;       /* current token passed text_limit */
    size_t text_limit;    /* longest token text kept when keep_text */
    bool stop;            /* set by the token callback to abandon the feed */
    JsonTokenFn *emit;
    void *opaque;
} JsonLexer;

void json_lexer_init(JsonLexer *lx, JsonTokenFn *emit, void *opaque);
void json_lexer_feed(JsonLexer *lx, const char *buf, size_t len);
/* End of input: finish (or fail) the pending token. */
void json_lexer_flush(JsonLexer *lx);
/* Forget the pending token and any error recovery. */
void json_lexer_reset(JsonLexer *lx);
void json_lexer_destroy(JsonLexer *lx);

/*
 * Decode one modified-UTF-8 sequence (UTF-8 plus "\xC0\x80" for U+0000) from
 * s[0..n). Returns the code point, or -1 for an invalid sequence (truncated,
 * overlong, surrogate, noncharacter, beyond U+10FFFF, stray byte). *used is
 * always >= 1 when n >= 1: the bytes to skip.
 */
int json_utf8_decode(const char *s, size_t n, size_t *used);
/* Append code point cp as modified UTF-8; false if cp is not a valid
 * Unicode scalar (surrogate, noncharacter, out of range). */
bool json_utf8_append(GString *out, int cp);

#endif
