/*
 * Placeholders for schema commands whose implementations belong to
 * modules not written yet (internal snapshots).  They are weak symbols so
 * the daemon links; the commands that would create something fail with a
 * GenericError saying the feature is missing.
 *
 * When a module implements one of these (a strong definition), delete its
 * entry here: a weak definition already pulled from this archive keeps the
 * linker from pulling the real one out of a later static library.
 */
#include "block/qmp/qmp-internal.h"

#define WEAK __attribute__((weak))

/* (No command is missing at the moment; kept for the next one.) */
static G_GNUC_UNUSED void not_built(Error **errp, const char *cmd)
{
    error_setg(errp, "Command '%s' is not supported by this build of "
               "qblock-storage-daemon", cmd);
}

