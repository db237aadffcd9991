/*
 * The object registry and the authz objects (crypto/): -object text turned
 * into object-add's arguments with QEMU 7.2's errors, ids, duplicates,
 * object-del, references that outlive object-del, authz-simple and
 * authz-list decisions (first matching rule, exact and glob, the default
 * policy), and tls-creds-x509's missing-file errors.
 */
#include <check.h>
#include <string.h>
#include <unistd.h>
#include <glib.h>
#include "user-object.h"
#include "tls-creds.h"
#include "unit-test.h"

/* Add from text; NULL on success, else the error text (caller frees). */
static char *add(const char *text)
{
    Error *err = NULL;
    bool ok = user_object_add_text(text, &err);
    ck_assert_int_eq(ok, err == NULL);
    char *msg = err ? g_strdup(error_get_pretty(err)) : NULL;
    error_free(err);
    return msg;
}

static void add_ok(const char *text)
{
    g_autofree char *msg = add(text);
    ck_assert_msg(msg == NULL, "%s: %s", text, msg);
}

static void add_fails(const char *text, const char *expected)
{
    g_autofree char *msg = add(text);
    ck_assert_msg(msg != NULL, "%s was accepted", text);
    ck_assert_str_eq(msg, expected);
}

static bool allowed(const char *authz, const char *identity, char **why)
{
    Error *err = NULL;
    bool ok = tls_authz_is_allowed(authz, identity, &err);
    ck_assert_int_eq(ok, err == NULL);
    *why = err ? g_strdup(error_get_pretty(err)) : NULL;
    error_free(err);
    return ok;
}

START_TEST(test_ids_and_del)
{
    add_ok("authz-simple,id=a1,identity=CN=x");
    add_ok("qom-type=authz-simple,id=a2,identity=CN=y");
    add_fails("authz-simple,id=a1,identity=CN=z",
              "attempt to add duplicate property 'a1' to object (type 'container')");
    add_fails("authz-simple,id=9x,identity=CN=z", "Parameter 'id' expects an identifier");
    add_fails("authz-simple,id=a3", "Parameter 'identity' is missing");
    add_fails("nosuch,id=a4", "Parameter 'qom-type' does not accept value 'nosuch'");
    add_fails("authz-simple,id=a5,identity=x,bogus=1", "Parameter 'bogus' is unexpected");
    add_fails("tls-creds-x509,id=t1,verify-peer=maybe", "Parameter 'verify-peer' expects 'on' or 'off'");
    add_fails("authz-simple,id=a6,identity", "Expected '=' after parameter 'identity'");

    UserObject *ref = user_object_get("a1");
    ck_assert_ptr_nonnull(ref);
    ck_assert_int_eq(user_object_type(ref), OBJECT_TYPE_AUTHZ_SIMPLE);
    ck_assert_str_eq(user_object_id(ref), "a1");
    Error *err = NULL;
    ck_assert(user_object_del("a1", &err));
    ck_assert_ptr_null(user_object_get("a1"));
    ck_assert_str_eq(user_object_id(ref), "a1");      /* still valid: our reference */
    user_object_unref(ref);
    ck_assert(!user_object_del("a1", &err));
    ck_assert_str_eq(error_get_pretty(err), "object 'a1' not found");
    error_free(err);
    add_ok("authz-simple,id=a1,identity=CN=again");     /* the id is free again */
    user_object_del_all();
    ck_assert_ptr_null(user_object_get("a2"));
}
END_TEST

/* The JSON form (libvirt's -object): object-add's members with their
 * types; QEMU 7.2's texts for its errors. */
START_TEST(test_json_form)
{
    add_ok("{\"qom-type\": \"authz-list\", \"id\": \"j1\", \"policy\": \"deny\", "
           "\"rules\": [{\"match\": \"CN=a\", \"policy\": \"allow\"}]}");
    UserObject *ref = user_object_get("j1");
    ck_assert_ptr_nonnull(ref);
    ck_assert_int_eq(user_object_type(ref), OBJECT_TYPE_AUTHZ_LIST);
    user_object_unref(ref);
    char *why = NULL;
    ck_assert(allowed("j1", "CN=a", &why));
    ck_assert(!allowed("j1", "CN=b", &why));        /* the rules arrived: deny by default */
    ck_assert_ptr_nonnull(why);
    add_fails("{\"qom-type\":", "JSON parse error, premature EOI");
    add_fails("{\"id\": \"j2\"}", "Parameter 'qom-type' is missing");
    add_fails("{\"qom-type\": \"tls-creds-x509\", \"id\": \"j3\", \"verify-peer\": \"no\"}",
              "Invalid parameter type for 'verify-peer', expected: boolean");
    add_fails("{\"qom-type\": \"authz-simple\", \"id\": \"j4\", \"identity\": \"x\"} 1",
              "Expecting at most one JSON value");
    add_fails("{\"qom-type\": \"authz-simple\", \"id\": \"j1\", \"identity\": \"x\"}",
              "attempt to add duplicate property 'j1' to object (type 'container')");
    g_free(why);
    user_object_del_all();
}
END_TEST

START_TEST(test_authz)
{
    char *why;
    add_ok("authz-simple,id=one,identity=C=GB,,O=migvm test,,CN=migvm-client");
    ck_assert(allowed("one", "C=GB,O=migvm test,CN=migvm-client", &why));
    ck_assert(!allowed("one", "C=GB,O=migvm test,CN=other", &why));
    ck_assert_str_eq(why, "TLS x509 authz check for C=GB,O=migvm test,CN=other is denied");
    g_free(why);

    add_ok("authz-list,id=list,policy=deny,"
           "rules.0.match=*CN=blocked,rules.0.policy=deny,rules.0.format=glob,"
           "rules.1.match=*O=migvm test*,rules.1.policy=allow,rules.1.format=glob,"
           "rules.2.match=CN=exact,rules.2.policy=allow");
    ck_assert(allowed("list", "C=GB,O=migvm test,CN=migvm-client", &why));
    ck_assert(!allowed("list", "C=GB,O=migvm test,CN=blocked", &why));    /* the first match decides */
    g_free(why);
    ck_assert(allowed("list", "CN=exact", &why));
    ck_assert(!allowed("list", "CN=exact2", &why));                       /* exact is exact */
    g_free(why);
    ck_assert(!allowed("list", "O=elsewhere", &why));                     /* the default policy */
    g_free(why);

    add_ok("authz-list,id=open,policy=allow");
    ck_assert(allowed("open", "anyone", &why));

    ck_assert(!allowed("nosuch", "x", &why));
    ck_assert_str_eq(why, "Cannot find QAuthZ object ID nosuch");
    g_free(why);
    add_fails("authz-list,id=bad,rules.0.match=x", "Parameter 'rules[0].policy' is missing");
    user_object_del_all();
}
END_TEST

START_TEST(test_tls_creds_files)
{
    g_autofree char *dir = g_dir_make_tmp("test-user-object-XXXXXX", NULL);
    g_autofree char *text = g_strdup_printf("tls-creds-x509,id=t0,endpoint=client,dir=%s", dir);
    g_autofree char *expected = g_strdup_printf("Unable to access credentials %s/ca-cert.pem: "
                                                "No such file or directory", dir);
    add_fails(text, expected);
    add_fails("tls-creds-x509,id=t0,endpoint=server", "Missing 'dir' property value");
    add_fails("tls-creds-x509,id=t0,endpoint=sideways,dir=/", "Parameter 'endpoint' does not accept value 'sideways'");

    UserObject *ref = NULL;
    Error *err = NULL;
    add_ok("authz-simple,id=notcreds,identity=x");
    ck_assert_ptr_null(tls_creds_lookup("notcreds", &ref, &err));
    ck_assert_str_eq(error_get_pretty(err), "No TLS credentials with id 'notcreds'");
    error_free(err);
    user_object_del_all();
    rmdir(dir);
}
END_TEST

static Suite *user_object_suite(void)
{
    Suite *s = suite_create("user-object");
    TCase *tc = tcase_create("registry");
    tcase_add_test(tc, test_ids_and_del);
    tcase_add_test(tc, test_json_form);
    tcase_add_test(tc, test_authz);
    tcase_add_test(tc, test_tls_creds_files);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return check_run_suite(user_object_suite());
}
