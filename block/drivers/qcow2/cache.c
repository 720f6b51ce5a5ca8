/*
 * qcow2 metadata cache: a fixed number of table-sized slots holding L2
 * tables (or slices of them) or refcount blocks, with LRU replacement and
 * write-back.  A cache may depend on another one: before any of its dirty
 * entries is written, the dependency is flushed (refcounts reach the disk
 * before the L2 entries that reference the clusters they count).
 *
 * Invariants:
 *  1. An entry with ref > 0 is never evicted or discarded.
 *  2. At most one slot holds a given offset.
 *  3. A dirty slot is written before its slot is reused.
 */
#include "qcow2.h"

typedef struct Qcow2CacheEntry {
    uint64_t offset;     /* 0: slot empty (offset 0 is the header) */
    int ref;
    bool dirty;
    uint64_t lru;
    bool used_since_clean;
} Qcow2CacheEntry;

struct Qcow2Cache {
    BlockDriverState *bs;
    const char *name;
    int size;                      /* number of slots */
    int entry_size;
    uint8_t *mem;
    Qcow2CacheEntry *entries;
    Qcow2Cache *depends;
    bool depends_on_flush;         /* flush the file before any write */
    uint64_t lru_counter;
    int ol_ign;                    /* overlap bits we may write over */
    Qcow2CacheIO io;
    void *io_opaque;
};

Qcow2Cache *qcow2_cache_create(BlockDriverState *bs, int num_entries,
                               int entry_size, const char *name)
{
    Qcow2Cache *c = g_new0(Qcow2Cache, 1);
    c->bs = bs;
    c->name = name;
    c->size = MAX(num_entries, 1);
    c->entry_size = entry_size;
    c->mem = qb_try_memalign(QB_MEM_ALIGN, (size_t)c->size * entry_size);
    if (!c->mem) {
        g_free(c);
        return NULL;
    }
    c->entries = g_new0(Qcow2CacheEntry, c->size);
    c->ol_ign = g_str_equal(name, "l2") ? QCOW2_OL_ACTIVE_L2
                                        : QCOW2_OL_REFCOUNT_BLOCK;
    return c;
}

void qcow2_cache_destroy(Qcow2Cache *c)
{
    if (!c) {
        return;
    }
    qb_vfree(c->mem);
    g_free(c->entries);
    g_free(c);
}

void qcow2_cache_set_io(Qcow2Cache *c, Qcow2CacheIO io, void *opaque)
{
    c->io = io;
    c->io_opaque = opaque;
}

int qcow2_cache_num_entries(Qcow2Cache *c)
{
    return c->size;
}

int qcow2_cache_num_loaded(Qcow2Cache *c)
{
    int n = 0;
    for (int i = 0; i < c->size; i++) {
        n += c->entries[i].offset != 0;
    }
    return n;
}

static void *slot_table(Qcow2Cache *c, int i)
{
    return c->mem + (size_t)i * c->entry_size;
}

static int slot_of_table(Qcow2Cache *c, void *table)
{
    ptrdiff_t d = (uint8_t *)table - c->mem;
    assert(d >= 0 && d % c->entry_size == 0 && d / c->entry_size < c->size);
    return d / c->entry_size;
}

static int do_io(Qcow2Cache *c, bool write, uint64_t offset, void *buf)
{
    if (c->io) {
        return c->io(c->io_opaque, write, offset, buf, c->entry_size);
    }
    if (write) {
        int ret = qcow2_pre_write_overlap_check(c->bs, c->ol_ign, offset,
                                                c->entry_size);
        if (ret < 0) {
            return ret;
        }
        /* Which event is raised tells blkdebug what kind of table this is. */
        BLKDBG_EVENT(c->bs->file, c->ol_ign == QCOW2_OL_ACTIVE_L2
                     ? BLKDBG_EV_L2_UPDATE : BLKDBG_EV_REFBLOCK_UPDATE_PART);
        ret = bdrv_pwrite(c->bs->file, offset, c->entry_size, buf, 0);
        if (ret < 0) {
            return ret;
        }
        qcow2_note_file_end(c->bs->opaque, offset + c->entry_size);
        return 0;
    }
    if (c->ol_ign == QCOW2_OL_ACTIVE_L2) {
        BLKDBG_EVENT(c->bs->file, BLKDBG_EV_L2_LOAD);
    }
    int ret = bdrv_pread(c->bs->file, offset, c->entry_size, buf, 0);
    return ret < 0 ? ret : 0;
}

static int entry_flush(Qcow2Cache *c, int i)
{
    int ret;

    if (!c->entries[i].dirty || !c->entries[i].offset) {
        return 0;
    }
    if (c->depends) {
        ret = qcow2_cache_flush(c->bs, c->depends);
        if (ret < 0) {
            return ret;
        }
    } else if (c->depends_on_flush) {
        ret = c->io || !c->bs ? 0 : bdrv_flush(c->bs->file->bs);
        if (ret < 0) {
            return ret;
        }
    }
    c->depends_on_flush = false;
    ret = do_io(c, true, c->entries[i].offset, slot_table(c, i));
    if (ret < 0) {
        return ret;
    }
    c->entries[i].dirty = false;
    return 0;
}

int qcow2_cache_write(BlockDriverState *bs, Qcow2Cache *c)
{
    int result = 0;
    for (int i = 0; i < c->size; i++) {
        int ret = entry_flush(c, i);
        if (ret < 0 && result != -ENOSPC) {
            result = ret;
        }
    }
    return result;
}

int qcow2_cache_flush(BlockDriverState *bs, Qcow2Cache *c)
{
    int ret = qcow2_cache_write(bs, c);
    if (ret == 0 && !c->io && c->bs && c->bs->file) {
        ret = bdrv_flush(c->bs->file->bs);
    }
    return ret;
}

void qcow2_cache_set_dependency(Qcow2Cache *c, Qcow2Cache *dependency)
{
    c->depends = dependency;
}

void qcow2_cache_depends_on_flush(Qcow2Cache *c)
{
    c->depends_on_flush = true;
}

static int cache_do_get(Qcow2Cache *c, uint64_t offset, void **table,
                        bool read_from_disk)
{
    int i, victim = -1;
    uint64_t min_lru = UINT64_MAX;
    int ret;

    assert(offset != 0);
    for (i = 0; i < c->size; i++) {
        if (c->entries[i].offset == offset) {
            goto found;
        }
    }
    /* Evict the least recently used unreferenced slot. */
    for (i = 0; i < c->size; i++) {
        if (c->entries[i].ref) {
            continue;
        }
        if (!c->entries[i].offset) {
            victim = i;
            break;
        }
        if (c->entries[i].lru < min_lru) {
            min_lru = c->entries[i].lru;
            victim = i;
        }
    }
    if (victim < 0) {
        return -ENOSPC;   /* every slot in use: cache too small */
    }
    i = victim;
    ret = entry_flush(c, i);
    if (ret < 0) {
        return ret;
    }
    c->entries[i].offset = 0;
    if (read_from_disk) {
        ret = do_io(c, false, offset, slot_table(c, i));
        if (ret < 0) {
            return ret;
        }
    }
    c->entries[i].offset = offset;
    c->entries[i].dirty = false;
found:
    c->entries[i].ref++;
    c->entries[i].lru = ++c->lru_counter;
    c->entries[i].used_since_clean = true;
    *table = slot_table(c, i);
    return 0;
}

int qcow2_cache_get(BlockDriverState *bs, Qcow2Cache *c, uint64_t offset,
                    void **table)
{
    return cache_do_get(c, offset, table, true);
}

int qcow2_cache_get_empty(BlockDriverState *bs, Qcow2Cache *c,
                          uint64_t offset, void **table)
{
    return cache_do_get(c, offset, table, false);
}

void qcow2_cache_put(Qcow2Cache *c, void **table)
{
    int i = slot_of_table(c, *table);
    assert(c->entries[i].ref > 0);
    c->entries[i].ref--;
    *table = NULL;
}

void qcow2_cache_entry_mark_dirty(Qcow2Cache *c, void *table)
{
    int i = slot_of_table(c, table);
    assert(c->entries[i].offset);
    c->entries[i].dirty = true;
}

void qcow2_cache_discard(Qcow2Cache *c, uint64_t offset)
{
    for (int i = 0; i < c->size; i++) {
        if (c->entries[i].offset == offset) {
            assert(c->entries[i].ref == 0);
            c->entries[i].offset = 0;
            c->entries[i].dirty = false;
        }
    }
}

void qcow2_cache_discard_range(Qcow2Cache *c, uint64_t offset, uint64_t len)
{
    for (int i = 0; i < c->size; i++) {
        uint64_t o = c->entries[i].offset;
        if (o && o >= offset && o < offset + len) {
            assert(c->entries[i].ref == 0);
            c->entries[i].offset = 0;
            c->entries[i].dirty = false;
        }
    }
}

void qcow2_cache_clean_unused(Qcow2Cache *c)
{
    for (int i = 0; i < c->size; i++) {
        Qcow2CacheEntry *e = &c->entries[i];
        if (e->offset && !e->ref && !e->dirty && !e->used_since_clean) {
            e->offset = 0;
        }
        e->used_since_clean = false;
    }
}

int qcow2_cache_empty(Qcow2Cache *c)
{
    /* Emptied by wholesale rebuilds (check's refcount rebuild, make_empty)
     * that change table offsets: the overlap index goes with it. */
    if (c->bs && c->bs->opaque) {
        qcow2_ol_index_invalidate(c->bs->opaque);
    }
    for (int i = 0; i < c->size; i++) {
        if (c->entries[i].ref) {
            return -EBUSY;
        }
    }
    for (int i = 0; i < c->size; i++) {
        if (!c->entries[i].dirty) {
            c->entries[i].offset = 0;
        }
    }
    return 0;
}
