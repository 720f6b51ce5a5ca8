/*
 * block_resize: change the virtual size of a node (QEMU 7.2's command,
 * the same operation as qemu-img resize on an open image).
 *
 * The node is resized through a temporary BlockBackend that takes the
 * RESIZE permission, so a parent that unshares it (a format node above a
 * protocol node, an NBD export) makes the command fail with the usual
 * permission-conflict text instead of changing a size someone relies on.
 * Dirty bitmaps follow the new size (block layer); a qcow2 node with
 * persistent bitmaps it cannot resize refuses (qcow2 driver).
 */
#include "block/qmp/qmp-internal.h"
#include "block/block-backend.h"

void qmp_block_resize(bool has_device, const char *device,
                      bool has_node_name, const char *node_name,
                      int64_t size, Error **errp)
{
    BlockDriverState *bs;
    BlockBackend *blk;

    bs = bdrv_lookup_bs(has_device ? device : NULL,
                        has_node_name ? node_name : NULL, errp);
    if (!bs) {
        return;
    }
    if (size < 0) {
        error_setg(errp, "Parameter 'size' expects a >0 size");
        return;
    }
    blk = blk_new(qb_get_aio_context(), BLK_PERM_RESIZE, BLK_PERM_ALL);
    if (blk_insert_bs(blk, bs, errp) < 0) {
        blk_unref(blk);
        return;
    }
    /* exact=false: a format may round up, as QEMU's block_resize allows. */
    blk_truncate(blk, size, false, PREALLOC_MODE_OFF, 0, errp);
    blk_unref(blk);
}
