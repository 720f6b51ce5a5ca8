/*
 * Job QMP commands: blockdev-create, query-jobs and the job-* verbs.  The
 * work is in block/jobs/; this file looks jobs up with QEMU's texts and
 * converts between the generated types and the job layer.
 */
#include "block/qmp/qmp-internal.h"
#include "block/job.h"
#include "block/create-job.h"

void qmp_blockdev_create(const char *job_id, BlockdevCreateOptions *options,
                         Error **errp)
{
    json_t *opts = QMP_TO_JSON(BlockdevCreateOptions, options);

    blockdev_create_start(job_id, opts, errp);
    json_decref(opts);
}

/* Internal jobs have no id and are invisible to the user. */
static Job *find_job(const char *id, Error **errp)
{
    Job *job = job_get(id);

    if (!job) {
        error_setg(errp, "Job not found");
    }
    return job;
}

void qmp_job_pause(const char *id, Error **errp)
{
    Job *job = find_job(id, errp);

    if (job) {
        job_user_pause(job, errp);
    }
}

void qmp_job_resume(const char *id, Error **errp)
{
    Job *job = find_job(id, errp);

    if (job) {
        job_user_resume(job, errp);
    }
}

void qmp_job_cancel(const char *id, Error **errp)
{
    Job *job = find_job(id, errp);

    if (job) {
        job_user_cancel(job, true, errp);
    }
}

void qmp_job_complete(const char *id, Error **errp)
{
    Job *job = find_job(id, errp);

    if (job) {
        job_complete(job, errp);
    }
}

void qmp_job_finalize(const char *id, Error **errp)
{
    Job *job = find_job(id, errp);

    if (job) {
        /* Finalizing may free it (auto-dismiss): hold it meanwhile. */
        job_ref(job);
        job_finalize(job, errp);
        job_unref(job);
    }
}

void qmp_job_dismiss(const char *id, Error **errp)
{
    Job *job = find_job(id, errp);

    if (job) {
        job_dismiss(&job, errp);
    }
}

JobInfoList *qmp_query_jobs(Error **errp)
{
    JobInfoList *head = NULL, **tail = &head;

    /* The job list is newest first, which is QEMU's order too. */
    for (Job *job = job_next(NULL); job; job = job_next(job)) {
        JobInfoList *e;
        JobInfo *info;

        if (job_is_internal(job)) {
            continue;
        }
        info = g_new0(JobInfo, 1);
        info->id = g_strdup(job->id);
        info->type = job->driver->job_type;
        info->status = job->status;
        info->current_progress = job->progress_current;
        info->total_progress = job->progress_total;
        if (job->ret) {
            info->has_error = true;
            info->error = g_strdup(job->err ? error_get_pretty(job->err)
                                            : g_strerror(-job->ret));
        }
        e = g_new0(JobInfoList, 1);
        e->value = info;
        *tail = e;
        tail = &e->next;
    }
    return head;
}
