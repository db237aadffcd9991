/*
 * Errors travel as Error **errp, last argument, up to the monitor.
 * Rule: a function returns false/NULL/-1 exactly when it set *errp.
 * errp may be NULL (caller does not care); setting an already-set error
 * is a programming error and aborts.
 */
#ifndef MIGVM_ERROR_H
#define MIGVM_ERROR_H

#include <stdbool.h>
#include <stdarg.h>

/* The QMP error classes, in QEMU's QapiErrorClass order. */
typedef enum ErrorClass {
    ERROR_CLASS_GENERIC_ERROR,
    ERROR_CLASS_COMMAND_NOT_FOUND,
    ERROR_CLASS_DEVICE_NOT_ACTIVE,
    ERROR_CLASS_DEVICE_NOT_FOUND,
    ERROR_CLASS_KVM_MISSING_CAP,
    ERROR_CLASS__MAX
} ErrorClass;

typedef struct Error Error;

#define MIGVM_PRINTF(a, b) __attribute__((format(printf, a, b)))

void error_setg(Error **errp, const char *fmt, ...) MIGVM_PRINTF(2, 3);
void error_set(Error **errp, ErrorClass cls, const char *fmt, ...) MIGVM_PRINTF(3, 4);
/* Appends ": strerror(os_errno)". */
void error_setg_errno(Error **errp, int os_errno, const char *fmt, ...) MIGVM_PRINTF(3, 4);
void error_vset(Error **errp, ErrorClass cls, const char *fmt, va_list ap) MIGVM_PRINTF(3, 0);
/* Prefix an existing error's message with fmt as given (include any ": " yourself).
 * No-op if errp or *errp is NULL. */
void error_prepend(Error **errp, const char *fmt, ...) MIGVM_PRINTF(2, 3);
/* Move local into *dst (or free it if dst is NULL or already set). */
void error_propagate(Error **dst, Error *local);

const char *error_get_pretty(const Error *err);
ErrorClass error_get_class(const Error *err);
/* "GenericError", "CommandNotFound", ... as QMP spells them. */
const char *error_class_name(ErrorClass cls);
Error *error_copy(const Error *err);
void error_free(Error *err);
/* Free *errp and set it to NULL. */
void error_free_or_abort(Error **errp);

/* Print "migvm: <msg>" on stderr. */
void error_report(const char *fmt, ...) MIGVM_PRINTF(1, 2);
void warn_report(const char *fmt, ...) MIGVM_PRINTF(1, 2);
/* error_report the message, then free the error. */
void error_report_err(Error *err);

#endif
