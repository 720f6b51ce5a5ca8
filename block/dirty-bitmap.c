/*
 * Dirty bitmaps on nodes: creation and lookup, the state flags QMP and jobs
 * use, marking on the write path, merge/clear with backups for transactions,
 * and the successor mechanism for jobs.  Invariants are listed in
 * include/block/dirty-bitmap.h.
 *
 * Threading: every function runs in the node's AioContext (the main loop
 * today), so no lock is taken; bdrv_set_dirty() is called by io.c from the
 * same context before the request completes.
 *
 * Lazy loading (invariant 5 of the header): the single place where stored
 * bits enter a bitmap is bdrv_dirty_bitmap_load(), and every reader or
 * clearer below calls it (through loaded()) before touching `bits`.
 * A load may yield (it reads the image); `loading` makes later callers
 * wait for the one in flight instead of starting a second, and release
 * waits too, so the loader's opaque is never freed under it.
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
    /* Stored bits not read yet (NULL once loaded): contents = stored | bits. */
    const BdrvDirtyBitmapLoader *loader;
    void *loader_opaque;
    bool loading;                /* a load is in flight (it may yield) */
    CoQueue load_waiters;        /* coroutines waiting for that load */
};

static AioContext *bitmap_ctx(BdrvDirtyBitmap *bitmap)
{
    BlockDriverState *bs = bitmap->bs;
    return bs->aio_context ? bs->aio_context : qb_get_aio_context();
}

/* Return once no load of bitmap is in flight. */
static void wait_for_load(BdrvDirtyBitmap *bitmap)
{
    if (in_coroutine()) {
        while (bitmap->loading) {
            co_queue_wait(&bitmap->load_waiters, NULL);
        }
        return;
    }
    AIO_WAIT_WHILE(bitmap_ctx(bitmap), bitmap->loading);
}

static void drop_loader(BdrvDirtyBitmap *bitmap)
{
    if (bitmap->loader) {
        if (bitmap->loader->free) {
            bitmap->loader->free(bitmap->loader_opaque);
        }
        bitmap->loader = NULL;
        bitmap->loader_opaque = NULL;
    }
}

void bdrv_dirty_bitmap_set_loader(BdrvDirtyBitmap *bitmap,
                                  const BdrvDirtyBitmapLoader *ops,
                                  void *opaque)
{
    assert(!bitmap->loader && ops && ops->load);
    bitmap->loader = ops;
    bitmap->loader_opaque = opaque;
}

void *bdrv_dirty_bitmap_pending_load(const BdrvDirtyBitmap *bitmap,
                                     const BdrvDirtyBitmapLoader *ops)
{
    return bitmap->loader == ops ? bitmap->loader_opaque : NULL;
}

bool bdrv_dirty_bitmap_has_pending_load(const BdrvDirtyBitmap *bitmap)
{
    return bitmap->loader != NULL;
}

bool bdrv_dirty_bitmap_stored_unchanged(const BdrvDirtyBitmap *bitmap)
{
    return bitmap->loader && hbitmap_is_empty(bitmap->bits);
}

int bdrv_dirty_bitmap_load(BdrvDirtyBitmap *bitmap, Error **errp)
{
    g_autoptr(HBitmap) stored = NULL;
    int ret;

    wait_for_load(bitmap);
    if (!bitmap->loader) {
        return 0;
    }
    stored = hbitmap_alloc(hbitmap_size(bitmap->bits),
                           hbitmap_granularity(bitmap->bits));
    bitmap->loading = true;
    ret = bitmap->loader->load(bitmap->loader_opaque, stored, errp);
    bitmap->loading = false;
    if (ret < 0) {
        /*
         * The stored bits are unknown, so the bitmap can no longer claim
         * to be right.  It becomes inconsistent, exactly like a bitmap
         * found in use on disk: every user but remove refuses it, it is
         * never stored (so the driver leaves its old data and in-use flag
         * on disk), and only repair or remove make it usable again.
         * All-dirty would look valid and be stored over the old data.
         */
        hbitmap_reset_all(bitmap->bits);
        bitmap->inconsistent = true;
        bitmap->enabled = false;
    } else {
        hbitmap_merge_into(bitmap->bits, stored);
    }
    drop_loader(bitmap);
    co_queue_restart_all(&bitmap->load_waiters);
    return ret;
}

int bdrv_dirty_bitmap_load_all(BlockDriverState *bs, Error **errp)
{
    int ret = 0;

    for (GList *l = bs->dirty_bitmaps; l; l = l->next) {
        BdrvDirtyBitmap *bitmap = l->data;
        int r = bdrv_dirty_bitmap_load(bitmap, ret < 0 ? NULL : errp);
        if (r < 0 && ret == 0) {
            ret = r;
        }
    }
    return ret;
}

/*
 * The bits of bitmap with its stored bits loaded.  Const callers get the
 * same logical contents (loading only fills a cache), hence the cast.
 * A failed load leaves the bitmap inconsistent and empty; callers without
 * errp report it here, naming the bitmap.
 */
static HBitmap *loaded(const BdrvDirtyBitmap *cbitmap)
{
    BdrvDirtyBitmap *bitmap = (BdrvDirtyBitmap *)cbitmap;

    if (bitmap->loader || bitmap->loading) {
        Error *err = NULL;
        if (bdrv_dirty_bitmap_load(bitmap, &err) < 0) {
            error_report_err(err);
        }
    }
    return bitmap->bits;
}

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
    co_queue_init(&bitmap->load_waiters);
    bs->dirty_bitmaps = g_list_prepend(bs->dirty_bitmaps, bitmap);
    return bitmap;
}

static void free_bitmap(BdrvDirtyBitmap *bitmap)
{
    wait_for_load(bitmap);
    drop_loader(bitmap);
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
    /*
     * Whether the bitmap is consistent is only known once its stored bits
     * are read: load now, so an operation that passed this check cannot
     * find the bitmap broken half-way (a failed load fails the check with
     * the loader's error, naming the bitmap).
     */
    if ((flags & BDRV_BITMAP_INCONSISTENT) && bitmap->loader &&
        bdrv_dirty_bitmap_load((BdrvDirtyBitmap *)bitmap, errp) < 0) {
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
    return hbitmap_count(loaded(b));
}
bool bdrv_dirty_bitmap_get(const BdrvDirtyBitmap *b, int64_t offset)
{
    return hbitmap_get(loaded(b), offset);
}
HBitmap *bdrv_dirty_bitmap_hbitmap(BdrvDirtyBitmap *b) { return loaded(b); }

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
    hbitmap_reset(loaded(bitmap), offset, bytes);
}

void bdrv_clear_dirty_bitmap(BdrvDirtyBitmap *bitmap, HBitmap **backup)
{
    if (backup) {
        /* The backup must hold the whole old contents. */
        *backup = loaded(bitmap);
        bitmap->bits = hbitmap_alloc(hbitmap_size(*backup),
                                     hbitmap_granularity(*backup));
    } else {
        /* Every bit goes, stored ones included: no need to read them. */
        wait_for_load(bitmap);
        drop_loader(bitmap);
        hbitmap_reset_all(bitmap->bits);
    }
}

void bdrv_restore_dirty_bitmap(BdrvDirtyBitmap *bitmap, HBitmap *backup)
{
    /* backup is a complete copy (taken after loading). */
    wait_for_load(bitmap);
    drop_loader(bitmap);
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
        *backup = hbitmap_copy(loaded(dest));
    }
    hbitmap_merge_into(loaded(dest), loaded(src));
    return true;
}

void bdrv_dirty_bitmap_truncate(BlockDriverState *bs, int64_t bytes)
{
    for (GList *l = bs->dirty_bitmaps; l; l = l->next) {
        BdrvDirtyBitmap *bitmap = l->data;
        hbitmap_truncate(loaded(bitmap), bytes);
        if (bitmap->successor) {
            hbitmap_truncate(bitmap->successor->bits, bytes);
        }
    }
}

int64_t bdrv_dirty_bitmap_next_dirty(BdrvDirtyBitmap *b, int64_t offset,
                                     int64_t bytes)
{
    return hbitmap_next_dirty(loaded(b), offset, bytes < 0 ? UINT64_MAX : bytes);
}

int64_t bdrv_dirty_bitmap_next_clean(BdrvDirtyBitmap *b, int64_t offset,
                                     int64_t bytes)
{
    return hbitmap_next_clean(loaded(b), offset, bytes < 0 ? UINT64_MAX : bytes);
}

bool bdrv_dirty_bitmap_next_dirty_area(BdrvDirtyBitmap *b, int64_t start,
                                       int64_t end, int64_t max_dirty_count,
                                       int64_t *dirty_start,
                                       int64_t *dirty_count)
{
    uint64_t s, l;

    if (!hbitmap_next_dirty_area(loaded(b), start, end, max_dirty_count, &s, &l)) {
        return false;
    }
    *dirty_start = s;
    *dirty_count = l;
    return true;
}

char *bdrv_dirty_bitmap_sha256(const BdrvDirtyBitmap *bitmap, Error **errp)
{
    /* The debug hash exists to expose problems: a failed load fails it. */
    if (bitmap->loader &&
        bdrv_dirty_bitmap_load((BdrvDirtyBitmap *)bitmap, errp) < 0) {
        return NULL;
    }
    return hbitmap_sha256(loaded(bitmap));
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
    /*
     * The parent's contents, stored bits included, are what the job has
     * consumed; a job reads them through the getters, which load, so this
     * load is normally a no-op.  It makes sure the loader is never dropped
     * with its bits unread, and a load that failed (now or during the job)
     * leaves the parent inconsistent: the job then worked on incomplete
     * bits, so the successor cannot be trusted either and inherits that.
     */
    if (bitmap->loader || bitmap->loading) {
        Error *err = NULL;
        if (bdrv_dirty_bitmap_load(bitmap, &err) < 0) {
            error_report_err(err);
        }
    }
    if (bitmap->inconsistent) {
        successor->inconsistent = true;
        successor->enabled = false;
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
