/*
 * Permissions: what each parent of a node takes (perm) and lets others take
 * (shared), how a driver derives the permissions it needs on its children
 * from its own cumulative ones, and the transactional update that checks a
 * whole subtree before anything is applied.  The model and the error texts
 * are QEMU 7.2's (shared/docs/block-layer-model.md §3).
 *
 * Invariants:
 *  1. Outside an update, for every pair of distinct parent edges A, B of a
 *     node, B->perm is a subset of A->shared_perm.
 *  2. A node's cumulative perm is the OR of its parent edges' perm, its
 *     cumulative shared the AND of their shared (ALL with no parents).
 *  3. An update visits nodes parents-first, each once; every change it makes
 *     is recorded in the caller's Transaction, so aborting restores the
 *     exact previous edge values and driver lock state.
 *  4. A driver's check_perm is paired with exactly one set_perm (commit) or
 *     abort_perm_update (abort); a failing check_perm cleans up after itself.
 */
#include "block/perm.h"
#include "block/reopen.h"

static const char *const perm_text_names[BLK_PERM_COUNT] = {
    "consistent read", "write", "write unchanged", "resize",
};
static const char *const perm_qapi_names[BLK_PERM_COUNT] = {
    "consistent-read", "write", "write-unchanged", "resize",
};

char *bdrv_perm_names(uint64_t perm)
{
    GString *s = g_string_new(NULL);

    for (int i = 0; i < BLK_PERM_COUNT; i++) {
        if (perm & (1ULL << i)) {
            if (s->len) {
                g_string_append(s, ", ");
            }
            g_string_append(s, perm_text_names[i]);
        }
    }
    return g_string_free(s, FALSE);
}

const char *bdrv_perm_qapi_name(int bit_index)
{
    if (bit_index < 0 || bit_index >= BLK_PERM_COUNT) {
        return NULL;
    }
    return perm_qapi_names[bit_index];
}

void bdrv_get_cumulative_perm(BlockDriverState *bs, uint64_t *perm,
                              uint64_t *shared)
{
    uint64_t p = 0, s = BLK_PERM_ALL;

    for (GList *l = bs->parents; l; l = l->next) {
        BdrvChild *c = l->data;
        p |= c->perm;
        s &= c->shared_perm;
    }
    *perm = p;
    *shared = s;
}

char *bdrv_child_user_desc(BdrvChild *c)
{
    if (c->klass && c->klass->get_parent_desc) {
        return c->klass->get_parent_desc(c);
    }
    return g_strdup("another user");
}

/* ---------------------------------------------------------------------- */
/* default child permissions */

void bdrv_filter_default_perms(BlockDriverState *bs, BdrvChild *c,
                               BdrvChildRole role,
                               BlockReopenQueue *reopen_queue,
                               uint64_t perm, uint64_t shared,
                               uint64_t *nperm, uint64_t *nshared)
{
    *nperm = perm & DEFAULT_PERM_PASSTHROUGH;
    *nshared = (shared & DEFAULT_PERM_PASSTHROUGH) | DEFAULT_PERM_UNCHANGED;
}

static void default_perms_for_cow(BlockDriverState *bs, BdrvChild *c,
                                  BdrvChildRole role, BlockReopenQueue *q,
                                  uint64_t perm, uint64_t shared,
                                  uint64_t *nperm, uint64_t *nshared)
{
    int flags = bdrv_reopen_get_flags(q, bs);

    /* A backing file is only ever read through this edge. */
    perm = (perm & BLK_PERM_CONSISTENT_READ) ? BLK_PERM_CONSISTENT_READ : 0;
    /* Others may write the backing file only if our own parents accept
     * that our visible data changes. */
    shared = (shared & BLK_PERM_WRITE) ? BLK_PERM_WRITE | BLK_PERM_RESIZE : 0;
    shared |= BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE_UNCHANGED;
    if (flags & BDRV_O_INACTIVE) {
        shared |= BLK_PERM_WRITE | BLK_PERM_RESIZE;
    }
    *nperm = perm;
    *nshared = shared;
}

static void default_perms_for_storage(BlockDriverState *bs, BdrvChild *c,
                                      BdrvChildRole role, BlockReopenQueue *q,
                                      uint64_t perm, uint64_t shared,
                                      uint64_t *nperm, uint64_t *nshared)
{
    int flags = bdrv_reopen_get_flags(q, bs);

    bdrv_filter_default_perms(bs, c, role, q, perm, shared, &perm, &shared);

    if (role & BDRV_CHILD_METADATA) {
        /* Metadata may be updated even when no parent writes. */
        if (bdrv_is_writable_after_reopen(bs, q)) {
            perm |= BLK_PERM_WRITE | BLK_PERM_RESIZE;
        }
        if (!(flags & BDRV_O_NO_IO)) {
            perm |= BLK_PERM_CONSISTENT_READ;
        }
        shared &= ~(BLK_PERM_WRITE | BLK_PERM_RESIZE);
    }
    if (role & BDRV_CHILD_DATA) {
        /* The format may depend on the size of its data file. */
        shared &= ~BLK_PERM_RESIZE;
        /* Unchanged-writes above may become real writes below (COW). */
        if (perm & BLK_PERM_WRITE_UNCHANGED) {
            perm |= BLK_PERM_WRITE;
        }
        /* Writing may grow the file. */
        if (perm & BLK_PERM_WRITE) {
            perm |= BLK_PERM_RESIZE;
        }
    }
    if (flags & BDRV_O_INACTIVE) {
        shared |= BLK_PERM_WRITE | BLK_PERM_RESIZE;
    }
    *nperm = perm;
    *nshared = shared;
}

void bdrv_default_perms(BlockDriverState *bs, BdrvChild *c, BdrvChildRole role,
                        BlockReopenQueue *reopen_queue,
                        uint64_t perm, uint64_t shared,
                        uint64_t *nperm, uint64_t *nshared)
{
    if (role & BDRV_CHILD_FILTERED) {
        g_assert(!(role & (BDRV_CHILD_DATA | BDRV_CHILD_METADATA |
                           BDRV_CHILD_COW)));
        bdrv_filter_default_perms(bs, c, role, reopen_queue, perm, shared,
                                  nperm, nshared);
    } else if (role & BDRV_CHILD_COW) {
        g_assert(!(role & (BDRV_CHILD_DATA | BDRV_CHILD_METADATA)));
        default_perms_for_cow(bs, c, role, reopen_queue, perm, shared,
                              nperm, nshared);
    } else if (role & (BDRV_CHILD_METADATA | BDRV_CHILD_DATA)) {
        default_perms_for_storage(bs, c, role, reopen_queue, perm, shared,
                                  nperm, nshared);
    } else {
        /* A child with no role carries nothing: take nothing. */
        *nperm = 0;
        *nshared = BLK_PERM_ALL;
    }
}

void bdrv_child_perm(BlockDriverState *bs, BlockDriverState *child_bs,
                     BdrvChild *c, BdrvChildRole role, BlockReopenQueue *q,
                     uint64_t parent_perm, uint64_t parent_shared,
                     uint64_t *nperm, uint64_t *nshared)
{
    if (bs->drv && bs->drv->bdrv_child_perm) {
        bs->drv->bdrv_child_perm(bs, c, role, q, parent_perm, parent_shared,
                                 nperm, nshared);
    } else {
        bdrv_default_perms(bs, c, role, q, parent_perm, parent_shared,
                           nperm, nshared);
    }
    /* force-share on the child node: it lets everybody do anything. */
    if (child_bs && child_bs->force_share) {
        *nshared = BLK_PERM_ALL;
    }
}

/* ---------------------------------------------------------------------- */
/* transaction actions */

typedef struct ChildPermState {
    BdrvChild *c;
    uint64_t old_perm, old_shared;
} ChildPermState;

static void child_perm_abort(void *opaque)
{
    ChildPermState *s = opaque;
    s->c->perm = s->old_perm;
    s->c->shared_perm = s->old_shared;
}

static const TransactionActionDrv child_perm_drv = {
    .abort = child_perm_abort,
    .clean = g_free,
};

void bdrv_child_set_perm_tran(BdrvChild *c, uint64_t perm, uint64_t shared,
                              Transaction *tran)
{
    ChildPermState *s = g_new0(ChildPermState, 1);

    s->c = c;
    s->old_perm = c->perm;
    s->old_shared = c->shared_perm;
    c->perm = perm;
    c->shared_perm = shared;
    tran_add(tran, &child_perm_drv, s);
}

typedef struct DrvPermState {
    BlockDriverState *bs;
    uint64_t perm, shared;
} DrvPermState;

static void drv_perm_commit(void *opaque)
{
    DrvPermState *s = opaque;
    if (s->bs->drv && s->bs->drv->bdrv_set_perm) {
        s->bs->drv->bdrv_set_perm(s->bs, s->perm, s->shared);
    }
}

static void drv_perm_abort(void *opaque)
{
    DrvPermState *s = opaque;
    if (s->bs->drv && s->bs->drv->bdrv_abort_perm_update) {
        s->bs->drv->bdrv_abort_perm_update(s->bs);
    }
}

static const TransactionActionDrv drv_perm_drv = {
    .commit = drv_perm_commit,
    .abort = drv_perm_abort,
    .clean = g_free,
};

/* ---------------------------------------------------------------------- */
/* the update */

/* Depth-first: children are prepended before their parent, so the final
 * list has every node before all of its descendants. */
static GSList *topological_dfs(GSList *list, GHashTable *found,
                               BlockDriverState *bs)
{
    if (g_hash_table_contains(found, bs)) {
        return list;
    }
    g_hash_table_add(found, bs);
    for (GList *l = bs->children; l; l = l->next) {
        BdrvChild *c = l->data;
        list = topological_dfs(list, found, c->bs);
    }
    return g_slist_prepend(list, bs);
}

/* Conflict rule: every parent's perm must be shared by every other parent. */
static bool parent_perms_conflict(BlockDriverState *bs, Error **errp)
{
    for (GList *la = bs->parents; la; la = la->next) {
        BdrvChild *a = la->data;
        for (GList *lb = bs->parents; lb; lb = lb->next) {
            BdrvChild *b = lb->data;
            uint64_t missing;

            if (a == b) {
                continue;
            }
            missing = b->perm & ~a->shared_perm;
            if (missing) {
                g_autofree char *names = bdrv_perm_names(missing);
                g_autofree char *b_user = bdrv_child_user_desc(b);
                g_autofree char *a_user = bdrv_child_user_desc(a);
                const char *name = bdrv_get_node_name(bs);

                error_setg(errp, "Permission conflict on node '%s': "
                           "permissions '%s' are both required by %s "
                           "(uses node '%s' as '%s' child) and unshared "
                           "by %s (uses node '%s' as '%s' child).",
                           name, names, b_user, name, b->name,
                           a_user, name, a->name);
                return true;
            }
        }
    }
    return false;
}

static int node_refresh_perm(BlockDriverState *bs, BlockReopenQueue *q,
                             Transaction *tran, Error **errp)
{
    BlockDriver *drv = bs->drv;
    uint64_t perm, shared;

    bdrv_get_cumulative_perm(bs, &perm, &shared);

    if ((perm & (BLK_PERM_WRITE | BLK_PERM_WRITE_UNCHANGED)) &&
        !bdrv_is_writable_after_reopen(bs, q)) {
        if (!bdrv_is_writable_after_reopen(bs, NULL)) {
            error_setg(errp, "Block node is read-only");
        } else {
            error_setg(errp, "Read-only block node '%s' cannot support "
                       "read-write users", bdrv_get_node_name(bs));
        }
        return -EPERM;
    }

    /* io.c aligns requests up; without RESIZE the tail of an unaligned
     * image could not be written. */
    if ((perm & (BLK_PERM_WRITE | BLK_PERM_WRITE_UNCHANGED)) &&
        !(perm & BLK_PERM_RESIZE) && bs->bl.request_alignment > 1 &&
        (bs->total_sectors * BDRV_SECTOR_SIZE) % bs->bl.request_alignment) {
        error_setg(errp, "Cannot get 'write' permission without 'resize': "
                   "Image size is not a multiple of request alignment");
        return -EPERM;
    }

    if (!drv) {
        return 0;
    }
    if (drv->bdrv_check_perm) {
        DrvPermState *s;
        int ret = drv->bdrv_check_perm(bs, perm, shared, errp);
        if (ret < 0) {
            return ret;
        }
        s = g_new0(DrvPermState, 1);
        s->bs = bs;
        s->perm = perm;
        s->shared = shared;
        tran_add(tran, &drv_perm_drv, s);
    } else if (drv->bdrv_set_perm) {
        DrvPermState *s = g_new0(DrvPermState, 1);
        s->bs = bs;
        s->perm = perm;
        s->shared = shared;
        tran_add(tran, &drv_perm_drv, s);
    }

    for (GList *l = bs->children; l; l = l->next) {
        BdrvChild *c = l->data;
        uint64_t cperm, cshared;

        bdrv_child_perm(bs, c->bs, c, c->role, q, perm, shared,
                        &cperm, &cshared);
        if (cperm != c->perm || cshared != c->shared_perm) {
            bdrv_child_set_perm_tran(c, cperm, cshared, tran);
        }
    }
    return 0;
}

int bdrv_list_refresh_perms(GSList *roots, BlockReopenQueue *q,
                            Transaction *tran, Error **errp)
{
    g_autoptr(GHashTable) found = g_hash_table_new(NULL, NULL);
    GSList *order = NULL;
    int ret = 0;

    /* Build the order from the roots in reverse so that the first root's
     * subtree comes first, as the caller listed them. */
    for (GSList *l = roots; l; l = l->next) {
        order = topological_dfs(order, found, l->data);
    }
    for (GSList *l = order; l; l = l->next) {
        BlockDriverState *bs = l->data;

        if (parent_perms_conflict(bs, errp)) {
            ret = -EPERM;
            break;
        }
        ret = node_refresh_perm(bs, q, tran, errp);
        if (ret < 0) {
            break;
        }
    }
    g_slist_free(order);
    return ret;
}

int bdrv_refresh_perms(BlockDriverState *bs, Transaction *tran, Error **errp)
{
    GSList *roots = g_slist_prepend(NULL, bs);
    Transaction *local = tran ? tran : tran_new();
    int ret;

    ret = bdrv_list_refresh_perms(roots, NULL, local, errp);
    g_slist_free(roots);
    if (!tran) {
        tran_finalize(local, ret);
    }
    return ret;
}

int bdrv_child_try_set_perm(BdrvChild *c, uint64_t perm, uint64_t shared,
                            Error **errp)
{
    Error *local_err = NULL;
    Transaction *tran = tran_new();
    int ret;

    bdrv_child_set_perm_tran(c, perm, shared, tran);
    ret = bdrv_refresh_perms(c->bs, tran, &local_err);
    tran_finalize(tran, ret);
    if (ret < 0) {
        if ((perm & ~c->perm) || (c->shared_perm & ~shared)) {
            error_propagate(errp, local_err);
        } else {
            /* Only loosening: the old (stricter) state stays in force, which
             * over-claims but never under-protects; callers that release
             * permissions do not expect failure. */
            error_free(local_err);
            ret = 0;
        }
    }
    return ret;
}
