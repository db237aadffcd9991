/* Tokenizer and recursive-descent parser for schema files (see lexer.h). */
#include "lexer.h"

#include <glib.h>
#include <stdbool.h>
#include <string.h>

typedef enum TokKind { TOK_EOF, TOK_PUNCT, TOK_STRING, TOK_TRUE, TOK_FALSE } TokKind;

typedef struct Lexer {
    const char *file;
    const char *text;
    size_t pos;
    int line;
    /* current token */
    TokKind kind;
    char punct;
    GString *str;
    int tok_line;
    /* documentation */
    bool in_doc;
    bool doc_first_line;
    char *doc_symbol;        /* symbol of the last completed doc block */
} Lexer;

static void lex_error(Lexer *lx, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

static void lex_error(Lexer *lx, const char *fmt, ...)
{
    va_list ap;
    char *msg;
    Loc loc = { lx->file, lx->tok_line ? lx->tok_line : lx->line };

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    diag_fatal(&loc, "%s", msg);
}

/* A comment line: track "##" doc blocks and remember the "# @Name:" line. */
static void lex_comment(Lexer *lx, const char *start, size_t len)
{
    g_autofree char *line = g_strndup(start, len);

    g_strchomp(line);
    if (strcmp(line, "##") == 0) {
        lx->in_doc = !lx->in_doc;
        lx->doc_first_line = lx->in_doc;
        if (lx->in_doc) {
            g_clear_pointer(&lx->doc_symbol, g_free);
        }
        return;
    }
    if (lx->in_doc && lx->doc_first_line) {
        lx->doc_first_line = false;
        if (g_str_has_prefix(line, "# @")) {
            const char *name = line + 3;
            size_t n = strcspn(name, ":");
            if (name[n] == ':') {
                lx->doc_symbol = g_strndup(name, n);
                return;
            }
        }
        lx->doc_symbol = g_strdup("");      /* a block without a symbol line */
    }
}

static void lex_string(Lexer *lx)
{
    g_string_truncate(lx->str, 0);
    for (;;) {
        char c = lx->text[lx->pos++];
        if (c == '\0' || c == '\n') {
            lex_error(lx, "missing terminating \"'\"");
        }
        if (c == '\'') {
            break;
        }
        if (c == '\\') {
            c = lx->text[lx->pos++];
            if (!strchr("\\'\"/", c) || c == '\0') {
                lex_error(lx, "unknown escape \\%c", c ? c : '0');
            }
        } else if ((unsigned char)c < 0x20) {
            lex_error(lx, "control character in string");
        }
        g_string_append_c(lx->str, c);
    }
    lx->kind = TOK_STRING;
}

static void lex_next(Lexer *lx)
{
    for (;;) {
        char c = lx->text[lx->pos];
        lx->tok_line = lx->line;
        if (c == '\0') {
            lx->kind = TOK_EOF;
            return;
        }
        if (c == '\n') {
            lx->line++;
            lx->pos++;
        } else if (c == ' ' || c == '\t' || c == '\r') {
            lx->pos++;
        } else if (c == '#') {
            size_t len = strcspn(lx->text + lx->pos, "\n");
            lex_comment(lx, lx->text + lx->pos, len);
            lx->pos += len;
        } else if (strchr("{}[]:,", c)) {
            lx->pos++;
            lx->kind = TOK_PUNCT;
            lx->punct = c;
            return;
        } else if (c == '\'') {
            lx->pos++;
            lex_string(lx);
            return;
        } else if (strncmp(lx->text + lx->pos, "true", 4) == 0) {
            lx->pos += 4;
            lx->kind = TOK_TRUE;
            return;
        } else if (strncmp(lx->text + lx->pos, "false", 5) == 0) {
            lx->pos += 5;
            lx->kind = TOK_FALSE;
            return;
        } else if (c == '"') {
            lex_error(lx, "strings use single quotes, not '\"'");
        } else {
            lex_error(lx, "stray '%c'", c);
        }
    }
}

static bool lex_is(Lexer *lx, char punct)
{
    return lx->kind == TOK_PUNCT && lx->punct == punct;
}

static void lex_expect(Lexer *lx, char punct, const char *what)
{
    if (!lex_is(lx, punct)) {
        lex_error(lx, "expected %s", what);
    }
    lex_next(lx);
}

static json_object *parse_value(Lexer *lx);

static json_object *parse_object(Lexer *lx)
{
    json_object *obj = json_object_new_object();

    lex_expect(lx, '{', "'{'");
    if (lex_is(lx, '}')) {
        lex_next(lx);
        return obj;
    }
    for (;;) {
        g_autofree char *key = NULL;
        if (lx->kind != TOK_STRING) {
            lex_error(lx, "expected string key");
        }
        key = g_strdup(lx->str->str);
        if (json_object_object_get_ex(obj, key, NULL)) {
            lex_error(lx, "duplicate key '%s'", key);
        }
        lex_next(lx);
        lex_expect(lx, ':', "':'");
        json_object_object_add(obj, key, parse_value(lx));
        if (lex_is(lx, '}')) {
            lex_next(lx);
            return obj;
        }
        lex_expect(lx, ',', "',' or '}'");
    }
}

static json_object *parse_array(Lexer *lx)
{
    json_object *arr = json_object_new_array();

    lex_expect(lx, '[', "'['");
    if (lex_is(lx, ']')) {
        lex_next(lx);
        return arr;
    }
    for (;;) {
        json_object_array_add(arr, parse_value(lx));
        if (lex_is(lx, ']')) {
            lex_next(lx);
            return arr;
        }
        lex_expect(lx, ',', "',' or ']'");
    }
}

static json_object *parse_value(Lexer *lx)
{
    json_object *v;

    switch (lx->kind) {
    case TOK_STRING:
        v = json_object_new_string(lx->str->str);
        lex_next(lx);
        return v;
    case TOK_TRUE:
    case TOK_FALSE:
        v = json_object_new_boolean(lx->kind == TOK_TRUE);
        lex_next(lx);
        return v;
    case TOK_PUNCT:
        if (lx->punct == '{') {
            return parse_object(lx);
        }
        if (lx->punct == '[') {
            return parse_array(lx);
        }
        break;
    case TOK_EOF:
        lex_error(lx, "unexpected end of file");
    }
    lex_error(lx, "expected a value");
}

SchemaExpr *lexer_parse_file(const char *filename)
{
    g_autofree char *text = NULL;
    GError *gerr = NULL;
    Lexer lx = { .file = filename, .line = 1 };
    SchemaExpr *head = NULL, **tail = &head;

    if (!g_file_get_contents(filename, &text, NULL, &gerr)) {
        diag_fatal(NULL, "can't read schema file '%s': %s", filename, gerr->message);
    }
    lx.text = text;
    lx.str = g_string_new(NULL);
    lex_next(&lx);
    while (lx.kind != TOK_EOF) {
        SchemaExpr *e = g_new0(SchemaExpr, 1);
        if (!lex_is(&lx, '{')) {
            lex_error(&lx, "expected '{' starting a top-level expression");
        }
        e->loc.file = filename;
        e->loc.line = lx.tok_line;
        e->doc_symbol = lx.doc_symbol;
        lx.doc_symbol = NULL;
        e->obj = parse_object(&lx);
        *tail = e;
        tail = &e->next;
    }
    if (lx.in_doc) {
        lex_error(&lx, "documentation block not terminated with '##'");
    }
    g_string_free(lx.str, TRUE);
    g_free(lx.doc_symbol);
    return head;
}
