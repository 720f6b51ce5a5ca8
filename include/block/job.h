/*
 * Jobs: long-running background operations (image creation now; backup,
 * mirror, commit, stream later) with QEMU's user-visible life cycle.
 *
 * A job runs its driver's run() as a coroutine in the main AioContext and
 * moves through the JobStatus states (created, running, paused, ready,
 * standby, waiting, pending, aborting, concluded, null) only along the edges
 * of QEMU's transition table; each change of state is announced with a
 * JOB_STATUS_CHANGE event.  User commands are "verbs" and each is accepted
 * only in the states QEMU's verb table allows, otherwise they fail with
 * "Job 'ID' in state 'STATE' cannot accept command verb 'VERB'".
 *
 * Invariants:
 *  1. Every job belongs to exactly one JobTxn until it concludes; a job
 *     created without one gets a transaction of its own.
 *  2. A job is "completed" from waiting on (waiting, pending, aborting,
 *     concluded, null); run() has returned and will not be entered again.
 *  3. Completion work (prepare/commit/abort/clean) runs outside coroutine
 *     context, from a bottom half of the main loop, never from run().
 *  4. The job list is newest first (what query-jobs shows).
 *  5. A job with auto-dismiss concludes and goes to null on its own; one
 *     without waits in concluded for job-dismiss.
 */
#ifndef BLOCK_JOB_H
#define BLOCK_JOB_H

#include "util/common.h"
#include "util/error.h"
#include "util/coroutine.h"
#include "util/aio.h"
#include "qapi/qapi-types.h"

typedef struct Job Job;
typedef struct JobTxn JobTxn;

typedef struct JobDriver {
    size_t instance_size;          /* >= sizeof(Job); Job must come first */
    JobType job_type;
    /* The work, in coroutine context.  0 on success, or -errno with errp
     * set (a plain -errno gets strerror() as its error text). */
    int coroutine_fn (*run)(Job *job, Error **errp);
    /* job-complete in state ready (optional). */
    void (*complete)(Job *job, Error **errp);
    /* Completion: prepare may still fail the transaction (returns -errno);
     * then commit or abort, then clean, in that order, all optional. */
    int (*prepare)(Job *job);
    void (*commit)(Job *job);
    void (*abort)(Job *job);
    void (*clean)(Job *job);
    /* A cancel request; returns whether it is to be treated as forced.
     * Without it every cancel is forced. */
    bool (*cancel)(Job *job, bool force);
    void (*free)(Job *job);
} JobDriver;

enum {
    JOB_DEFAULT = 0,
    JOB_INTERNAL = 1 << 0,         /* no id, no events, not in query-jobs */
    JOB_MANUAL_FINALIZE = 1 << 1,  /* stays pending until job-finalize */
    JOB_MANUAL_DISMISS = 1 << 2,   /* stays concluded until job-dismiss */
};

struct Job {
    char *id;                      /* NULL for internal jobs */
    const JobDriver *driver;
    AioContext *aio_context;
    Coroutine *co;
    JobTxn *txn;
    JobStatus status;
    int refcnt;
    /* >0: the job should pause at its next pause point.  Starts at 1 so a
     * job that has not been started cannot run. */
    int pause_count;
    bool user_paused;              /* job-pause took one pause_count */
    bool paused;                   /* yielded at a pause point */
    bool busy;                     /* running (not sleeping or paused) */
    bool cancelled;                /* cancel was requested */
    bool force_cancel;             /* ... and it is a real (forced) one */
    bool deferred_to_main_loop;    /* run() returned, exit is scheduled */
    bool auto_finalize;
    bool auto_dismiss;
    bool started;
    int ret;                       /* result; -ECANCELED when cancelled */
    Error *err;                    /* the error query-jobs shows */
    uint64_t progress_current;
    uint64_t progress_total;
    QBTimer *sleep_timer;
    QBBH *exit_bh;
    void (*cb)(void *opaque, int ret);  /* called once, at finalization */
    void *opaque;
};

/* The two tables, exposed for tests and for callers that want to ask. */
bool job_transition_allowed(JobStatus from, JobStatus to);
bool job_verb_allowed(JobStatus status, JobVerb verb);

/* Create a job in state created (event sent).  id must be well formed and
 * unused (QEMU's texts), or NULL with JOB_INTERNAL.  txn NULL: a new
 * transaction of its own.  Returns a Job of driver->instance_size bytes. */
void *job_create(const char *id, const JobDriver *driver, JobTxn *txn,
                 int flags, void (*cb)(void *opaque, int ret), void *opaque,
                 Error **errp);
/* Start run() (state running): it runs until its first yield before this
 * returns.  A job that finishes without yielding completes before this
 * returns too (QEMU sends all its events before the command's reply then),
 * so the caller must not touch job afterwards without holding a ref. */
void job_start(Job *job);

void job_ref(Job *job);
void job_unref(Job *job);

/* Lookup and iteration over non-internal and internal jobs, newest first. */
Job *job_get(const char *id);
Job *job_next(Job *job);
const char *job_type_str(Job *job);

bool job_is_completed(Job *job);
bool job_is_cancelled(Job *job);
bool job_cancel_requested(Job *job);
bool job_is_ready(Job *job);
bool job_is_internal(Job *job);

/* Fails with QEMU's text if verb is not allowed in job's current state. */
int job_apply_verb(Job *job, JobVerb verb, Error **errp);

/* Progress counters as query-jobs shows them. */
void job_progress_update(Job *job, uint64_t done);
void job_progress_set_remaining(Job *job, uint64_t remaining);
void job_progress_increase_remaining(Job *job, uint64_t delta);

/* In run(): */
void coroutine_fn job_pause_point(Job *job);
void coroutine_fn job_sleep_ns(Job *job, int64_t ns);
void coroutine_fn job_yield(Job *job);       /* until job_enter() */
void job_enter(Job *job);
void job_transition_to_ready(Job *job);

/* The user verbs (QMP job-*), each with QEMU's checks and texts. */
void job_user_pause(Job *job, Error **errp);
void job_user_resume(Job *job, Error **errp);
void job_user_cancel(Job *job, bool force, Error **errp);
void job_complete(Job *job, Error **errp);
void job_finalize(Job *job, Error **errp);
/* On success *jobptr is cleared (the job is gone). */
void job_dismiss(Job **jobptr, Error **errp);

/* Cancel (force) and wait until completed; returns the job's result. */
int job_cancel_sync(Job *job, bool force);
/* Cancel every job and wait: daemon shutdown.  Concluded jobs are
 * dismissed (JOB_STATUS_CHANGE null), as QEMU does before quit's reply. */
void job_cancel_sync_all(void);
/* Wait until the job is completed (outside coroutine context). */
int job_wait_completed(Job *job);

JobTxn *job_txn_new(void);
void job_txn_unref(JobTxn *txn);
void job_txn_add_job(JobTxn *txn, Job *job);

#endif
