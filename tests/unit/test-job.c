/*
 * Unit tests of the job state machine (block/jobs/job.c): both of QEMU's
 * tables checked cell by cell, every verb applied to real jobs in every
 * state a job can be driven to, the event sequences of success, failure,
 * cancel, pause/resume, ready/complete, manual finalize and transactions,
 * and job_cancel_sync_all().
 */
#include "block/job.h"
#include "qapi/qmp-registry.h"
#include "qapi/qapi-events.h"

/* ------------------------------------------------------------------ */
/* Event recording                                                     */

static GString *events;

static void record_event(const char *name, json_t *data)
{
    if (g_str_equal(name, "JOB_STATUS_CHANGE")) {
        g_string_append_printf(events, "%s:%s ",
            json_string_value(json_object_get(data, "id")),
            json_string_value(json_object_get(data, "status")));
    }
    json_decref(data);
}

static void events_reset(void)
{
    g_string_truncate(events, 0);
}

#define assert_events(expect) do {                                   \
        g_assert_cmpstr(events->str, ==, expect);                      \
        events_reset();                                                \
    } while (0)

/* Run the main loop until cond holds; bounded by count and time. */
#define POLL_UNTIL(cond) do {                                          \
        gint64 deadline_ = g_get_monotonic_time() + 5 * G_USEC_PER_SEC;\
        for (int i_ = 0; i_ < 100000 && !(cond); i_++) {               \
            g_assert_cmpint(g_get_monotonic_time(), <, deadline_);     \
            aio_poll(qb_get_aio_context(), true);                       \
        }                                                              \
        g_assert_true(cond);                                           \
    } while (0)

/* ------------------------------------------------------------------ */
/* A test job: sleeps in steps until told to finish, or becomes ready   */

typedef struct TestJob {
    Job common;
    int steps;            /* sleeps before returning (-1: until cancelled) */
    bool go_ready;        /* transition to ready and wait for complete */
    bool completed;       /* driver->complete was called */
    int result;           /* what run() returns */
    bool yield_first;     /* sleep at least once */
    int *order;           /* commit/abort/clean trace */
    int committed, aborted, cleaned;
} TestJob;

static int coroutine_fn test_job_run(Job *job, Error **errp)
{
    TestJob *t = (TestJob *)job;

    job_progress_set_remaining(job, 10);
    for (int i = 0; t->steps < 0 || i < t->steps; i++) {
        if (job_is_cancelled(job) || i > 100000) {
            break;
        }
        job_sleep_ns(job, 1000 * 1000);
        job_progress_update(job, 1);
    }
    if (t->go_ready && !job_is_cancelled(job)) {
        job_transition_to_ready(job);
        for (int i = 0; !t->completed && !job_is_cancelled(job) &&
                        i < 100000; i++) {
            job_sleep_ns(job, 1000 * 1000);
        }
    }
    if (t->result < 0) {
        error_setg(errp, "test job failed");
    }
    return t->result;
}

static void test_job_complete(Job *job, Error **errp)
{
    ((TestJob *)job)->completed = true;
    job_enter(job);
}

static void test_job_commit(Job *job)
{
    ((TestJob *)job)->committed++;
}

static void test_job_abort(Job *job)
{
    ((TestJob *)job)->aborted++;
}

static void test_job_clean(Job *job)
{
    ((TestJob *)job)->cleaned++;
}

static const JobDriver test_driver = {
    .instance_size = sizeof(TestJob),
    .job_type = JOB_TYPE_BACKUP,
    .run = test_job_run,
    .complete = test_job_complete,
    .commit = test_job_commit,
    .abort = test_job_abort,
    .clean = test_job_clean,
};

static TestJob *new_job(const char *id, int flags, JobTxn *txn)
{
    TestJob *t = job_create(id, &test_driver, txn, flags, NULL, NULL,
                            &error_abort);

    g_assert_nonnull(t);
    return t;
}

/* ------------------------------------------------------------------ */
/* The tables, cell by cell (QEMU's layout: rows = from / verb,        */
/* columns U C R P Y S W D X E N)                                      */

static const int expect_stt[JOB_STATUS__MAX][JOB_STATUS__MAX] = {
    /*               U  C  R  P  Y  S  W  D  X  E  N */
    /* undefined */ {0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0},
    /* created */   {0, 0, 1, 0, 0, 0, 0, 0, 1, 0, 1},
    /* running */   {0, 0, 0, 1, 1, 0, 1, 0, 1, 0, 0},
    /* paused */    {0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0},
    /* ready */     {0, 0, 0, 0, 0, 1, 1, 0, 1, 0, 0},
    /* standby */   {0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0},
    /* waiting */   {0, 0, 0, 0, 0, 0, 0, 1, 1, 0, 0},
    /* pending */   {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0},
    /* aborting */  {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 0},
    /* concluded */ {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1},
    /* null */      {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0},
};

static const int expect_verbs[JOB_VERB__MAX][JOB_STATUS__MAX] = {
    /*               U  C  R  P  Y  S  W  D  X  E  N */
    /* cancel */    {0, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0},
    /* pause */     {0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},
    /* resume */    {0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},
    /* set-speed */ {0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},
    /* complete */  {0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0},
    /* dismiss */   {0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0},
    /* finalize */  {0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0},
    /* change */    {0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0},
};

static void test_transition_table(void)
{
    for (int from = 0; from < JOB_STATUS__MAX; from++) {
        for (int to = 0; to < JOB_STATUS__MAX; to++) {
            g_assert_cmpint(job_transition_allowed(from, to), ==,
                            expect_stt[from][to]);
        }
    }
}

static void test_verb_table(void)
{
    /* The QAPI enum order must be the one the matrix above assumes. */
    g_assert_cmpint(JOB_VERB_DISMISS, ==, 5);
    g_assert_cmpint(JOB_VERB_FINALIZE, ==, 6);
    for (int verb = 0; verb < JOB_VERB__MAX; verb++) {
        for (int st = 0; st < JOB_STATUS__MAX; st++) {
            g_assert_cmpint(job_verb_allowed(st, verb), ==,
                            expect_verbs[verb][st]);
        }
    }
}

/* Every verb on a job sitting in state st: the verb table decides, and a
 * refusal carries QEMU's text. */
static void check_all_verbs(Job *job)
{
    for (int verb = 0; verb < JOB_VERB__MAX; verb++) {
        Error *err = NULL;
        int ret = job_apply_verb(job, verb, &err);

        if (expect_verbs[verb][job->status]) {
            g_assert_cmpint(ret, ==, 0);
            g_assert_null(err);
        } else {
            g_autofree char *want = g_strdup_printf(
                "Job '%s' in state '%s' cannot accept command verb '%s'",
                job->id, JobStatus_str(job->status), JobVerb_str(verb));
            g_assert_cmpint(ret, <, 0);
            g_assert_nonnull(err);
            g_assert_cmpstr(error_get_pretty(err), ==, want);
            error_free(err);
        }
    }
}

/* ------------------------------------------------------------------ */
/* Ids                                                                 */

static void test_ids(void)
{
    Error *err = NULL;
    TestJob *t;

    g_assert_null(job_create("1x", &test_driver, NULL, 0, NULL, NULL, &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "Invalid job ID '1x'");
    error_free(err);
    err = NULL;
    g_assert_null(job_create("a#", &test_driver, NULL, 0, NULL, NULL, &err));
    g_assert_cmpstr(error_get_pretty(err), ==, "Invalid job ID 'a#'");
    error_free(err);
    err = NULL;

    t = new_job("j-1._x", 0, NULL);
    assert_events("j-1._x:created ");
    g_assert_true(job_get("j-1._x") == &t->common);
    g_assert_null(job_create("j-1._x", &test_driver, NULL, 0, NULL, NULL,
                             &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Job ID 'j-1._x' already in use");
    error_free(err);
    err = NULL;

    /* Internal jobs: no id, no events. */
    g_assert_null(job_create("x", &test_driver, NULL, JOB_INTERNAL, NULL,
                             NULL, &err));
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Cannot specify job ID for internal job");
    error_free(err);

    /* A job cancelled before it starts goes straight to null. */
    job_cancel_sync(&t->common, true);
    assert_events("j-1._x:aborting j-1._x:concluded j-1._x:null ");
    g_assert_null(job_get("j-1._x"));
}

/* ------------------------------------------------------------------ */
/* Life cycles                                                         */

static void test_success_manual_dismiss(void)
{
    TestJob *t = new_job("s1", JOB_MANUAL_DISMISS, NULL);
    Job *job = &t->common;
    Error *err = NULL;

    t->steps = 3;
    check_all_verbs(job);                        /* created */
    job_start(job);
    assert_events("s1:created s1:running ");
    g_assert_cmpint(job->status, ==, JOB_STATUS_RUNNING);
    check_all_verbs(job);                        /* running */
    POLL_UNTIL(job->status == JOB_STATUS_CONCLUDED);
    assert_events("s1:waiting s1:pending s1:concluded ");
    g_assert_cmpint(job->ret, ==, 0);
    g_assert_cmpint(job->progress_current, ==, 3);
    g_assert_cmpint(job->progress_total, ==, 10);
    g_assert_cmpint(t->committed, ==, 1);
    g_assert_cmpint(t->aborted, ==, 0);
    g_assert_cmpint(t->cleaned, ==, 1);
    check_all_verbs(job);                        /* concluded */

    job_user_resume(job, &err);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Can't resume a job that was not paused");
    error_free(err);
    err = NULL;
    job_dismiss(&job, &error_abort);
    g_assert_null(job);
    assert_events("s1:null ");
    g_assert_null(job_get("s1"));
}

static void test_auto_dismiss(void)
{
    TestJob *t = new_job("a1", JOB_DEFAULT, NULL);

    t->steps = 1;
    job_start(&t->common);
    POLL_UNTIL(job_get("a1") == NULL);
    assert_events("a1:created a1:running a1:waiting a1:pending "
                  "a1:concluded a1:null ");
}

static void test_failure(void)
{
    TestJob *t = new_job("f1", JOB_MANUAL_DISMISS, NULL);
    Job *job = &t->common;

    t->steps = 1;
    t->result = -EIO;
    job_start(job);
    POLL_UNTIL(job->status == JOB_STATUS_CONCLUDED);
    assert_events("f1:created f1:running f1:aborting f1:concluded ");
    g_assert_cmpint(job->ret, ==, -EIO);
    g_assert_cmpstr(error_get_pretty(job->err), ==, "test job failed");
    g_assert_cmpint(t->aborted, ==, 1);
    g_assert_cmpint(t->committed, ==, 0);
    job_dismiss(&job, &error_abort);
    assert_events("f1:null ");
}

/* run() that returns without yielding completes inside job_start(). */
static void test_no_yield(void)
{
    TestJob *t = new_job("n1", JOB_MANUAL_DISMISS, NULL);
    Job *job = &t->common;

    t->steps = 0;
    t->result = -EINVAL;
    job_ref(job);
    job_start(job);
    assert_events("n1:created n1:running n1:aborting n1:concluded ");
    g_assert_cmpint(job->status, ==, JOB_STATUS_CONCLUDED);
    job_unref(job);
    job_dismiss(&job, &error_abort);
    assert_events("n1:null ");
}

static void test_cancel_running(void)
{
    TestJob *t = new_job("c1", JOB_MANUAL_DISMISS, NULL);
    Job *job = &t->common;

    t->steps = -1;
    job_start(job);
    POLL_UNTIL(job->progress_current >= 2);
    job_user_cancel(job, true, &error_abort);
    POLL_UNTIL(job->status == JOB_STATUS_CONCLUDED);
    assert_events("c1:created c1:running c1:aborting c1:concluded ");
    g_assert_cmpint(job->ret, ==, -ECANCELED);
    g_assert_cmpstr(error_get_pretty(job->err), ==, g_strerror(ECANCELED));
    g_assert_cmpint(t->aborted, ==, 1);
    job_dismiss(&job, &error_abort);
    events_reset();
}

static void test_pause_resume(void)
{
    TestJob *t = new_job("p1", JOB_MANUAL_DISMISS, NULL);
    Job *job = &t->common;
    Error *err = NULL;
    uint64_t at;

    t->steps = -1;
    job_start(job);
    job_user_pause(job, &error_abort);
    job_user_pause(job, &err);
    g_assert_cmpstr(error_get_pretty(err), ==, "Job is already paused");
    error_free(err);
    err = NULL;
    POLL_UNTIL(job->status == JOB_STATUS_PAUSED);
    assert_events("p1:created p1:running p1:paused ");
    check_all_verbs(job);                        /* paused */
    at = job->progress_current;
    /* No progress while paused (a few loop iterations with timers). */
    for (int i = 0; i < 5; i++) {
        aio_poll(qb_get_aio_context(), false);
        g_usleep(2000);
    }
    g_assert_cmpint(job->progress_current, ==, at);
    job_user_resume(job, &error_abort);
    POLL_UNTIL(job->progress_current > at);
    assert_events("p1:running ");
    job_user_resume(job, &err);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Can't resume a job that was not paused");
    error_free(err);

    /* Cancelling a paused job works (it is resumed to see the cancel). */
    job_user_pause(job, &error_abort);
    POLL_UNTIL(job->status == JOB_STATUS_PAUSED);
    job_user_cancel(job, true, &error_abort);
    POLL_UNTIL(job->status == JOB_STATUS_CONCLUDED);
    assert_events("p1:paused p1:running p1:aborting p1:concluded ");
    job_dismiss(&job, &error_abort);
    events_reset();
}

static void test_ready_complete(void)
{
    TestJob *t = new_job("r1", JOB_MANUAL_DISMISS, NULL);
    Job *job = &t->common;
    Error *err = NULL;

    t->steps = 1;
    t->go_ready = true;
    job_start(job);
    job_complete(job, &err);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Job 'r1' in state 'running' cannot accept command "
                    "verb 'complete'");
    error_free(err);
    err = NULL;
    POLL_UNTIL(job->status == JOB_STATUS_READY);
    check_all_verbs(job);                        /* ready */
    g_assert_true(job_is_ready(job));

    job_user_pause(job, &error_abort);
    POLL_UNTIL(job->status == JOB_STATUS_STANDBY);
    check_all_verbs(job);                        /* standby */
    job_complete(job, &err);
    g_assert_nonnull(err);
    error_free(err);
    err = NULL;
    job_user_resume(job, &error_abort);
    POLL_UNTIL(job->status == JOB_STATUS_READY);

    job_complete(job, &error_abort);
    POLL_UNTIL(job->status == JOB_STATUS_CONCLUDED);
    assert_events("r1:created r1:running r1:ready r1:standby r1:ready "
                  "r1:waiting r1:pending r1:concluded ");
    g_assert_cmpint(t->committed, ==, 1);
    job_dismiss(&job, &error_abort);
    events_reset();
}

static void test_manual_finalize(void)
{
    TestJob *t = new_job("m1", JOB_MANUAL_DISMISS | JOB_MANUAL_FINALIZE,
                         NULL);
    Job *job = &t->common;
    Error *err = NULL;

    t->steps = 1;
    job_start(job);
    POLL_UNTIL(job->status == JOB_STATUS_PENDING);
    assert_events("m1:created m1:running m1:waiting m1:pending ");
    check_all_verbs(job);                        /* pending */
    g_assert_cmpint(t->committed, ==, 0);
    job_dismiss(&job, &err);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Job 'm1' in state 'pending' cannot accept command "
                    "verb 'dismiss'");
    error_free(err);
    g_assert_nonnull(job);
    job_finalize(job, &error_abort);
    assert_events("m1:concluded ");
    g_assert_cmpint(t->committed, ==, 1);
    job_dismiss(&job, &error_abort);
    assert_events("m1:null ");
}

/* Cancel in pending: the job is failed in its finalization. */
static void test_cancel_pending(void)
{
    TestJob *t = new_job("cp", JOB_MANUAL_DISMISS | JOB_MANUAL_FINALIZE,
                         NULL);
    Job *job = &t->common;

    t->steps = 1;
    job_start(job);
    POLL_UNTIL(job->status == JOB_STATUS_PENDING);
    job_user_cancel(job, true, &error_abort);
    g_assert_cmpint(job->status, ==, JOB_STATUS_CONCLUDED);
    assert_events("cp:created cp:running cp:waiting cp:pending cp:aborting "
                  "cp:concluded ");
    g_assert_cmpint(t->aborted, ==, 1);
    g_assert_cmpint(t->committed, ==, 0);
    job_dismiss(&job, &error_abort);
    events_reset();
}

/* A failing member of a transaction cancels and fails the others; a
 * successful one waits for the rest. */
static void test_txn(void)
{
    JobTxn *txn = job_txn_new();
    TestJob *a = new_job("ta", JOB_MANUAL_DISMISS, txn);
    TestJob *b = new_job("tb", JOB_MANUAL_DISMISS, txn);
    Job *ja = &a->common, *jb = &b->common;

    job_txn_unref(txn);
    a->steps = 1;
    b->steps = 1;
    job_start(ja);
    job_start(jb);
    POLL_UNTIL(ja->status == JOB_STATUS_CONCLUDED &&
               jb->status == JOB_STATUS_CONCLUDED);
    g_assert_cmpint(a->committed + b->committed, ==, 2);
    g_assert_true(strstr(events->str, "ta:waiting") <
                  strstr(events->str, "tb:waiting"));
    /* pending only once both are waiting */
    g_assert_true(strstr(events->str, "tb:waiting") <
                  strstr(events->str, "ta:pending"));
    job_dismiss(&ja, &error_abort);
    job_dismiss(&jb, &error_abort);
    events_reset();

    txn = job_txn_new();
    a = new_job("ta", JOB_MANUAL_DISMISS, txn);
    b = new_job("tb", JOB_MANUAL_DISMISS, txn);
    ja = &a->common;
    jb = &b->common;
    job_txn_unref(txn);
    a->steps = 1;
    a->result = -EIO;
    b->steps = -1;
    job_start(ja);
    job_start(jb);
    POLL_UNTIL(ja->status == JOB_STATUS_CONCLUDED &&
               jb->status == JOB_STATUS_CONCLUDED);
    g_assert_cmpint(a->aborted, ==, 1);
    g_assert_cmpint(b->aborted, ==, 1);
    g_assert_cmpint(ja->ret, ==, -EIO);
    g_assert_cmpint(jb->ret, ==, -ECANCELED);
    job_dismiss(&ja, &error_abort);
    job_dismiss(&jb, &error_abort);
    events_reset();
}

static void test_cancel_sync_all(void)
{
    TestJob *done = new_job("d1", JOB_MANUAL_DISMISS, NULL);
    TestJob *run = new_job("d2", JOB_MANUAL_DISMISS, NULL);
    TestJob *paused;
    TestJob *fresh;

    done->steps = 0;
    job_start(&done->common);
    POLL_UNTIL(done->common.status == JOB_STATUS_CONCLUDED);
    run->steps = -1;
    job_start(&run->common);
    paused = new_job("d3", JOB_MANUAL_DISMISS, NULL);
    paused->steps = -1;
    job_start(&paused->common);
    job_user_pause(&paused->common, &error_abort);
    POLL_UNTIL(paused->common.status == JOB_STATUS_PAUSED);
    fresh = new_job("d4", JOB_MANUAL_DISMISS, NULL);
    (void)fresh;
    events_reset();

    job_cancel_sync_all();
    /* Newest first; every job ends null. */
    assert_events("d4:aborting d4:concluded d4:null "
                  "d3:running d3:aborting d3:concluded d3:null "
                  "d2:aborting d2:concluded d2:null d1:null ");
    g_assert_null(job_next(NULL));
}

static void test_query_order(void)
{
    TestJob *a = new_job("q1", JOB_MANUAL_DISMISS, NULL);
    TestJob *b = new_job("q2", JOB_MANUAL_DISMISS, NULL);

    g_assert_true(job_next(NULL) == &b->common);
    g_assert_true(job_next(&b->common) == &a->common);
    g_assert_null(job_next(&a->common));
    g_assert_cmpstr(job_type_str(&a->common), ==, "backup");
    job_cancel_sync_all();
    events_reset();
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    events = g_string_new("");
    qapi_event_set_emitter(record_event);
    qb_get_aio_context();

    g_test_add_func("/job/transition-table", test_transition_table);
    g_test_add_func("/job/verb-table", test_verb_table);
    g_test_add_func("/job/ids", test_ids);
    g_test_add_func("/job/success-manual-dismiss",
                    test_success_manual_dismiss);
    g_test_add_func("/job/auto-dismiss", test_auto_dismiss);
    g_test_add_func("/job/failure", test_failure);
    g_test_add_func("/job/no-yield", test_no_yield);
    g_test_add_func("/job/cancel-running", test_cancel_running);
    g_test_add_func("/job/pause-resume", test_pause_resume);
    g_test_add_func("/job/ready-complete", test_ready_complete);
    g_test_add_func("/job/manual-finalize", test_manual_finalize);
    g_test_add_func("/job/cancel-pending", test_cancel_pending);
    g_test_add_func("/job/txn", test_txn);
    g_test_add_func("/job/cancel-sync-all", test_cancel_sync_all);
    g_test_add_func("/job/query-order", test_query_order);
    return g_test_run();
}
