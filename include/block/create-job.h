/*
 * blockdev-create as a job (block/jobs/create.c).
 */
#ifndef BLOCK_CREATE_JOB_H
#define BLOCK_CREATE_JOB_H

#include <jansson.h>
#include "util/error.h"

/* Check the driver named in options ({"driver": .., fields ..}, the
 * BlockdevCreateOptions as JSON) and the job id, then start a "create"
 * job running the driver's bdrv_co_create.  Errors found here are the
 * command's; errors of the creation itself end up in the job. */
bool blockdev_create_start(const char *job_id, json_t *options, Error **errp);

#endif
