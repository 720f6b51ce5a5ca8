/*
 * Dirty bitmap commands: block-dirty-bitmap-add / -remove / -clear /
 * -enable / -disable / -merge and x-debug-block-dirty-bitmap-sha256.
 *
 * Every modifying command is written as a transaction action (prepare now,
 * then commit / abort / clean recorded in a Transaction), so the
 * `transaction` command and the plain commands share one implementation:
 * a plain command is a transaction of one action that is committed at once.
 * Invariant: a prepare that fails has changed nothing, so only prepared
 * actions need an abort.
 *
 * Which states each operation refuses (busy / readonly / inconsistent) and
 * the texts are QEMU's (block-layer-model.md §6).  Persistence goes through
 * the driver hooks when the driver has them (qcow2).
 */
#include "block/qmp/qmp-internal.h"

BdrvDirtyBitmap *qmp_lookup_bitmap(const char *node, const char *name,
                                   BlockDriverState **pbs, Error **errp)
{
    /* Not bdrv_lookup_bs's text: QEMU's bitmap lookup has its own. */
    BlockDriverState *bs = bdrv_lookup_bs(node, node, NULL);
    BdrvDirtyBitmap *bitmap;

    if (!bs) {
        error_setg(errp, "Node '%s' not found", node);
        return NULL;
    }
    bitmap = bdrv_find_dirty_bitmap(bs, name);
    if (!bitmap) {
        error_setg(errp, "Dirty bitmap '%s' not found", name);
        return NULL;
    }
    if (pbs) {
        *pbs = bs;
    }
    return bitmap;
}

/* ---- running the driver's persistence hooks in a coroutine ---- */

typedef struct PersistCo {
    BlockDriverState *bs;
    const char *name;
    uint32_t granularity;
    bool remove;
    bool resync;
    int ret;
    bool done;
    Error *err;
} PersistCo;

static void coroutine_fn persist_co_entry(void *opaque)
{
    PersistCo *p = opaque;
    BlockDriver *drv = p->bs->drv;

    if (p->remove) {
        p->ret = drv->bdrv_co_remove_persistent_dirty_bitmap(p->bs, p->name,
                                                             &p->err);
    } else if (p->resync) {
        p->ret = drv->bdrv_co_resync_persistent_dirty_bitmaps(p->bs, &p->err);
    } else {
        p->ret = drv->bdrv_co_can_store_new_dirty_bitmap(p->bs, p->name,
                                                         p->granularity,
                                                         &p->err) ? 0 : -1;
    }
    p->done = true;
    aio_notify(qb_get_aio_context());
}

static int run_persist_hook(PersistCo *p, Error **errp)
{
    if (in_coroutine()) {
        persist_co_entry(p);
    } else {
        Coroutine *co = coroutine_create(persist_co_entry, p);

        bdrv_drained_begin(p->bs);
        aio_co_enter(qb_get_aio_context(), co);
        AIO_WAIT_WHILE(qb_get_aio_context(), !p->done);
        bdrv_drained_end(p->bs);
    }
    if (p->ret < 0) {
        error_propagate(errp, p->err);
        p->err = NULL;
        return -1;
    }
    error_free(p->err);
    return 0;
}

static bool can_store_new_bitmap(BlockDriverState *bs, const char *name,
                                 uint32_t granularity, Error **errp)
{
    PersistCo p = { .bs = bs, .name = name, .granularity = granularity };

    if (!bs->drv || !bs->drv->bdrv_co_can_store_new_dirty_bitmap) {
        error_setg_errno(errp, ENOTSUP, "Can't store persistent bitmaps to %s",
                         bs->node_name);
        return false;
    }
    return run_persist_hook(&p, errp) == 0;
}

static bool remove_persistent_bitmap(BlockDriverState *bs, const char *name,
                                     Error **errp)
{
    PersistCo p = { .bs = bs, .name = name, .remove = true };

    if (!bs->drv || !bs->drv->bdrv_co_remove_persistent_dirty_bitmap) {
        /* Nothing stored, nothing to remove. */
        return true;
    }
    return run_persist_hook(&p, errp) == 0;
}

/* ---- add ---- */

static void add_abort(void *opaque)
{
    bdrv_release_dirty_bitmap(opaque);
}

static const TransactionActionDrv add_drv = { .abort = add_abort };

bool qmp_bitmap_add_action(BlockDirtyBitmapAdd *a, Transaction *tran,
                           Error **errp)
{
    BlockDriverState *bs;
    BdrvDirtyBitmap *bitmap;
    uint32_t granularity;
    bool persistent = a->has_persistent && a->persistent;

    if (!a->name || !a->name[0]) {
        error_setg(errp, "Bitmap name cannot be empty");
        return false;
    }
    bs = bdrv_lookup_bs(a->node, a->node, errp);
    if (!bs) {
        return false;
    }
    if (a->has_granularity) {
        if (a->granularity < 512 || !QB_IS_POWER_OF_2(a->granularity)) {
            error_setg(errp, "Granularity must be power of 2 and at least "
                       "512");
            return false;
        }
        granularity = a->granularity;
    } else {
        granularity = bdrv_get_default_bitmap_granularity(bs);
    }
    if (persistent && !can_store_new_bitmap(bs, a->name, granularity, errp)) {
        return false;
    }
    bitmap = bdrv_create_dirty_bitmap(bs, granularity, a->name, errp);
    if (!bitmap) {
        return false;
    }
    if (persistent) {
        bdrv_dirty_bitmap_set_persistent(bitmap, true);
    }
    if (a->has_disabled && a->disabled) {
        bdrv_disable_dirty_bitmap(bitmap);
    }
    tran_add(tran, &add_drv, bitmap);
    return true;
}

/* ---- remove ---- */

/*
 * Prepare deletes the stored copy at once and keeps the RAM bitmap, busy
 * and not to be stored, so its name stays reserved (background.md §3).
 * Abort makes it usable again and, unlike QEMU 7.2 (which only stores it
 * at close), writes it back to the image at once through the driver, so a
 * crash after the abort cannot lose it silently (bitmaps issue; test 358).
 * Abort cannot fail: if the write-back fails it is only reported, and the
 * bitmap is stored at close as in QEMU.
 */
typedef struct RemoveState {
    BdrvDirtyBitmap *bitmap;
    bool was_stored;        /* prepare deleted an entry from the image */
} RemoveState;

/* Does the image hold a stored bitmap NAME?  Read as qemu-img info does,
 * from the driver's format-specific information. */
static bool stored_in_image(BlockDriverState *bs, const char *name)
{
    json_t *info = bdrv_get_specific_info(bs, NULL);
    json_t *data = info ? json_object_get(info, "data") : NULL;
    json_t *list = json_object_get(data ? data : info, "bitmaps");
    json_t *bm;
    size_t i;
    bool found = false;

    json_array_foreach(list, i, bm) {
        const char *n = json_string_value(json_object_get(bm, "name"));
        if (n && strcmp(n, name) == 0) {
            found = true;
        }
    }
    json_decref(info);
    return found;
}

static void remove_commit(void *opaque)
{
    RemoveState *r = opaque;

    bdrv_dirty_bitmap_set_busy(r->bitmap, false);
    bdrv_release_dirty_bitmap(r->bitmap);
}

static void remove_abort(void *opaque)
{
    RemoveState *r = opaque;
    BlockDriverState *bs = bdrv_dirty_bitmap_bs(r->bitmap);
    PersistCo p = { .bs = bs, .resync = true };
    Error *err = NULL;

    bdrv_dirty_bitmap_skip_store(r->bitmap, false);
    bdrv_dirty_bitmap_set_busy(r->bitmap, false);
    if (r->was_stored && bs->drv &&
        bs->drv->bdrv_co_resync_persistent_dirty_bitmaps &&
        run_persist_hook(&p, &err) < 0) {
        error_report("Could not write back bitmap '%s' of node '%s': %s",
                     bdrv_dirty_bitmap_name(r->bitmap), bs->node_name,
                     error_get_pretty(err));
        error_free(err);
    }
}

static const TransactionActionDrv remove_drv = {
    .commit = remove_commit,
    .abort = remove_abort,
    .clean = g_free,
};

bool qmp_bitmap_remove_action(BlockDirtyBitmap *a, Transaction *tran,
                              Error **errp)
{
    BlockDriverState *bs;
    BdrvDirtyBitmap *bitmap = qmp_lookup_bitmap(a->node, a->name, &bs, errp);
    RemoveState *r;
    bool was_stored = false;

    if (!bitmap) {
        return false;
    }
    if (bdrv_dirty_bitmap_check(bitmap, BDRV_BITMAP_BUSY | BDRV_BITMAP_RO,
                                errp)) {
        return false;
    }
    if (bdrv_dirty_bitmap_get_persistent(bitmap)) {
        was_stored = stored_in_image(bs, a->name);
        if (!remove_persistent_bitmap(bs, a->name, errp)) {
            return false;
        }
    }
    bdrv_dirty_bitmap_skip_store(bitmap, true);
    bdrv_dirty_bitmap_set_busy(bitmap, true);
    r = g_new0(RemoveState, 1);
    r->bitmap = bitmap;
    r->was_stored = was_stored;
    tran_add(tran, &remove_drv, r);
    return true;
}

/* ---- clear and merge: both keep a backup of the old contents ---- */

typedef struct BitmapBackup {
    BdrvDirtyBitmap *bitmap;
    HBitmap *backup;
} BitmapBackup;

static void backup_commit(void *opaque)
{
    BitmapBackup *b = opaque;

    hbitmap_free(b->backup);
    b->backup = NULL;
}

static void backup_abort(void *opaque)
{
    BitmapBackup *b = opaque;

    bdrv_restore_dirty_bitmap(b->bitmap, b->backup);
    b->backup = NULL;
}

static void backup_clean(void *opaque)
{
    BitmapBackup *b = opaque;

    if (b->backup) {
        hbitmap_free(b->backup);
    }
    g_free(b);
}

static const TransactionActionDrv backup_drv = {
    .commit = backup_commit,
    .abort = backup_abort,
    .clean = backup_clean,
};

bool qmp_bitmap_clear_action(BlockDirtyBitmap *a, Transaction *tran,
                             Error **errp)
{
    BdrvDirtyBitmap *bitmap = qmp_lookup_bitmap(a->node, a->name, NULL, errp);
    BitmapBackup *b;

    if (!bitmap || bdrv_dirty_bitmap_check(bitmap, BDRV_BITMAP_DEFAULT,
                                           errp)) {
        return false;
    }
    b = g_new0(BitmapBackup, 1);
    b->bitmap = bitmap;
    bdrv_clear_dirty_bitmap(bitmap, &b->backup);
    tran_add(tran, &backup_drv, b);
    return true;
}

bool qmp_bitmap_merge_action(BlockDirtyBitmapMerge *a, Transaction *tran,
                             Error **errp)
{
    BlockDriverState *bs;
    BdrvDirtyBitmap *dst, *anon;
    BitmapBackup *b;
    bool ok = false;

    dst = qmp_lookup_bitmap(a->node, a->target, &bs, errp);
    if (!dst || bdrv_dirty_bitmap_check(dst, BDRV_BITMAP_DEFAULT, errp)) {
        return false;
    }
    /* Sources are collected in an anonymous scratch bitmap first, so the
     * target changes only if every source merges (and an empty list is a
     * harmless no-op, where QEMU 7.2 crashes). */
    anon = bdrv_create_dirty_bitmap(bs, bdrv_dirty_bitmap_granularity(dst),
                                    NULL, errp);
    if (!anon) {
        return false;
    }
    bdrv_disable_dirty_bitmap(anon);
    for (BlockDirtyBitmapOrStrList *l = a->bitmaps; l; l = l->next) {
        BlockDirtyBitmapOrStr *item = l->value;
        BdrvDirtyBitmap *src;

        if (item->type == QTYPE_QSTRING) {
            src = bdrv_find_dirty_bitmap(bs, item->u.local);
            if (!src) {
                error_setg(errp, "Dirty bitmap '%s' not found",
                           item->u.local);
                goto out;
            }
        } else {
            src = qmp_lookup_bitmap(item->u.external->node,
                                    item->u.external->name, NULL, errp);
            if (!src) {
                goto out;
            }
        }
        if (bdrv_dirty_bitmap_check(src, BDRV_BITMAP_ALLOW_RO, errp) ||
            !bdrv_merge_dirty_bitmap(anon, src, NULL, errp)) {
            goto out;
        }
    }
    b = g_new0(BitmapBackup, 1);
    b->bitmap = dst;
    if (!bdrv_merge_dirty_bitmap(dst, anon, &b->backup, errp)) {
        g_free(b);
        goto out;
    }
    tran_add(tran, &backup_drv, b);
    ok = true;
out:
    bdrv_release_dirty_bitmap(anon);
    return ok;
}

/* ---- enable / disable ---- */

typedef struct EnableState {
    BdrvDirtyBitmap *bitmap;
    bool was_enabled;
} EnableState;

static void enable_abort(void *opaque)
{
    EnableState *s = opaque;

    if (s->was_enabled) {
        bdrv_enable_dirty_bitmap(s->bitmap);
    } else {
        bdrv_disable_dirty_bitmap(s->bitmap);
    }
}

static const TransactionActionDrv enable_drv = {
    .abort = enable_abort,
    .clean = g_free,
};

bool qmp_bitmap_enable_action(BlockDirtyBitmap *a, bool enable,
                              Transaction *tran, Error **errp)
{
    BdrvDirtyBitmap *bitmap = qmp_lookup_bitmap(a->node, a->name, NULL, errp);
    EnableState *s;

    if (!bitmap || bdrv_dirty_bitmap_check(bitmap, BDRV_BITMAP_ALLOW_RO,
                                           errp)) {
        return false;
    }
    s = g_new0(EnableState, 1);
    s->bitmap = bitmap;
    s->was_enabled = bdrv_dirty_bitmap_enabled(bitmap);
    if (enable) {
        bdrv_enable_dirty_bitmap(bitmap);
    } else {
        bdrv_disable_dirty_bitmap(bitmap);
    }
    tran_add(tran, &enable_drv, s);
    return true;
}

/* ---- the plain commands: transactions of one action ---- */

static void finish(Transaction *tran, bool ok)
{
    if (ok) {
        tran_commit(tran);
    } else {
        tran_abort(tran);
    }
}

void qmp_block_dirty_bitmap_add(const char *node, const char *name,
                                bool has_granularity, uint32_t granularity,
                                bool has_persistent, bool persistent,
                                bool has_disabled, bool disabled,
                                Error **errp)
{
    BlockDirtyBitmapAdd a = {
        .node = (char *)node, .name = (char *)name,
        .has_granularity = has_granularity, .granularity = granularity,
        .has_persistent = has_persistent, .persistent = persistent,
        .has_disabled = has_disabled, .disabled = disabled,
    };
    Transaction *tran = tran_new();

    finish(tran, qmp_bitmap_add_action(&a, tran, errp));
}

void qmp_block_dirty_bitmap_remove(const char *node, const char *name,
                                   Error **errp)
{
    BlockDirtyBitmap a = { .node = (char *)node, .name = (char *)name };
    Transaction *tran = tran_new();

    finish(tran, qmp_bitmap_remove_action(&a, tran, errp));
}

void qmp_block_dirty_bitmap_clear(const char *node, const char *name,
                                  Error **errp)
{
    BlockDirtyBitmap a = { .node = (char *)node, .name = (char *)name };
    Transaction *tran = tran_new();

    finish(tran, qmp_bitmap_clear_action(&a, tran, errp));
}

void qmp_block_dirty_bitmap_enable(const char *node, const char *name,
                                   Error **errp)
{
    BlockDirtyBitmap a = { .node = (char *)node, .name = (char *)name };
    Transaction *tran = tran_new();

    finish(tran, qmp_bitmap_enable_action(&a, true, tran, errp));
}

void qmp_block_dirty_bitmap_disable(const char *node, const char *name,
                                    Error **errp)
{
    BlockDirtyBitmap a = { .node = (char *)node, .name = (char *)name };
    Transaction *tran = tran_new();

    finish(tran, qmp_bitmap_enable_action(&a, false, tran, errp));
}

void qmp_block_dirty_bitmap_merge(const char *node, const char *target,
                                  BlockDirtyBitmapOrStrList *bitmaps,
                                  Error **errp)
{
    BlockDirtyBitmapMerge a = { .node = (char *)node, .target = (char *)target,
                                .bitmaps = bitmaps };
    Transaction *tran = tran_new();

    finish(tran, qmp_bitmap_merge_action(&a, tran, errp));
}

BlockDirtyBitmapSha256 *qmp_x_debug_block_dirty_bitmap_sha256(
    const char *node, const char *name, Error **errp)
{
    BdrvDirtyBitmap *bitmap = qmp_lookup_bitmap(node, name, NULL, errp);
    BlockDirtyBitmapSha256 *ret;
    char *sha;

    if (!bitmap) {
        return NULL;
    }
    sha = bdrv_dirty_bitmap_sha256(bitmap, errp);
    if (!sha) {
        return NULL;
    }
    ret = g_new0(BlockDirtyBitmapSha256, 1);
    ret->sha256 = sha;
    return ret;
}
