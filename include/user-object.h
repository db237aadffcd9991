/*
 * User-creatable objects (-object, object-add, object-del): a registry of
 * named objects with QEMU 7.2's types, ids and errors (crypto/user-object.c).
 * Objects are reference counted: object-del removes the name at once, and a
 * TLS session that holds a reference keeps using the object until it ends.
 * Every function is safe from any thread.
 */
#ifndef MIGVM_USER_OBJECT_H
#define MIGVM_USER_OBJECT_H

#include <stdbool.h>
#include "error.h"
#include "qapi-types.h"

typedef struct UserObject UserObject;

/* object-add: create and register; QEMU 7.2's errors (bad id, duplicate,
 * the type's own checks, e.g. missing certificate files). */
bool user_object_add(const ObjectOptions *opts, Error **errp);
/* -object / HMP object_add: "TYPE,id=ID,key=value,..." ("qom-type=TYPE"
 * also accepted as the first item; authz-list rules as rules.N.match=...). */
bool user_object_add_text(const char *text, Error **errp);
bool user_object_del(const char *id, Error **errp);

/* The object named id with a reference taken, or NULL (no such object). */
UserObject *user_object_get(const char *id);
void user_object_unref(UserObject *obj);
ObjectType user_object_type(const UserObject *obj);
const char *user_object_id(const UserObject *obj);
/* The type's state (TlsCreds * for tls-creds-x509, ...). */
void *user_object_data(const UserObject *obj);

/* Remove every object (process exit, tests). */
void user_object_del_all(void);

#endif
