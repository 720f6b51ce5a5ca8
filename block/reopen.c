/*
 * Reopen: change the options and flags of open nodes as one transaction,
 * following QEMU 7.2 (shared/docs/block-layer-model.md §5).  A queue holds
 * (node, new options); reopening it drains and flushes the nodes, prepares
 * each one (generic options, unchangeable options, child replacement,
 * driver prepare), recomputes permissions under the new flags, and then
 * either commits every entry (children before parents) or aborts all.
 *
 * Invariants:
 *  1. Nothing observable changes before the commit step: prepare records
 *     graph changes in the reopen Transaction and drivers keep their new
 *     state private until bdrv_reopen_commit.
 *  2. Every entry whose driver prepare succeeded gets exactly one commit or
 *     one abort callback.
 *  3. While a queue is being reopened, bdrv_reopen_get_flags() reports the
 *     new flags, so permission rules see the state being committed.
 */
#include "block/reopen.h"
#include "block/graph.h"
#include "block/options.h"
#include "block/perm.h"
#include "util/transaction.h"

static BlockReopenQueueEntry *find_entry(BlockReopenQueue *q,
                                         BlockDriverState *bs)
{
    if (!q) {
        return NULL;
    }
    for (GList *l = q->entries; l; l = l->next) {
        BlockReopenQueueEntry *e = l->data;
        if (e->state.bs == bs) {
            return e;
        }
    }
    return NULL;
}

BDRVReopenState *bdrv_reopen_queue_find(BlockReopenQueue *queue,
                                        BlockDriverState *bs)
{
    BlockReopenQueueEntry *e = find_entry(queue, bs);
    return e ? &e->state : NULL;
}

int bdrv_reopen_get_flags(BlockReopenQueue *queue, BlockDriverState *bs)
{
    BlockReopenQueueEntry *e = find_entry(queue, bs);
    return e ? e->state.flags : bs->open_flags;
}

bool bdrv_is_writable_after_reopen(BlockDriverState *bs,
                                   BlockReopenQueue *reopen_queue)
{
    int flags = bdrv_reopen_get_flags(reopen_queue, bs);
    return (flags & (BDRV_O_RDWR | BDRV_O_INACTIVE)) == BDRV_O_RDWR;
}

static void entry_free(BlockReopenQueueEntry *e)
{
    json_decref(e->state.options);
    json_decref(e->state.explicit_options);
    json_decref(e->new_options);
    g_free(e);
}

void bdrv_reopen_queue_free(BlockReopenQueue *queue)
{
    if (!queue) {
        return;
    }
    for (GList *l = queue->entries; l; l = l->next) {
        BlockReopenQueueEntry *e = l->data;
        bdrv_unref(e->state.bs);
        entry_free(e);
    }
    g_list_free(queue->entries);
    g_free(queue);
}

static BlockReopenQueue *queue_child(BlockReopenQueue *q, BlockDriverState *bs,
                                     json_t *options, bool keep_old_opts,
                                     BlockDriverState *parent,
                                     int parent_flags, BdrvChildRole role)
{
    BlockReopenQueueEntry *e;
    BlockdevDetectZeroesOptions dz = BLOCKDEV_DETECT_ZEROES_OPTIONS_OFF;
    bool fs = false;
    json_t *tmp, *explicit;
    GList *children;
    int flags;

    if (!q) {
        q = g_new0(BlockReopenQueue, 1);
    }
    if (!options) {
        options = json_object();
    }
    e = find_entry(q, bs);
    if (e) {
        /* Queued twice: the later options win. */
        qb_json_merge(e->state.options, options, true);
        qb_json_merge(e->state.explicit_options, options, true);
        json_decref(options);
        return q;
    }
    if (keep_old_opts && bs->explicit_options) {
        qb_json_merge(options, bs->explicit_options, false);
    }
    explicit = json_deep_copy(options);
    if (keep_old_opts && bs->options) {
        /* Old values fill in what was not given explicitly (e.g. the
         * filename of a file opened from a plain path). */
        qb_json_merge(options, bs->options, false);
    }

    if (parent) {
        flags = bdrv_child_inherited_flags(parent, parent_flags, role,
                                           options);
    } else if (keep_old_opts) {
        flags = bs->open_flags;
    } else {
        /* blockdev-reopen: what is not given takes its default. */
        flags = (bs->open_flags & ~(BDRV_O_CACHE_MASK | BDRV_O_AUTO_RDONLY |
                                    BDRV_O_UNMAP)) | BDRV_O_RDWR;
    }
    flags = (flags & ~BDRV_O_PROTOCOL) | (bs->open_flags & BDRV_O_PROTOCOL);

    e = g_new0(BlockReopenQueueEntry, 1);
    e->state.bs = bs;
    e->keep_old_opts = keep_old_opts;
    e->base_flags = flags;
    e->backing_missing = !keep_old_opts &&
                         !json_object_get(options, "backing");
    bdrv_ref(bs);
    q->entries = g_list_append(q->entries, e);

    /* The flags this node will have, so its children can inherit them;
     * errors are reported by prepare. */
    tmp = json_deep_copy(options);
    if (!keep_old_opts) {
        dz = BLOCKDEV_DETECT_ZEROES_OPTIONS_OFF;
    } else {
        dz = bs->detect_zeroes;
        fs = bs->force_share;
    }
    bdrv_take_generic_options(tmp, &flags, &dz, &fs, NULL);
    json_decref(tmp);
    e->state.flags = flags;
    e->state.read_only = !(flags & BDRV_O_RDWR);

    children = g_list_copy(bs->children);
    for (GList *l = children; l; l = l->next) {
        BdrvChild *c = l->data;
        json_t *val = json_object_get(options, c->name);
        json_t *copts = NULL;
        bool ckeep = keep_old_opts;

        /* As QEMU (inherits_from): only children created implicitly with
         * this parent are reopened along with it; a node added on its own
         * by blockdev-add keeps its flags and must be listed itself. */
        if (c->bs->monitor_owned) {
            continue;
        }
        if (json_is_string(val)) {
            if (strcmp(json_string_value(val), c->bs->node_name)) {
                continue;   /* replaced in prepare, not reopened */
            }
            /* Same child: it keeps its options, inherits new flags. */
            ckeep = true;
        } else if (json_is_null(val)) {
            continue;
        } else if (json_is_object(val)) {
            copts = json_deep_copy(val);
            json_object_set_new(options, c->name,
                                json_string(c->bs->node_name));
        }
        queue_child(q, c->bs, copts, ckeep, bs, flags, c->role);
    }
    g_list_free(children);

    e->state.options = options;
    e->state.explicit_options = explicit;
    return q;
}

BlockReopenQueue *bdrv_reopen_queue(BlockReopenQueue *queue,
                                    BlockDriverState *bs, json_t *options,
                                    bool keep_old_opts)
{
    return queue_child(queue, bs, options, keep_old_opts, NULL, 0, 0);
}

static bool is_generic_or_child_key(BlockDriverState *bs, const char *key)
{
    static const char *const generic[] = {
        "driver", "node-name", "read-only", "auto-read-only", "cache",
        "cache.direct", "cache.no-flush", "discard", "detect-zeroes",
        "force-share", "file", "backing", NULL,
    };

    for (int i = 0; generic[i]; i++) {
        if (!strcmp(generic[i], key)) {
            return true;
        }
    }
    for (GList *l = bs->children; l; l = l->next) {
        BdrvChild *c = l->data;
        if (!strcmp(c->name, key)) {
            return true;
        }
    }
    return false;
}

static bool is_mutable(BlockDriverState *bs, const char *key)
{
    const char *const *m = bs->drv->mutable_opts;

    for (int i = 0; m && m[i]; i++) {
        if (!strcmp(m[i], key)) {
            return true;
        }
    }
    return false;
}

/* Handle a "file" / "backing" value in a reopen: a node name (replace the
 * child), null (detach the backing child), or the current child. */
static int reopen_parse_child(BlockReopenQueueEntry *e, bool is_backing,
                              Transaction *tran, GSList **refresh,
                              Error **errp)
{
    BDRVReopenState *st = &e->state;
    BlockDriverState *bs = st->bs;
    const char *name = is_backing ? "backing" : "file";
    json_t *val = json_object_get(st->options, name);
    BdrvChild *c = is_backing ? bs->backing : bs->file;
    BlockDriverState *old_bs = c ? c->bs : NULL;
    BlockDriverState *new_bs = NULL;
    int ret;

    if (!val) {
        return 0;
    }
    if (json_is_string(val)) {
        new_bs = bdrv_lookup_bs(NULL, json_string_value(val), errp);
        if (!new_bs) {
            return -EINVAL;
        }
    } else if (!json_is_null(val) || !is_backing) {
        error_setg(errp, "Invalid parameter type for '%s', expected: string",
                   name);
        return -EINVAL;
    }
    json_object_del(st->options, name);
    if (old_bs == new_bs) {
        return 0;
    }
    if (old_bs && old_bs->implicit) {
        error_setg(errp, "Cannot replace implicit %s child of %s", name,
                   bs->node_name);
        return -EPERM;
    }
    if (bs->drv->is_filter && !old_bs) {
        error_setg(errp, "'%s' is a %s filter node that does not support a "
                   "%s child", bs->node_name, bs->drv->format_name, name);
        return -EINVAL;
    }
    ret = bdrv_set_file_or_backing_noperm(bs, new_bs, is_backing, tran, errp);
    if (ret < 0) {
        return ret;
    }
    if (is_backing) {
        st->replace_backing = true;
        st->new_backing_bs = new_bs;
    } else {
        st->replace_file = true;
        st->new_file_bs = new_bs;
    }
    if (old_bs) {
        *refresh = g_slist_append(*refresh, old_bs);
    }
    return 0;
}

static int reopen_prepare(BlockReopenQueueEntry *e, BlockReopenQueue *q,
                          Transaction *tran, GSList **refresh, Error **errp)
{
    BDRVReopenState *st = &e->state;
    BlockDriverState *bs = st->bs;
    BlockDriver *drv = bs->drv;
    json_t *opts = st->options;
    Error *local_err = NULL;
    BlockdevDetectZeroesOptions dz;
    bool fs;
    int flags = e->base_flags;
    g_autofree char *node_name = NULL;
    g_autofree char *drvname = NULL;
    const char *key;
    json_t *val;
    void *iter;
    int ret;

    if (!drv) {
        error_setg(errp, "Block node '%s' has no medium", bs->node_name);
        return -ENOMEDIUM;
    }
    dz = e->keep_old_opts ? bs->detect_zeroes : BLOCKDEV_DETECT_ZEROES_OPTIONS_OFF;
    fs = e->keep_old_opts ? bs->force_share : false;
    ret = bdrv_take_generic_options(opts, &flags, &dz, &fs, errp);
    if (ret < 0) {
        return ret;
    }
    st->flags = flags;
    st->read_only = !(flags & BDRV_O_RDWR);
    st->detect_zeroes = dz;
    e->new_force_share = fs;

    node_name = qb_opt_take_str(opts, "node-name");
    if (node_name && strcmp(node_name, bs->node_name)) {
        error_setg(errp, "Cannot change the option 'node-name'");
        return -EINVAL;
    }
    drvname = qb_opt_take_str(opts, "driver");
    if (drvname && strcmp(drvname, drv->format_name)) {
        error_setg(errp, "Cannot change the option 'driver'");
        return -EINVAL;
    }

    if (e->backing_missing && drv->supports_backing &&
        (bs->backing || bs->backing_file[0])) {
        error_setg(errp, "backing is missing for '%s'", bs->node_name);
        return -EINVAL;
    }
    ret = reopen_parse_child(e, true, tran, refresh, errp);
    if (ret < 0) {
        return ret;
    }
    ret = reopen_parse_child(e, false, tran, refresh, errp);
    if (ret < 0) {
        return ret;
    }

    /* What the node's options will be after commit. */
    e->new_options = json_deep_copy(opts);
    json_object_set_new(e->new_options, "driver",
                        json_string(drv->format_name));
    json_object_set_new(e->new_options, "node-name",
                        json_string(bs->node_name));
    for (GList *l = bs->children; l; l = l->next) {
        BdrvChild *c = l->data;
        if (json_is_string(json_object_get(opts, c->name))) {
            json_object_del(opts, c->name);   /* unchanged child */
        }
    }

    /* A driver option that is absent now reverts to its default, which
     * only options the driver can change at runtime may do. */
    json_object_foreach(bs->options, key, val) {
        if (!is_generic_or_child_key(bs, key) && !json_object_get(opts, key)
            && !is_mutable(bs, key)) {
            error_setg(errp, "Option '%s' cannot be reset to its default "
                       "value", key);
            return -EINVAL;
        }
    }

    if (!drv->bdrv_reopen_prepare) {
        error_setg(errp, "Block format '%s' used by node '%s' does not "
                   "support reopening files", drv->format_name,
                   bs->node_name);
        return -ENOTSUP;
    }
    ret = drv->bdrv_reopen_prepare(st, q, &local_err);
    if (ret < 0) {
        if (local_err) {
            error_propagate(errp, local_err);
        } else {
            bdrv_refresh_filename(bs);
            error_setg(errp, "failed while preparing to reopen image '%s'",
                       bs->filename);
        }
        return ret;
    }
    e->prepared = true;

    /* Whatever is left must be unchanged (e.g. a file's filename). */
    iter = json_object_iter(opts);
    while (iter) {
        json_t *old;
        key = json_object_iter_key(iter);
        val = json_object_iter_value(iter);
        old = json_object_get(bs->options, key);
        if (!is_mutable(bs, key) && !(old && json_equal(old, val))) {
            error_setg(errp, "Cannot change the option '%s'", key);
            return -EINVAL;
        }
        iter = json_object_iter_next(opts, iter);
    }
    return 0;
}

static void reopen_commit(BlockReopenQueueEntry *e)
{
    BDRVReopenState *st = &e->state;
    BlockDriverState *bs = st->bs;

    if (bs->drv->bdrv_reopen_commit) {
        bs->drv->bdrv_reopen_commit(st);
    }
    bs->open_flags = st->flags;
    bs->read_only = st->read_only;
    bs->detect_zeroes = st->detect_zeroes;
    bs->force_share = e->new_force_share;
    json_decref(bs->options);
    bs->options = e->new_options;
    e->new_options = NULL;
    json_decref(bs->explicit_options);
    bs->explicit_options = st->explicit_options;
    st->explicit_options = NULL;
    if (st->replace_file) {
        /* A format's filename is its file's; recomputed after commit. */
        bs->filename[0] = '\0';
    }
}

int bdrv_reopen_multiple(BlockReopenQueue *queue, Error **errp)
{
    Transaction *tran = NULL;
    GSList *refresh = NULL;
    GList *l;
    int ret = 0;

    if (!queue || !queue->entries) {
        bdrv_reopen_queue_free(queue);
        return 0;
    }
    for (l = queue->entries; l; l = l->next) {
        BlockReopenQueueEntry *e = l->data;
        bdrv_drained_begin(e->state.bs);
    }
    for (l = queue->entries; l; l = l->next) {
        BlockReopenQueueEntry *e = l->data;
        ret = bdrv_flush(e->state.bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Error flushing drive");
            goto out;
        }
    }

    tran = tran_new();
    for (l = queue->entries; l; l = l->next) {
        BlockReopenQueueEntry *e = l->data;
        ret = reopen_prepare(e, queue, tran, &refresh, errp);
        if (ret < 0) {
            goto abort;
        }
    }

    /* Permissions of everything queued, plus children that lose a parent,
     * computed under the new flags. */
    for (l = g_list_last(queue->entries); l; l = l->prev) {
        BlockReopenQueueEntry *e = l->data;
        refresh = g_slist_prepend(refresh, e->state.bs);
    }
    ret = bdrv_list_refresh_perms(refresh, queue, tran, errp);
    if (ret < 0) {
        goto abort;
    }

    /* Children first: a parent's commit may need its child's new mode. */
    for (l = g_list_last(queue->entries); l; l = l->prev) {
        reopen_commit(l->data);
    }
    tran_commit(tran);
    tran = NULL;
    for (l = queue->entries; l; l = l->next) {
        BlockReopenQueueEntry *e = l->data;
        bdrv_refresh_limits(e->state.bs, NULL, NULL);
        bdrv_refresh_filename(e->state.bs);
    }
    for (l = g_list_last(queue->entries); l; l = l->prev) {
        BlockReopenQueueEntry *e = l->data;
        BlockDriverState *bs = e->state.bs;
        if (bs->drv && bs->drv->bdrv_reopen_commit_post) {
            bs->drv->bdrv_reopen_commit_post(&e->state);
        }
    }
    ret = 0;
    goto out;

abort:
    tran_abort(tran);
    tran = NULL;
    for (l = queue->entries; l; l = l->next) {
        BlockReopenQueueEntry *e = l->data;
        BlockDriverState *bs = e->state.bs;
        if (e->prepared && bs->drv->bdrv_reopen_abort) {
            bs->drv->bdrv_reopen_abort(&e->state);
        }
    }
out:
    g_slist_free(refresh);
    for (l = queue->entries; l; l = l->next) {
        BlockReopenQueueEntry *e = l->data;
        bdrv_drained_end(e->state.bs);
    }
    bdrv_reopen_queue_free(queue);
    return ret;
}

int bdrv_reopen(BlockDriverState *bs, json_t *opts, bool keep_old_opts,
                Error **errp)
{
    BlockReopenQueue *q = bdrv_reopen_queue(NULL, bs, opts, keep_old_opts);
    return bdrv_reopen_multiple(q, errp);
}

int bdrv_reopen_set_read_only(BlockDriverState *bs, bool read_only,
                              Error **errp)
{
    json_t *opts = json_object();

    json_object_set_new(opts, "read-only", json_boolean(read_only));
    return bdrv_reopen(bs, opts, true, errp);
}
