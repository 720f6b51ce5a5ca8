/*
 * Error objects (see include/util/error.h) and the stderr reporting helpers
 * tools use.  &error_abort and &error_fatal are recognised by address: their
 * contents are never used.
 */
#include "util/error.h"

struct Error {
    char *msg;
    ErrorClass cls;
    GString *hint;
};

Error *error_abort;
Error *error_fatal;

static const char *const class_names[] = {
    [ERROR_CLASS_GENERIC_ERROR] = "GenericError",
    [ERROR_CLASS_COMMAND_NOT_FOUND] = "CommandNotFound",
    [ERROR_CLASS_DEVICE_NOT_ACTIVE] = "DeviceNotActive",
    [ERROR_CLASS_DEVICE_NOT_FOUND] = "DeviceNotFound",
    [ERROR_CLASS_KVM_MISSING_CAP] = "KVMMissingCap",
};

const char *error_class_name(ErrorClass cls)
{
    assert(cls < QB_ARRAY_SIZE(class_names));
    return class_names[cls];
}

static void error_handle_special(Error **errp, Error *err)
{
    if (errp == &error_abort) {
        fprintf(stderr, "Unexpected error: %s\n", err->msg);
        abort();
    }
    if (errp == &error_fatal) {
        error_report_err(err);
        exit(1);
    }
}

static void error_setv(Error **errp, ErrorClass cls, int os_errno,
                       const char *fmt, va_list ap)
{
    Error *err;

    if (!errp) {
        return;
    }
    /* Setting an error twice is a programming error: it would leak one. */
    assert(errp == &error_abort || errp == &error_fatal || *errp == NULL);

    err = g_new0(Error, 1);
    err->msg = g_strdup_vprintf(fmt, ap);
    if (os_errno) {
        char *m = g_strdup_printf("%s: %s", err->msg, g_strerror(os_errno));
        g_free(err->msg);
        err->msg = m;
    }
    err->cls = cls;

    error_handle_special(errp, err);
    *errp = err;
}

void error_setg(Error **errp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_setv(errp, ERROR_CLASS_GENERIC_ERROR, 0, fmt, ap);
    va_end(ap);
}

void error_setg_errno(Error **errp, int os_errno, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_setv(errp, ERROR_CLASS_GENERIC_ERROR, os_errno < 0 ? -os_errno : os_errno,
               fmt, ap);
    va_end(ap);
}

void error_set(Error **errp, ErrorClass cls, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_setv(errp, cls, 0, fmt, ap);
    va_end(ap);
}

static void error_vprepend(Error **errp, const char *fmt, va_list ap)
{
    char *prefix, *m;

    if (!errp || !*errp || errp == &error_abort || errp == &error_fatal) {
        return;
    }
    prefix = g_strdup_vprintf(fmt, ap);
    m = g_strconcat(prefix, (*errp)->msg, NULL);
    g_free(prefix);
    g_free((*errp)->msg);
    (*errp)->msg = m;
}

void error_prepend(Error **errp, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_vprepend(errp, fmt, ap);
    va_end(ap);
}

void error_append_hint(Error **errp, const char *fmt, ...)
{
    va_list ap;

    if (!errp || !*errp || errp == &error_abort || errp == &error_fatal) {
        return;
    }
    if (!(*errp)->hint) {
        (*errp)->hint = g_string_new(NULL);
    }
    va_start(ap, fmt);
    g_string_append_vprintf((*errp)->hint, fmt, ap);
    va_end(ap);
}

void error_propagate(Error **dst, Error *local_err)
{
    if (!local_err) {
        return;
    }
    error_handle_special(dst, local_err);
    if (dst && !*dst) {
        *dst = local_err;
    } else {
        error_free(local_err);
    }
}

void error_propagate_prepend(Error **dst, Error *local_err, const char *fmt, ...)
{
    va_list ap;

    if (dst && !*dst) {
        *dst = local_err;
        va_start(ap, fmt);
        error_vprepend(dst, fmt, ap);
        va_end(ap);
        return;
    }
    if (local_err && (dst == &error_abort || dst == &error_fatal)) {
        Error *tmp = local_err;
        va_start(ap, fmt);
        error_vprepend(&tmp, fmt, ap);
        va_end(ap);
        error_handle_special(dst, tmp);
    }
    error_free(local_err);
}

const char *error_get_pretty(const Error *err)
{
    return err->msg;
}

const char *error_get_hint(const Error *err)
{
    return err->hint ? err->hint->str : NULL;
}

ErrorClass error_get_class(const Error *err)
{
    return err->cls;
}

Error *error_copy(const Error *err)
{
    Error *copy = g_new0(Error, 1);
    copy->msg = g_strdup(err->msg);
    copy->cls = err->cls;
    if (err->hint) {
        copy->hint = g_string_new(err->hint->str);
    }
    return copy;
}

void error_free(Error *err)
{
    if (err) {
        g_free(err->msg);
        if (err->hint) {
            g_string_free(err->hint, TRUE);
        }
        g_free(err);
    }
}

void error_free_or_abort(Error **errp)
{
    assert(errp && *errp);
    error_free(*errp);
    *errp = NULL;
}

void error_propagator_cleanup(ErrorPropagator *prop)
{
    error_propagate(prop->errp, prop->local_err);
}

static void report_err(Error *err, const char *kind)
{
    fprintf(stderr, "%s: %s%s\n", qb_get_progname(), kind, err->msg);
    if (err->hint) {
        fputs(err->hint->str, stderr);
    }
    error_free(err);
}

void error_report_err(Error *err)
{
    report_err(err, "");
}

void warn_report_err(Error *err)
{
    report_err(err, "warning: ");
}

static void vreport(const char *kind, const char *fmt, va_list ap)
{
    fprintf(stderr, "%s: %s", qb_get_progname(), kind);
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

void info_report(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vreport("info: ", fmt, ap);
    va_end(ap);
}
