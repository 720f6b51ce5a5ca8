/*
 * The "create" job behind blockdev-create: it runs one driver's
 * bdrv_co_create() with the options in blockdev-create form.  Like QEMU's,
 * the job is manual-dismiss (it waits in concluded so the user can read
 * its error from query-jobs), reports progress 0/1 then 1/1, and has no
 * cancel hook (a cancel request is forced, and only takes effect once the
 * driver returns).
 */
#include "block/job.h"
#include "block/create-job.h"
#include "block/block-int.h"

typedef struct CreateJob {
    Job common;
    BlockDriver *drv;
    json_t *opts;        /* {"driver": .., driver fields ..} */
} CreateJob;

static int coroutine_fn create_job_run(Job *job, Error **errp)
{
    CreateJob *s = (CreateJob *)job;
    int ret;

    job_progress_set_remaining(job, 1);
    ret = s->drv->bdrv_co_create(s->opts, errp);
    job_progress_update(job, 1);
    /* The options are not needed any more; drop node references early. */
    json_decref(s->opts);
    s->opts = NULL;
    return ret;
}

static void create_job_free(Job *job)
{
    CreateJob *s = (CreateJob *)job;

    json_decref(s->opts);
}

static const JobDriver create_job_driver = {
    .instance_size = sizeof(CreateJob),
    .job_type = JOB_TYPE_CREATE,
    .run = create_job_run,
    .free = create_job_free,
};

bool blockdev_create_start(const char *job_id, json_t *options, Error **errp)
{
    const char *fmt = json_string_value(json_object_get(options, "driver"));
    BlockDriver *drv = fmt ? bdrv_find_format(fmt) : NULL;
    CreateJob *s;

    if (!fmt) {
        error_setg(errp, "Parameter 'driver' is missing");
        return false;
    }
    if (!drv) {
        error_setg(errp, "Block driver '%s' not found or not supported", fmt);
        return false;
    }
    if (!drv->bdrv_co_create) {
        error_setg(errp, "Driver does not support blockdev-create");
        return false;
    }
    s = job_create(job_id, &create_job_driver, NULL,
                   JOB_DEFAULT | JOB_MANUAL_DISMISS, NULL, NULL, errp);
    if (!s) {
        return false;
    }
    s->drv = drv;
    s->opts = json_deep_copy(options);
    job_start(&s->common);
    return true;
}
