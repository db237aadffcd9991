/*
 * Reading one schema file: the JSON dialect of QAPI schemas.
 *
 * Differences from JSON: strings are single-quoted ('\\', '\'', '\"' and
 * '\/' are the only escapes), '#' starts a comment running to the end of the
 * line, and the only values are strings, true, false, objects and arrays.
 * The file is a sequence of top-level objects ("expressions").
 * Duplicate keys are an error (json-c would silently keep the last one).
 *
 * Documentation blocks start and end with a line holding only "##"; the
 * first line of a block, "# @Name:", names the entity it documents.
 */
#ifndef QAPI_GEN_LEXER_H
#define QAPI_GEN_LEXER_H

#include <json-c/json.h>
#include "diag.h"

typedef struct SchemaExpr {
    json_object *obj;        /* the expression, keys in source order */
    Loc loc;                 /* line of its opening brace */
    char *doc_symbol;        /* "@Name" of the doc block right before it, or NULL */
    struct SchemaExpr *next;
} SchemaExpr;

/* Parse a whole file; NULL list for an empty file. Exits on error. */
SchemaExpr *lexer_parse_file(const char *filename);

#endif
