/*
 * Dirty bitmaps on nodes: creation and lookup, the state flags QMP and jobs
 * use, marking on the write path, merge/clear with backups for transactions,
 * and the successor mechanism for jobs.  Invariants are listed in
 * include/block/dirty-bitmap.h.
 *
 * Threading: every function runs in the node's AioContext (the main loop
 * today), so no lock is taken; bdrv_set_dirty() is called by io.c from the
 * same context before the request completes.
 */
#include "block/block-int.h"
#include "block/dirty-bitmap.h"

struct BdrvDirtyBitmap {
    BlockDriverState *bs;
    HBitmap *bits;
    char *name;                  /* NULL for anonymous (job-internal) ones */
    bool enabled;                /* records writes */
    bool persistent;             /* stored in the image (qcow2) at close */
    bool busy;                   /* owned by an operation */
    bool readonly;               /* persistent bitmap of a read-only node */
    bool inconsistent;           /* loaded with in_use set: unusable */
    bool skip_store;             /* persistent but must not be stored now */
    BdrvDirtyBitmap *successor;  /* records in our place while we're frozen */
};

static int64_t node_size(BlockDriverState *bs)
{
    int64_t size = bdrv_getlength(bs);
    return size < 0 ? 0 : size;
}

BdrvDirtyBitmap *bdrv_create_dirty_bitmap(BlockDriverState *bs,
                                          uint32_t granularity,
                                          const char *name, Error **errp)
{
    BdrvDirtyBitmap *bitmap;

    assert(QB_IS_POWER_OF_2(granularity) && granularity >= BDRV_SECTOR_SIZE);
    if (name) {
        if (bdrv_find_dirty_bitmap(bs, name)) {
            error_setg(errp, "Bitmap already exists: %s", name);
            return NULL;
        }
        if (strlen(name) > BDRV_BITMAP_MAX_NAME_SIZE) {
            error_setg(errp, "Bitmap name too long: %s", name);
            return NULL;
        }
    }
    bitmap = g_new0(BdrvDirtyBitmap, 1);
    bitmap->bs = bs;
    bitmap->bits = hbitmap_alloc(node_size(bs), granularity);
    bitmap->name = g_strdup(name);
    bitmap->enabled = true;
    bs->dirty_bitmaps = g_list_prepend(bs->dirty_bitmaps, bitmap);
    return bitmap;
}

static void free_bitmap(BdrvDirtyBitmap *bitmap)
{
    hbitmap_free(bitmap->bits);
    g_free(bitmap->name);
    g_free(bitmap);
}

void bdrv_release_dirty_bitmap(BdrvDirtyBitmap *bitmap)
{
    BlockDriverState *bs = bitmap->bs;

    /* A frozen bitmap belongs to a job; releasing it would strand the job. */
    assert(!bitmap->successor);
    bs->dirty_bitmaps = g_list_remove(bs->dirty_bitmaps, bitmap);
    free_bitmap(bitmap);
}

void bdrv_release_all_dirty_bitmaps(BlockDriverState *bs)
{
    while (bs->dirty_bitmaps) {
        BdrvDirtyBitmap *bitmap = bs->dirty_bitmaps->data;
        if (bitmap->successor) {
            free_bitmap(bitmap->successor);
            bitmap->successor = NULL;
        }
        bdrv_release_dirty_bitmap(bitmap);
    }
}

BdrvDirtyBitmap *bdrv_find_dirty_bitmap(BlockDriverState *bs, const char *name)
{
    for (GList *l = bs->dirty_bitmaps; l; l = l->next) {
        BdrvDirtyBitmap *bitmap = l->data;
        if (bitmap->name && !strcmp(bitmap->name, name)) {
            return bitmap;
        }
    }
    return NULL;
}

BdrvDirtyBitmap *bdrv_dirty_bitmap_first(BlockDriverState *bs)
{
    return bs->dirty_bitmaps ? bs->dirty_bitmaps->data : NULL;
}

BdrvDirtyBitmap *bdrv_dirty_bitmap_next(BdrvDirtyBitmap *bitmap)
{
    GList *l = g_list_find(bitmap->bs->dirty_bitmaps, bitmap);
    return l && l->next ? l->next->data : NULL;
}

uint32_t bdrv_get_default_bitmap_granularity(BlockDriverState *bs)
{
    BlockDriverInfo bdi = { 0 };

    if (bdrv_get_info(bs, &bdi) >= 0 && bdi.cluster_size > 0) {
        return CLAMP(bdi.cluster_size, 4096, 65536);
    }
    return 65536;
}

int bdrv_dirty_bitmap_check(const BdrvDirtyBitmap *bitmap, unsigned flags,
                            Error **errp)
{
    if ((flags & BDRV_BITMAP_BUSY) && bdrv_dirty_bitmap_busy(bitmap)) {
        error_setg(errp, "Bitmap '%s' is currently in use by another"
                   " operation and cannot be used", bitmap->name);
        return -1;
    }
    if ((flags & BDRV_BITMAP_RO) && bitmap->readonly) {
        error_setg(errp, "Bitmap '%s' is readonly and cannot be modified",
                   bitmap->name);
        return -1;
    }
    if ((flags & BDRV_BITMAP_INCONSISTENT) && bitmap->inconsistent) {
        error_setg(errp, "Bitmap '%s' is inconsistent and cannot be used",
                   bitmap->name);
        error_append_hint(errp, "Try block-dirty-bitmap-remove to delete"
                          " this bitmap from disk\n");
        return -1;
    }
    return 0;
}

BlockDriverState *bdrv_dirty_bitmap_bs(const BdrvDirtyBitmap *b) { return b->bs; }
const char *bdrv_dirty_bitmap_name(const BdrvDirtyBitmap *b) { return b->name; }
uint32_t bdrv_dirty_bitmap_granularity(const BdrvDirtyBitmap *b)
{
    return hbitmap_granularity(b->bits);
}
int64_t bdrv_dirty_bitmap_size(const BdrvDirtyBitmap *b)
{
    return hbitmap_size(b->bits);
}
uint64_t bdrv_get_dirty_count(const BdrvDirtyBitmap *b)
{
    return hbitmap_count(b->bits);
}
bool bdrv_dirty_bitmap_get(const BdrvDirtyBitmap *b, int64_t offset)
{
    return hbitmap_get(b->bits, offset);
}
HBitmap *bdrv_dirty_bitmap_hbitmap(BdrvDirtyBitmap *b) { return b->bits; }

void bdrv_enable_dirty_bitmap(BdrvDirtyBitmap *bitmap)
{
    assert(!bitmap->inconsistent && !bitmap->successor);
    bitmap->enabled = true;
}

void bdrv_disable_dirty_bitmap(BdrvDirtyBitmap *bitmap)
{
    assert(!bitmap->successor);
    bitmap->enabled = false;
}

bool bdrv_dirty_bitmap_enabled(const BdrvDirtyBitmap *b) { return b->enabled; }

bool bdrv_dirty_bitmap_recording(const BdrvDirtyBitmap *b)
{
    return b->enabled || (b->successor && b->successor->enabled);
}

void bdrv_dirty_bitmap_set_persistent(BdrvDirtyBitmap *b, bool persistent)
{
    b->persistent = persistent;
}
bool bdrv_dirty_bitmap_get_persistent(const BdrvDirtyBitmap *b)
{
    return b->persistent;
}
void bdrv_dirty_bitmap_set_busy(BdrvDirtyBitmap *b, bool busy) { b->busy = busy; }
bool bdrv_dirty_bitmap_busy(const BdrvDirtyBitmap *b)
{
    return b->busy || b->successor;
}
void bdrv_dirty_bitmap_set_readonly(BdrvDirtyBitmap *b, bool ro) { b->readonly = ro; }
bool bdrv_dirty_bitmap_readonly(const BdrvDirtyBitmap *b) { return b->readonly; }

void bdrv_dirty_bitmap_set_inconsistent(BdrvDirtyBitmap *b)
{
    b->inconsistent = true;
    b->enabled = false;
}
bool bdrv_dirty_bitmap_inconsistent(const BdrvDirtyBitmap *b)
{
    return b->inconsistent;
}

void bdrv_dirty_bitmap_repair_inconsistent(BdrvDirtyBitmap *b)
{
    /* Nothing about the lost writes is known, so everything is dirty. */
    hbitmap_set_all(b->bits);
    b->inconsistent = false;
}

void bdrv_dirty_bitmap_skip_store(BdrvDirtyBitmap *b, bool skip)
{
    b->skip_store = skip;
}
bool bdrv_dirty_bitmap_get_skip_store(const BdrvDirtyBitmap *b)
{
    return b->skip_store;
}

bool bdrv_has_readonly_bitmaps(BlockDriverState *bs)
{
    for (GList *l = bs->dirty_bitmaps; l; l = l->next) {
        if (((BdrvDirtyBitmap *)l->data)->readonly) {
            return true;
        }
    }
    return false;
}

bool bdrv_has_persistent_bitmaps(BlockDriverState *bs)
{
    for (GList *l = bs->dirty_bitmaps; l; l = l->next) {
        if (((BdrvDirtyBitmap *)l->data)->persistent) {
            return true;
        }
    }
    return false;
}

void bdrv_set_dirty(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    for (GList *l = bs->dirty_bitmaps; l; l = l->next) {
        BdrvDirtyBitmap *bitmap = l->data;
        if (bitmap->enabled) {
            hbitmap_set(bitmap->bits, offset, bytes);
        }
        if (bitmap->successor && bitmap->successor->enabled) {
            hbitmap_set(bitmap->successor->bits, offset, bytes);
        }
    }
}

void bdrv_set_dirty_bitmap(BdrvDirtyBitmap *bitmap, int64_t offset,
                           int64_t bytes)
{
    hbitmap_set(bitmap->bits, offset, bytes);
}

void bdrv_reset_dirty_bitmap(BdrvDirtyBitmap *bitmap, int64_t offset,
                             int64_t bytes)
{
    hbitmap_reset(bitmap->bits, offset, bytes);
}

void bdrv_clear_dirty_bitmap(BdrvDirtyBitmap *bitmap, HBitmap **backup)
{
    if (backup) {
        *backup = bitmap->bits;
        bitmap->bits = hbitmap_alloc(hbitmap_size(*backup),
                                     hbitmap_granularity(*backup));
    } else {
        hbitmap_reset_all(bitmap->bits);
    }
}

void bdrv_restore_dirty_bitmap(BdrvDirtyBitmap *bitmap, HBitmap *backup)
{
    hbitmap_free(bitmap->bits);
    bitmap->bits = backup;
}

bool bdrv_merge_dirty_bitmap(BdrvDirtyBitmap *dest, const BdrvDirtyBitmap *src,
                             HBitmap **backup, Error **errp)
{
    if (hbitmap_size(dest->bits) != hbitmap_size(src->bits)) {
        error_setg(errp, "Bitmaps are of different sizes (destination size is %"
                   PRIu64 ", source size is %" PRIu64 ") and can't be merged",
                   hbitmap_size(dest->bits), hbitmap_size(src->bits));
        return false;
    }
    if (backup) {
        *backup = hbitmap_copy(dest->bits);
    }
    hbitmap_merge_into(dest->bits, src->bits);
    return true;
}

void bdrv_dirty_bitmap_truncate(BlockDriverState *bs, int64_t bytes)
{
    for (GList *l = bs->dirty_bitmaps; l; l = l->next) {
        BdrvDirtyBitmap *bitmap = l->data;
        hbitmap_truncate(bitmap->bits, bytes);
        if (bitmap->successor) {
            hbitmap_truncate(bitmap->successor->bits, bytes);
        }
    }
}

int64_t bdrv_dirty_bitmap_next_dirty(BdrvDirtyBitmap *b, int64_t offset,
                                     int64_t bytes)
{
    return hbitmap_next_dirty(b->bits, offset, bytes < 0 ? UINT64_MAX : bytes);
}

int64_t bdrv_dirty_bitmap_next_clean(BdrvDirtyBitmap *b, int64_t offset,
                                     int64_t bytes)
{
    return hbitmap_next_clean(b->bits, offset, bytes < 0 ? UINT64_MAX : bytes);
}

bool bdrv_dirty_bitmap_next_dirty_area(BdrvDirtyBitmap *b, int64_t start,
                                       int64_t end, int64_t max_dirty_count,
                                       int64_t *dirty_start,
                                       int64_t *dirty_count)
{
    uint64_t s, l;

    if (!hbitmap_next_dirty_area(b->bits, start, end, max_dirty_count, &s, &l)) {
        return false;
    }
    *dirty_start = s;
    *dirty_count = l;
    return true;
}

char *bdrv_dirty_bitmap_sha256(const BdrvDirtyBitmap *bitmap, Error **errp)
{
    return hbitmap_sha256(bitmap->bits);
}

int bdrv_dirty_bitmap_create_successor(BdrvDirtyBitmap *bitmap, Error **errp)
{
    BdrvDirtyBitmap *child;

    if (bitmap->busy || bitmap->successor) {
        error_setg(errp, "Cannot create a successor for a bitmap currently "
                   "in-use");
        return -1;
    }
    child = g_new0(BdrvDirtyBitmap, 1);
    child->bs = bitmap->bs;
    child->bits = hbitmap_alloc(hbitmap_size(bitmap->bits),
                                hbitmap_granularity(bitmap->bits));
    child->enabled = bitmap->enabled;
    bitmap->enabled = false;
    bitmap->successor = child;
    return 0;
}

BdrvDirtyBitmap *bdrv_dirty_bitmap_abdicate(BdrvDirtyBitmap *bitmap,
                                            Error **errp)
{
    BdrvDirtyBitmap *successor = bitmap->successor;
    GList *link;

    if (!successor) {
        error_setg(errp, "Cannot relinquish control if there's no successor");
        return NULL;
    }
    /* The successor takes the parent's name, flags and list position. */
    successor->name = g_steal_pointer(&bitmap->name);
    successor->persistent = bitmap->persistent;
    successor->skip_store = bitmap->skip_store;
    successor->readonly = bitmap->readonly;
    link = g_list_find(bitmap->bs->dirty_bitmaps, bitmap);
    link->data = successor;
    bitmap->successor = NULL;
    free_bitmap(bitmap);
    return successor;
}

BdrvDirtyBitmap *bdrv_reclaim_dirty_bitmap(BdrvDirtyBitmap *bitmap,
                                           Error **errp)
{
    BdrvDirtyBitmap *successor = bitmap->successor;

    if (!successor) {
        error_setg(errp, "Cannot reclaim a successor when none is present");
        return NULL;
    }
    hbitmap_merge_into(bitmap->bits, successor->bits);
    bitmap->enabled = successor->enabled;
    bitmap->successor = NULL;
    free_bitmap(successor);
    return bitmap;
}

bool bdrv_dirty_bitmap_has_successor(const BdrvDirtyBitmap *b)
{
    return b->successor != NULL;
}

json_t *bdrv_query_dirty_bitmaps(BlockDriverState *bs)
{
    json_t *list;

    if (!bs->dirty_bitmaps) {
        return NULL;
    }
    list = json_array();
    for (GList *l = bs->dirty_bitmaps; l; l = l->next) {
        BdrvDirtyBitmap *bm = l->data;
        json_t *info = json_object();

        if (bm->name) {
            json_object_set_new(info, "name", json_string(bm->name));
        }
        json_object_set_new(info, "count",
                            json_integer(bdrv_get_dirty_count(bm)));
        json_object_set_new(info, "granularity",
                            json_integer(bdrv_dirty_bitmap_granularity(bm)));
        json_object_set_new(info, "recording",
                            json_boolean(bdrv_dirty_bitmap_recording(bm)));
        json_object_set_new(info, "busy",
                            json_boolean(bdrv_dirty_bitmap_busy(bm)));
        json_object_set_new(info, "persistent", json_boolean(bm->persistent));
        if (bm->inconsistent) {
            json_object_set_new(info, "inconsistent", json_true());
        }
        json_array_append_new(list, info);
    }
    return list;
}
