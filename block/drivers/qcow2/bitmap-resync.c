/*
 * qcow2: write the persistent bitmaps of a live, read-write node back to
 * the image without closing or reopening it.  Used when a transaction that
 * removed a stored bitmap aborts: QEMU 7.2 leaves that bitmap off the disk
 * until close, so a crash in between loses it silently; qblock stores it
 * at once (bitmaps issue, "never lose a bitmap silently").
 *
 * It is the store half of a read-write -> read-only reopen followed by the
 * in-use half of read-only -> read-write (bitmap.c): after it, every
 * persistent bitmap is on disk with its current contents and flagged
 * in_use again, exactly the state of a freshly opened image, so a later
 * crash leaves it inconsistent but present.  The caller drains the node.
 */
#include "bitmap.h"

int coroutine_fn qcow2_co_resync_persistent_dirty_bitmaps(BlockDriverState *bs,
                                                          Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    if (bdrv_is_read_only(bs)) {
        /* Readonly bitmaps are never stored: nothing can be written. */
        error_setg(errp, "No write access");
        return -EPERM;
    }
    co_mutex_lock(&s->lock);
    ret = qcow2_reopen_bitmaps_ro(bs, errp);
    if (ret == 0) {
        ret = qcow2_reopen_bitmaps_rw(bs, errp);
    }
    co_mutex_unlock(&s->lock);
    return ret;
}
