/*
 * The node graph: the driver registry, the node list and node names, the
 * edges between nodes (attach, detach, replace, freeze), limits, and the
 * life cycle of nodes (reference counting, close).  Opening nodes from
 * options is in open.c, permission arithmetic in perm.c; every edge change
 * here runs the permission update inside one Transaction, so a refused
 * change leaves the graph exactly as it was.
 *
 * Invariants (see docs/design/graph-and-perms.md):
 *  1. Every node is in all_nodes from creation until it is freed; its node
 *     name is unique and valid (user-given) or "#block" + digits (auto).
 *  2. Every BdrvChild is in its parent's children list (when the parent is a
 *     node) and in its child's parents list; parents are kept newest first,
 *     which fixes the order of permission-conflict messages as in QEMU.
 *  3. bs->file / bs->backing point into bs->children or are NULL.
 *  4. An edge holds one reference to its child; a node with refcnt 0 is
 *     closed and freed, and at that point has no parents.
 *  5. No edge change creates a cycle; frozen edges are never re-pointed or
 *     detached through the checked entry points.
 */
#include "block/graph.h"
#include "block/dirty-bitmap.h"
#include "block/block-backend.h"
#include "block/options.h"
#include "block/perm.h"
#include "block/reopen.h"
#include "util/transaction.h"

static GList *drivers;      /* BlockDriver*, registration order */
static GList *all_nodes;    /* BlockDriverState*, creation order */
/* Named nodes in the order their names were assigned (after a format
 * node's file child was opened), which is query-named-block-nodes' order
 * (reversed) as in QEMU. */
static GList *named_nodes;
static unsigned auto_name_counter;

/* ---------------------------------------------------------------------- */
/* driver registry */

void bdrv_register(BlockDriver *drv)
{
    if (!g_list_find(drivers, drv)) {
        drivers = g_list_append(drivers, drv);
    }
}

BlockDriver *bdrv_find_format(const char *format_name)
{
    for (GList *l = drivers; l; l = l->next) {
        BlockDriver *drv = l->data;
        if (!strcmp(drv->format_name, format_name)) {
            return drv;
        }
    }
    return NULL;
}

static gint cmp_names(gconstpointer a, gconstpointer b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void bdrv_iterate_format(void (*fn)(void *opaque, const char *name),
                         void *opaque, bool read_only)
{
    g_autoptr(GPtrArray) names = g_ptr_array_new();

    for (GList *l = drivers; l; l = l->next) {
        BlockDriver *drv = l->data;
        bool dup = false;
        for (guint i = 0; i < names->len; i++) {
            dup |= !strcmp(names->pdata[i], drv->format_name);
        }
        if (!dup) {
            g_ptr_array_add(names, (gpointer)drv->format_name);
        }
    }
    g_ptr_array_sort(names, cmp_names);
    for (guint i = 0; i < names->len; i++) {
        fn(opaque, names->pdata[i]);
    }
}

BlockDriver *bdrv_probe_best(const uint8_t *buf, int buf_size,
                             const char *filename)
{
    BlockDriver *best = NULL;
    int best_score = 0;

    /* Strictly greater: on a tie the first registered driver wins. */
    for (GList *l = drivers; l; l = l->next) {
        BlockDriver *drv = l->data;
        if (drv->bdrv_probe) {
            int score = drv->bdrv_probe(buf, buf_size, filename);
            if (score > best_score) {
                best_score = score;
                best = drv;
            }
        }
    }
    return best;
}

/* "proto:..." (a colon before any slash) names a protocol. */
bool bdrv_path_has_protocol(const char *path)
{
    const char *p = strpbrk(path, ":/");
    return p && *p == ':';
}

BlockDriver *bdrv_find_protocol(const char *filename, Error **errp)
{
    g_autofree char *proto = NULL;

    if (!bdrv_path_has_protocol(filename)) {
        BlockDriver *drv = bdrv_find_format("file");
        if (!drv) {
            error_setg(errp, "Unknown protocol 'file'");
        }
        return drv;
    }
    proto = g_strndup(filename, strchr(filename, ':') - filename);
    for (GList *l = drivers; l; l = l->next) {
        BlockDriver *drv = l->data;
        if (drv->protocol_name && !strcmp(drv->protocol_name, proto)) {
            return drv;
        }
    }
    error_setg(errp, "Unknown protocol '%s'", proto);
    return NULL;
}

bool bdrv_drv_is_protocol(BlockDriver *drv)
{
    return drv->protocol_name != NULL;
}

/* ---------------------------------------------------------------------- */
/* nodes, names, lookup */

static char *child_of_bds_parent_desc(BdrvChild *c)
{
    BlockDriverState *parent = c->opaque;
    return g_strdup_printf("node '%s'", bdrv_get_node_name(parent));
}

static const char *child_of_bds_get_name(BdrvChild *c)
{
    BlockDriverState *parent = c->opaque;
    return parent->node_name;
}

static void child_of_bds_resize(BdrvChild *c)
{
    BlockDriverState *parent = c->opaque;

    /* A filter's size is its child's size: pass the change up. */
    if (parent->drv && parent->drv->is_filter && c == parent->file) {
        int64_t len = bdrv_getlength(parent);
        if (len >= 0) {
            bdrv_set_size(parent, len);
        }
    }
}

const BdrvChildClass child_of_bds = {
    .parent_is_bds = true,
    .get_parent_desc = child_of_bds_parent_desc,
    .get_name = child_of_bds_get_name,
    .resize = child_of_bds_resize,
};

bool bdrv_node_name_is_valid(const char *name)
{
    if (!name || !g_ascii_isalpha(name[0])) {
        return false;
    }
    for (const char *p = name + 1; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("-._", *p)) {
            return false;
        }
    }
    return true;
}

BlockDriverState *bdrv_find_node(const char *node_name)
{
    if (!node_name) {
        return NULL;
    }
    for (GList *l = all_nodes; l; l = l->next) {
        BlockDriverState *bs = l->data;
        if (!strcmp(bs->node_name, node_name)) {
            return bs;
        }
    }
    return NULL;
}

int bdrv_assign_node_name(BlockDriverState *bs, const char *node_name,
                            Error **errp)
{
    g_autofree char *gen = NULL;

    if (!node_name) {
        /* QEMU's id_generate: a counter and two random digits. */
        do {
            g_free(gen);
            gen = g_strdup_printf("#block%03u%02d", auto_name_counter++,
                                  g_random_int_range(0, 100));
        } while (bdrv_find_node(gen));
        node_name = gen;
        bs->auto_node_name = true;
    } else {
        if (!bdrv_node_name_is_valid(node_name)) {
            error_setg(errp, "Invalid node-name: '%s'", node_name);
            return -EINVAL;
        }
        if (blk_by_name(node_name)) {
            error_setg(errp, "node-name=%s is conflicting with a device id",
                       node_name);
            return -EINVAL;
        }
        if (bdrv_find_node(node_name)) {
            error_setg(errp, "Duplicate nodes with node-name='%s'", node_name);
            return -EINVAL;
        }
        bs->auto_node_name = false;
    }
    if (strlen(node_name) >= sizeof(bs->node_name)) {
        error_setg(errp, "Node name too long");
        return -EINVAL;
    }
    g_strlcpy(bs->node_name, node_name, sizeof(bs->node_name));
    named_nodes = g_list_remove(named_nodes, bs);
    named_nodes = g_list_append(named_nodes, bs);
    return 0;
}

BlockDriverState *bdrv_lookup_bs(const char *device, const char *node_name,
                                 Error **errp)
{
    if (device) {
        BlockBackend *blk = blk_by_name(device);
        if (blk) {
            BlockDriverState *bs = blk_bs(blk);
            if (!bs) {
                error_setg(errp, "Device '%s' has no medium", device);
            }
            return bs;
        }
    }
    if (node_name) {
        BlockDriverState *bs = bdrv_find_node(node_name);
        if (bs) {
            return bs;
        }
    }
    error_setg(errp, "Cannot find device='%s' nor node-name='%s'",
               device ? device : "", node_name ? node_name : "");
    return NULL;
}

GList *bdrv_named_nodes_list(void)
{
    GList *res = NULL;

    /* named_nodes is oldest first; prepending gives newest first. */
    for (GList *l = named_nodes; l; l = l->next) {
        BlockDriverState *bs = l->data;
        if (bs->node_name[0]) {
            res = g_list_prepend(res, bs);
        }
    }
    return res;
}

BlockDriverState *bdrv_next_all_nodes(BlockDriverState *bs)
{
    GList *l;

    if (!bs) {
        return all_nodes ? all_nodes->data : NULL;
    }
    l = g_list_find(all_nodes, bs);
    return l && l->next ? l->next->data : NULL;
}

const char *bdrv_get_node_name(const BlockDriverState *bs)
{
    return bs->node_name;
}

const char *bdrv_get_format_name(const BlockDriverState *bs)
{
    return bs->drv ? bs->drv->format_name : NULL;
}

bool bdrv_is_read_only(const BlockDriverState *bs)
{
    return bs->read_only;
}

bool bdrv_is_writable(const BlockDriverState *bs)
{
    return bdrv_is_writable_after_reopen((BlockDriverState *)bs, NULL);
}

bool bdrv_is_inactive(const BlockDriverState *bs)
{
    return bs->open_flags & BDRV_O_INACTIVE;
}

int64_t bdrv_getlength(BlockDriverState *bs)
{
    BlockDriver *drv = bs->drv;

    if (!drv) {
        return -ENOMEDIUM;
    }
    if (drv->bdrv_getlength) {
        int64_t len = drv->bdrv_getlength(bs);
        if (len < 0) {
            return len;
        }
        /* As QEMU: sizes are whole sectors, rounded up. */
        bs->total_sectors = QB_DIV_ROUND_UP(len, BDRV_SECTOR_SIZE);
    }
    if (bs->total_sectors > INT64_MAX / BDRV_SECTOR_SIZE) {
        return -EFBIG;
    }
    return bs->total_sectors * BDRV_SECTOR_SIZE;
}

int64_t bdrv_get_allocated_file_size(BlockDriverState *bs)
{
    BlockDriver *drv = bs->drv;
    int64_t sum = 0;

    if (!drv) {
        return -ENOMEDIUM;
    }
    if (drv->bdrv_get_allocated_file_size) {
        return drv->bdrv_get_allocated_file_size(bs);
    }
    if (bdrv_drv_is_protocol(drv)) {
        return -ENOTSUP;
    }
    if (drv->is_filter) {
        return bs->file ? bdrv_get_allocated_file_size(bs->file->bs)
                        : -ENOTSUP;
    }
    /* A format's storage is the sum of its data and metadata children. */
    for (GList *l = bs->children; l; l = l->next) {
        BdrvChild *c = l->data;
        if (c->role & (BDRV_CHILD_DATA | BDRV_CHILD_METADATA |
                       BDRV_CHILD_FILTERED)) {
            int64_t n = bdrv_get_allocated_file_size(c->bs);
            if (n < 0) {
                return n;
            }
            sum += n;
        }
    }
    return sum;
}

void bdrv_set_size(BlockDriverState *bs, int64_t bytes)
{
    bs->total_sectors = QB_DIV_ROUND_UP(bytes, BDRV_SECTOR_SIZE);
    for (GList *l = bs->parents; l; l = l->next) {
        BdrvChild *c = l->data;
        if (c->klass && c->klass->resize) {
            c->klass->resize(c);
        }
    }
}

/* ---------------------------------------------------------------------- */
/* limits */

static int64_t min_non_zero(int64_t a, int64_t b)
{
    if (!a) {
        return b;
    }
    if (!b) {
        return a;
    }
    return MIN(a, b);
}

/* What a parent inherits from a child it stores data on.  The request
 * alignment is not inherited: io.c does read-modify-write where the child
 * needs it, so formats and filters accept byte-granular requests. */
static void merge_limits(BlockLimits *dst, const BlockLimits *src)
{
    dst->opt_transfer = MAX(dst->opt_transfer, src->opt_transfer);
    dst->max_transfer = min_non_zero(dst->max_transfer, src->max_transfer);
    dst->opt_mem_alignment = MAX(dst->opt_mem_alignment,
                                 src->opt_mem_alignment);
    dst->min_mem_alignment = MAX(dst->min_mem_alignment,
                                 src->min_mem_alignment);
    dst->max_iov = (int)min_non_zero(dst->max_iov, src->max_iov);
}

typedef struct LimitsState {
    BlockDriverState *bs;
    BlockLimits old;
} LimitsState;

static void limits_abort(void *opaque)
{
    LimitsState *s = opaque;
    s->bs->bl = s->old;
}

static const TransactionActionDrv limits_drv = {
    .abort = limits_abort,
    .clean = g_free,
};

void bdrv_refresh_limits(BlockDriverState *bs, Transaction *tran, Error **errp)
{
    BlockDriver *drv = bs->drv;
    bool have_limits = false;
    Error *local_err = NULL;

    if (tran) {
        LimitsState *s = g_new0(LimitsState, 1);
        s->bs = bs;
        s->old = bs->bl;
        tran_add(tran, &limits_drv, s);
    }
    memset(&bs->bl, 0, sizeof(bs->bl));
    if (!drv) {
        return;
    }
    bs->bl.request_alignment = 1;
    for (GList *l = bs->children; l; l = l->next) {
        BdrvChild *c = l->data;
        if (c->role & (BDRV_CHILD_DATA | BDRV_CHILD_FILTERED |
                       BDRV_CHILD_COW)) {
            merge_limits(&bs->bl, &c->bs->bl);
            have_limits = true;
        }
    }
    if (!have_limits) {
        bs->bl.min_mem_alignment = 512;
        bs->bl.opt_mem_alignment = QB_MEM_ALIGN;
        bs->bl.max_iov = IOV_MAX;
    }
    if (drv->bdrv_refresh_limits) {
        drv->bdrv_refresh_limits(bs, &local_err);
        if (local_err) {
            error_propagate(errp, local_err);
            return;
        }
    }
    if (!bs->bl.request_alignment) {
        bs->bl.request_alignment = 1;
    }
}

/* ---------------------------------------------------------------------- */
/* edges */

/* Is target reachable from bs by following child edges (bs included)? */
static bool reaches(BlockDriverState *bs, BlockDriverState *target)
{
    if (bs == target) {
        return true;
    }
    for (GList *l = bs->children; l; l = l->next) {
        BdrvChild *c = l->data;
        if (reaches(c->bs, target)) {
            return true;
        }
    }
    return false;
}

static void child_link(BdrvChild *c, BlockDriverState *parent)
{
    c->bs->parents = g_list_prepend(c->bs->parents, c);
    if (parent) {
        parent->children = g_list_prepend(parent->children, c);
        if ((c->role & BDRV_CHILD_COW) && !parent->backing) {
            parent->backing = c;
        } else if ((c->role & BDRV_CHILD_PRIMARY) && !parent->file) {
            parent->file = c;
        }
    }
}

static void child_unlink(BdrvChild *c, BlockDriverState *parent)
{
    c->bs->parents = g_list_remove(c->bs->parents, c);
    if (parent) {
        parent->children = g_list_remove(parent->children, c);
        if (parent->backing == c) {
            parent->backing = NULL;
        }
        if (parent->file == c) {
            parent->file = NULL;
        }
    }
}

static BlockDriverState *child_parent_bs(BdrvChild *c)
{
    return c->klass && c->klass->parent_is_bds ? c->opaque : NULL;
}

typedef struct AttachState {
    BdrvChild *c;
    BlockDriverState *parent;
} AttachState;

static void attach_abort(void *opaque)
{
    AttachState *s = opaque;
    child_unlink(s->c, s->parent);
}

static void attach_clean(void *opaque)
{
    g_free(opaque);
}

static const TransactionActionDrv attach_drv = {
    .abort = attach_abort,
    .clean = attach_clean,
};

/* Create and link an edge (no permission work); aborting tran unlinks it. */
static BdrvChild *attach_noperm(BlockDriverState *parent, void *opaque,
                                BlockDriverState *child_bs, const char *name,
                                const BdrvChildClass *klass,
                                BdrvChildRole role, uint64_t perm,
                                uint64_t shared, Transaction *tran)
{
    BdrvChild *c = g_new0(BdrvChild, 1);
    AttachState *s = g_new0(AttachState, 1);

    c->bs = child_bs;
    c->name = g_strdup(name);
    c->klass = klass;
    c->role = role;
    c->opaque = opaque;
    c->perm = perm;
    c->shared_perm = shared;
    child_link(c, parent);
    s->c = c;
    s->parent = parent;
    tran_add(tran, &attach_drv, s);
    return c;
}

static void free_child(BdrvChild *c)
{
    g_free(c->name);
    g_free(c);
}

BdrvChild *bdrv_root_attach_child(BlockDriverState *child_bs,
                                  const char *child_name,
                                  const BdrvChildClass *child_class,
                                  BdrvChildRole child_role,
                                  uint64_t perm, uint64_t shared_perm,
                                  void *opaque, Error **errp)
{
    Transaction *tran = tran_new();
    GSList *roots;
    BdrvChild *c;
    int ret;

    c = attach_noperm(NULL, opaque, child_bs, child_name, child_class,
                      child_role, perm, shared_perm, tran);
    roots = g_slist_prepend(NULL, child_bs);
    ret = bdrv_list_refresh_perms(roots, NULL, tran, errp);
    g_slist_free(roots);
    tran_finalize(tran, ret);
    if (ret < 0) {
        free_child(c);
        bdrv_unref(child_bs);
        return NULL;
    }
    if (child_class && child_class->attach) {
        child_class->attach(c);
    }
    return c;
}

BdrvChild *bdrv_attach_child(BlockDriverState *parent_bs,
                             BlockDriverState *child_bs,
                             const char *child_name,
                             const BdrvChildClass *child_class,
                             BdrvChildRole child_role, Error **errp)
{
    Transaction *tran;
    GSList *roots;
    BdrvChild *c;
    int ret;

    if (!child_class) {
        child_class = &child_of_bds;
    }
    if (reaches(child_bs, parent_bs)) {
        error_setg(errp, "Making '%s' a %s child of '%s' would create a "
                   "cycle", child_bs->node_name, child_name,
                   parent_bs->node_name);
        bdrv_unref(child_bs);
        return NULL;
    }
    tran = tran_new();
    c = attach_noperm(parent_bs, parent_bs, child_bs, child_name,
                      child_class, child_role, 0, BLK_PERM_ALL, tran);
    /* Refreshing the parent recomputes the new edge from its driver. */
    roots = g_slist_prepend(NULL, parent_bs);
    ret = bdrv_list_refresh_perms(roots, NULL, tran, errp);
    g_slist_free(roots);
    tran_finalize(tran, ret);
    if (ret < 0) {
        free_child(c);
        bdrv_unref(child_bs);
        return NULL;
    }
    if (child_class && child_class->attach) {
        child_class->attach(c);
    }
    return c;
}

/* Unlink c, loosen the old child's permissions (errors only over-claim and
 * are ignored) and drop the edge's reference. */
void bdrv_detach_and_unref_child(BdrvChild *c)
{
    BlockDriverState *parent = child_parent_bs(c);
    BlockDriverState *old = c->bs;

    if (c->klass && c->klass->detach) {
        c->klass->detach(c);
    }
    child_unlink(c, parent);
    bdrv_refresh_perms(old, NULL, NULL);
    free_child(c);
    bdrv_unref(old);
}

void bdrv_unref_child(BlockDriverState *parent, BdrvChild *child)
{
    if (!child) {
        return;
    }
    g_assert(child_parent_bs(child) == parent);
    if (child->frozen) {
        g_critical("Cannot detach frozen '%s' link from '%s'", child->name,
                   parent->node_name);
        return;
    }
    bdrv_detach_and_unref_child(child);
}

void bdrv_root_unref_child(BdrvChild *child)
{
    if (child) {
        bdrv_detach_and_unref_child(child);
    }
}

typedef struct ReplaceState {
    BdrvChild *c;
    BlockDriverState *old_bs;
} ReplaceState;

static void replace_abort(void *opaque)
{
    ReplaceState *s = opaque;
    BdrvChild *c = s->c;

    c->bs->parents = g_list_remove(c->bs->parents, c);
    c->bs = s->old_bs;
    c->bs->parents = g_list_prepend(c->bs->parents, c);
}

static const TransactionActionDrv replace_drv = {
    .abort = replace_abort,
    .clean = g_free,
};

static void replace_noperm(BdrvChild *c, BlockDriverState *new_bs,
                           Transaction *tran)
{
    ReplaceState *s = g_new0(ReplaceState, 1);

    s->c = c;
    s->old_bs = c->bs;
    c->bs->parents = g_list_remove(c->bs->parents, c);
    c->bs = new_bs;
    new_bs->parents = g_list_prepend(new_bs->parents, c);
    tran_add(tran, &replace_drv, s);
}

int bdrv_replace_child(BdrvChild *child, BlockDriverState *new_bs,
                       Error **errp)
{
    BlockDriverState *parent = child_parent_bs(child);
    BlockDriverState *old_bs = child->bs;
    Transaction *tran;
    GSList *roots = NULL;
    int ret;

    if (new_bs == old_bs) {
        return 0;
    }
    if (child->frozen) {
        error_setg(errp, "Cannot change frozen '%s' link from '%s' to '%s'",
                   child->name, parent ? parent->node_name : "",
                   old_bs->node_name);
        return -EPERM;
    }
    if (parent && reaches(new_bs, parent)) {
        error_setg(errp, "Making '%s' a %s child of '%s' would create a "
                   "cycle", new_bs->node_name, child->name,
                   parent->node_name);
        return -EINVAL;
    }
    bdrv_ref(new_bs);
    bdrv_ref(old_bs);
    tran = tran_new();
    replace_noperm(child, new_bs, tran);
    roots = g_slist_append(roots, new_bs);
    if (parent) {
        roots = g_slist_prepend(roots, parent);
    }
    roots = g_slist_append(roots, old_bs);
    ret = bdrv_list_refresh_perms(roots, NULL, tran, errp);
    g_slist_free(roots);
    tran_finalize(tran, ret);
    if (ret < 0) {
        bdrv_unref(new_bs);
        bdrv_unref(old_bs);
        return ret;
    }
    if (parent) {
        bdrv_refresh_limits(parent, NULL, NULL);
    }
    /* The edge's reference moved from old_bs to new_bs. */
    bdrv_unref(old_bs);
    bdrv_unref(old_bs);
    return 0;
}

int bdrv_replace_node(BlockDriverState *from, BlockDriverState *to,
                      Error **errp)
{
    Transaction *tran;
    GSList *roots = NULL;
    GList *moved = NULL;
    int ret;

    if (from == to) {
        return 0;
    }
    for (GList *l = from->parents; l; l = l->next) {
        BdrvChild *c = l->data;
        BlockDriverState *parent = child_parent_bs(c);
        if (parent == to) {
            /* to's own edge to from stays (e.g. a filter put on top). */
            continue;
        }
        if (parent && reaches(to, parent)) {
            error_setg(errp, "Making '%s' a %s child of '%s' would create "
                       "a cycle", to->node_name, c->name, parent->node_name);
            g_list_free(moved);
            return -EINVAL;
        }
        if (c->frozen) {
            error_setg(errp, "Cannot change '%s' link to '%s'", c->name,
                       from->node_name);
            g_list_free(moved);
            return -EPERM;
        }
        moved = g_list_prepend(moved, c);
    }
    bdrv_ref(from);
    tran = tran_new();
    for (GList *l = moved; l; l = l->next) {
        BdrvChild *c = l->data;
        BlockDriverState *parent = child_parent_bs(c);
        replace_noperm(c, to, tran);
        if (parent) {
            roots = g_slist_append(roots, parent);
        }
    }
    roots = g_slist_append(roots, to);
    roots = g_slist_append(roots, from);
    ret = bdrv_list_refresh_perms(roots, NULL, tran, errp);
    g_slist_free(roots);
    tran_finalize(tran, ret);
    if (ret == 0) {
        for (GList *l = moved; l; l = l->next) {
            bdrv_ref(to);
            bdrv_unref(from);
        }
    }
    g_list_free(moved);
    bdrv_unref(from);
    return ret;
}


BdrvChildRole bdrv_backing_role(BlockDriverState *bs)
{
    if (bs->drv && bs->drv->is_filter) {
        return BDRV_CHILD_FILTERED | BDRV_CHILD_PRIMARY;
    }
    return BDRV_CHILD_COW;
}

/*
 * Graph change for reopen: point parent's file or backing edge at new_bs
 * (NULL detaches the backing edge), without permission work.  Reference
 * moves happen when tran is cleaned, after every commit or abort callback,
 * so no action of tran ever sees a freed node.
 */
typedef struct SwapState {
    BlockDriverState *parent;
    BdrvChild *c;               /* the edge (new or existing) */
    BlockDriverState *old_bs;   /* NULL: c was created here */
    BlockDriverState *new_bs;   /* NULL: c was detached here */
    bool committed;
} SwapState;

static void swap_commit(void *opaque)
{
    SwapState *s = opaque;
    s->committed = true;
}

static void swap_abort(void *opaque)
{
    SwapState *s = opaque;

    if (!s->old_bs) {
        child_unlink(s->c, s->parent);          /* undo attach */
    } else if (!s->new_bs) {
        child_link(s->c, s->parent);            /* undo detach */
    } else {
        s->c->bs->parents = g_list_remove(s->c->bs->parents, s->c);
        s->c->bs = s->old_bs;
        s->old_bs->parents = g_list_prepend(s->old_bs->parents, s->c);
    }
}

static void swap_clean(void *opaque)
{
    SwapState *s = opaque;

    if (s->committed) {
        if (!s->new_bs) {
            free_child(s->c);
        }
        bdrv_unref(s->old_bs);
    } else {
        if (!s->old_bs) {
            free_child(s->c);
        }
        bdrv_unref(s->new_bs);
    }
    g_free(s);
}

static const TransactionActionDrv swap_drv = {
    .commit = swap_commit,
    .abort = swap_abort,
    .clean = swap_clean,
};

int bdrv_set_file_or_backing_noperm(BlockDriverState *parent,
                                    BlockDriverState *new_bs,
                                    bool is_backing, Transaction *tran,
                                    Error **errp)
{
    BdrvChild *c = is_backing ? parent->backing : parent->file;
    const char *name = is_backing ? "backing" : "file";
    SwapState *s;

    if (c && c->bs == new_bs) {
        return 0;
    }
    if (c && c->frozen) {
        error_setg(errp, "Cannot change frozen '%s' link from '%s' to '%s'",
                   c->name, parent->node_name, c->bs->node_name);
        return -EPERM;
    }
    if (is_backing && new_bs && !parent->drv->supports_backing) {
        error_setg(errp, "Driver '%s' of node '%s' does not support backing "
                   "files", parent->drv->format_name, parent->node_name);
        return -EINVAL;
    }
    if (new_bs && reaches(new_bs, parent)) {
        error_setg(errp, "Making '%s' a %s child of '%s' would create a "
                   "cycle", new_bs->node_name, name, parent->node_name);
        return -EINVAL;
    }
    if (!c && !new_bs) {
        return 0;
    }
    s = g_new0(SwapState, 1);
    s->parent = parent;
    s->new_bs = new_bs;
    if (new_bs) {
        bdrv_ref(new_bs);
    }
    if (!c) {
        s->c = g_new0(BdrvChild, 1);
        s->c->bs = new_bs;
        s->c->name = g_strdup(name);
        s->c->klass = &child_of_bds;
        s->c->role = is_backing ? bdrv_backing_role(parent)
                                : BDRV_CHILD_IMAGE;
        s->c->opaque = parent;
        s->c->shared_perm = BLK_PERM_ALL;
        child_link(s->c, parent);
    } else {
        s->c = c;
        s->old_bs = c->bs;
        if (new_bs) {
            c->bs->parents = g_list_remove(c->bs->parents, c);
            c->bs = new_bs;
            new_bs->parents = g_list_prepend(new_bs->parents, c);
        } else {
            child_unlink(c, parent);
        }
    }
    tran_add(tran, &swap_drv, s);
    return 0;
}

int bdrv_set_backing_hd(BlockDriverState *bs, BlockDriverState *backing_hd,
                        Error **errp)
{
    if (bs->backing && bs->backing->frozen) {
        error_setg(errp, "Cannot change frozen 'backing' link from '%s' to "
                   "'%s'", bs->node_name, bs->backing->bs->node_name);
        return -EPERM;
    }
    if (backing_hd && !(bs->drv && bs->drv->supports_backing)) {
        error_setg(errp, "Driver doesn't support backing files");
        return -ENOTSUP;
    }
    if (!backing_hd) {
        if (bs->backing) {
            bdrv_unref_child(bs, bs->backing);
            bdrv_refresh_limits(bs, NULL, NULL);
        }
        return 0;
    }
    if (bs->backing) {
        return bdrv_replace_child(bs->backing, backing_hd, errp);
    }
    bdrv_ref(backing_hd);
    if (!bdrv_attach_child(bs, backing_hd, "backing", &child_of_bds,
                           bdrv_backing_role(bs), errp)) {
        return -EPERM;
    }
    bdrv_refresh_limits(bs, NULL, NULL);
    return 0;
}

int bdrv_freeze_child(BdrvChild *child, Error **errp)
{
    if (!child) {
        return 0;
    }
    if (child->frozen == INT_MAX) {
        error_setg(errp, "Too many freezes of '%s' link", child->name);
        return -EBUSY;
    }
    child->frozen++;
    return 0;
}

void bdrv_unfreeze_child(BdrvChild *child)
{
    if (child) {
        g_assert(child->frozen > 0);
        child->frozen--;
    }
}

BlockDriverState *bdrv_filter_or_cow_bs(BlockDriverState *bs)
{
    if (!bs || !bs->drv) {
        return NULL;
    }
    if (bs->drv->is_filter) {
        BdrvChild *c = bs->file ? bs->file : bs->backing;
        return c ? c->bs : NULL;
    }
    return bs->backing ? bs->backing->bs : NULL;
}

static BlockDriverState *skip_filters(BlockDriverState *bs)
{
    while (bs && bs->drv && bs->drv->is_filter) {
        BdrvChild *c = bs->file ? bs->file : bs->backing;
        if (!c) {
            break;
        }
        bs = c->bs;
    }
    return bs;
}

BlockDriverState *bdrv_backing_chain_next(BlockDriverState *bs)
{
    bs = skip_filters(bs);
    if (!bs || !bs->backing || (bs->drv && bs->drv->is_filter)) {
        return NULL;
    }
    return skip_filters(bs->backing->bs);
}

/* ---------------------------------------------------------------------- */
/* life cycle */

BlockDriverState *bdrv_new_node(void)
{
    BlockDriverState *bs = g_new0(BlockDriverState, 1);

    bs->refcnt = 1;
    bs->aio_context = qb_get_aio_context();
    co_mutex_init(&bs->reqs_lock);
    co_mutex_init(&bs->flush_lock);
    bs->bl.request_alignment = 1;
    bs->in_graph = true;
    all_nodes = g_list_append(all_nodes, bs);
    return bs;
}

void bdrv_ref(BlockDriverState *bs)
{
    bs->refcnt++;
}

static void bdrv_close(BlockDriverState *bs)
{
    if (bs->drv) {
        bdrv_drained_begin(bs);
        bdrv_flush(bs);
        if (bs->drv->bdrv_close) {
            bs->drv->bdrv_close(bs);
        }
        bdrv_drained_end(bs);
    }
    /* The driver stored and released its persistent bitmaps; whatever is
     * left (non-persistent ones) dies with the node. */
    bdrv_release_all_dirty_bitmaps(bs);
    /* Newest child first, as they are listed. */
    while (bs->children) {
        BdrvChild *c = bs->children->data;
        c->frozen = 0;
        bdrv_detach_and_unref_child(c);
    }
    bs->file = bs->backing = NULL;
    g_free(bs->opaque);
    bs->opaque = NULL;
    bs->drv = NULL;
    json_decref(bs->options);
    json_decref(bs->explicit_options);
    bs->options = bs->explicit_options = NULL;
}

void bdrv_unref(BlockDriverState *bs)
{
    if (!bs) {
        return;
    }
    g_assert(bs->refcnt > 0);
    if (--bs->refcnt > 0) {
        return;
    }
    g_assert(!bs->parents);
    /* Keep the node alive while closing: children detach and refresh
     * permissions, which must not see a freed node. */
    bs->refcnt = 1;
    bdrv_close(bs);
    g_assert(bs->refcnt == 1);
    all_nodes = g_list_remove(all_nodes, bs);
    named_nodes = g_list_remove(named_nodes, bs);
    bs->in_graph = false;
    g_free(bs);
}

void bdrv_close_all(void)
{
    GList *owned = NULL;

    bdrv_drain_all();
    for (GList *l = all_nodes; l; l = l->next) {
        BlockDriverState *bs = l->data;
        if (bs->monitor_owned) {
            owned = g_list_prepend(owned, bs);
        }
    }
    /* Newest first so parents go before the children they reference. */
    for (GList *l = owned; l; l = l->next) {
        BlockDriverState *bs = l->data;
        bs->monitor_owned = false;
        bdrv_unref(bs);
    }
    g_list_free(owned);
}

/* ---------------------------------------------------------------------- */
/* misc node queries */

int bdrv_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    memset(bdi, 0, sizeof(*bdi));
    if (!bs->drv) {
        return -ENOMEDIUM;
    }
    if (!bs->drv->bdrv_get_info) {
        BlockDriverState *f = bdrv_filter_or_cow_bs(bs);
        if (f && bs->drv->is_filter) {
            return bdrv_get_info(f, bdi);
        }
        return -ENOTSUP;
    }
    return bs->drv->bdrv_get_info(bs, bdi);
}

json_t *bdrv_get_specific_info(BlockDriverState *bs, Error **errp)
{
    if (bs->drv && bs->drv->bdrv_get_specific_info) {
        return bs->drv->bdrv_get_specific_info(bs, errp);
    }
    return NULL;
}

/* ---------------------------------------------------------------------- */
/* inactivation */

/*
 * An inactive node has handed its image to someone else (a migration
 * target, an external writer): its driver has written everything out, and
 * the default permission rules share WRITE and RESIZE on its children, so
 * file-posix drops the corresponding locks.
 */
int bdrv_inactivate(BlockDriverState *bs, Error **errp)
{
    uint64_t perm, shared;
    int ret;

    if (!bs->drv || (bs->open_flags & BDRV_O_INACTIVE)) {
        return 0;
    }
    for (GList *l = bs->parents; l; l = l->next) {
        BdrvChild *c = l->data;
        if (c->klass && c->klass->parent_is_bds &&
            !(((BlockDriverState *)c->opaque)->open_flags &
              BDRV_O_INACTIVE)) {
            error_setg(errp, "Node '%s' has an active parent",
                       bs->node_name);
            return -EPERM;
        }
    }
    bdrv_get_cumulative_perm(bs, &perm, &shared);
    if (perm & (BLK_PERM_WRITE | BLK_PERM_WRITE_UNCHANGED)) {
        error_setg(errp, "Cannot inactivate node '%s': a parent still has "
                   "write permission", bs->node_name);
        return -EPERM;
    }
    if (bs->drv->bdrv_inactivate) {
        ret = bs->drv->bdrv_inactivate(bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to inactivate node '%s'",
                             bs->node_name);
            return ret;
        }
    }
    bs->open_flags |= BDRV_O_INACTIVE;
    /* Only loosens: errors would over-claim, never under-protect. */
    bdrv_refresh_perms(bs, NULL, NULL);
    for (GList *l = bs->children; l; l = l->next) {
        BdrvChild *c = l->data;
        ret = bdrv_inactivate(c->bs, errp);
        if (ret < 0) {
            return ret;
        }
    }
    return 0;
}

typedef struct InvalidateCo {
    BlockDriverState *bs;
    Error *err;
    int ret;
} InvalidateCo;

static void coroutine_fn invalidate_cache_entry(void *opaque)
{
    InvalidateCo *s = opaque;
    s->ret = s->bs->drv->bdrv_co_invalidate_cache(s->bs, &s->err);
}

int bdrv_activate(BlockDriverState *bs, Error **errp)
{
    int ret;

    if (!bs->drv) {
        return -ENOMEDIUM;
    }
    /* Children first: a format re-reads its metadata from an active file. */
    for (GList *l = bs->children; l; l = l->next) {
        BdrvChild *c = l->data;
        ret = bdrv_activate(c->bs, errp);
        if (ret < 0) {
            return ret;
        }
    }
    if (!(bs->open_flags & BDRV_O_INACTIVE)) {
        return 0;
    }
    bs->open_flags &= ~BDRV_O_INACTIVE;
    ret = bdrv_refresh_perms(bs, NULL, errp);
    if (ret < 0) {
        bs->open_flags |= BDRV_O_INACTIVE;
        return ret;
    }
    if (bs->drv->bdrv_co_invalidate_cache) {
        InvalidateCo s = { .bs = bs };
        coroutine_run_sync(invalidate_cache_entry, &s);
        if (s.ret < 0) {
            bs->open_flags |= BDRV_O_INACTIVE;
            if (s.err) {
                error_propagate(errp, s.err);
            } else {
                error_setg_errno(errp, -s.ret, "Could not refresh node '%s'",
                                 bs->node_name);
            }
            return s.ret;
        }
    }
    ret = (int)MIN(bdrv_getlength(bs), 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not refresh total sector count");
        return ret;
    }
    return 0;
}
