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

static json_t *image_info(BlockDriverState *bs, bool flat, int depth,
                          Error **errp)
{
    json_t *info = json_object();
    BlockDriverInfo bdi;
    int64_t size, allocated;
    BlockDriverState *backing;

    size = bdrv_getlength(bs);
    if (size < 0) {
        error_setg_errno(errp, -size, "Can't get image size '%s'",
                         bs->exact_filename[0] ? bs->exact_filename
                                               : bs->filename);
        json_decref(info);
        return NULL;
    }
    bdrv_refresh_filename(bs);
    allocated = bdrv_get_allocated_file_size(bs);
    /* Insertion order: ImageInfo's schema order, as QEMU's visitor. */
    json_object_set_new(info, "filename", json_string(bs->filename));
    json_object_set_new(info, "format",
                        json_string(bdrv_get_format_name(bs)));
    if (bdrv_get_info(bs, &bdi) >= 0) {
        json_object_set_new(info, "dirty-flag", json_boolean(bdi.is_dirty));
    } else {
        bdi.cluster_size = 0;
    }
    if (allocated >= 0) {
        json_object_set_new(info, "actual-size", json_integer(allocated));
    }
    json_object_set_new(info, "virtual-size", json_integer(size));
    if (bdi.cluster_size) {
        json_object_set_new(info, "cluster-size",
                            json_integer(bdi.cluster_size));
    }
    if (bs->encrypted) {
        json_object_set_new(info, "encrypted", json_true());
    }
    if (bs->backing_file[0]) {
        json_object_set_new(info, "backing-filename",
                            json_string(bs->backing_file));
        json_object_set_new(info, "full-backing-filename",
                            json_string(bs->backing ? bs->backing->bs->filename
                                                    : bs->backing_file));
        if (bs->backing_format[0]) {
            json_object_set_new(info, "backing-filename-format",
                                json_string(bs->backing_format));
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
            json_object_set_new(info, "snapshots", arr);
        }
    }
    backing = bs->backing ? bs->backing->bs : NULL;
    if (!flat && backing && depth < 1000) {
        json_t *bi = image_info(backing, flat, depth + 1, errp);

        if (!bi) {
            json_decref(info);
            return NULL;
        }
        json_object_set_new(info, "backing-image", bi);
    }
    if (bs->drv && bs->drv->bdrv_get_specific_info) {
        Error *err = NULL;
        json_t *spec = bdrv_get_specific_info(bs, &err);

        if (err) {
            error_propagate(errp, err);
            json_decref(info);
            return NULL;
        }
        if (spec) {
            json_object_set_new(info, "format-specific", spec);
        }
    }
    return info;
}

static const char *const detect_zeroes_names[] = { "off", "on", "unmap" };

static json_t *block_device_info(BlockDriverState *bs, bool flat,
                                 Error **errp)
{
    json_t *info = json_object(), *image, *bitmaps;
    int depth = 0;

    bdrv_refresh_filename(bs);
    json_object_set_new(info, "file", json_string(bs->filename));
    json_object_set_new(info, "node-name", json_string(bs->node_name));
    json_object_set_new(info, "ro", json_boolean(bdrv_is_read_only(bs)));
    json_object_set_new(info, "drv", json_string(bdrv_get_format_name(bs)));
    /* QEMU names the attached backing node by its filename (a json: name
     * when its options were overridden); without a backing node (backing
     * null, or detached by reopen) the member is absent even if the
     * header names a backing file (image.backing-filename still shows). */
    if (bs->backing) {
        bdrv_refresh_filename(bs->backing->bs);
        json_object_set_new(info, "backing_file",
                            json_string(bs->backing->bs->filename));
    }
    /* Counted along image.backing-image, which flat omits. */
    for (BlockDriverState *b = bs->backing && !flat ? bs->backing->bs : NULL;
         b && depth < 100000; b = b->backing ? b->backing->bs : NULL) {
        depth++;
    }
    json_object_set_new(info, "backing_file_depth", json_integer(depth));
    json_object_set_new(info, "encrypted", json_boolean(bs->encrypted));
    json_object_set_new(info, "detect_zeroes",
                        json_string(detect_zeroes_names[bs->detect_zeroes]));
    json_object_set_new(info, "bps", json_integer(0));
    json_object_set_new(info, "bps_rd", json_integer(0));
    json_object_set_new(info, "bps_wr", json_integer(0));
    json_object_set_new(info, "iops", json_integer(0));
    json_object_set_new(info, "iops_rd", json_integer(0));
    json_object_set_new(info, "iops_wr", json_integer(0));
    image = image_info(bs, flat, 0, errp);
    if (!image) {
        json_decref(info);
        return NULL;
    }
    json_object_set_new(info, "image", image);
    json_object_set_new(info, "cache",
        json_pack("{s:b,s:b,s:b}", "writeback", 1,
                  "direct", !!(bs->open_flags & BDRV_O_NOCACHE),
                  "no-flush", !!(bs->open_flags & BDRV_O_NO_FLUSH)));
    json_object_set_new(info, "write_threshold",
                        json_integer(bs->write_threshold_offset));
    bitmaps = bdrv_query_dirty_bitmaps(bs);
    if (bitmaps) {
        json_object_set_new(info, "dirty-bitmaps", bitmaps);
    }
    return info;
}

BlockDeviceInfoList *qmp_query_named_block_nodes(bool has_flat, bool flat,
                                                 Error **errp)
{
    GList *nodes = bdrv_named_nodes_list();
    json_t *list = json_array();
    BlockDeviceInfoList *ret = NULL;

    for (GList *l = nodes; l; l = l->next) {
        json_t *info = block_device_info(l->data, has_flat && flat, errp);

        if (!info) {
            goto out;
        }
        json_array_append_new(list, info);
    }
    ret = QMP_FROM_JSON(BlockDeviceInfoList, list, errp);
out:
    g_list_free(nodes);
    json_decref(list);
    return ret;
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
