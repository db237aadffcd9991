/*
 * Authorization objects, asked with a TLS client's distinguished name:
 * authz-simple allows one identity; authz-list walks its rules in order
 * (exact or fnmatch glob) and the first match decides, else its policy.
 */
#include "object-types.h"
#include "tls-creds.h"

#include <fnmatch.h>
#include <string.h>
#include <glib.h>

typedef struct Authz {
    bool is_list;
    char *identity;                   /* authz-simple */
    QAuthZListPolicy policy;          /* authz-list */
    QAuthZListRuleList *rules;
} Authz;

void *authz_simple_create(const char *id, const AuthZSimpleProperties *p, Error **errp)
{
    Authz *a = g_new0(Authz, 1);
    a->identity = g_strdup(p->identity);
    return a;
}

static QAuthZListRuleList *copy_rules(const QAuthZListRuleList *src)
{
    QAuthZListRuleList *head = NULL, **tail = &head;
    for (; src; src = src->next) {
        QAuthZListRule *r = g_new0(QAuthZListRule, 1);
        r->match = g_strdup(src->value->match);
        r->policy = src->value->policy;
        r->has_format = src->value->has_format;
        r->format = src->value->format;
        *tail = g_new0(QAuthZListRuleList, 1);
        (*tail)->value = r;
        tail = &(*tail)->next;
    }
    return head;
}

void *authz_list_create(const char *id, const AuthZListProperties *p, Error **errp)
{
    Authz *a = g_new0(Authz, 1);
    a->is_list = true;
    a->policy = p->has_policy ? p->policy : QAUTHZ_LIST_POLICY_DENY;
    a->rules = copy_rules(p->rules);
    return a;
}

void authz_free(void *data)
{
    Authz *a = data;
    g_free(a->identity);
    qapi_free_QAuthZListRuleList(a->rules);
    g_free(a);
}

static bool authz_allows(const Authz *a, const char *identity)
{
    if (!a->is_list) {
        return strcmp(a->identity, identity) == 0;
    }
    for (const QAuthZListRuleList *l = a->rules; l; l = l->next) {
        const QAuthZListRule *r = l->value;
        bool glob = r->has_format && r->format == QAUTHZ_LIST_FORMAT_GLOB;
        if (glob ? fnmatch(r->match, identity, 0) == 0 : strcmp(r->match, identity) == 0) {
            return r->policy == QAUTHZ_LIST_POLICY_ALLOW;
        }
    }
    return a->policy == QAUTHZ_LIST_POLICY_ALLOW;
}

bool tls_authz_is_allowed(const char *authz_id, const char *identity, Error **errp)
{
    UserObject *obj = user_object_get(authz_id);
    if (!obj) {
        error_setg(errp, "Cannot find QAuthZ object ID %s", authz_id);
        return false;
    }
    if (user_object_type(obj) != OBJECT_TYPE_AUTHZ_SIMPLE && user_object_type(obj) != OBJECT_TYPE_AUTHZ_LIST) {
        error_setg(errp, "Object '%s' is not a QAuthZ subclass", authz_id);
        user_object_unref(obj);
        return false;
    }
    bool ok = authz_allows(user_object_data(obj), identity);
    user_object_unref(obj);
    if (!ok) {
        error_setg(errp, "TLS x509 authz check for %s is denied", identity);
    }
    return ok;
}
