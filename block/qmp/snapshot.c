/*
 * blockdev-snapshot-internal-sync, as a command and as a `transaction`
 * action: take an internal (in-image) snapshot of a root node.
 *
 * Prepare does all the checks in QEMU 7.2's order (root node, read-only,
 * format support, empty name, duplicate name) and creates the snapshot
 * with the node drained; abort deletes exactly that snapshot again (by id
 * and name), clean ends the drain.  So a transaction failing after this
 * action leaves no snapshot behind.  The snapshot records the host clock
 * as both date and VM clock and no icount, as qemu-storage-daemon does
 * (it has no guest clock).
 */
#include "block/qmp/qmp-internal.h"
#include "block/snapshot.h"

typedef struct InternalSnapshotState {
    BlockDriverState *bs;
    char *device;
    QBSnapshotInfo sn;
    bool created;
} InternalSnapshotState;

static void snapshot_abort(void *opaque)
{
    InternalSnapshotState *s = opaque;
    Error *err = NULL;

    if (!s->created) {
        return;
    }
    if (bdrv_snapshot_delete(s->bs, s->sn.id_str, s->sn.name, &err) < 0) {
        error_prepend(&err, "Failed to delete snapshot with id '%s' and "
                      "name '%s' on device '%s' in abort: ", s->sn.id_str,
                      s->sn.name, s->device);
        error_report_err(err);
    }
}

static void snapshot_clean(void *opaque)
{
    InternalSnapshotState *s = opaque;

    bdrv_drained_end(s->bs);
    bdrv_unref(s->bs);
    g_free(s->device);
    g_free(s);
}

static const TransactionActionDrv snapshot_drv = {
    .abort = snapshot_abort,
    .clean = snapshot_clean,
};

/* A root node has no node parents (block backends may use it). */
static bool is_root_node(BlockDriverState *bs)
{
    for (GList *l = bs->parents; l; l = l->next) {
        BdrvChild *c = l->data;

        if (c->klass->parent_is_bds) {
            return false;
        }
    }
    return true;
}

static bool has_snapshot_named(BlockDriverState *bs, const char *name)
{
    QBSnapshotInfo *list = NULL;
    int n = bdrv_snapshot_list(bs, &list);
    bool found = false;

    for (int i = 0; i < n; i++) {
        if (!strcmp(list[i].name, name)) {
            found = true;
            break;
        }
    }
    g_free(list);
    return found;
}

bool qmp_snapshot_internal_action(BlockdevSnapshotInternal *a,
                                  Transaction *tran, Error **errp)
{
    BlockDriverState *bs = bdrv_lookup_bs(a->device, a->device, errp);
    InternalSnapshotState *s;
    int64_t now;
    int ret;

    if (!bs) {
        return false;
    }
    if (!is_root_node(bs)) {
        error_setg(errp, "Need a root block node");
        return false;
    }
    if (bdrv_is_read_only(bs)) {
        error_setg(errp, "Device '%s' is read only", a->device);
        return false;
    }
    if (!bdrv_can_snapshot(bs)) {
        error_setg(errp, "Block format '%s' used by device '%s' does not "
                   "support internal snapshots", bdrv_get_format_name(bs),
                   a->device);
        return false;
    }
    if (!a->name[0]) {
        error_setg(errp, "Name is empty");
        return false;
    }

    /* From here on the state is registered, so abort and clean run. */
    s = g_new0(InternalSnapshotState, 1);
    s->bs = bs;
    s->device = g_strdup(a->device);
    bdrv_ref(bs);
    bdrv_drained_begin(bs);
    tran_add(tran, &snapshot_drv, s);

    if (has_snapshot_named(bs, a->name)) {
        error_setg(errp, "Snapshot with name '%s' already exists on device "
                   "'%s'", a->name, a->device);
        return false;
    }
    g_strlcpy(s->sn.name, a->name, sizeof(s->sn.name));
    now = g_get_real_time();
    s->sn.date_sec = now / G_USEC_PER_SEC;
    s->sn.date_nsec = (now % G_USEC_PER_SEC) * 1000;
    s->sn.vm_clock_nsec = (uint64_t)now * 1000;
    s->sn.icount = UINT64_MAX;
    ret = bdrv_snapshot_create(bs, &s->sn);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to create snapshot '%s' on "
                         "device '%s'", a->name, a->device);
        return false;
    }
    s->created = true;
    return true;
}

void qmp_blockdev_snapshot_internal_sync(const char *device,
                                         const char *name, Error **errp)
{
    BlockdevSnapshotInternal a = {
        .device = (char *)device,
        .name = (char *)name,
    };
    Transaction *tran = tran_new();

    if (qmp_snapshot_internal_action(&a, tran, errp)) {
        tran_commit(tran);
    } else {
        tran_abort(tran);
    }
}
