/*
 * blockdev-reopen: reopen a list of nodes with new options as one
 * transaction (block/reopen.c does the work).  Every listed node gets
 * exactly the options given: omitted options revert to their defaults
 * (QMP semantics, keep_old_opts = false).  An empty list is a no-op
 * success (QEMU 7.2 aborts on it).
 */
#include "block/qmp/qmp-internal.h"
#include "block/reopen.h"

void qmp_blockdev_reopen(BlockdevOptionsList *reopen_list, Error **errp)
{
    BlockReopenQueue *queue = NULL;

    for (BlockdevOptionsList *l = reopen_list; l; l = l->next) {
        json_t *opts = QMP_TO_JSON(BlockdevOptions, l->value);
        const char *name = json_string_value(json_object_get(opts,
                                                             "node-name"));
        BlockDriverState *bs;

        if (!name) {
            error_setg(errp, "node-name not specified");
            json_decref(opts);
            goto fail;
        }
        bs = bdrv_find_node(name);
        if (!bs) {
            error_setg(errp, "Failed to find node with node-name='%s'", name);
            json_decref(opts);
            goto fail;
        }
        /* node-name is identity, not an option to change. */
        queue = bdrv_reopen_queue(queue, bs, opts, false);
    }
    if (queue) {
        bdrv_reopen_multiple(queue, errp);
    }
    return;

fail:
    bdrv_reopen_queue_free(queue);
}
