/*
 * Generic entry points for internal snapshots: find the node that keeps
 * them (the format node, or down the file chain for filters and formats
 * that forward, as QEMU does), run the driver hook in a coroutine, and
 * build the SnapshotInfo JSON object that qemu-img info and query-block
 * show.  The snapshot semantics live in the drivers (qcow2/snapshot.c).
 */
#include "block/snapshot.h"
#include "util/coroutine.h"
#include "util/aio.h"
#include "block/dirty-bitmap.h"

/* The node whose driver implements op, following bs->file as QEMU's
 * bdrv_snapshot_fallback does for drivers without snapshot support. */
static BlockDriverState *snapshot_node(BlockDriverState *bs, size_t hook)
{
    while (bs && bs->drv) {
        void *fn = *(void **)((char *)bs->drv + hook);
        if (fn) {
            return bs;
        }
        if (!bs->drv->is_filter || !bs->file) {
            return NULL;
        }
        bs = bs->file->bs;
    }
    return NULL;
}

typedef struct SnapCo {
    void (*fn)(struct SnapCo *c);
    BlockDriverState *bs;
    QBSnapshotInfo *sn;
    QBSnapshotInfo **psn;
    const char *id, *name;
    Error **errp;
    int ret;
    bool done;
} SnapCo;

static void coroutine_fn snap_co_entry(void *opaque)
{
    SnapCo *c = opaque;
    c->fn(c);
    c->done = true;
    aio_notify(qb_get_aio_context());
}

static void snap_run(SnapCo *c)
{
    if (in_coroutine()) {
        c->fn(c);
        return;
    }
    coroutine_enter(coroutine_create(snap_co_entry, c));
    AIO_WAIT_WHILE(qb_get_aio_context(), !c->done);
}

static void do_create(SnapCo *c)
{
    c->ret = c->bs->drv->bdrv_snapshot_create(c->bs, c->sn);
}
static void do_goto(SnapCo *c)
{
    c->ret = c->bs->drv->bdrv_snapshot_goto(c->bs, c->id, c->errp);
}
static void do_delete(SnapCo *c)
{
    c->ret = c->bs->drv->bdrv_snapshot_delete(c->bs, c->id, c->name,
                                              c->errp);
}
static void do_list(SnapCo *c)
{
    c->ret = c->bs->drv->bdrv_snapshot_list(c->bs, c->psn);
}
static void do_load_tmp(SnapCo *c)
{
    c->ret = c->bs->drv->bdrv_snapshot_load_tmp(c->bs, c->id, c->name,
                                                c->errp);
}

bool bdrv_can_snapshot(BlockDriverState *bs)
{
    return snapshot_node(bs, offsetof(BlockDriver, bdrv_snapshot_create)) &&
           !bdrv_is_read_only(bs);
}

int bdrv_snapshot_create(BlockDriverState *bs, QBSnapshotInfo *sn)
{
    BlockDriverState *n =
        snapshot_node(bs, offsetof(BlockDriver, bdrv_snapshot_create));
    SnapCo c = { .fn = do_create, .bs = n, .sn = sn };

    if (!n) {
        return -ENOTSUP;
    }
    snap_run(&c);
    return c.ret;
}

/* Does bs carry a named (user-visible) dirty bitmap? */
static bool has_named_bitmaps(BlockDriverState *bs)
{
    for (BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_first(bs); bm;
         bm = bdrv_dirty_bitmap_next(bm)) {
        if (bdrv_dirty_bitmap_name(bm)) {
            return true;
        }
    }
    return false;
}

/*
 * Applying a snapshot rewrites the disk contents behind every bitmap's
 * back, so QEMU 7.2 refuses it while the node has any named bitmap,
 * enabled or not (observed with qemu-img snapshot -a; iotest 370).
 */
int bdrv_snapshot_goto(BlockDriverState *bs, const char *id_or_name,
                       Error **errp)
{
    BlockDriverState *n =
        snapshot_node(bs, offsetof(BlockDriver, bdrv_snapshot_goto));
    SnapCo c = { .fn = do_goto, .bs = n, .id = id_or_name, .errp = errp };

    if (!n) {
        error_setg(errp, "Block driver does not support snapshots");
        return -ENOTSUP;
    }
    if (has_named_bitmaps(bs) || has_named_bitmaps(n)) {
        error_setg(errp, "Device has active dirty bitmaps");
        return -EBUSY;
    }
    snap_run(&c);
    return c.ret;
}

int bdrv_snapshot_delete(BlockDriverState *bs, const char *id,
                         const char *name, Error **errp)
{
    BlockDriverState *n =
        snapshot_node(bs, offsetof(BlockDriver, bdrv_snapshot_delete));
    SnapCo c = { .fn = do_delete, .bs = n, .id = id, .name = name,
                 .errp = errp };

    if (!id && !name) {
        error_setg(errp, "snapshot_id and name are both NULL");
        return -EINVAL;
    }
    if (!n) {
        /* A format without snapshots has none to delete (qemu-img). */
        error_setg(errp, "snapshot not found");
        return -ENOENT;
    }
    snap_run(&c);
    return c.ret;
}

int bdrv_snapshot_list(BlockDriverState *bs, QBSnapshotInfo **psn)
{
    BlockDriverState *n =
        snapshot_node(bs, offsetof(BlockDriver, bdrv_snapshot_list));
    SnapCo c = { .fn = do_list, .bs = n, .psn = psn };

    *psn = NULL;
    if (!n) {
        return 0;
    }
    snap_run(&c);
    return c.ret;
}

/*
 * Unlike the other operations this one does not look down the file chain:
 * QEMU 7.2 refuses it on any node whose own driver lacks the hook (a raw
 * node over a qcow2 file included).  The read-only test comes first, as
 * in QEMU, so a writable raw node reports "not readonly".
 */
int bdrv_snapshot_load_tmp(BlockDriverState *bs, const char *id,
                           const char *name, Error **errp)
{
    SnapCo c = { .fn = do_load_tmp, .bs = bs, .id = id, .name = name,
                 .errp = errp };

    if (!bs || !bs->drv) {
        error_setg(errp, "Device '' has no medium");
        return -ENOMEDIUM;
    }
    if (!id && !name) {
        error_setg(errp, "snapshot_id and name are both NULL");
        return -EINVAL;
    }
    if (!bdrv_is_read_only(bs)) {
        error_setg(errp, "Device is not readonly");
        return -EINVAL;
    }
    if (!bs->drv->bdrv_snapshot_load_tmp) {
        /* qemu-img's BlockBackends have no name: device ''. */
        error_setg(errp, "Block format '%s' used by device '' does not "
                   "support temporarily loading internal snapshots",
                   bs->drv->format_name);
        return -ENOTSUP;
    }
    snap_run(&c);
    return c.ret;
}

int bdrv_snapshot_load_tmp_by_id_or_name(BlockDriverState *bs,
                                         const char *id_or_name,
                                         Error **errp)
{
    Error *local_err = NULL;
    int ret = bdrv_snapshot_load_tmp(bs, id_or_name, NULL, &local_err);

    if (ret == -ENOENT || ret == -EINVAL) {
        error_free(local_err);
        return bdrv_snapshot_load_tmp(bs, NULL, id_or_name, errp);
    }
    if (ret < 0) {
        error_propagate(errp, local_err);
    }
    return ret;
}

json_t *bdrv_snapshot_info_json(const QBSnapshotInfo *sn)
{
    json_t *o = json_object();

    /* SnapshotInfo members in schema order (QEMU's insertion order). */
    json_object_set_new(o, "id", json_string(sn->id_str));
    json_object_set_new(o, "name", json_string(sn->name));
    json_object_set_new(o, "vm-state-size",
                        json_integer((json_int_t)sn->vm_state_size));
    json_object_set_new(o, "date-sec", json_integer(sn->date_sec));
    json_object_set_new(o, "date-nsec", json_integer(sn->date_nsec));
    json_object_set_new(o, "vm-clock-sec",
                        json_integer(sn->vm_clock_nsec / 1000000000));
    json_object_set_new(o, "vm-clock-nsec",
                        json_integer(sn->vm_clock_nsec % 1000000000));
    if (sn->icount != UINT64_MAX) {
        json_object_set_new(o, "icount", json_integer((json_int_t)sn->icount));
    }
    return o;
}
