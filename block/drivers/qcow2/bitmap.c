/*
 * Persistent dirty bitmaps in qcow2 images: the bitmaps header extension,
 * the bitmap directory, bitmap tables and data clusters, and the lifecycle
 * that keeps them consistent with the RAM bitmaps of the node (load at open,
 * in_use while a writer has the image, store at close / inactivation /
 * reopen read-only, immediate removal).
 *
 * Crash safety rests on two rules:
 *  1. A store never overwrites live metadata: tables, data and the new
 *     directory go to fresh clusters, the header switches to them with one
 *     synchronous write, and only then are the old clusters freed.  A crash
 *     leaves the old or the new directory readable, plus at worst leaked
 *     clusters for `check -r`.
 *  2. The only in-place rewrite (setting in_use) is bracketed by clearing
 *     and re-setting autoclear bit 0, so a torn directory is never trusted.
 * While the image is open read-write every loaded bitmap is in_use on disk
 * before the first guest write can reach it (load runs inside open).
 *
 * Lazy data (fast open): open reads and validates the directory and every
 * bitmap table, but not the data clusters.  Each bitmap gets a loader
 * (block/dirty-bitmap.h, invariant 5) holding its table; it records writes
 * from the first moment and the stored bits are ORed in when something
 * first reads the bitmap.  What keeps the stored bits readable until then:
 *  3. A table a pending loader holds stays referenced by the directory
 *     on disk, so its clusters cannot be freed or reused: a store keeps
 *     the table of a bitmap whose RAM bits are still empty (its contents
 *     are exactly the stored ones: nothing is read or written), and loads
 *     every other pending bitmap before writing it; removal loads the
 *     bitmap before freeing its table (a transaction may still give it
 *     back); inactivation loads everything, read-only nodes included,
 *     since the image then belongs to another process.
 *  4. Nobody else writes the image meanwhile: data stays pending only if
 *     the node's image lock keeps other writers out (writers_excluded:
 *     no edge down to the file shares WRITE or RESIZE -- force-share does
 *     -- and the file node holds locks).  Otherwise, as in QEMU, the data
 *     is read at open, so the bitmap is what the image held at open even
 *     if another process then removes it and reuses its clusters.
 * A load that fails later (I/O error) makes the bitmap inconsistent; it
 * is then not stored, so its old data and in-use flag stay on disk.
 *
 * Format and texts: shared/docs/qcow2-bitmaps.md (section numbers below).
 */
#include "bitmap.h"
#include "util/bswap.h"
#include "block/dirty-bitmap.h"

/* Unaligned big-endian accessors for directory bytes. */
static void entry_free(gpointer p)
{
    Qcow2BitmapEntry *e = p;
    g_free(e->name);
    g_free(e);
}

uint64_t qcow2_bitmap_dir_entry_size(size_t name_len)
{
    return QB_ALIGN_UP(QCOW2_BME_HEADER_SIZE + (uint64_t)name_len, 8);
}

uint64_t qcow2_bitmap_table_size_for(uint64_t virtual_size,
                                     uint64_t granularity, int cluster_size)
{
    uint64_t nbits = QB_DIV_ROUND_UP(virtual_size, granularity);
    uint64_t bytes = QB_DIV_ROUND_UP(nbits, 64) * 8;
    return QB_DIV_ROUND_UP(bytes, (uint64_t)cluster_size);
}

bool qcow2_bitmap_entry_valid(const Qcow2BitmapEntry *e, int cluster_bits,
                              uint64_t virtual_size)
{
    uint64_t cluster_size = (uint64_t)1 << cluster_bits;
    uint64_t phys;

    if (!e->table_size || !e->table_offset ||
        (e->table_offset & (cluster_size - 1))) {
        return false;
    }
    if (e->table_size > QCOW2_BME_MAX_TABLE_SIZE) {
        return false;
    }
    if (e->granularity_bits > QCOW2_BME_MAX_GRANULARITY_BITS ||
        e->granularity_bits < QCOW2_BME_MIN_GRANULARITY_BITS) {
        return false;
    }
    if (e->flags & QCOW2_BME_RESERVED_FLAGS) {
        return false;
    }
    if (strlen(e->name) > QCOW2_BME_MAX_NAME_SIZE) {
        return false;
    }
    if (e->type != QCOW2_BME_TYPE_DIRTY_TRACKING) {
        return false;
    }
    phys = (uint64_t)e->table_size << cluster_bits;
    if (phys > QCOW2_BME_MAX_PHYS_SIZE) {
        return false;
    }
    /* phys <= 2^29, so phys * 8 << 31 still fits in 64 bits. */
    if (!(e->flags & QCOW2_BME_FLAG_IN_USE) &&
        virtual_size > ((phys * 8) << e->granularity_bits)) {
        return false;
    }
    return true;
}

bool qcow2_bitmap_table_entry_valid(uint64_t entry, int cluster_size)
{
    uint64_t off = entry & QCOW2_BMT_OFFSET_MASK;

    if (entry & QCOW2_BMT_RESERVED_MASK) {
        return false;
    }
    if (off && (entry & QCOW2_BMT_ALL_ONES)) {
        return false;
    }
    return !(off & (uint64_t)(cluster_size - 1));
}

GPtrArray *qcow2_bitmap_dir_parse(const uint8_t *buf, uint64_t size,
                                  uint32_t nb, int cluster_bits,
                                  uint64_t virtual_size, Error **errp)
{
    g_autoptr(GPtrArray) list = g_ptr_array_new_with_free_func(entry_free);
    uint64_t off = 0;
    uint32_t n = 0;

    if (size == 0) {
        error_setg(errp, "Requested bitmap directory size is zero");
        return NULL;
    }
    if (size > QCOW2_MAX_BITMAP_DIR_SIZE) {
        error_setg(errp, "Requested bitmap directory size is too big");
        return NULL;
    }
    while (off < size) {
        const uint8_t *p = buf + off;
        uint32_t extra;
        uint16_t name_size;
        uint64_t esize;
        Qcow2BitmapEntry *e;

        if (++n > nb) {
            error_setg(errp, "More bitmaps found than specified in header "
                       "extension");
            return NULL;
        }
        if (size - off < QCOW2_BME_HEADER_SIZE) {
            goto broken;
        }
        extra = ld32_be(p + 20);
        if (extra != 0) {
            error_setg(errp, "Bitmap extra data is not supported");
            return NULL;
        }
        name_size = ld16_be(p + 18);
        esize = qcow2_bitmap_dir_entry_size(name_size);
        if (esize > size - off) {
            goto broken;
        }
        e = g_new0(Qcow2BitmapEntry, 1);
        e->table_offset = ld64_be(p);
        e->table_size = ld32_be(p + 8);
        e->flags = ld32_be(p + 12);
        e->type = p[16];
        e->granularity_bits = p[17];
        e->name = g_strndup((const char *)p + QCOW2_BME_HEADER_SIZE,
                            name_size);
        g_ptr_array_add(list, e);
        /* An embedded NUL would make the copy shorter than name_size and
         * the name different from what is on disk: treat as invalid. */
        if (strlen(e->name) != name_size ||
            !qcow2_bitmap_entry_valid(e, cluster_bits, virtual_size)) {
            error_setg(errp, "Bitmap '%s' doesn't satisfy the constraints",
                       e->name);
            return NULL;
        }
        off += esize;
    }
    if (n != nb) {
        error_setg(errp, "Less bitmaps found than specified in header "
                   "extension");
        return NULL;
    }
    return g_steal_pointer(&list);

broken:
    error_setg(errp, "Broken bitmap directory");
    return NULL;
}

uint8_t *qcow2_bitmap_dir_build(GPtrArray *entries, uint64_t *size)
{
    uint64_t total = 0, off = 0;
    uint8_t *buf;

    for (guint i = 0; i < entries->len; i++) {
        Qcow2BitmapEntry *e = entries->pdata[i];
        total += qcow2_bitmap_dir_entry_size(strlen(e->name));
    }
    buf = g_malloc0(MAX(total, 1));
    for (guint i = 0; i < entries->len; i++) {
        Qcow2BitmapEntry *e = entries->pdata[i];
        size_t nl = strlen(e->name);
        st64_be(buf + off, e->table_offset);
        st32_be(buf + off + 8, e->table_size);
        st32_be(buf + off + 12, e->flags);
        buf[off + 16] = e->type;
        buf[off + 17] = e->granularity_bits;
        st16_be(buf + off + 18, nl);
        st32_be(buf + off + 20, 0);
        memcpy(buf + off + QCOW2_BME_HEADER_SIZE, e->name, nl);
        off += qcow2_bitmap_dir_entry_size(nl);
    }
    *size = total;
    return buf;
}

/* ------------------------------------------------------------------ */
/* Reading                                                             */

static bool node_writable(BlockDriverState *bs)
{
    return !bdrv_is_read_only(bs) && !(bs->open_flags & BDRV_O_INACTIVE);
}

/* The directory the header points at, parsed; an empty array when the
 * image has no (valid) bitmaps extension. */
static GPtrArray *load_directory(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    g_autofree uint8_t *buf = NULL;
    uint64_t size = s->hi.bitmap_dir_size;
    int ret;

    if (!s->hi.has_bitmaps_ext || s->hi.nb_bitmaps == 0) {
        return g_ptr_array_new_with_free_func(entry_free);
    }
    if (size == 0 || size > QCOW2_MAX_BITMAP_DIR_SIZE) {
        return qcow2_bitmap_dir_parse(NULL, size, s->hi.nb_bitmaps,
                                      s->cluster_bits, s->hi.h.size, errp);
    }
    buf = g_malloc(size);
    ret = bdrv_pread(bs->file, s->hi.bitmap_dir_offset, size, buf, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to read bitmap directory");
        return NULL;
    }
    return qcow2_bitmap_dir_parse(buf, size, s->hi.nb_bitmaps,
                                  s->cluster_bits, s->hi.h.size, errp);
}

static Qcow2BitmapEntry *find_entry(GPtrArray *list, const char *name)
{
    for (guint i = 0; i < list->len; i++) {
        Qcow2BitmapEntry *e = list->pdata[i];
        if (!strcmp(e->name, name)) {
            return e;
        }
    }
    return NULL;
}

/* Read and validate a bitmap table (host order) into *table. */
static int read_table(BlockDriverState *bs, uint64_t offset, uint32_t size,
                      uint64_t **table)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t *t = g_try_new(uint64_t, size);
    int ret;

    if (!t) {
        return -ENOMEM;
    }
    ret = bdrv_pread(bs->file, offset, (int64_t)size * 8, t, 0);
    if (ret < 0) {
        g_free(t);
        return ret;
    }
    for (uint32_t i = 0; i < size; i++) {
        t[i] = GUINT64_FROM_BE(t[i]);
        if (!qcow2_bitmap_table_entry_valid(t[i], s->cluster_size)) {
            g_free(t);
            return -EINVAL;
        }
    }
    *table = t;
    return 0;
}

/* Guest bytes covered by one data cluster of a bitmap. */
static uint64_t bytes_per_cluster(BDRVQcow2State *s, uint64_t granularity)
{
    return (uint64_t)s->cluster_size * 8 * granularity;
}

/* Fill hb from the table's data clusters (§3, §4). */
static int load_bitmap_data(BlockDriverState *bs, const uint64_t *table,
                            uint32_t table_size, HBitmap *hb)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t size = hbitmap_size(hb);
    uint64_t step = bytes_per_cluster(s, hbitmap_granularity(hb));
    g_autofree uint8_t *buf = NULL;
    int ret;

    for (uint32_t i = 0; i < table_size; i++) {
        uint64_t start = i * step, len, off = table[i] & QCOW2_BMT_OFFSET_MASK;
        if (start >= size) {
            break;
        }
        len = MIN(step, size - start);
        if (!off) {
            /* Fresh bitmaps are clean; only all-ones needs work. */
            if (table[i] & QCOW2_BMT_ALL_ONES) {
                hbitmap_deserialize_ones(hb, start, len);
            }
            continue;
        }
        if (!buf) {
            buf = g_malloc(s->cluster_size);
        }
        ret = bdrv_pread(bs->file, off, s->cluster_size, buf, 0);
        if (ret < 0) {
            return ret;
        }
        hbitmap_deserialize_part(hb, buf, start, len);
    }
    return 0;
}

/* The loader of a bitmap whose data stays on disk (rule 3). */
typedef struct Qcow2StoredBitmap {
    BlockDriverState *bs;
    char *name;
    uint64_t table_offset;
    uint32_t table_size;
    uint64_t *table;               /* host order, validated at open */
} Qcow2StoredBitmap;

static int stored_bitmap_load(void *opaque, HBitmap *hb, Error **errp)
{
    Qcow2StoredBitmap *sb = opaque;
    int ret = load_bitmap_data(sb->bs, sb->table, sb->table_size, hb);

    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not read bitmap '%s' from image",
                         sb->name);
    }
    return ret;
}

static void stored_bitmap_free(void *opaque)
{
    Qcow2StoredBitmap *sb = opaque;

    g_free(sb->name);
    g_free(sb->table);
    g_free(sb);
}

static const BdrvDirtyBitmapLoader qcow2_stored_bitmap = {
    .load = stored_bitmap_load,
    .free = stored_bitmap_free,
};

/*
 * May this bitmap's data stay on disk?  Only if the refcounts protect it:
 * a cluster with refcount 0 (a corrupt image) could be handed out for
 * guest data before the data is read, so such a bitmap is read at once.
 */
static bool table_pinned(BlockDriverState *bs, uint64_t table_offset,
                         uint32_t table_size, const uint64_t *table)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t tclusters = QB_DIV_ROUND_UP((uint64_t)table_size * 8,
                                         s->cluster_size);
    uint64_t rc;

    for (uint64_t i = 0; i < tclusters; i++) {
        if (qcow2_get_refcount(bs, (table_offset >> s->cluster_bits) + i,
                               &rc) < 0 || rc == 0) {
            return false;
        }
    }
    for (uint32_t i = 0; i < table_size; i++) {
        uint64_t off = table[i] & QCOW2_BMT_OFFSET_MASK;
        if (off && (qcow2_get_refcount(bs, off >> s->cluster_bits, &rc) < 0 ||
                    rc == 0)) {
            return false;
        }
    }
    return true;
}

/*
 * Rule 4: does this node's lock keep every other writer out of the image?
 * Walk the file edges down to the protocol node (filters such as blkdebug
 * pass their child's data through): every edge must unshare WRITE and
 * RESIZE (read-only force-share shares everything), and the protocol node
 * must be a file node with locking on, so that other processes see the
 * unshared bytes.  Anything else (locking=off, NBD) cannot keep writers
 * out.
 */
static bool writers_excluded(BlockDriverState *bs)
{
    BdrvChild *c = bs->file;

    for (int depth = 0; c && depth < 32; depth++) {
        BlockDriverState *f = c->bs;
        const char *locking;

        if ((c->shared_perm & (BLK_PERM_WRITE | BLK_PERM_RESIZE)) ||
            f->force_share || !f->drv) {
            return false;
        }
        if (!strcmp(f->drv->format_name, "file")) {
            locking = json_string_value(json_object_get(f->options,
                                                         "locking"));
            return !locking || strcmp(locking, "off") != 0;
        }
        c = f->file;
    }
    return false;
}

/* Load every pending bitmap of bs (a failure makes that bitmap
 * inconsistent and is reported). */
static void load_all_pending(BlockDriverState *bs)
{
    Error *err = NULL;

    if (bdrv_dirty_bitmap_load_all(bs, &err) < 0) {
        error_report_err(err);
    }
}

void qcow2_load_pending_bitmaps(BlockDriverState *bs)
{
    load_all_pending(bs);
}

/* Collect the data clusters of a table and its own clusters for freeing. */
static void free_table_clusters(BlockDriverState *bs, uint64_t offset,
                                uint32_t size)
{
    BDRVQcow2State *s = bs->opaque;
    g_autofree uint64_t *t = NULL;

    if (!offset || !size) {
        return;
    }
    /* An unreadable table leaks its data clusters (check -r finds them)
     * but we can still drop the table itself. */
    if (read_table(bs, offset, size, &t) == 0) {
        for (uint32_t i = 0; i < size; i++) {
            uint64_t off = t[i] & QCOW2_BMT_OFFSET_MASK;
            if (off) {
                qcow2_free_clusters(bs, off, s->cluster_size,
                                    QCOW2_DISCARD_OTHER);
            }
        }
    }
    qcow2_free_clusters(bs, offset, (int64_t)size * 8, QCOW2_DISCARD_OTHER);
}

/* ------------------------------------------------------------------ */
/* Header / directory updates                                          */

static int set_autoclear_and_write(BlockDriverState *bs, bool on)
{
    BDRVQcow2State *s = bs->opaque;
    if (on) {
        s->autoclear_features |= QCOW2_AUTOCLEAR_BITMAPS;
    } else {
        s->autoclear_features &= ~QCOW2_AUTOCLEAR_BITMAPS;
    }
    return qcow2_update_header(bs);
}

/* §5.2: rewrite the directory where it is (flag changes only). */
static int update_dir_in_place(BlockDriverState *bs, GPtrArray *list)
{
    BDRVQcow2State *s = bs->opaque;
    g_autofree uint8_t *buf = NULL;
    uint64_t size;
    int ret;

    buf = qcow2_bitmap_dir_build(list, &size);
    if (size != s->hi.bitmap_dir_size || list->len != s->hi.nb_bitmaps ||
        !(s->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS)) {
        return -EINVAL;
    }
    ret = set_autoclear_and_write(bs, false);
    if (ret < 0) {
        return ret;
    }
    ret = bdrv_pwrite(bs->file, s->hi.bitmap_dir_offset, size, buf, 0);
    if (ret < 0) {
        return ret;
    }
    ret = bdrv_flush(bs->file->bs);
    if (ret < 0) {
        return ret;
    }
    return set_autoclear_and_write(bs, true);
}

/*
 * Write list as the new directory in fresh clusters and point the header
 * at it (an empty list drops the extension and autoclear bit 0), then free
 * the old directory.  On failure the header still names the old one.
 */
static int write_new_directory(BlockDriverState *bs, GPtrArray *list)
{
    BDRVQcow2State *s = bs->opaque;
    Qcow2HeaderInfo old = s->hi;
    uint64_t old_autoclear = s->autoclear_features;
    g_autofree uint8_t *buf = NULL;
    uint64_t size = 0;
    int64_t off = 0;
    int ret;

    if (list->len) {
        buf = qcow2_bitmap_dir_build(list, &size);
        if (size > QCOW2_MAX_BITMAP_DIR_SIZE) {
            return -EINVAL;
        }
        off = qcow2_alloc_clusters(bs, size);
        if (off < 0) {
            return off;
        }
        ret = qcow2_pre_write_overlap_check(bs, 0, off, size);
        if (ret < 0) {
            goto fail;
        }
        ret = bdrv_pwrite(bs->file, off, size, buf, 0);
        if (ret < 0) {
            goto fail;
        }
    }
    /* Refcounts of everything the directory names must be on disk first. */
    ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        goto fail;
    }
    s->hi.has_bitmaps_ext = list->len > 0;
    s->hi.nb_bitmaps = list->len;
    s->hi.bitmap_dir_size = size;
    s->hi.bitmap_dir_offset = off;
    if (list->len) {
        s->autoclear_features |= QCOW2_AUTOCLEAR_BITMAPS;
    } else {
        s->autoclear_features &= ~QCOW2_AUTOCLEAR_BITMAPS;
    }
    ret = qcow2_update_header(bs);
    if (ret < 0) {
        s->hi.has_bitmaps_ext = old.has_bitmaps_ext;
        s->hi.nb_bitmaps = old.nb_bitmaps;
        s->hi.bitmap_dir_size = old.bitmap_dir_size;
        s->hi.bitmap_dir_offset = old.bitmap_dir_offset;
        s->autoclear_features = old_autoclear;
        goto fail;
    }
    if (old.has_bitmaps_ext && old.bitmap_dir_size) {
        qcow2_free_clusters(bs, old.bitmap_dir_offset, old.bitmap_dir_size,
                            QCOW2_DISCARD_OTHER);
    }
    return 0;

fail:
    if (off > 0) {
        qcow2_free_clusters(bs, off, size, QCOW2_DISCARD_OTHER);
    }
    return ret;
}

/* ------------------------------------------------------------------ */
/* Load (§5.1)                                                         */

/* Autoclear bit 0 clear but the extension present: a program without
 * bitmap support wrote the image.  header.c kept the bytes as an unknown
 * extension; warn, and on a writable open drop them for good. */
static int handle_stale_extension(BlockDriverState *bs, bool writable,
                                  Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    for (guint i = 0; s->hi.unknown_exts && i < s->hi.unknown_exts->len;
         i++) {
        Qcow2UnknownExt *x = s->hi.unknown_exts->pdata[i];
        if (x->magic != QCOW2_EXT_BITMAPS) {
            continue;
        }
        if (s->hi.h.version < 3) {
            warn_report("This qcow2 v2 image contains bitmaps, but they may "
                        "have been modified by a program without persistent "
                        "bitmap support; so now they must all be considered "
                        "inconsistent");
        } else {
            warn_report("a program lacking bitmap support modified this "
                        "file, so all bitmaps are now considered "
                        "inconsistent");
        }
        /* QEMU prints the hint without a newline. */
        fprintf(stderr, "Some clusters may be leaked, run 'qemu-img check "
                "-r' on the image file to fix.");
        fflush(stderr);
        if (!writable) {
            return 0;
        }
        g_ptr_array_remove_index(s->hi.unknown_exts, i);   /* frees x */
        ret = qcow2_update_header(bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not update qcow2 header");
            return ret;
        }
        return 0;
    }
    return 0;
}

int qcow2_load_dirty_bitmaps(BlockDriverState *bs, bool writable,
                             Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    g_autoptr(GPtrArray) list = NULL;
    g_autoptr(GPtrArray) created = g_ptr_array_new();
    bool need_update = false;
    bool lazy;
    int ret;

    ret = handle_stale_extension(bs, writable, errp);
    if (ret < 0) {
        return ret;
    }
    if (!s->hi.has_bitmaps_ext) {
        return 0;
    }
    list = load_directory(bs, errp);
    if (!list) {
        return -EINVAL;
    }
    lazy = writers_excluded(bs);
    for (guint i = 0; i < list->len; i++) {
        Qcow2BitmapEntry *e = list->pdata[i];
        bool in_use = e->flags & QCOW2_BME_FLAG_IN_USE;
        BdrvDirtyBitmap *bm;

        if (in_use && bdrv_find_dirty_bitmap(bs, e->name)) {
            continue;     /* migration: the RAM copy is authoritative */
        }
        bm = bdrv_create_dirty_bitmap(bs, UINT32_C(1) << e->granularity_bits,
                                      e->name, errp);
        if (!bm) {
            ret = -EINVAL;
            goto fail;
        }
        g_ptr_array_add(created, bm);
        bdrv_dirty_bitmap_set_persistent(bm, true);
        if (in_use) {
            bdrv_dirty_bitmap_set_inconsistent(bm);
            continue;
        }
        g_autofree uint64_t *table = NULL;
        HBitmap *hb = bdrv_dirty_bitmap_hbitmap(bm);
        if (e->table_size != qcow2_bitmap_table_size_for(
                hbitmap_size(hb), hbitmap_granularity(hb), s->cluster_size)) {
            error_setg_errno(errp, EINVAL, "Could not read bitmap '%s' from "
                             "image", e->name);
            ret = -EINVAL;
            goto fail;
        }
        ret = read_table(bs, e->table_offset, e->table_size, &table);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not read bitmap_table table "
                             "from image for bitmap '%s'", e->name);
            goto fail;
        }
        if (!lazy ||
            !table_pinned(bs, e->table_offset, e->table_size, table)) {
            ret = load_bitmap_data(bs, table, e->table_size, hb);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Could not read bitmap '%s' "
                                 "from image", e->name);
                goto fail;
            }
        } else {
            Qcow2StoredBitmap *sb = g_new0(Qcow2StoredBitmap, 1);
            sb->bs = bs;
            sb->name = g_strdup(e->name);
            sb->table_offset = e->table_offset;
            sb->table_size = e->table_size;
            sb->table = g_steal_pointer(&table);
            bdrv_dirty_bitmap_set_loader(bm, &qcow2_stored_bitmap, sb);
        }
        if (!(e->flags & QCOW2_BME_FLAG_AUTO)) {
            bdrv_disable_dirty_bitmap(bm);
        }
        e->flags |= QCOW2_BME_FLAG_IN_USE;
        need_update = true;
    }
    if (writable) {
        if (need_update) {
            ret = update_dir_in_place(bs, list);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Can't update bitmap directory");
                goto fail;
            }
        }
    } else {
        for (guint i = 0; i < created->len; i++) {
            bdrv_dirty_bitmap_set_readonly(created->pdata[i], true);
        }
    }
    return 0;

fail:
    for (guint i = 0; i < created->len; i++) {
        bdrv_release_dirty_bitmap(created->pdata[i]);
    }
    return ret;
}

/* ------------------------------------------------------------------ */
/* Store (§5.3)                                                        */

static int check_constraints(BlockDriverState *bs, const char *name,
                             uint32_t granularity, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int bits = __builtin_ctzll(granularity);
    uint64_t nbits, table;

    if (bits > QCOW2_BME_MAX_GRANULARITY_BITS) {
        error_setg(errp, "Granularity exceeds maximum (%llu bytes)",
                   1ULL << QCOW2_BME_MAX_GRANULARITY_BITS);
        return -EINVAL;
    }
    if (bits < QCOW2_BME_MIN_GRANULARITY_BITS) {
        error_setg(errp, "Granularity is under minimum (%llu bytes)",
                   1ULL << QCOW2_BME_MIN_GRANULARITY_BITS);
        return -EINVAL;
    }
    nbits = QB_DIV_ROUND_UP(s->hi.h.size, (uint64_t)granularity);
    table = QB_DIV_ROUND_UP(QB_DIV_ROUND_UP(nbits, 8),
                            (uint64_t)s->cluster_size);
    if (nbits > (uint64_t)QCOW2_BME_MAX_PHYS_SIZE * 8 ||
        table > QCOW2_BME_MAX_TABLE_SIZE) {
        error_setg(errp, "Too much space will be occupied by the bitmap. "
                   "Use larger granularity");
        return -EINVAL;
    }
    if (strlen(name) > QCOW2_BME_MAX_NAME_SIZE) {
        error_setg(errp, "Name length exceeds maximum (%u characters)",
                   QCOW2_BME_MAX_NAME_SIZE);
        return -EINVAL;
    }
    return 0;
}

/* Write hb's non-empty data clusters and its table to fresh clusters.
 * On success *table_offset / *table_size name the new table. */
static int write_bitmap(BlockDriverState *bs, HBitmap *hb, const char *name,
                        uint64_t *table_offset, uint32_t *table_size,
                        Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t size = hbitmap_size(hb);
    uint64_t step = bytes_per_cluster(s, hbitmap_granularity(hb));
    uint64_t tsize = qcow2_bitmap_table_size_for(size,
                                                 hbitmap_granularity(hb),
                                                 s->cluster_size);
    g_autofree uint64_t *table = NULL;
    g_autofree uint8_t *buf = NULL;
    int64_t toff = -1;
    int ret;

    if (tsize > QCOW2_BME_MAX_TABLE_SIZE) {
        error_setg(errp, "Bitmap '%s' is too big", name);
        return -EINVAL;
    }
    table = g_try_new0(uint64_t, MAX(tsize, 1));
    if (!table) {
        error_setg(errp, "Bitmap '%s' is too big", name);
        return -ENOMEM;
    }
    for (uint64_t i = 0; i < tsize; i++) {
        uint64_t start = i * step, len = MIN(step, size - start);
        int64_t off;

        if (hbitmap_range_is_zero(hb, start, len)) {
            continue;       /* entry 0: reads as zeroes (§3) */
        }
        if (!buf) {
            buf = g_malloc(s->cluster_size);
        }
        memset(buf, 0, s->cluster_size);
        hbitmap_serialize_part(hb, buf, start, len);
        off = qcow2_alloc_clusters(bs, s->cluster_size);
        if (off < 0) {
            ret = off;
            error_setg_errno(errp, -ret, "Failed to allocate clusters for "
                             "bitmap '%s'", name);
            goto fail;
        }
        table[i] = off;
        ret = qcow2_pre_write_overlap_check(bs, 0, off, s->cluster_size);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Qcow2 overlap check failed");
            goto fail;
        }
        ret = bdrv_pwrite(bs->file, off, s->cluster_size, buf, 0);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to write bitmap '%s' to "
                             "file", name);
            goto fail;
        }
    }
    toff = qcow2_alloc_clusters(bs, tsize * 8);
    if (toff < 0) {
        ret = toff;
        error_setg_errno(errp, -ret, "Failed to allocate clusters for "
                         "bitmap '%s'", name);
        goto fail;
    }
    ret = qcow2_pre_write_overlap_check(bs, 0, toff, tsize * 8);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Qcow2 overlap check failed");
        goto fail;
    }
    {
        g_autofree uint64_t *be = g_new(uint64_t, tsize);
        for (uint64_t i = 0; i < tsize; i++) {
            be[i] = GUINT64_TO_BE(table[i]);
        }
        ret = bdrv_pwrite(bs->file, toff, tsize * 8, be, 0);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to write bitmap '%s' to file",
                         name);
        goto fail;
    }
    *table_offset = toff;
    *table_size = tsize;
    return 0;

fail:
    for (uint64_t i = 0; i < tsize; i++) {
        if (table[i]) {
            qcow2_free_clusters(bs, table[i], s->cluster_size,
                                QCOW2_DISCARD_OTHER);
        }
    }
    if (toff > 0) {
        qcow2_free_clusters(bs, toff, tsize * 8, QCOW2_DISCARD_OTHER);
    }
    return ret;
}

/* Should this RAM bitmap be written at a store? */
static bool bitmap_wants_store(BdrvDirtyBitmap *bm)
{
    return bdrv_dirty_bitmap_name(bm) &&
           bdrv_dirty_bitmap_get_persistent(bm) &&
           !bdrv_dirty_bitmap_get_skip_store(bm) &&
           !bdrv_dirty_bitmap_inconsistent(bm);
}

/*
 * Store every storable bitmap.  done receives the RAM bitmaps whose disk
 * copy is now current (stored, or readonly and therefore unchanged).
 */
static int store_bitmaps(BlockDriverState *bs, GPtrArray *done, Error **errp)
{
    g_autoptr(GPtrArray) list = NULL;
    g_autoptr(GPtrArray) stored = g_ptr_array_new();
    uint64_t dir_size = 0;
    int ret;

    list = load_directory(bs, errp);
    if (!list) {
        return -EINVAL;
    }
    for (guint i = 0; i < list->len; i++) {
        Qcow2BitmapEntry *e = list->pdata[i];
        dir_size += qcow2_bitmap_dir_entry_size(strlen(e->name));
    }
    for (BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_first(bs); bm;
         bm = bdrv_dirty_bitmap_next(bm)) {
        const char *name = bdrv_dirty_bitmap_name(bm);
        uint32_t gran = bdrv_dirty_bitmap_granularity(bm);
        Qcow2BitmapEntry *e;

        if (!bitmap_wants_store(bm)) {
            continue;
        }
        if (bdrv_dirty_bitmap_readonly(bm)) {
            g_ptr_array_add(done, bm);
            continue;
        }
        if (check_constraints(bs, name, gran, errp) < 0) {
            error_prepend(errp, "Bitmap '%s' doesn't satisfy the "
                          "constraints: ", name);
            return -EINVAL;
        }
        e = find_entry(list, name);
        {
            Qcow2StoredBitmap *sb =
                bdrv_dirty_bitmap_pending_load(bm, &qcow2_stored_bitmap);
            if (sb && (!e || sb->table_offset != e->table_offset ||
                       sb->table_size != e->table_size)) {
                /* Rule 3 broken: the pending data is no longer ours. */
                error_setg(errp, "Bitmap '%s': its table on disk changed "
                           "before its data was loaded", name);
                return -EIO;
            }
            if (sb && !bdrv_dirty_bitmap_stored_unchanged(bm)) {
                /*
                 * Read the stored bits before this entry is touched: if
                 * that fails the bitmap is now inconsistent and is left
                 * out, so its entry (old table, in_use) stays as it is.
                 */
                Error *err = NULL;
                if (bdrv_dirty_bitmap_load(bm, &err) < 0) {
                    error_report_err(err);
                    continue;
                }
            }
        }
        if (e) {
            if (!(e->flags & QCOW2_BME_FLAG_IN_USE)) {
                error_setg(errp, "Bitmap '%s' already exists in the image",
                           name);
                return -EINVAL;
            }
            e->old_table_offset = e->table_offset;
            e->old_table_size = e->table_size;
        } else {
            if (list->len >= QCOW2_MAX_BITMAPS) {
                error_setg(errp, "Too many persistent bitmaps");
                return -EINVAL;
            }
            dir_size += qcow2_bitmap_dir_entry_size(strlen(name));
            if (dir_size > QCOW2_MAX_BITMAP_DIR_SIZE) {
                error_setg(errp, "Bitmap directory is too large");
                return -EINVAL;
            }
            e = g_new0(Qcow2BitmapEntry, 1);
            e->name = g_strdup(name);
            e->type = QCOW2_BME_TYPE_DIRTY_TRACKING;
            g_ptr_array_add(list, e);
        }
        e->granularity_bits = __builtin_ctz(gran);
        e->flags = bdrv_dirty_bitmap_enabled(bm) ? QCOW2_BME_FLAG_AUTO : 0;
        e->bitmap = bm;
        e->keep_table = false;
        if (bdrv_dirty_bitmap_pending_load(bm, &qcow2_stored_bitmap)) {
            /* Still pending here means nothing was set in RAM (loaded
             * above otherwise): contents == stored bits, so the table
             * stays as it is. */
            e->keep_table = true;
        }
        g_ptr_array_add(stored, e);
    }
    if (stored->len == 0) {
        return 0;
    }
    if (!node_writable(bs)) {
        error_setg(errp, "No write access");
        return -EPERM;
    }
    for (guint i = 0; i < stored->len; i++) {
        Qcow2BitmapEntry *e = stored->pdata[i];
        if (e->keep_table) {
            continue;
        }
        /* The HBitmap getter loads pending data (old table still live). */
        ret = write_bitmap(bs, bdrv_dirty_bitmap_hbitmap(e->bitmap), e->name,
                           &e->table_offset, &e->table_size, errp);
        if (ret < 0) {
            /* Undo the tables written so far; the disk is unchanged. */
            for (guint j = 0; j < i; j++) {
                Qcow2BitmapEntry *w = stored->pdata[j];
                if (!w->keep_table) {
                    free_table_clusters(bs, w->table_offset, w->table_size);
                }
            }
            return ret;
        }
    }
    ret = write_new_directory(bs, list);
    if (ret < 0) {
        for (guint i = 0; i < stored->len; i++) {
            Qcow2BitmapEntry *w = stored->pdata[i];
            if (!w->keep_table) {
                free_table_clusters(bs, w->table_offset, w->table_size);
            }
        }
        error_setg_errno(errp, -ret, "Failed to update bitmap extension");
        return ret;
    }
    for (guint i = 0; i < stored->len; i++) {
        Qcow2BitmapEntry *e = stored->pdata[i];
        if (!e->keep_table) {
            free_table_clusters(bs, e->old_table_offset, e->old_table_size);
        }
        g_ptr_array_add(done, e->bitmap);
    }
    return 0;
}

/* Store; then release the stored bitmaps, or keep them readonly (and
 * with load_pending, read their data: the image stops being ours). */
static int store_and_detach(BlockDriverState *bs, bool release,
                            bool load_pending, Error **errp)
{
    g_autoptr(GPtrArray) done = g_ptr_array_new();
    int ret;

    if (load_pending) {
        /* Before the store: a bitmap whose load fails is inconsistent and
         * therefore not stored, so its in-use flag stays on disk. */
        load_all_pending(bs);
    }
    ret = store_bitmaps(bs, done, errp);
    if (ret < 0) {
        return ret;
    }
    for (guint i = 0; i < done->len; i++) {
        if (release) {
            bdrv_release_dirty_bitmap(done->pdata[i]);
        } else {
            bdrv_dirty_bitmap_set_readonly(done->pdata[i], true);
        }
    }
    return 0;
}

int qcow2_store_persistent_dirty_bitmaps(BlockDriverState *bs, bool release,
                                         Error **errp)
{
    BDRVQcow2State *s = bs->opaque;

    /* !release is inactivation: another process may take the image over
     * (migration), so nothing may stay pending on its disk (rule 3) --
     * unless the node is closing and its bitmaps are released next. */
    return store_and_detach(bs, release, !release && !s->closing, errp);
}

int qcow2_reopen_bitmaps_ro(BlockDriverState *bs, Error **errp)
{
    /* Still our image (our locks keep writers out): stay lazy. */
    int ret = store_and_detach(bs, false, false, errp);

    if (ret < 0) {
        return ret;
    }
    /* Inconsistent ones were not stored but must stop being writable too
     * (writes to a node with readonly bitmaps fail, as in QEMU). */
    for (BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_first(bs); bm;
         bm = bdrv_dirty_bitmap_next(bm)) {
        if (bdrv_dirty_bitmap_get_persistent(bm)) {
            bdrv_dirty_bitmap_set_readonly(bm, true);
        }
    }
    return 0;
}

int qcow2_reopen_bitmaps_rw(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    g_autoptr(GPtrArray) list = NULL;
    g_autoptr(GPtrArray) ro = g_ptr_array_new();
    bool need_update = false;
    int ret;

    list = load_directory(bs, errp);
    if (!list) {
        return -EINVAL;
    }
    for (guint i = 0; i < list->len; i++) {
        Qcow2BitmapEntry *e = list->pdata[i];
        BdrvDirtyBitmap *bm = bdrv_find_dirty_bitmap(bs, e->name);
        bool in_use = e->flags & QCOW2_BME_FLAG_IN_USE;

        if (!bm) {
            error_setg(errp, "Unexpected bitmap '%s' in image '%s'",
                       e->name, bs->filename);
            return -EINVAL;
        }
        if (!in_use) {
            if (!bdrv_dirty_bitmap_readonly(bm)) {
                error_setg(errp, "Corruption: bitmap '%s' is not marked "
                           "IN_USE in the image '%s' and not marked readonly "
                           "in RAM", e->name, bs->filename);
                return -EINVAL;
            }
            /*
             * Inconsistent in RAM but not in use on disk: with lazy data
             * this is no corruption but a load that failed while the node
             * was read-only.  Setting in_use records it on disk too.
             */
            e->flags |= QCOW2_BME_FLAG_IN_USE;
            need_update = true;
            g_ptr_array_add(ro, bm);
        } else if (bdrv_dirty_bitmap_readonly(bm)) {
            if (!bdrv_dirty_bitmap_inconsistent(bm)) {
                error_setg(errp, "Corruption: bitmap '%s' is marked IN_USE "
                           "in the image '%s' but it is readonly and "
                           "consistent in RAM", e->name, bs->filename);
                return -EINVAL;
            }
            g_ptr_array_add(ro, bm);
        }
    }
    if (need_update) {
        if (!node_writable(bs) || bdrv_is_read_only(bs->file->bs)) {
            error_setg(errp, "Failed to reopen bitmaps rw: no write access "
                       "the protocol file");
            return -EINVAL;
        }
        if (!(s->autoclear_features & QCOW2_AUTOCLEAR_BITMAPS)) {
            /* Our own header writes keep bit 0; restore it if a reopen
             * cycle dropped it before the in-place update checks it. */
            s->autoclear_features |= QCOW2_AUTOCLEAR_BITMAPS;
        }
        ret = update_dir_in_place(bs, list);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Cannot update bitmap directory");
            return ret;
        }
    }
    for (guint i = 0; i < ro->len; i++) {
        bdrv_dirty_bitmap_set_readonly(ro->pdata[i], false);
    }
    /* Persistent bitmaps added while read-only are refused at add time,
     * so every readonly persistent bitmap is in the directory. */
    return 0;
}

int qcow2_truncate_bitmaps_check(BlockDriverState *bs, Error **errp)
{
    g_autoptr(GPtrArray) list = load_directory(bs, errp);

    if (!list) {
        return -EINVAL;
    }
    for (guint i = 0; i < list->len; i++) {
        Qcow2BitmapEntry *e = list->pdata[i];
        BdrvDirtyBitmap *bm = bdrv_find_dirty_bitmap(bs, e->name);
        if (!bm) {
            error_setg(errp, "Cannot resize qcow2 with persistent bitmaps "
                       "that were not loaded into memory");
            return -ENOTSUP;
        }
        if (bdrv_dirty_bitmap_check(bm, BDRV_BITMAP_DEFAULT, errp) < 0) {
            return -ENOTSUP;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ */
/* Driver hooks                                                        */

bool qcow2_co_can_store_new_dirty_bitmap(BlockDriverState *bs,
                                         const char *name,
                                         uint32_t granularity, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;

    if (s->hi.h.version < 3) {
        error_setg(errp, "Cannot store dirty bitmaps in qcow2 v2 files");
        goto fail;
    }
    /* qblock: a persistent bitmap on a node that cannot write it would be
     * lost at close; refuse it now instead (docs/bitmaps.md). */
    if (bdrv_is_read_only(bs)) {
        error_setg(errp, "Cannot store dirty bitmaps in a read-only image; "
                   "reopen it read-write first");
        goto fail;
    }
    if (check_constraints(bs, name, granularity, errp) < 0) {
        goto fail;
    }
    if (!s->hi.has_bitmaps_ext) {
        return true;
    }
    if (s->hi.nb_bitmaps >= QCOW2_MAX_BITMAPS) {
        error_setg(errp, "Maximum number of persistent bitmaps is already "
                   "reached");
        goto fail;
    }
    if (s->hi.bitmap_dir_size + qcow2_bitmap_dir_entry_size(strlen(name)) >
        QCOW2_MAX_BITMAP_DIR_SIZE) {
        error_setg(errp, "Not enough space in the bitmap directory");
        goto fail;
    }
    return true;

fail:
    error_prepend(errp, "Can't make bitmap '%s' persistent in '%s': ", name,
                  bs->node_name);
    return false;
}

int qcow2_co_remove_persistent_dirty_bitmap(BlockDriverState *bs,
                                            const char *name, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    g_autoptr(GPtrArray) list = NULL;
    Qcow2BitmapEntry *e;
    uint64_t toff;
    uint32_t tsize;
    bool locked = in_coroutine();
    int ret = 0;

    if (!s->hi.has_bitmaps_ext) {
        return 0;
    }
    if (locked) {
        co_mutex_lock(&s->lock);
    }
    list = load_directory(bs, errp);
    if (!list) {
        ret = -EINVAL;
        goto out;
    }
    e = find_entry(list, name);
    if (!e) {
        goto out;       /* absence on disk is fine (§5.7) */
    }
    {
        /* Rule 3: the RAM bitmap may outlive the entry (an aborted
         * transaction gives it back), so it needs its bits first. */
        BdrvDirtyBitmap *bm = bdrv_find_dirty_bitmap(bs, name);
        if (bm && bdrv_dirty_bitmap_pending_load(bm, &qcow2_stored_bitmap)) {
            Error *err = NULL;
            if (bdrv_dirty_bitmap_load(bm, &err) < 0) {
                error_report_err(err);
            }
        }
    }
    toff = e->table_offset;
    tsize = e->table_size;
    g_ptr_array_remove(list, e);
    ret = write_new_directory(bs, list);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to update bitmap extension");
        goto out;
    }
    free_table_clusters(bs, toff, tsize);
    ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to update bitmap extension");
    }
out:
    if (locked) {
        co_mutex_unlock(&s->lock);
    }
    return ret;
}

json_t *qcow2_get_bitmap_info_list(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    g_autoptr(GPtrArray) list = NULL;
    json_t *arr;

    if (!s->hi.has_bitmaps_ext) {
        return NULL;
    }
    list = load_directory(bs, errp);
    if (!list) {
        return NULL;
    }
    arr = json_array();
    for (guint i = 0; i < list->len; i++) {
        Qcow2BitmapEntry *e = list->pdata[i];
        json_t *flags = json_array();
        if (e->flags & QCOW2_BME_FLAG_IN_USE) {
            json_array_append_new(flags, json_string("in-use"));
        }
        if (e->flags & QCOW2_BME_FLAG_AUTO) {
            json_array_append_new(flags, json_string("auto"));
        }
        json_array_append_new(arr, json_pack(
            "{s:o, s:s, s:I}", "flags", flags, "name", e->name,
            "granularity", (json_int_t)1 << e->granularity_bits));
    }
    return arr;
}

bool qcow2_has_bitmaps(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    if (s->hi.has_bitmaps_ext && s->hi.nb_bitmaps > 0) {
        return true;
    }
    for (BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_first(bs); bm;
         bm = bdrv_dirty_bitmap_next(bm)) {
        if (bdrv_dirty_bitmap_get_persistent(bm)) {
            return true;
        }
    }
    return false;
}
