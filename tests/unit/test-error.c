/* Unit tests for util/error.c: set/propagate/prepend/hint semantics. */
#include "util/error.h"

static void test_setg(void)
{
    Error *err = NULL;
    error_setg(&err, "bad %d", 42);
    g_assert_nonnull(err);
    g_assert_cmpstr(error_get_pretty(err), ==, "bad 42");
    g_assert_cmpint(error_get_class(err), ==, ERROR_CLASS_GENERIC_ERROR);
    g_assert_cmpstr(error_class_name(error_get_class(err)), ==, "GenericError");
    g_assert_null(error_get_hint(err));
    error_free(err);
}

static void test_errno(void)
{
    Error *err = NULL;
    error_setg_errno(&err, ENOENT, "Could not open '%s'", "x");
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Could not open 'x': No such file or directory");
    error_free(err);
    err = NULL;
    error_setg_errno(&err, -EPERM, "op");
    g_assert_cmpstr(error_get_pretty(err), ==, "op: Operation not permitted");
    error_free(err);
}

static void test_null_errp(void)
{
    error_setg(NULL, "ignored");
    error_prepend(NULL, "x");
    error_append_hint(NULL, "x");
}

static void test_prepend_hint(void)
{
    Error *err = NULL;
    error_setg(&err, "inner");
    error_prepend(&err, "Can't make bitmap '%s' persistent in '%s': ", "b", "n");
    error_append_hint(&err, "Is another process using the image [%s]?\n", "f");
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Can't make bitmap 'b' persistent in 'n': inner");
    g_assert_cmpstr(error_get_hint(err), ==,
                    "Is another process using the image [f]?\n");
    Error *copy = error_copy(err);
    g_assert_cmpstr(error_get_hint(copy), ==, error_get_hint(err));
    error_free(copy);
    error_free(err);
}

static void test_propagate(void)
{
    Error *dst = NULL, *a = NULL, *b = NULL;
    error_setg(&a, "first");
    error_setg(&b, "second");
    error_propagate(&dst, a);
    error_propagate(&dst, b);   /* dst already set: b is freed, first wins */
    g_assert_cmpstr(error_get_pretty(dst), ==, "first");
    error_free(dst);
    error_propagate(NULL, NULL);
    dst = NULL;
    a = NULL;
    error_setg(&a, "x");
    error_propagate_prepend(&dst, a, "pre: ");
    g_assert_cmpstr(error_get_pretty(dst), ==, "pre: x");
    error_free_or_abort(&dst);
    g_assert_null(dst);
}

static bool helper_with_guard(Error **errp)
{
    ERRP_GUARD();
    error_setg(errp, "guarded");
    /* Dereferencing *errp is safe with the guard even for errp == NULL. */
    return *errp == NULL;
}

static void test_guard(void)
{
    Error *err = NULL;
    g_assert_false(helper_with_guard(NULL));
    g_assert_false(helper_with_guard(&err));
    g_assert_cmpstr(error_get_pretty(err), ==, "guarded");
    error_free(err);
}

static void test_abort_subprocess(void)
{
    if (g_test_subprocess()) {
        error_setg(&error_abort, "boom");
        return;
    }
    g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDIN);
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("*Unexpected error: boom*");
}

static void test_fatal_subprocess(void)
{
    if (g_test_subprocess()) {
        qb_set_progname("/usr/bin/qblock-img");
        error_setg(&error_fatal, "fatal thing");
        return;
    }
    g_test_trap_subprocess(NULL, 0, G_TEST_SUBPROCESS_INHERIT_STDIN);
    g_test_trap_assert_failed();
    g_test_trap_assert_stderr("qblock-img: fatal thing\n");
}

static void test_strtosz(void)
{
    uint64_t v;
    g_assert_cmpint(qb_strtosz("512", NULL, &v), ==, 0);
    g_assert_cmpuint(v, ==, 512);
    g_assert_cmpint(qb_strtosz("64k", NULL, &v), ==, 0);
    g_assert_cmpuint(v, ==, 65536);
    g_assert_cmpint(qb_strtosz("1M", NULL, &v), ==, 0);
    g_assert_cmpuint(v, ==, 1048576);
    g_assert_cmpint(qb_strtosz("1.5G", NULL, &v), ==, 0);
    g_assert_cmpuint(v, ==, 1610612736);
    g_assert_cmpint(qb_strtosz("2T", NULL, &v), ==, 0);
    g_assert_cmpuint(v, ==, 2 * TiB);
    g_assert_cmpint(qb_strtosz("1.5", NULL, &v), ==, -EINVAL);
    g_assert_cmpint(qb_strtosz("-1", NULL, &v), ==, -EINVAL);
    g_assert_cmpint(qb_strtosz("12x", NULL, &v), ==, -EINVAL);
    g_assert_cmpint(qb_strtosz("", NULL, &v), ==, -EINVAL);
    g_assert_cmpint(qb_strtosz("16E", NULL, &v), ==, -ERANGE);
    g_assert_cmpint(qb_strtosz("99999999999999999999", NULL, &v), ==, -ERANGE);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/error/setg", test_setg);
    g_test_add_func("/error/errno", test_errno);
    g_test_add_func("/error/null-errp", test_null_errp);
    g_test_add_func("/error/prepend-hint", test_prepend_hint);
    g_test_add_func("/error/propagate", test_propagate);
    g_test_add_func("/error/guard", test_guard);
    g_test_add_func("/error/abort", test_abort_subprocess);
    g_test_add_func("/error/fatal", test_fatal_subprocess);
    g_test_add_func("/util/strtosz", test_strtosz);
    return g_test_run();
}
