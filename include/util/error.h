/*
 * Error objects for the control path.
 *
 * A function that can fail takes `Error **errp` as its last argument.  It
 * either succeeds and leaves *errp alone, or fails, sets *errp through
 * error_setg() and returns a failure value (false, -errno, NULL): never both,
 * never neither.  An error carries a QMP error class, a one-line message and
 * an optional multi-line hint that tools print and QMP drops.
 *
 * errp may be NULL (caller does not care), &error_abort (abort on error, for
 * "cannot fail" calls) or &error_fatal (print and exit(1), for tools).
 */
#ifndef UTIL_ERROR_H
#define UTIL_ERROR_H

#include "util/common.h"

typedef enum ErrorClass {
    ERROR_CLASS_GENERIC_ERROR,
    ERROR_CLASS_COMMAND_NOT_FOUND,
    ERROR_CLASS_DEVICE_NOT_ACTIVE,
    ERROR_CLASS_DEVICE_NOT_FOUND,
    ERROR_CLASS_KVM_MISSING_CAP,
} ErrorClass;

typedef struct Error Error;

extern Error *error_abort;
extern Error *error_fatal;

/* Name of the class as QMP prints it ("GenericError", ...). */
const char *error_class_name(ErrorClass cls);

void error_setg(Error **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Appends ": strerror(os_errno)" to the message. */
void error_setg_errno(Error **errp, int os_errno, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
void error_set(Error **errp, ErrorClass cls, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
/* Prefix an existing error's message; no-op when errp or *errp is NULL. */
void error_prepend(Error **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);
/* Append to the hint (printed by tools after the message, not sent on QMP). */
void error_append_hint(Error **errp, const char *fmt, ...) G_GNUC_PRINTF(2, 3);

/* Move local_err into *dst (or free it if dst is NULL / already set). */
void error_propagate(Error **dst, Error *local_err);
/* error_propagate + error_prepend. */
void error_propagate_prepend(Error **dst, Error *local_err,
                             const char *fmt, ...) G_GNUC_PRINTF(3, 4);

const char *error_get_pretty(const Error *err);
const char *error_get_hint(const Error *err); /* NULL when there is none */
ErrorClass error_get_class(const Error *err);
Error *error_copy(const Error *err);
void error_free(Error *err);
void error_free_or_abort(Error **errp);

/* Print "progname: message\n" plus the hint to stderr, then free. */
void error_report_err(Error *err);
/* Like error_report_err but with "warning: " after the prefix. */
void warn_report_err(Error *err);
/* Print "progname: <formatted>\n" to stderr. */
void error_report(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void warn_report(const char *fmt, ...) G_GNUC_PRINTF(1, 2);
void info_report(const char *fmt, ...) G_GNUC_PRINTF(1, 2);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Error, error_free)

/* ERRP_GUARD(): lets a function dereference errp (*errp) safely even when the
 * caller passed NULL or &error_fatal/&error_abort.  Declare at the top. */
typedef struct ErrorPropagator {
    Error *local_err;
    Error **errp;
} ErrorPropagator;
void error_propagator_cleanup(ErrorPropagator *prop);
G_DEFINE_AUTO_CLEANUP_CLEAR_FUNC(ErrorPropagator, error_propagator_cleanup)
#define ERRP_GUARD()                                              \
    g_auto(ErrorPropagator) _auto_errp_prop = {.errp = errp};     \
    do {                                                          \
        if (!errp || errp == &error_fatal || errp == &error_abort) { \
            errp = &_auto_errp_prop.local_err;                    \
        }                                                         \
    } while (0)

#endif
