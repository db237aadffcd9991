/*
 * The checked schema: every entity (builtin, enum, struct, union, alternate,
 * array, command, event) with resolved type references.
 *
 * Lifecycle: loader.c reads expressions (following includes), build.c turns
 * each into an Entity (syntax checks), check.c resolves names and checks the
 * semantic rules. Emitters only read the result.
 */
#ifndef QAPI_GEN_SCHEMA_H
#define QAPI_GEN_SCHEMA_H

#include <glib.h>
#include <stdbool.h>
#include "diag.h"
#include "lexer.h"

typedef enum Meta {
    META_BUILTIN, META_ENUM, META_STRUCT, META_UNION, META_ALTERNATE, META_ARRAY,
    META_COMMAND, META_EVENT,
} Meta;

/* How a builtin maps to C and JSON. */
typedef enum BuiltinKind {
    BK_STR, BK_NUMBER, BK_INT, BK_UINT, BK_BOOL, BK_NULL, BK_ANY,
} BuiltinKind;

typedef struct Entity Entity;

typedef struct Feature {
    char *name;
    char *cond;                 /* C preprocessor condition, NULL = always */
} Feature;

typedef struct Member {
    char *name;
    bool optional;
    char *type_ref;             /* "int", "Foo" or "[Foo]" as written */
    Entity *type;               /* resolved */
    char *cond;
    GPtrArray *features;        /* Feature * */
    Loc loc;
} Member;

typedef struct EnumValue {
    char *name;
    char *cond;
    GPtrArray *features;
} EnumValue;

/* A union branch or an alternate branch. */
typedef struct Variant {
    char *name;
    char *type_ref;
    Entity *type;               /* for unions, "q_empty" for unlisted enum values */
    char *cond;
    bool implicit_empty;        /* added for an enum value without branch */
} Variant;

struct Entity {
    Meta meta;
    char *name;                 /* schema name ("q_obj_migrate-arg" for implicit types) */
    Loc loc;
    char *cond;
    GPtrArray *features;        /* Feature * */
    bool implicit;              /* synthesised (argument structs, arrays, anonymous bases) */
    char *doc_symbol;

    /* builtin */
    BuiltinKind bkind;
    const char *c_type;         /* "int64_t", "char *", ... */
    const char *json_type;      /* introspection json-type: "int", "string", ... */
    const char *int_desc;       /* "uint8_t" ... for range errors */
    int bits;                   /* integer width */

    /* enum */
    GPtrArray *values;          /* EnumValue * */
    char *prefix;               /* explicit 'prefix', or NULL */

    /* struct (base + own members); union (base members are in 'members') */
    char *base_ref;
    Entity *base;               /* struct base */
    GPtrArray *members;         /* Member *, own members only */
    char *discriminator;
    Member *tag;                /* union: the discriminator member */
    GPtrArray *variants;        /* union / alternate: Variant * */

    /* array */
    Entity *elem;

    /* command / event */
    char *data_ref;             /* 'data' naming a type */
    Entity *arg_type;           /* struct / union, implicit or named; NULL = no arguments */
    bool boxed;
    char *returns_ref;
    Entity *ret_type;           /* NULL = no 'returns' */
    bool allow_oob, allow_preconfig, coroutine, success_response, gen;

    bool used;                  /* reachable, for list emission */
};

typedef struct Pragmas {
    bool doc_required;
    GPtrArray *command_name_exceptions;   /* char * */
    GPtrArray *command_returns_exceptions;
    GPtrArray *member_name_exceptions;
} Pragmas;

typedef struct Schema {
    GPtrArray *entities;        /* every entity, definition order (implicit ones next to their user) */
    GHashTable *by_name;        /* name -> Entity * */
    Pragmas pragmas;
    Entity *empty_object;       /* "q_empty" */
} Schema;

/* loader.c: read the main file and its includes, in order. */
SchemaExpr *loader_read(const char *main_file, Pragmas *pragmas);

/* build.c: expressions -> entities, with syntax checks. */
Schema *schema_build(SchemaExpr *exprs, Pragmas *pragmas);
Entity *schema_lookup(Schema *s, const char *name);
void schema_add(Schema *s, Entity *e, const Loc *loc);
Entity *schema_array_of(Schema *s, Entity *elem);

/* check.c: resolve references and check the semantic rules. */
void schema_check(Schema *s);

/* Members of a struct including base members, base first (Member *; free with g_ptr_array_unref). */
GPtrArray *entity_all_members(const Entity *e);
/* Is a C value of this type stored inline (needs has_ when optional)? */
bool entity_is_scalar(const Entity *e);
bool entity_is_object(const Entity *e);   /* struct or union */

#endif
