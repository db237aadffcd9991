/* C spelling of schema names. */
#ifndef QAPI_GEN_CNAME_H
#define QAPI_GEN_CNAME_H

#include "schema.h"

/* '-' and '.' -> '_'; C keywords (and 'unix', 'linux') get a 'q_' prefix. Newly allocated. */
char *c_name(const char *name);
/* Same without keyword protection (type names, function name parts). */
char *c_ident(const char *name);
/* "MigrationStatus" -> "MIGRATION_STATUS" (the enum constant prefix, without trailing '_'). */
char *c_enum_prefix(const Entity *e);
/* "MIGRATION_STATUS_PRE_SWITCHOVER" */
char *c_enum_const(const Entity *e, const char *value);
/* C type of a value of this type as stored in a struct member:
 * "char *", "int64_t", "Foo *", "FooList *", "MigrationStatus", ... */
char *c_type(const Entity *t);
/* Type name part of generated function names: "str", "int8", "Foo", "FooList", "q_obj_migrate_arg". */
char *c_type_name(const Entity *t);

/* QTYPE_* constant an alternate branch of this type is stored under. */
const char *c_qtype(const Entity *t);
/* Does a value of this type occupy storage (everything but 'null')? */
bool c_has_storage(const Entity *t);
/* Is a struct member of this type stored by pointer that needs freeing? */
bool c_is_pointer(const Entity *t);
#endif
