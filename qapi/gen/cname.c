/* C spelling of schema names: identifiers, enum constants, C types. */
#include "cname.h"

#include <ctype.h>
#include <string.h>

static const char *const protected_words[] = {
    "auto", "break", "case", "char", "const", "continue", "default", "do", "double", "else",
    "enum", "extern", "float", "for", "goto", "if", "inline", "int", "long", "register",
    "restrict", "return", "short", "signed", "sizeof", "static", "struct", "switch",
    "typedef", "union", "unsigned", "void", "volatile", "while", "_Alignas", "_Alignof",
    "_Atomic", "_Bool", "_Complex", "_Generic", "_Imaginary", "_Noreturn", "_Static_assert",
    "_Thread_local", "bool", "true", "false",
    /* predefined by gcc in GNU modes */
    "unix", "linux",
};

char *c_ident(const char *name)
{
    char *s = g_strdup(name);

    for (char *p = s; *p; p++) {
        if (*p == '-' || *p == '.') {
            *p = '_';
        }
    }
    return s;
}

char *c_name(const char *name)
{
    char *s = c_ident(name);

    for (size_t i = 0; i < G_N_ELEMENTS(protected_words); i++) {
        if (strcmp(s, protected_words[i]) == 0) {
            char *q = g_strdup_printf("q_%s", s);
            g_free(s);
            return q;
        }
    }
    return s;
}

/*
 * Split CamelCase into words: an upper-case letter starts a new word when
 * the next letter is lower-case (the "C" of "QMPCapability") or when it
 * follows a digit. Runs of capitals stay together ("MultiFDCompression" ->
 * MULTIFD_COMPRESSION, as QEMU spells it).
 */
static char *camel_to_upper(const char *name)
{
    g_autofree char *s = c_ident(name);
    GString *out = g_string_new(NULL);
    size_t len = strlen(s);
    bool all_upper = true;

    for (size_t i = 0; i < len; i++) {
        all_upper &= !islower((unsigned char)s[i]);
    }
    if (all_upper) {
        g_string_append(out, s);
        return g_string_free(out, FALSE);
    }
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (isupper((unsigned char)c) && i > 0 && s[i - 1] != '_') {
            if ((i + 1 < len && islower((unsigned char)s[i + 1])) || isdigit((unsigned char)s[i - 1])) {
                g_string_append_c(out, '_');
            }
        }
        g_string_append_c(out, toupper((unsigned char)c));
    }
    while (out->len && out->str[0] == '_') {
        g_string_erase(out, 0, 1);
    }
    return g_string_free(out, FALSE);
}

char *c_enum_prefix(const Entity *e)
{
    return e->prefix ? g_strdup(e->prefix) : camel_to_upper(e->name);
}

char *c_enum_const(const Entity *e, const char *value)
{
    g_autofree char *prefix = c_enum_prefix(e);
    char *v = c_ident(value);
    char *s;

    for (char *p = v; *p; p++) {
        *p = toupper((unsigned char)*p);
    }
    s = g_strdup_printf("%s_%s", prefix, v);
    g_free(v);
    return s;
}

char *c_type_name(const Entity *t)
{
    return c_ident(t->name);
}

char *c_type(const Entity *t)
{
    g_autofree char *n = c_ident(t->name);

    switch (t->meta) {
    case META_BUILTIN:
        return g_strdup(t->c_type);
    case META_ENUM:
        return g_strdup(n);
    default:
        return g_strdup_printf("%s *", n);
    }
}

const char *c_qtype(const Entity *t)
{
    switch (t->meta) {
    case META_ENUM:
        return "QTYPE_QSTRING";
    case META_BUILTIN:
        switch (t->bkind) {
        case BK_STR: return "QTYPE_QSTRING";
        case BK_NUMBER: case BK_INT: case BK_UINT: return "QTYPE_QNUM";
        case BK_BOOL: return "QTYPE_QBOOL";
        case BK_NULL: return "QTYPE_QNULL";
        default: return "QTYPE_NONE";
        }
    case META_ARRAY:
        return "QTYPE_QLIST";
    default:
        return "QTYPE_QDICT";
    }
}

bool c_has_storage(const Entity *t)
{
    return !(t->meta == META_BUILTIN && t->bkind == BK_NULL);
}

bool c_is_pointer(const Entity *t)
{
    return !entity_is_scalar(t);
}
