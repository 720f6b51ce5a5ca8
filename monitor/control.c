/*
 * Control commands: query-version, query-commands, quit.  They belong to
 * the monitor layer (they ask the monitor for its command table and for
 * shutdown), not to block/qmp.  qmp_capabilities
 * is handled inside the monitor (it changes the session's state); the
 * function here only answers when something dispatches it through the
 * table after negotiation.
 */
#include "monitor/monitor.h"
#include "qapi/qapi-commands.h"
#include "block/job.h"

VersionInfo *qmp_query_version(Error **errp)
{
    VersionInfo *info = g_new0(VersionInfo, 1);

    info->qemu = g_new0(VersionTriple, 1);
    info->qemu->major = 7;
    info->qemu->minor = 2;
    info->qemu->micro = 0;
    info->package = g_strdup("qblock " QBLOCK_VERSION);
    return info;
}

CommandInfoList *qmp_query_commands(Error **errp)
{
    /* The table the program installed (the generated one sits above the
     * monitor layer, so it is handed down rather than referenced). */
    const QmpCommand *table = monitor_get_command_table();
    CommandInfoList *head = NULL;

    if (!table) {
        return NULL;
    }
    /* QEMU lists them in reverse registration order; prepending does that. */
    for (const QmpCommand *c = table; c->name; c++) {
        CommandInfoList *e = g_new0(CommandInfoList, 1);

        e->value = g_new0(CommandInfo, 1);
        e->value->name = g_strdup(c->name);
        e->next = head;
        head = e;
    }
    return head;
}

void qmp_quit(Error **errp)
{
    /* QEMU cancels and dismisses remaining jobs (JOB_STATUS_CHANGE null)
     * before quit's reply. */
    job_cancel_sync_all();
    qb_request_shutdown();
}

void qmp_qmp_capabilities(bool has_enable, QMPCapabilityList *enable,
                          Error **errp)
{
    error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
              "Capabilities negotiation is already complete, command "
              "ignored");
}
