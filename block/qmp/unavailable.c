/*
 * Placeholders for schema commands whose implementations belong to
 * modules not written yet (jobs and blockdev-create, internal snapshots,
 * the NBD server and block exports).  They are weak symbols so the daemon
 * links; each reports an honest state: with no job and no export existing,
 * the queries return empty lists and the per-id commands say the id is not
 * found, while the commands that would create something fail with a
 * GenericError saying the feature is missing.
 *
 * When a module implements one of these (a strong definition), delete its
 * entry here: a weak definition already pulled from this archive keeps the
 * linker from pulling the real one out of a later static library.
 */
#include "block/qmp/qmp-internal.h"

#define WEAK __attribute__((weak))

static void not_built(Error **errp, const char *cmd)
{
    error_setg(errp, "Command '%s' is not supported by this build of "
               "qblock-storage-daemon", cmd);
}

WEAK void qmp_blockdev_create(const char *job_id,
                              BlockdevCreateOptions *options, Error **errp)
{
    not_built(errp, "blockdev-create");
}

WEAK void qmp_blockdev_snapshot_internal_sync(const char *device,
                                              const char *name, Error **errp)
{
    not_built(errp, "blockdev-snapshot-internal-sync");
}

WEAK void qmp_job_pause(const char *id, Error **errp)
{
    error_setg(errp, "Job not found");
}

WEAK void qmp_job_resume(const char *id, Error **errp)
{
    error_setg(errp, "Job not found");
}

WEAK void qmp_job_cancel(const char *id, Error **errp)
{
    error_setg(errp, "Job not found");
}

WEAK void qmp_job_complete(const char *id, Error **errp)
{
    error_setg(errp, "Job not found");
}

WEAK void qmp_job_dismiss(const char *id, Error **errp)
{
    error_setg(errp, "Job not found");
}

WEAK void qmp_job_finalize(const char *id, Error **errp)
{
    error_setg(errp, "Job not found");
}

WEAK JobInfoList *qmp_query_jobs(Error **errp)
{
    return NULL;    /* the empty list */
}

WEAK void qmp_nbd_server_start(SocketAddressLegacy *addr, bool has_tls_creds,
                               const char *tls_creds, bool has_tls_authz,
                               const char *tls_authz,
                               bool has_max_connections,
                               uint32_t max_connections, Error **errp)
{
    not_built(errp, "nbd-server-start");
}

WEAK void qmp_nbd_server_add(NbdServerAddOptions *arg, Error **errp)
{
    error_setg(errp, "NBD server not running");
}

WEAK void qmp_nbd_server_remove(const char *name, bool has_mode,
                                BlockExportRemoveMode mode, Error **errp)
{
    error_setg(errp, "NBD server not running");
}

WEAK void qmp_nbd_server_stop(Error **errp)
{
    error_setg(errp, "NBD server not running");
}

WEAK void qmp_block_export_add(BlockExportOptions *arg, Error **errp)
{
    not_built(errp, "block-export-add");
}

WEAK void qmp_block_export_del(const char *id, bool has_mode,
                               BlockExportRemoveMode mode, Error **errp)
{
    error_setg(errp, "Export '%s' is not found", id);
}

WEAK BlockExportInfoList *qmp_query_block_exports(Error **errp)
{
    return NULL;
}
