/* Error objects: a class and a message, created by error_set*, consumed by the monitor. */
#include "error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glib.h>

struct Error {
    ErrorClass cls;
    char *msg;
};

static const char *const class_names[ERROR_CLASS__MAX] = {
    [ERROR_CLASS_GENERIC_ERROR] = "GenericError",
    [ERROR_CLASS_COMMAND_NOT_FOUND] = "CommandNotFound",
    [ERROR_CLASS_DEVICE_NOT_ACTIVE] = "DeviceNotActive",
    [ERROR_CLASS_DEVICE_NOT_FOUND] = "DeviceNotFound",
    [ERROR_CLASS_KVM_MISSING_CAP] = "KVMMissingCap",
};

const char *error_class_name(ErrorClass cls)
{
    return cls < ERROR_CLASS__MAX ? class_names[cls] : "GenericError";
}

static void error_install(Error **errp, ErrorClass cls, char *msg)
{
    if (!errp) {
        g_free(msg);
        return;
    }
    if (*errp) {
        fprintf(stderr, "migvm: error set twice: '%s' then '%s'\n", (*errp)->msg, msg);
        abort();
    }
    Error *err = g_new(Error, 1);
    err->cls = cls;
    err->msg = msg;
    *errp = err;
}

void error_vset(Error **errp, ErrorClass cls, const char *fmt, va_list ap)
{
    error_install(errp, cls, g_strdup_vprintf(fmt, ap));
}

void error_setg(Error **errp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vset(errp, ERROR_CLASS_GENERIC_ERROR, fmt, ap);
    va_end(ap);
}

void error_set(Error **errp, ErrorClass cls, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vset(errp, cls, fmt, ap);
    va_end(ap);
}

void error_setg_errno(Error **errp, int os_errno, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    error_install(errp, ERROR_CLASS_GENERIC_ERROR,
                  g_strdup_printf("%s: %s", msg, g_strerror(os_errno)));
    g_free(msg);
}

void error_prepend(Error **errp, const char *fmt, ...)
{
    if (!errp || !*errp) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    char *prefix = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    char *msg = g_strconcat(prefix, (*errp)->msg, NULL);
    g_free(prefix);
    g_free((*errp)->msg);
    (*errp)->msg = msg;
}

void error_propagate(Error **dst, Error *local)
{
    if (!local) {
        return;
    }
    if (dst && !*dst) {
        *dst = local;
    } else {
        error_free(local);
    }
}

const char *error_get_pretty(const Error *err)
{
    return err->msg;
}

ErrorClass error_get_class(const Error *err)
{
    return err->cls;
}

Error *error_copy(const Error *err)
{
    Error *copy = g_new(Error, 1);
    copy->cls = err->cls;
    copy->msg = g_strdup(err->msg);
    return copy;
}

void error_free(Error *err)
{
    if (err) {
        g_free(err->msg);
        g_free(err);
    }
}

void error_free_or_abort(Error **errp)
{
    if (!errp || !*errp) {
        abort();
    }
    error_free(*errp);
    *errp = NULL;
}

static MIGVM_PRINTF(2, 0) void vreport(const char *kind, const char *fmt, va_list ap)
{
    fprintf(stderr, "migvm: %s", kind);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void error_report(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport("", fmt, ap);
    va_end(ap);
}

void warn_report(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport("warning: ", fmt, ap);
    va_end(ap);
}

void error_report_err(Error *err)
{
    error_report("%s", err->msg);
    error_free(err);
}
