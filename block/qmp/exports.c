/*
 * Block exports over QMP: the NBD server life cycle (nbd-server-start /
 * -stop), exports by id (block-export-add / -del, query-block-exports,
 * the BLOCK_EXPORT_DELETED event) and the older nbd-server-add / -remove,
 * which are the same exports with the export name as their id.  Texts,
 * check order and event timing follow qemu-storage-daemon 7.2.
 *
 * Invariants:
 *  1. Every export holds its node through its own BlockBackend taking
 *     CONSISTENT_READ (+ WRITE when writable) and sharing everything, as
 *     QEMU's exports do; the node therefore has a non-node parent and
 *     blockdev-del refuses it ("Node NAME is in use").
 *  2. An export stays in block_exports (and query-block-exports shows it,
 *     shutting-down once deletion was requested) until the NBD layer says
 *     it is gone; only then is the BlockBackend dropped and
 *     BLOCK_EXPORT_DELETED sent.  So the event follows the node's release.
 *  3. block_exports is newest first (QEMU's query order).
 */
#include "block/qmp/qmp-internal.h"
#include "block/block-backend.h"
#include "nbd/nbd.h"
#include "nbd/tls.h"
#include "qapi/qapi-events.h"

typedef struct BlockExport {
    char *id;
    char *node_name;
    BlockBackend *blk;
    NBDExport *nbd;
    bool shutting_down;
} BlockExport;

static GList *block_exports;     /* BlockExport*, newest first */

static BlockExport *export_find(const char *id)
{
    for (GList *l = block_exports; l; l = l->next) {
        BlockExport *e = l->data;
        if (strcmp(e->id, id) == 0) {
            return e;
        }
    }
    return NULL;
}

/* QEMU's id_wellformed(): a letter, then letters, digits, '-', '.', '_'. */
static bool id_wellformed(const char *id)
{
    if (!g_ascii_isalpha(id[0])) {
        return false;
    }
    for (const char *p = id + 1; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("-._", *p)) {
            return false;
        }
    }
    return true;
}

/* The NBD layer's on_delete: the export and its last client are gone. */
static void export_deleted(void *opaque)
{
    BlockExport *e = opaque;

    block_exports = g_list_remove(block_exports, e);
    blk_unref(e->blk);
    qapi_event_send_block_export_deleted(e->id);
    g_free(e->id);
    g_free(e->node_name);
    g_free(e);
}

static void export_request_shutdown(BlockExport *e)
{
    e->shutting_down = true;
    /* May call export_deleted() right away when no client is attached. */
    nbd_export_remove(e->nbd);
}

/* ---------------------------------------------------------------------- */
/* nbd-server-start / -stop                                                */

static json_t *legacy_addr_to_json(SocketAddressLegacy *addr, Error **errp)
{
    json_t *j = json_object();

    switch (addr->type) {
    case SOCKET_ADDRESS_TYPE_UNIX:
        json_object_set_new(j, "type", json_string("unix"));
        json_object_set_new(j, "path",
                            json_string(addr->u.q_unix.data->path));
        break;
    case SOCKET_ADDRESS_TYPE_INET:
        json_object_set_new(j, "type", json_string("inet"));
        json_object_set_new(j, "host",
                            json_string(addr->u.inet.data->host));
        json_object_set_new(j, "port",
                            json_string(addr->u.inet.data->port));
        break;
    case SOCKET_ADDRESS_TYPE_FD:
        json_object_set_new(j, "type", json_string("fd"));
        json_object_set_new(j, "str", json_string(addr->u.fd.data->str));
        break;
    default:
        error_setg(errp, "Address type not supported");
        json_decref(j);
        return NULL;
    }
    return j;
}

void qmp_nbd_server_start(SocketAddressLegacy *addr, bool has_tls_creds,
                          const char *tls_creds, bool has_tls_authz,
                          const char *tls_authz, bool has_max_connections,
                          uint32_t max_connections, Error **errp)
{
    json_t *j;
    NBDTLSCreds *creds = NULL;

    if (nbd_server_is_running()) {
        error_setg(errp, "NBD server already running");
        return;
    }
    if (has_tls_creds && tls_creds) {
        creds = nbd_tls_creds_find(tls_creds, true, errp);
        if (!creds) {
            return;
        }
    }
    if (has_tls_authz && tls_authz && !nbd_tls_authz_exists(tls_authz)) {
        /* QEMU resolves the authz object lazily, when a client arrives. */
    }
    j = legacy_addr_to_json(addr, errp);
    if (!j) {
        return;
    }
    if (nbd_server_start(j, has_max_connections ? max_connections : 0,
                         errp) == 0) {
        nbd_server_set_tls(creds, has_tls_authz ? tls_authz : NULL);
    }
    json_decref(j);
}

/* Remove every NBD export (oldest first, clients disconnected) and wait
 * until they are gone, so their events precede the reply. */
static void close_all_nbd_exports(void)
{
    GList *snapshot = g_list_reverse(g_list_copy(block_exports));

    for (GList *l = snapshot; l; l = l->next) {
        BlockExport *e = l->data;
        /* An earlier removal may have deleted it already. */
        if (g_list_find(block_exports, e) && !e->shutting_down) {
            export_request_shutdown(e);
        }
    }
    g_list_free(snapshot);
    AIO_WAIT_WHILE(qb_get_aio_context(), block_exports != NULL);
}

void qmp_nbd_server_stop(Error **errp)
{
    if (!nbd_server_is_running()) {
        error_setg(errp, "NBD server not running");
        return;
    }
    close_all_nbd_exports();
    nbd_server_stop();
    nbd_server_set_tls(NULL, NULL);
}

void qmp_block_exports_close_all(void)
{
    close_all_nbd_exports();
    if (nbd_server_is_running()) {
        nbd_server_stop();
    }
}

/* ---------------------------------------------------------------------- */
/* block-export-add                                                        */

/* Resolve the bitmaps argument: plain names are looked up by the NBD layer
 * on the node and below it; {node, name} pairs are resolved here. */
static bool resolve_bitmaps(BlockDirtyBitmapOrStrList *list,
                            GPtrArray *names, GPtrArray *objs, Error **errp)
{
    for (; list; list = list->next) {
        BlockDirtyBitmapOrStr *b = list->value;

        if (b->type == QTYPE_QSTRING) {
            g_ptr_array_add(names, b->u.local);
            g_ptr_array_add(objs, NULL);
        } else {
            BdrvDirtyBitmap *bm = qmp_lookup_bitmap(b->u.external->node,
                                                    b->u.external->name,
                                                    NULL, errp);
            if (!bm) {
                return false;
            }
            g_ptr_array_add(names, b->u.external->name);
            g_ptr_array_add(objs, bm);
        }
    }
    g_ptr_array_add(names, NULL);
    g_ptr_array_add(objs, NULL);
    return true;
}

void qmp_block_export_add(BlockExportOptions *arg, Error **errp)
{
    BlockExportOptionsNbd *nbd = &arg->u.nbd;
    BlockDriverState *bs;
    BlockBackend *blk;
    BlockExport *e;
    bool writable = arg->has_writable && arg->writable;
    const char *name;
    g_autoptr(GPtrArray) names = g_ptr_array_new();
    g_autoptr(GPtrArray) objs = g_ptr_array_new();
    NBDExportOptions o = { 0 };

    if (arg->type != BLOCK_EXPORT_TYPE_NBD) {
        error_setg(errp, "No driver found for the requested export type");
        return;
    }
    if (!id_wellformed(arg->id)) {
        error_setg(errp, "Invalid block export id");
        return;
    }
    if (export_find(arg->id)) {
        error_setg(errp, "Block export id '%s' is already in use", arg->id);
        return;
    }
    bs = bdrv_lookup_bs(NULL, arg->node_name, errp);
    if (!bs) {
        return;
    }
    if (arg->has_iothread) {
        /* One event loop serves everything; no iothread objects exist
         * that an export could move to. */
        error_setg(errp, "iothread \"%s\" not found", arg->iothread);
        return;
    }
    if (writable && bdrv_is_read_only(bs)) {
        error_setg(errp, "Cannot export read-only node as writable");
        return;
    }

    /* The NBD export announces the size once, so others may not resize
     * the node under it (QEMU 7.2 unshares resize the same way). */
    blk = blk_new(qb_get_aio_context(),
                  BLK_PERM_CONSISTENT_READ | (writable ? BLK_PERM_WRITE : 0),
                  BLK_PERM_ALL & ~BLK_PERM_RESIZE);
    if (blk_insert_bs(blk, bs, errp) < 0) {
        blk_unref(blk);
        return;
    }
    blk_set_enable_write_cache(blk, !(arg->has_writethrough &&
                                      arg->writethrough));

    if (!nbd_server_is_running()) {
        error_setg(errp, "NBD server not running");
        goto fail;
    }
    name = nbd->has_name && nbd->name ? nbd->name : arg->node_name;
    if (strlen(name) > NBD_MAX_STRING_SIZE) {
        error_setg(errp, "export name '%s' too long", name);
        goto fail;
    }
    if (nbd->has_description && nbd->description &&
        strlen(nbd->description) > NBD_MAX_STRING_SIZE) {
        error_setg(errp, "description '%s' too long", nbd->description);
        goto fail;
    }
    if (nbd_export_find(name)) {
        error_setg(errp, "NBD server already has export named '%s'", name);
        goto fail;
    }
    if (!resolve_bitmaps(nbd->has_bitmaps ? nbd->bitmaps : NULL,
                         names, objs, errp)) {
        goto fail;
    }

    e = g_new0(BlockExport, 1);
    o.name = name;
    o.description = nbd->has_description ? nbd->description : NULL;
    o.writable = writable;
    o.allocation_depth = nbd->has_allocation_depth && nbd->allocation_depth;
    o.bitmaps = (const char *const *)names->pdata;
    o.bitmap_objs = (BdrvDirtyBitmap *const *)objs->pdata;
    o.multi_conn = -1;
    e->nbd = nbd_export_new(blk, &o, export_deleted, e, errp);
    if (!e->nbd) {
        g_free(e);
        goto fail;
    }
    e->id = g_strdup(arg->id);
    e->node_name = g_strdup(bdrv_get_node_name(bs));
    e->blk = blk;
    block_exports = g_list_prepend(block_exports, e);
    return;

fail:
    blk_unref(blk);
}

/* ---------------------------------------------------------------------- */
/* block-export-del, query-block-exports                                   */

void qmp_block_export_del(const char *id, bool has_mode,
                          BlockExportRemoveMode mode, Error **errp)
{
    BlockExport *e = export_find(id);

    if (!e) {
        error_setg(errp, "Export '%s' is not found", id);
        return;
    }
    if (e->shutting_down) {
        error_setg(errp, "Export '%s' is already shutting down", id);
        return;
    }
    if (!has_mode) {
        mode = BLOCK_EXPORT_REMOVE_MODE_SAFE;
    }
    if (mode == BLOCK_EXPORT_REMOVE_MODE_SAFE &&
        nbd_export_client_count(e->nbd) > 0) {
        /* QEMU adds the hint "Use mode='hard' to force client
         * disconnect", which QMP does not show. */
        error_setg(errp, "export '%s' still in use", id);
        return;
    }
    export_request_shutdown(e);
}

BlockExportInfoList *qmp_query_block_exports(Error **errp)
{
    BlockExportInfoList *head = NULL, **tail = &head;

    for (GList *l = block_exports; l; l = l->next) {
        BlockExport *e = l->data;
        BlockExportInfo *info = g_new0(BlockExportInfo, 1);
        BlockExportInfoList *item = g_new0(BlockExportInfoList, 1);

        info->id = g_strdup(e->id);
        info->type = BLOCK_EXPORT_TYPE_NBD;
        info->node_name = g_strdup(e->node_name);
        info->shutting_down = e->shutting_down;
        item->value = info;
        *tail = item;
        tail = &item->next;
    }
    return head;
}

/* ---------------------------------------------------------------------- */
/* nbd-server-add / -remove (deprecated spellings)                         */

void qmp_nbd_server_add(NbdServerAddOptions *arg, Error **errp)
{
    BlockDriverState *bs;
    BlockExportOptions o = { 0 };
    BlockDirtyBitmapOrStr bm = { .type = QTYPE_QSTRING };
    BlockDirtyBitmapOrStrList bml = { .value = &bm };

    if (!nbd_server_is_running()) {
        error_setg(errp, "NBD server not running");
        return;
    }
    bs = bdrv_lookup_bs(arg->device, arg->device, errp);
    if (!bs) {
        return;
    }
    o.type = BLOCK_EXPORT_TYPE_NBD;
    o.id = arg->has_name && arg->name ? arg->name : arg->device;
    o.node_name = (char *)bdrv_get_node_name(bs);
    /* Unlike block-export-add, a read-only node quietly gives a
     * read-only export. */
    o.has_writable = true;
    o.writable = arg->has_writable && arg->writable &&
                 !bdrv_is_read_only(bs);
    o.u.nbd.has_name = arg->has_name;
    o.u.nbd.name = arg->name;
    o.u.nbd.has_description = arg->has_description;
    o.u.nbd.description = arg->description;
    if (arg->has_bitmap && arg->bitmap) {
        bm.u.local = arg->bitmap;
        o.u.nbd.has_bitmaps = true;
        o.u.nbd.bitmaps = &bml;
    }
    qmp_block_export_add(&o, errp);
}

void qmp_nbd_server_remove(const char *name, bool has_mode,
                           BlockExportRemoveMode mode, Error **errp)
{
    qmp_block_export_del(name, has_mode, mode, errp);
}
