/* Unit tests for util/transaction.c: order of commit, abort and clean. */
#include "util/transaction.h"

static GString *trace;

static void act_commit(void *opaque) { g_string_append_printf(trace, "c%s ", (char *)opaque); }
static void act_abort(void *opaque) { g_string_append_printf(trace, "a%s ", (char *)opaque); }
static void act_clean(void *opaque) { g_string_append_printf(trace, "x%s ", (char *)opaque); }

static const TransactionActionDrv full = {
    .commit = act_commit, .abort = act_abort, .clean = act_clean,
};
static const TransactionActionDrv abort_only = { .abort = act_abort };

static Transaction *build(void)
{
    Transaction *t = tran_new();
    tran_add(t, &full, "1");
    tran_add(t, &abort_only, "2");
    tran_add(t, &full, "3");
    return t;
}

static void test_commit(void)
{
    trace = g_string_new(NULL);
    tran_commit(build());
    g_assert_cmpstr(trace->str, ==, "c1 c3 x1 x3 ");
    g_string_free(trace, TRUE);
}

static void test_abort(void)
{
    trace = g_string_new(NULL);
    tran_abort(build());
    g_assert_cmpstr(trace->str, ==, "a3 a2 a1 x1 x3 ");
    g_string_free(trace, TRUE);
}

static void test_finalize(void)
{
    trace = g_string_new(NULL);
    tran_finalize(build(), -EINVAL);
    g_assert_cmpstr(trace->str, ==, "a3 a2 a1 x1 x3 ");
    g_string_truncate(trace, 0);
    tran_finalize(build(), 0);
    g_assert_cmpstr(trace->str, ==, "c1 c3 x1 x3 ");
    g_string_truncate(trace, 0);
    tran_commit(tran_new());    /* empty transaction is fine */
    g_assert_cmpstr(trace->str, ==, "");
    g_string_free(trace, TRUE);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/transaction/commit", test_commit);
    g_test_add_func("/transaction/abort", test_abort);
    g_test_add_func("/transaction/finalize", test_finalize);
    return g_test_run();
}
