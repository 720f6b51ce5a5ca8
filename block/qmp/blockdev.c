/*
 * blockdev-add, blockdev-del, query-named-block-nodes and
 * x-debug-query-block-graph.
 *
 * Nodes added by blockdev-add are "monitor owned": the monitor holds the
 * reference bdrv_open returned (bs->monitor_owned marks it; bdrv_close_all
 * drops it at exit).  blockdev-del drops that reference, which closes the
 * node and the children it created inline; children added by their own
 * blockdev-add stay.  Replies are built as JSON with members inserted in
 * QEMU's order and converted to the generated types by the input visitor
 * (which also checks them against the schema).
 */
#include "block/qmp/qmp-internal.h"
#include "block/snapshot.h"
#include "block/graph.h"

/* ---- blockdev-add / blockdev-del ---- */

void qmp_blockdev_add(BlockdevOptions *options, Error **errp)
{
    json_t *obj = QMP_TO_JSON(BlockdevOptions, options);
    BlockDriverState *bs;

    if (!json_is_string(json_object_get(obj, "node-name"))) {
        error_setg(errp, "'node-name' must be specified for the root node");
        json_decref(obj);
        return;
    }
    /* Read-write unless the options say read-only, as QEMU's defaults for
     * blockdev-add. */
    bs = bdrv_open(NULL, NULL, obj, BDRV_O_RDWR, errp);
    if (!bs) {
        return;
    }
    bs->monitor_owned = true;
}

static bool has_non_node_parent(BlockDriverState *bs)
{
    for (GList *l = bs->parents; l; l = l->next) {
        BdrvChild *c = l->data;

        if (!c->klass->parent_is_bds) {
            return true;
        }
    }
    return false;
}

void qmp_blockdev_del(const char *node_name, Error **errp)
{
    BlockDriverState *bs = bdrv_find_node(node_name);

    if (!bs) {
        error_setg(errp, "Failed to find node with node-name='%s'",
                   node_name);
        return;
    }
    if (has_non_node_parent(bs)) {
        error_setg(errp, "Node %s is in use", node_name);
        return;
    }
    /* QEMU's op blocker: a backing child may not be deleted while its
     * overlay uses it, checked before ownership and references. */
    for (GList *l = bs->parents; l; l = l->next) {
        BdrvChild *c = l->data;

        if (c->klass->parent_is_bds && !strcmp(c->name, "backing")) {
            BlockDriverState *parent = c->opaque;

            error_setg(errp, "Node '%s' is busy: node is used as backing "
                       "hd of '%s'", bs->node_name, parent->node_name);
            return;
        }
    }
    if (!bs->monitor_owned) {
        error_setg(errp, "Node %s is not owned by the monitor",
                   bs->node_name);
        return;
    }
    if (bs->refcnt > 1) {
        error_setg(errp, "Block device %s is in use", bs->node_name);
        return;
    }
    bs->monitor_owned = false;
    bdrv_unref(bs);
}

/* ---- query-named-block-nodes ---- */

/*
 * The reply is built as the generated C types directly (not as JSON run
 * through the input visitor): this command is polled by management layers,
 * and the round trip through a second JSON tree and the visitor's key
 * bookkeeping cost more than the rest of the query.  Only the parts that
 * drivers and the bitmap code deliver as JSON (format-specific, snapshots,
 * dirty-bitmaps) go through the input visitor.  The generated marshaller
 * emits members in schema order, which is QEMU's insertion order, so the
 * printed reply is unchanged.
 */

/* bs's image info; bs->filename must be fresh (bdrv_refresh_filename). */
static ImageInfo *image_info(BlockDriverState *bs, bool flat, int depth,
                             Error **errp)
{
    g_autoptr(ImageInfo) info = NULL;
    BlockDriverInfo bdi;
    int64_t size, allocated;
    BlockDriverState *backing;

    size = bdrv_getlength(bs);
    if (size < 0) {
        error_setg_errno(errp, -size, "Can't get image size '%s'",
                         bs->exact_filename[0] ? bs->exact_filename
                                               : bs->filename);
        return NULL;
    }
    allocated = bdrv_get_allocated_file_size(bs);
    info = g_new0(ImageInfo, 1);
    info->filename = g_strdup(bs->filename);
    info->format = g_strdup(bdrv_get_format_name(bs));
    if (bdrv_get_info(bs, &bdi) >= 0) {
        info->has_dirty_flag = true;
        info->dirty_flag = bdi.is_dirty;
    } else {
        bdi.cluster_size = 0;
    }
    if (allocated >= 0) {
        info->has_actual_size = true;
        info->actual_size = allocated;
    }
    info->virtual_size = size;
    if (bdi.cluster_size) {
        info->has_cluster_size = true;
        info->cluster_size = bdi.cluster_size;
    }
    if (bs->encrypted) {
        info->has_encrypted = true;
        info->encrypted = true;
    }
    if (bs->backing_file[0]) {
        info->has_backing_filename = true;
        info->backing_filename = g_strdup(bs->backing_file);
        info->has_full_backing_filename = true;
        info->full_backing_filename =
            g_strdup(bs->backing ? bs->backing->bs->filename
                                 : bs->backing_file);
        if (bs->backing_format[0]) {
            info->has_backing_filename_format = true;
            info->backing_filename_format = g_strdup(bs->backing_format);
        }
    }
    {
        /* Internal snapshots, only when there are some (as qemu-img). */
        g_autofree QBSnapshotInfo *sn = NULL;
        int n = bdrv_snapshot_list(bs, &sn);

        if (n > 0) {
            json_t *arr = json_array();

            for (int i = 0; i < n; i++) {
                json_array_append_new(arr, bdrv_snapshot_info_json(&sn[i]));
            }
            info->snapshots = QMP_FROM_JSON(SnapshotInfoList, arr, errp);
            json_decref(arr);
            if (!info->snapshots) {
                return NULL;
            }
            info->has_snapshots = true;
        }
    }
    backing = bs->backing ? bs->backing->bs : NULL;
    if (!flat && backing && depth < 1000) {
        bdrv_refresh_filename(backing);
        info->backing_image = image_info(backing, flat, depth + 1, errp);
        if (!info->backing_image) {
            return NULL;
        }
        info->has_backing_image = true;
    }
    if (bs->drv && bs->drv->bdrv_get_specific_info) {
        Error *err = NULL;
        json_t *spec = bdrv_get_specific_info(bs, &err);

        if (err) {
            error_propagate(errp, err);
            return NULL;
        }
        if (spec) {
            info->format_specific = QMP_FROM_JSON(ImageInfoSpecific, spec,
                                                  errp);
            json_decref(spec);
            if (!info->format_specific) {
                return NULL;
            }
            info->has_format_specific = true;
        }
    }
    return g_steal_pointer(&info);
}

static BlockDeviceInfo *block_device_info(BlockDriverState *bs, bool flat,
                                          Error **errp)
{
    g_autoptr(BlockDeviceInfo) info = g_new0(BlockDeviceInfo, 1);
    json_t *bitmaps;
    int depth = 0;

    bdrv_refresh_filename(bs);
    info->file = g_strdup(bs->filename);
    info->has_node_name = true;
    info->node_name = g_strdup(bs->node_name);
    info->ro = bdrv_is_read_only(bs);
    info->drv = g_strdup(bdrv_get_format_name(bs));
    /* QEMU names the attached backing node by its filename (a json: name
     * when its options were overridden); without a backing node (backing
     * null, or detached by reopen) the member is absent even if the
     * header names a backing file (image.backing-filename still shows). */
    if (bs->backing) {
        bdrv_refresh_filename(bs->backing->bs);
        info->has_backing_file = true;
        info->backing_file = g_strdup(bs->backing->bs->filename);
    }
    /* Counted along image.backing-image, which flat omits. */
    for (BlockDriverState *b = bs->backing && !flat ? bs->backing->bs : NULL;
         b && depth < 100000; b = b->backing ? b->backing->bs : NULL) {
        depth++;
    }
    info->backing_file_depth = depth;
    info->encrypted = bs->encrypted;
    info->detect_zeroes = bs->detect_zeroes;
    /* No throttling in qblock: bps..iops_wr are 0, the *_max absent. */
    info->image = image_info(bs, flat, 0, errp);
    if (!info->image) {
        return NULL;
    }
    info->cache = g_new0(BlockdevCacheInfo, 1);
    info->cache->writeback = true;
    info->cache->direct = !!(bs->open_flags & BDRV_O_NOCACHE);
    info->cache->no_flush = !!(bs->open_flags & BDRV_O_NO_FLUSH);
    info->write_threshold = bs->write_threshold_offset;
    bitmaps = bdrv_query_dirty_bitmaps(bs);
    if (bitmaps) {
        Error *err = NULL;

        info->dirty_bitmaps = QMP_FROM_JSON(BlockDirtyInfoList, bitmaps,
                                            &err);
        json_decref(bitmaps);
        if (err) {
            error_propagate(errp, err);
            return NULL;
        }
        info->has_dirty_bitmaps = true;
    }
    return g_steal_pointer(&info);
}

BlockDeviceInfoList *qmp_query_named_block_nodes(bool has_flat, bool flat,
                                                 Error **errp)
{
    GList *nodes = bdrv_named_nodes_list();
    BlockDeviceInfoList *head = NULL, **tail = &head;

    for (GList *l = nodes; l; l = l->next) {
        BlockDeviceInfo *info = block_device_info(l->data, has_flat && flat,
                                                  errp);

        if (!info) {
            qapi_free_BlockDeviceInfoList(head);
            head = NULL;
            break;
        }
        *tail = g_new0(BlockDeviceInfoList, 1);
        (*tail)->value = info;
        tail = &(*tail)->next;
    }
    g_list_free(nodes);
    return head;
}

/* ---- x-debug-query-block-graph ---- */

typedef struct GraphDump {
    GHashTable *ids;     /* vertex pointer -> id, assigned when first met */
    json_t *nodes;
    json_t *edges;
} GraphDump;

static int graph_id(GraphDump *g, void *ptr)
{
    gpointer id = g_hash_table_lookup(g->ids, ptr);

    if (!id) {
        id = GINT_TO_POINTER(g_hash_table_size(g->ids) + 1);
        g_hash_table_insert(g->ids, ptr, id);
    }
    return GPOINTER_TO_INT(id);
}

static void graph_add_vertex(GraphDump *g, void *ptr, const char *type,
                             const char *name)
{
    /* Prepended: QEMU lists the newest vertex first. */
    json_array_insert_new(g->nodes, 0,
        json_pack("{s:I,s:s,s:s}", "id", (json_int_t)graph_id(g, ptr),
                  "type", type, "name", name ? name : ""));
}

static json_t *perm_list(uint64_t perm)
{
    json_t *l = json_array();

    /* Highest bit first, as QEMU prints them. */
    for (int i = BLK_PERM_COUNT - 1; i >= 0; i--) {
        if (perm & (1ULL << i)) {
            json_array_append_new(l, json_string(bdrv_perm_qapi_name(i)));
        }
    }
    return l;
}

static void graph_add_edge(GraphDump *g, void *parent, BdrvChild *c)
{
    json_t *edge = json_object();

    json_object_set_new(edge, "parent", json_integer(graph_id(g, parent)));
    json_object_set_new(edge, "child", json_integer(graph_id(g, c->bs)));
    json_object_set_new(edge, "name", json_string(c->name));
    json_object_set_new(edge, "perm", perm_list(c->perm));
    json_object_set_new(edge, "shared-perm", perm_list(c->shared_perm));
    json_array_insert_new(g->edges, 0, edge);
}

/*
 * Walk as QEMU does: first the users that are not nodes (BlockBackends,
 * jobs) with their edges, then every node, oldest first, with the edges to
 * its children.  Ids are numbered in order of first sight.
 */
XDbgBlockGraph *qmp_x_debug_query_block_graph(Error **errp)
{
    GraphDump g = { g_hash_table_new(NULL, NULL), json_array(),
                    json_array() };
    GList *nodes = g_list_reverse(bdrv_named_nodes_list());
    XDbgBlockGraph *ret;
    json_t *obj;

    for (GList *l = nodes; l; l = l->next) {
        BlockDriverState *bs = l->data;

        for (GList *p = bs->parents; p; p = p->next) {
            BdrvChild *c = p->data;

            if (!c->klass->parent_is_bds) {
                const char *name = c->klass->get_name
                                   ? c->klass->get_name(c) : NULL;

                graph_add_vertex(&g, c->opaque, "block-backend", name);
                graph_add_edge(&g, c->opaque, c);
            }
        }
    }
    for (GList *l = nodes; l; l = l->next) {
        BlockDriverState *bs = l->data;

        graph_add_vertex(&g, bs, "block-driver", bs->node_name);
        for (GList *ch = bs->children; ch; ch = ch->next) {
            graph_add_edge(&g, bs, ch->data);
        }
    }
    obj = json_pack("{s:o,s:o}", "nodes", g.nodes, "edges", g.edges);
    ret = QMP_FROM_JSON(XDbgBlockGraph, obj, errp);
    json_decref(obj);
    g_list_free(nodes);
    g_hash_table_destroy(g.ids);
    return ret;
}
