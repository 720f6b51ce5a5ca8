/*
 * The generic job: its state machine, verbs, transactions, progress and
 * events, following QEMU 7.2's observable behaviour (see
 * docs/design/jobs.md).  Jobs live in the main AioContext only: run() is a
 * coroutine there, and everything else (creation, verbs, completion) runs
 * in the main loop outside coroutine context, so the job list and every
 * field below need no lock.
 *
 * Completion, in order: run() returns -> the exit bottom half -> on success
 * waiting, then (once every job of the transaction has got there) pending,
 * then with auto-finalize: prepare, commit, clean, concluded; on failure
 * or cancel: aborting, abort, clean, concluded, for every job of the
 * transaction.  With auto-dismiss a concluded job goes on to null.
 */
#include "block/job.h"
#include "qapi/qapi-events.h"

struct JobTxn {
    GList *jobs;          /* members not yet finalized */
    int refcnt;
    bool aborting;
};

/* Newest first (invariant 4). */
static GList *jobs;

/*
 * QEMU's transition table: for each state, the states it may move to.
 * Letters: U undefined, C created, R running, P paused, Y ready,
 * S standby, W waiting, D pending, X aborting, E concluded, N null.
 */
static const char status_letter[JOB_STATUS__MAX] = {
    [JOB_STATUS_UNDEFINED] = 'U', [JOB_STATUS_CREATED] = 'C',
    [JOB_STATUS_RUNNING] = 'R',   [JOB_STATUS_PAUSED] = 'P',
    [JOB_STATUS_READY] = 'Y',     [JOB_STATUS_STANDBY] = 'S',
    [JOB_STATUS_WAITING] = 'W',   [JOB_STATUS_PENDING] = 'D',
    [JOB_STATUS_ABORTING] = 'X',  [JOB_STATUS_CONCLUDED] = 'E',
    [JOB_STATUS_NULL] = 'N',
};

static const char *const next_states[JOB_STATUS__MAX] = {
    [JOB_STATUS_UNDEFINED] = "C",
    [JOB_STATUS_CREATED] = "RXN",
    [JOB_STATUS_RUNNING] = "PYWX",
    [JOB_STATUS_PAUSED] = "R",
    [JOB_STATUS_READY] = "SWX",
    [JOB_STATUS_STANDBY] = "Y",
    [JOB_STATUS_WAITING] = "DX",
    [JOB_STATUS_PENDING] = "XE",
    [JOB_STATUS_ABORTING] = "XE",
    [JOB_STATUS_CONCLUDED] = "N",
    [JOB_STATUS_NULL] = "",
};

/* QEMU's verb table: for each verb, the states that accept it. */
static const char *const verb_states[JOB_VERB__MAX] = {
    [JOB_VERB_CANCEL] = "CRPYSWD",
    [JOB_VERB_PAUSE] = "CRPYS",
    [JOB_VERB_RESUME] = "CRPYS",
    [JOB_VERB_SET_SPEED] = "CRPYS",
    [JOB_VERB_COMPLETE] = "Y",
    [JOB_VERB_FINALIZE] = "D",
    [JOB_VERB_DISMISS] = "E",
    [JOB_VERB_CHANGE] = "CRPYS",
};

bool job_transition_allowed(JobStatus from, JobStatus to)
{
    assert(from < JOB_STATUS__MAX && to < JOB_STATUS__MAX);
    return strchr(next_states[from], status_letter[to]) != NULL &&
           status_letter[to] != '\0';
}

bool job_verb_allowed(JobStatus status, JobVerb verb)
{
    assert(status < JOB_STATUS__MAX && verb < JOB_VERB__MAX);
    return strchr(verb_states[verb], status_letter[status]) != NULL;
}

/* Ids follow QEMU's id rules: a letter, then letters, digits, '-', '.',
 * '_'. */
static bool id_wellformed(const char *id)
{
    if (!g_ascii_isalpha(id[0])) {
        return false;
    }
    for (const char *p = id + 1; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("-._", *p)) {
            return false;
        }
    }
    return true;
}

bool job_is_internal(Job *job)
{
    return job->id == NULL;
}

static void job_state_transition(Job *job, JobStatus to)
{
    JobStatus from = job->status;

    if (!job_transition_allowed(from, to)) {
        g_error("job '%s': illegal transition %s -> %s",
                job->id ? job->id : "(internal)", JobStatus_str(from),
                JobStatus_str(to));
    }
    job->status = to;
    if (!job_is_internal(job) && from != to) {
        qapi_event_send_job_status_change(job->id, to);
    }
}

int job_apply_verb(Job *job, JobVerb verb, Error **errp)
{
    if (job_verb_allowed(job->status, verb)) {
        return 0;
    }
    error_setg(errp, "Job '%s' in state '%s' cannot accept command verb "
               "'%s'", job->id ? job->id : "", JobStatus_str(job->status),
               JobVerb_str(verb));
    return -EPERM;
}

const char *job_type_str(Job *job)
{
    return JobType_str(job->driver->job_type);
}

bool job_is_completed(Job *job)
{
    switch (job->status) {
    case JOB_STATUS_WAITING:
    case JOB_STATUS_PENDING:
    case JOB_STATUS_ABORTING:
    case JOB_STATUS_CONCLUDED:
    case JOB_STATUS_NULL:
        return true;
    default:
        return false;
    }
}

bool job_is_ready(Job *job)
{
    return job->status == JOB_STATUS_READY ||
           job->status == JOB_STATUS_STANDBY;
}

/* Only a forced cancel fails the job; a soft one (for jobs whose driver
 * supports it, e.g. a mirror in ready) lets it complete normally. */
bool job_is_cancelled(Job *job)
{
    return job->force_cancel;
}

bool job_cancel_requested(Job *job)
{
    return job->cancelled;
}

/* ------------------------------------------------------------------ */
/* Transactions                                                        */

JobTxn *job_txn_new(void)
{
    JobTxn *txn = g_new0(JobTxn, 1);

    txn->refcnt = 1;
    return txn;
}

static void job_txn_ref(JobTxn *txn)
{
    txn->refcnt++;
}

void job_txn_unref(JobTxn *txn)
{
    if (txn && --txn->refcnt == 0) {
        assert(txn->jobs == NULL);
        g_free(txn);
    }
}

void job_txn_add_job(JobTxn *txn, Job *job)
{
    assert(!job->txn);
    job->txn = txn;
    txn->jobs = g_list_append(txn->jobs, job);
    job_txn_ref(txn);
}

static void job_txn_del_job(Job *job)
{
    if (job->txn) {
        job->txn->jobs = g_list_remove(job->txn->jobs, job);
        job_txn_unref(job->txn);
        job->txn = NULL;
    }
}

/* Apply fn to every member (on a snapshot, so fn may leave the txn);
 * stops at the first failure and returns it. */
static int job_txn_apply(Job *job, int (*fn)(Job *))
{
    JobTxn *txn = job->txn;
    GList *snap, *l;
    int rc = 0;

    if (!txn) {
        return fn(job);
    }
    job_txn_ref(txn);
    snap = g_list_copy(txn->jobs);
    for (l = snap; l; l = l->next) {
        job_ref(l->data);
    }
    for (l = snap; l && rc == 0; l = l->next) {
        rc = fn(l->data);
    }
    g_list_free_full(snap, (GDestroyNotify)job_unref);
    job_txn_unref(txn);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Life cycle                                                          */

Job *job_get(const char *id)
{
    for (GList *l = jobs; l; l = l->next) {
        Job *job = l->data;
        if (job->id && g_str_equal(job->id, id)) {
            return job;
        }
    }
    return NULL;
}

Job *job_next(Job *job)
{
    GList *l;

    if (!job) {
        return jobs ? jobs->data : NULL;
    }
    l = g_list_find(jobs, job);
    return l && l->next ? l->next->data : NULL;
}

static void job_sleep_timer_cb(void *opaque);
static void job_exit(void *opaque);

void *job_create(const char *id, const JobDriver *driver, JobTxn *txn,
                 int flags, void (*cb)(void *opaque, int ret), void *opaque,
                 Error **errp)
{
    Job *job;

    assert(driver->instance_size >= sizeof(Job) && driver->run);
    if (id) {
        if (flags & JOB_INTERNAL) {
            error_setg(errp, "Cannot specify job ID for internal job");
            return NULL;
        }
        if (!id_wellformed(id)) {
            error_setg(errp, "Invalid job ID '%s'", id);
            return NULL;
        }
        if (job_get(id)) {
            error_setg(errp, "Job ID '%s' already in use", id);
            return NULL;
        }
    } else if (!(flags & JOB_INTERNAL)) {
        error_setg(errp, "An explicit job ID is required");
        return NULL;
    }

    job = g_malloc0(driver->instance_size);
    job->id = g_strdup(id);
    job->driver = driver;
    job->aio_context = qb_get_aio_context();
    job->refcnt = 1;
    job->pause_count = 1;
    job->busy = false;
    job->paused = true;
    job->auto_finalize = !(flags & JOB_MANUAL_FINALIZE);
    job->auto_dismiss = !(flags & JOB_MANUAL_DISMISS);
    job->cb = cb;
    job->opaque = opaque;
    job->sleep_timer = aio_timer_new(job->aio_context, QB_CLOCK_MONOTONIC,
                                     job_sleep_timer_cb, job);
    job->exit_bh = aio_bh_new(job->aio_context, job_exit, job);
    jobs = g_list_prepend(jobs, job);

    /* The new job is created, then joins its transaction (invariant 1). */
    job_state_transition(job, JOB_STATUS_CREATED);
    if (txn) {
        job_txn_add_job(txn, job);
    } else {
        JobTxn *own = job_txn_new();
        job_txn_add_job(own, job);
        job_txn_unref(own);
    }
    return job;
}

void job_ref(Job *job)
{
    job->refcnt++;
}

void job_unref(Job *job)
{
    assert(job->refcnt > 0);
    if (--job->refcnt > 0) {
        return;
    }
    assert(job->status == JOB_STATUS_NULL);
    assert(!job->txn);
    if (job->driver->free) {
        job->driver->free(job);
    }
    jobs = g_list_remove(jobs, job);
    qb_timer_free(job->sleep_timer);
    qb_bh_delete(job->exit_bh);
    error_free(job->err);
    g_free(job->id);
    g_free(job);
}

void job_progress_update(Job *job, uint64_t done)
{
    job->progress_current += done;
}

void job_progress_set_remaining(Job *job, uint64_t remaining)
{
    job->progress_total = job->progress_current + remaining;
}

void job_progress_increase_remaining(Job *job, uint64_t delta)
{
    job->progress_total += delta;
}

/* Leaving the sleep/pause of run(): only when it is suspended and has not
 * finished. */
void job_enter(Job *job)
{
    if (!job->started || job->busy || job->deferred_to_main_loop) {
        return;
    }
    if (job->paused && job->pause_count > 0 && !job_is_cancelled(job)) {
        return;    /* stays paused until resumed */
    }
    qb_timer_del(job->sleep_timer);
    job->busy = true;
    aio_co_enter(job->aio_context, job->co);
}

static void job_sleep_timer_cb(void *opaque)
{
    job_enter(opaque);
}

static bool job_should_pause(Job *job)
{
    return job->pause_count > 0;
}

void coroutine_fn job_yield(Job *job)
{
    assert(job->busy);
    if (job_is_cancelled(job)) {
        return;
    }
    if (!job_should_pause(job)) {
        job->busy = false;
        coroutine_yield();
        job->busy = true;
    }
    job_pause_point(job);
}

void coroutine_fn job_pause_point(Job *job)
{
    JobStatus before;

    if (!job_should_pause(job) || job_is_cancelled(job)) {
        return;
    }
    before = job->status;
    job_state_transition(job, before == JOB_STATUS_READY ?
                         JOB_STATUS_STANDBY : JOB_STATUS_PAUSED);
    job->paused = true;
    job->busy = false;
    do {
        coroutine_yield();
    } while (job_should_pause(job) && !job_is_cancelled(job));
    job->busy = true;
    job->paused = false;
    job_state_transition(job, before);
}

void coroutine_fn job_sleep_ns(Job *job, int64_t ns)
{
    assert(job->busy);
    if (job_is_cancelled(job)) {
        return;
    }
    if (!job_should_pause(job)) {
        qb_timer_mod_ns(job->sleep_timer,
                        qb_clock_get_ns(QB_CLOCK_MONOTONIC) + ns);
        job->busy = false;
        coroutine_yield();
        job->busy = true;
        qb_timer_del(job->sleep_timer);
    }
    job_pause_point(job);
}

void job_transition_to_ready(Job *job)
{
    job_state_transition(job, JOB_STATUS_READY);
}

static void coroutine_fn job_co_entry(void *opaque)
{
    Job *job = opaque;
    Error *err = NULL;

    job_pause_point(job);
    job->ret = job->driver->run(job, &err);
    if (err) {
        error_free(job->err);
        job->err = err;
    }
    /* Invariant 3: completion happens in the main loop. */
    job->deferred_to_main_loop = true;
    job->busy = true;
    qb_bh_schedule(job->exit_bh);
}

void job_start(Job *job)
{
    assert(job->status == JOB_STATUS_CREATED && !job->started);
    job->co = coroutine_create(job_co_entry, job);
    job->started = true;
    job->pause_count--;
    job->busy = true;
    job->paused = false;
    job_state_transition(job, JOB_STATUS_RUNNING);
    job_ref(job);
    coroutine_enter(job->co);
    /*
     * run() returned without ever yielding: QEMU's exit bottom half runs
     * before the command that started the job gets its reply, so complete
     * now rather than after our caller's reply.
     */
    if (job->deferred_to_main_loop && job->status == JOB_STATUS_RUNNING) {
        qb_bh_cancel(job->exit_bh);
        job_exit(job);
    }
    job_unref(job);
}

/* ------------------------------------------------------------------ */
/* Completion                                                          */

static void job_do_dismiss(Job *job)
{
    job->busy = false;
    job->paused = false;
    job->deferred_to_main_loop = true;
    job_txn_del_job(job);
    job_state_transition(job, JOB_STATUS_NULL);
    job_unref(job);
}

static void job_conclude(Job *job)
{
    job_state_transition(job, JOB_STATUS_CONCLUDED);
    if (job->auto_dismiss || !job->started) {
        job_do_dismiss(job);
    }
}

/* A cancelled job without its own error fails with ECANCELED; any
 * failure moves it to aborting. */
static void job_update_rc(Job *job)
{
    if (!job->ret && job_is_cancelled(job)) {
        job->ret = -ECANCELED;
    }
    if (job->ret) {
        if (!job->err) {
            error_setg(&job->err, "%s", g_strerror(-job->ret));
        }
        job_state_transition(job, JOB_STATUS_ABORTING);
    }
}

static int job_finalize_single(Job *job)
{
    assert(job_is_completed(job));
    job_update_rc(job);
    if (!job->ret) {
        if (job->driver->commit) {
            job->driver->commit(job);
        }
    } else if (job->driver->abort) {
        job->driver->abort(job);
    }
    if (job->driver->clean) {
        job->driver->clean(job);
    }
    if (job->cb) {
        job->cb(job->opaque, job->ret);
    }
    job_txn_del_job(job);
    job_conclude(job);
    return 0;
}

static int job_wait_completed_cb(Job *job);

/* Fail the whole transaction: the other members are cancelled (forced),
 * waited for, and every member is finalized as failed. */
static void job_completed_txn_abort(Job *job)
{
    JobTxn *txn = job->txn;

    if (!txn || txn->aborting) {
        return;
    }
    txn->aborting = true;
    job_txn_ref(txn);
    job_ref(job);
    for (GList *l = txn->jobs; l; l = l->next) {
        Job *other = l->data;
        if (other != job) {
            other->cancelled = true;
            other->force_cancel = true;
        }
    }
    while (txn->jobs) {
        Job *other = txn->jobs->data;
        job_ref(other);
        if (!job_is_completed(other)) {
            job_wait_completed_cb(other);
        }
        job_finalize_single(other);
        job_unref(other);
    }
    job_unref(job);
    job_txn_unref(txn);
}

static int job_prepare(Job *job)
{
    if (job->ret == 0 && job->driver->prepare) {
        job->ret = job->driver->prepare(job);
        job_update_rc(job);
    }
    return job->ret;
}

static void job_do_finalize(Job *job)
{
    assert(job->txn);
    if (job_txn_apply(job, job_prepare)) {
        job_completed_txn_abort(job);
        return;
    }
    job_txn_apply(job, job_finalize_single);
}

static int job_to_pending(Job *job)
{
    job_state_transition(job, JOB_STATUS_PENDING);
    return 0;
}

static int job_needs_finalize(Job *job)
{
    return !job->auto_finalize;
}

static void job_completed_txn_success(Job *job)
{
    job_state_transition(job, JOB_STATUS_WAITING);
    for (GList *l = job->txn->jobs; l; l = l->next) {
        if (!job_is_completed(l->data)) {
            return;    /* the last one to finish moves them all on */
        }
    }
    job_txn_apply(job, job_to_pending);
    if (job_txn_apply(job, job_needs_finalize) == 0) {
        job_do_finalize(job);
    }
}

static void job_completed(Job *job)
{
    assert(job->txn && !job_is_completed(job));
    job_update_rc(job);
    if (job->ret) {
        job_completed_txn_abort(job);
    } else {
        job_completed_txn_success(job);
    }
}

static void job_exit(void *opaque)
{
    Job *job = opaque;

    job_ref(job);
    job->busy = false;
    job_completed(job);
    job_unref(job);
}

/* ------------------------------------------------------------------ */
/* Verbs                                                               */

static void job_pause(Job *job)
{
    job->pause_count++;
}

static void job_resume(Job *job)
{
    assert(job->pause_count > 0);
    job->pause_count--;
    if (job->pause_count == 0) {
        job_enter(job);
    }
}

void job_user_pause(Job *job, Error **errp)
{
    if (job_apply_verb(job, JOB_VERB_PAUSE, errp)) {
        return;
    }
    if (job->user_paused) {
        error_setg(errp, "Job is already paused");
        return;
    }
    job->user_paused = true;
    job_pause(job);
}

void job_user_resume(Job *job, Error **errp)
{
    /* QEMU checks "was it paused" before the verb table. */
    if (!job->user_paused || job->pause_count <= 0) {
        error_setg(errp, "Can't resume a job that was not paused");
        return;
    }
    if (job_apply_verb(job, JOB_VERB_RESUME, errp)) {
        return;
    }
    job->user_paused = false;
    job_resume(job);
}

static void job_cancel_async(Job *job, bool force)
{
    force = job->driver->cancel ? job->driver->cancel(job, force) : true;
    if (job->user_paused) {
        /* A cancelled job must be able to reach its exit. */
        job->user_paused = false;
        assert(job->pause_count > 0);
        job->pause_count--;
    }
    /* Once run() has returned, only a forced cancel still counts. */
    if (!job->deferred_to_main_loop || force) {
        job->cancelled = true;
        job->force_cancel |= force;
    }
}

static void job_cancel(Job *job, bool force)
{
    if (job->status == JOB_STATUS_CONCLUDED) {
        job_do_dismiss(job);
        return;
    }
    job_cancel_async(job, force);
    if (!job->started) {
        job_completed(job);
    } else if (job->deferred_to_main_loop) {
        if (job_is_cancelled(job) && job_is_completed(job)) {
            job_completed_txn_abort(job);
        }
    } else {
        /* Wake it from a sleep or pause so it sees the request. */
        if (!job->busy) {
            qb_timer_del(job->sleep_timer);
            job->busy = true;
            aio_co_enter(job->aio_context, job->co);
        }
    }
}

void job_user_cancel(Job *job, bool force, Error **errp)
{
    if (job_apply_verb(job, JOB_VERB_CANCEL, errp)) {
        return;
    }
    job_cancel(job, force);
}

void job_complete(Job *job, Error **errp)
{
    if (job_apply_verb(job, JOB_VERB_COMPLETE, errp)) {
        return;
    }
    if (job->pause_count > 0 || job_cancel_requested(job) ||
        !job->driver->complete) {
        error_setg(errp, "The active block job '%s' cannot be completed",
                   job->id);
        return;
    }
    job->driver->complete(job, errp);
}

void job_finalize(Job *job, Error **errp)
{
    if (job_apply_verb(job, JOB_VERB_FINALIZE, errp)) {
        return;
    }
    job_do_finalize(job);
}

void job_dismiss(Job **jobptr, Error **errp)
{
    Job *job = *jobptr;

    if (job_apply_verb(job, JOB_VERB_DISMISS, errp)) {
        return;
    }
    job_do_dismiss(job);
    *jobptr = NULL;
}

/* ------------------------------------------------------------------ */
/* Synchronous waits                                                   */

static int job_wait_completed_cb(Job *job)
{
    assert(!in_coroutine());
    job_ref(job);
    /* Bounded by the job itself: a cancelled job's run() must return. */
    while (!job_is_completed(job)) {
        job_enter(job);
        aio_poll(job->aio_context, true);
    }
    job_unref(job);
    return 0;
}

int job_wait_completed(Job *job)
{
    int ret;

    job_ref(job);
    job_wait_completed_cb(job);
    ret = (job_is_cancelled(job) && job->ret == 0) ? -ECANCELED : job->ret;
    job_unref(job);
    return ret;
}

int job_cancel_sync(Job *job, bool force)
{
    int ret;

    job_ref(job);
    job_cancel(job, force);
    ret = job_wait_completed(job);
    job_unref(job);
    return ret;
}

void job_cancel_sync_all(void)
{
    /*
     * Newest first, as QEMU walks its list.  A job that was running ends
     * up concluded (auto-dismiss off) and is dismissed by the next round;
     * each round removes a job or moves it on, so this terminates.  A job
     * already null but still referenced elsewhere is skipped.
     */
    for (;;) {
        Job *job = NULL;

        for (GList *l = jobs; l; l = l->next) {
            if (((Job *)l->data)->status != JOB_STATUS_NULL) {
                job = l->data;
                break;
            }
        }
        if (!job) {
            break;
        }
        job_cancel_sync(job, true);
    }
}
