/*
 * qcow2 internal snapshots: the snapshot table (parse, validate, write) and
 * the operations on it (create, goto, delete, list, and load_tmp: a
 * read-only node showing a snapshot's L1 table, for convert/measure -l).
 *
 * A snapshot is a frozen copy of the active L1 table.  Everything that copy
 * references (L2 tables, data and compressed clusters) gets one more
 * reference, so the refcount of a cluster is the number of L1 tables
 * (through their L2 tables) that reach it.  Invariants kept here:
 *  1. Once an operation returns, every cluster reached from the active L1
 *     has QCOW_OFLAG_COPIED set exactly when its refcount is 1 (the write
 *     path then copies-on-write every shared cluster and L2 table).
 *  2. The header switches to a new snapshot table in one 12-byte write
 *     (count and offset together), after the table and the references it
 *     needs are on disk; the old table is freed only afterwards.  A crash
 *     in between leaks clusters, never loses a reference.
 *  3. A table read from disk is validated against the file size and the
 *     format's limits before anything is allocated from its fields: at most
 *     QCOW2_MAX_SNAPSHOTS entries, extra data of at most 1 KiB each, 64 MiB
 *     in total, L1 tables aligned and no larger than an active one may be.
 */
#include "qcow2.h"
#include "util/bswap.h"
#include "block/snapshot.h"
#include "util/coroutine.h"

#define SN_HEADER_SIZE      40
#define SN_MAX_EXTRA_DATA   1024
#define SN_EXTRA_KNOWN      24   /* vm_state_size_large, disk_size, icount */
#define SN_MAX_TABLE_SIZE   (64 * MiB)

static void snapshot_clear(Qcow2Snapshot *sn)
{
    g_free(sn->id_str);
    g_free(sn->name);
    g_free(sn->unknown_extra);
    memset(sn, 0, sizeof(*sn));
}

void qcow2_free_snapshots(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;

    for (uint32_t i = 0; s->snapshots && i < s->nb_snapshots; i++) {
        snapshot_clear(&s->snapshots[i]);
    }
    g_free(s->snapshots);
    s->snapshots = NULL;
}

/* s->snapshot_l1s mirrors s->snapshots (check.c and overlap checks). */
static void rebuild_l1_list(BDRVQcow2State *s)
{
    if (s->snapshot_l1s) {
        g_array_set_size(s->snapshot_l1s, 0);
    } else {
        s->snapshot_l1s = g_array_new(false, false, sizeof(uint64_t));
    }
    for (uint32_t i = 0; s->snapshots && i < s->nb_snapshots; i++) {
        uint64_t off = s->snapshots[i].l1_table_offset;
        uint64_t bytes = (uint64_t)s->snapshots[i].l1_size * 8;
        g_array_append_val(s->snapshot_l1s, off);
        g_array_append_val(s->snapshot_l1s, bytes);
    }
}

static uint64_t entry_size(const Qcow2Snapshot *sn)
{
    return QB_ALIGN_UP(SN_HEADER_SIZE + (uint64_t)sn->extra_data_size +
                       strlen(sn->id_str) + strlen(sn->name), 8);
}

int qcow2_read_snapshots(BlockDriverState *bs, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t file_size = bdrv_getlength(bs->file->bs);
    uint64_t off = s->snapshots_offset;
    uint32_t n = s->nb_snapshots;
    int ret;

    s->snapshots_size = 0;
    s->snapshots = NULL;
    rebuild_l1_list(s);
    if (!n) {
        return 0;
    }
    if (file_size < 0) {
        error_setg_errno(errp, -file_size, "Failed to read snapshot table");
        return file_size;
    }
    /* The header parser bounds n; the fixed parts alone must fit too, so
     * a bogus count fails here before any per-entry work. */
    if (n > QCOW2_MAX_SNAPSHOTS ||
        off + (uint64_t)n * SN_HEADER_SIZE > (uint64_t)file_size) {
        error_setg(errp, "Snapshot table exceeds the end of the image file "
                   "(%" PRIu32 " snapshots at offset %#" PRIx64 ")", n, off);
        return -EINVAL;
    }
    s->snapshots = g_new0(Qcow2Snapshot, n);
    for (uint32_t i = 0; i < n; i++) {
        Qcow2Snapshot *sn = &s->snapshots[i];
        uint8_t h[SN_HEADER_SIZE];
        uint16_t id_len, name_len;
        uint64_t var_len;
        g_autofree uint8_t *var = NULL;

        if (off + SN_HEADER_SIZE > (uint64_t)file_size) {
            error_setg(errp, "Snapshot table entry %" PRIu32 " exceeds the "
                       "end of the image file", i);
            ret = -EINVAL;
            goto fail;
        }
        ret = bdrv_pread(bs->file, off, SN_HEADER_SIZE, h, 0);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to read snapshot table");
            goto fail;
        }
        sn->l1_table_offset = ld64_be(h);
        sn->l1_size = ld32_be(h + 8);
        id_len = ld16_be(h + 12);
        name_len = ld16_be(h + 14);
        sn->date_sec = ld32_be(h + 16);
        sn->date_nsec = ld32_be(h + 20);
        sn->vm_clock_nsec = ld64_be(h + 24);
        sn->vm_state_size = ld32_be(h + 32);
        sn->extra_data_size = ld32_be(h + 36);
        if (sn->extra_data_size > SN_MAX_EXTRA_DATA) {
            error_setg(errp, "Too much extra metadata in snapshot table "
                       "entry %" PRIu32, i);
            ret = -EFBIG;
            goto fail;
        }
        var_len = (uint64_t)sn->extra_data_size + id_len + name_len;
        if (off + SN_HEADER_SIZE + var_len > (uint64_t)file_size) {
            error_setg(errp, "Snapshot table entry %" PRIu32 " exceeds the "
                       "end of the image file", i);
            ret = -EINVAL;
            goto fail;
        }
        var = g_malloc(var_len + 1);
        ret = bdrv_pread(bs->file, off + SN_HEADER_SIZE, var_len, var, 0);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to read snapshot table");
            goto fail;
        }
        /* Extra data: fields present only when the entry is long enough. */
        sn->disk_size = s->hi.h.size;
        sn->icount = UINT64_MAX;
        if (sn->extra_data_size >= 8) {
            sn->vm_state_size = ld64_be(var);
        }
        if (sn->extra_data_size >= 16) {
            sn->disk_size = ld64_be(var + 8);
        }
        if (sn->extra_data_size >= 24) {
            sn->icount = ld64_be(var + 16);
        }
        if (sn->extra_data_size > SN_EXTRA_KNOWN) {
            sn->unknown_extra = g_memdup2(var + SN_EXTRA_KNOWN,
                                          sn->extra_data_size -
                                          SN_EXTRA_KNOWN);
        }
        sn->id_str = g_strndup((char *)var + sn->extra_data_size, id_len);
        sn->name = g_strndup((char *)var + sn->extra_data_size + id_len,
                             name_len);
        off += QB_ALIGN_UP(SN_HEADER_SIZE + var_len, 8);
        if (off - s->snapshots_offset > SN_MAX_TABLE_SIZE) {
            error_setg(errp, "Snapshot table is too big");
            ret = -EFBIG;
            goto fail;
        }
        if (sn->l1_size > QCOW2_MAX_L1_SIZE / 8) {
            error_setg(errp, "Snapshot L1 table too large");
            ret = -EFBIG;
            goto fail;
        }
        if (qcow2_offset_into_cluster(s, sn->l1_table_offset) ||
            sn->l1_table_offset > (uint64_t)INT64_MAX -
                                  (uint64_t)sn->l1_size * 8) {
            error_setg(errp, "Snapshot L1 table offset invalid");
            ret = -EINVAL;
            goto fail;
        }
    }
    s->snapshots_size = off - s->snapshots_offset;
    rebuild_l1_list(s);
    return 0;

fail:
    qcow2_free_snapshots(bs);
    g_array_set_size(s->snapshot_l1s, 0);
    return ret;
}

/*
 * Write snaps (n entries) as a new table, point the header at it and free
 * the old one (invariant 2).  On success s->snapshots takes ownership of
 * snaps (the old array is freed); on failure nothing changed.
 */
static int write_snapshots(BlockDriverState *bs, Qcow2Snapshot *snaps,
                           uint32_t n)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t size = 0, pos = 0;
    int64_t new_off = 0;
    g_autofree uint8_t *buf = NULL;
    uint8_t hdr[12];
    int ret;

    for (uint32_t i = 0; i < n; i++) {
        size += entry_size(&snaps[i]);
    }
    if (size > SN_MAX_TABLE_SIZE) {
        return -EFBIG;
    }
    if (n) {
        buf = g_malloc0(size);
        for (uint32_t i = 0; i < n; i++) {
            Qcow2Snapshot *sn = &snaps[i];
            size_t id_len = strlen(sn->id_str), name_len = strlen(sn->name);
            uint8_t *p = buf + pos;

            st64_be(p, sn->l1_table_offset);
            st32_be(p + 8, sn->l1_size);
            st16_be(p + 12, id_len);
            st16_be(p + 14, name_len);
            st32_be(p + 16, sn->date_sec);
            st32_be(p + 20, sn->date_nsec);
            st64_be(p + 24, sn->vm_clock_nsec);
            st32_be(p + 32, MIN(sn->vm_state_size, UINT32_MAX));
            st32_be(p + 36, sn->extra_data_size);
            p += SN_HEADER_SIZE;
            st64_be(p, sn->vm_state_size);
            st64_be(p + 8, sn->disk_size);
            if (sn->extra_data_size >= SN_EXTRA_KNOWN) {
                st64_be(p + 16, sn->icount);
            }
            if (sn->unknown_extra) {
                memcpy(p + SN_EXTRA_KNOWN, sn->unknown_extra,
                       sn->extra_data_size - SN_EXTRA_KNOWN);
            }
            p += sn->extra_data_size;
            memcpy(p, sn->id_str, id_len);
            memcpy(p + id_len, sn->name, name_len);
            pos += entry_size(sn);
        }
        new_off = qcow2_alloc_clusters(bs, size);
        if (new_off < 0) {
            return new_off;
        }
        ret = qcow2_pre_write_overlap_check(bs, 0, new_off, size);
        if (ret == 0) {
            ret = bdrv_pwrite(bs->file, new_off, size, buf, 0);
        }
        if (ret == 0) {
            /* Table and its refcounts on disk before the header. */
            ret = qcow2_flush_caches(bs);
        }
        if (ret < 0) {
            qcow2_free_clusters(bs, new_off, size, QCOW2_DISCARD_ALWAYS);
            return ret;
        }
    }
    st32_be(hdr, n);
    st64_be(hdr + 4, new_off);
    ret = bdrv_pwrite_sync(bs->file, 60, sizeof(hdr), hdr, 0);
    if (ret < 0) {
        if (n) {
            qcow2_free_clusters(bs, new_off, size, QCOW2_DISCARD_ALWAYS);
        }
        return ret;
    }

    uint64_t old_off = s->snapshots_offset, old_size = s->snapshots_size;
    Qcow2Snapshot *old = s->snapshots;
    s->snapshots = snaps;
    g_free(old);
    s->nb_snapshots = s->hi.h.nb_snapshots = n;
    s->snapshots_offset = s->hi.h.snapshots_offset = new_off;
    s->snapshots_size = size;
    rebuild_l1_list(s);
    if (old_size) {
        qcow2_free_clusters(bs, old_off, old_size, QCOW2_DISCARD_SNAPSHOT);
    }
    return 0;
}

/*
 * Add addend (-1, 0, +1) to the refcount of every L2 table and cluster that
 * l1 (host order, l1_size entries) references, then set COPIED on each
 * entry (in l1 and in the L2 tables) exactly when the refcount is 1.  If
 * write_l1_at is non-zero, l1 is the active table and is written there.
 *
 * L2 tables are read and written directly (the L2 cache is flushed and
 * emptied first, so it holds no stale copy afterwards).
 */
static int update_refcounts_via_l1(BlockDriverState *bs, uint64_t *l1,
                                   uint32_t l1_size, int addend,
                                   uint64_t write_l1_at)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t file_size = bdrv_getlength(bs->file->bs);
    int stride = s->l2_entry_bytes / 8;
    g_autofree uint64_t *l2 = NULL;
    uint64_t rc;
    int ret;

    if (file_size < 0) {
        return file_size;
    }
    ret = qcow2_cache_flush(bs, s->l2_table_cache);
    if (ret < 0) {
        return ret;
    }
    ret = qcow2_cache_empty(s->l2_table_cache);
    if (ret < 0) {
        return ret;
    }
    l2 = g_malloc(s->cluster_size);
    for (uint32_t i = 0; i < l1_size; i++) {
        uint64_t l2_off = l1[i] & L1E_OFFSET_MASK;
        bool dirty = false;

        if (!l2_off) {
            continue;
        }
        if (qcow2_offset_into_cluster(s, l2_off) ||
            l2_off + s->cluster_size > (uint64_t)file_size) {
            qcow2_signal_corruption(bs, true, -1, -1, "L2 table offset %#"
                                    PRIx64 " unaligned or beyond the end of "
                                    "the file (L1 index: %#" PRIx32 ")",
                                    l2_off, i);
            return -EIO;
        }
        ret = bdrv_pread(bs->file, l2_off, s->cluster_size, l2, 0);
        if (ret < 0) {
            return ret;
        }
        for (int j = 0; j < s->l2_size; j++) {
            uint64_t e = GUINT64_FROM_BE(l2[j * stride]), ne;

            if (e & QCOW_OFLAG_COMPRESSED) {
                if (addend) {
                    uint64_t coff;
                    int csize;
                    qcow2_parse_compressed_l2_entry(s, e, &coff, &csize);
                    int nb = ((e >> s->csize_shift) & s->csize_mask) + 1;
                    ret = qcow2_update_refcount(bs, coff & ~UINT64_C(511),
                                                nb * 512, addend,
                                                QCOW2_DISCARD_SNAPSHOT);
                    if (ret < 0) {
                        return ret;
                    }
                }
                continue;
            }
            if (qcow2_has_data_file(s) || !qcow2_entry_has_host(s, e)) {
                continue;
            }
            uint64_t off = e & L2E_OFFSET_MASK;
            if (qcow2_offset_into_cluster(s, off)) {
                qcow2_signal_corruption(bs, true, -1, -1, "Cluster "
                                        "allocation offset %#" PRIx64
                                        " unaligned (L2 offset: %#" PRIx64
                                        ", L2 index: %#x)", off, l2_off, j);
                return -EIO;
            }
            if (addend) {
                ret = qcow2_update_refcount(bs, off, s->cluster_size, addend,
                                            QCOW2_DISCARD_SNAPSHOT);
                if (ret < 0) {
                    return ret;
                }
            }
            ret = qcow2_get_refcount(bs, off >> s->cluster_bits, &rc);
            if (ret < 0) {
                return ret;
            }
            if (rc == 0) {
                continue;   /* freed with a table that is going away */
            }
            ne = rc == 1 ? e | QCOW_OFLAG_COPIED : e & ~QCOW_OFLAG_COPIED;
            if (ne != e) {
                l2[j * stride] = GUINT64_TO_BE(ne);
                dirty = true;
            }
        }
        if (dirty) {
            ret = qcow2_pre_write_overlap_check(bs, QCOW2_OL_ACTIVE_L2 |
                                                QCOW2_OL_INACTIVE_L2, l2_off,
                                                s->cluster_size);
            if (ret == 0) {
                ret = bdrv_pwrite(bs->file, l2_off, s->cluster_size, l2, 0);
            }
            if (ret < 0) {
                return ret;
            }
        }
        if (addend) {
            ret = qcow2_update_refcount(bs, l2_off, s->cluster_size, addend,
                                        QCOW2_DISCARD_SNAPSHOT);
            if (ret < 0) {
                return ret;
            }
        }
        ret = qcow2_get_refcount(bs, l2_off >> s->cluster_bits, &rc);
        if (ret < 0) {
            return ret;
        }
        l1[i] = rc == 1 ? l1[i] | QCOW_OFLAG_COPIED
                        : l1[i] & ~QCOW_OFLAG_COPIED;
    }
    if (write_l1_at && l1_size) {
        g_autofree uint64_t *be = g_new(uint64_t, l1_size);
        for (uint32_t i = 0; i < l1_size; i++) {
            be[i] = GUINT64_TO_BE(l1[i]);
        }
        ret = qcow2_pre_write_overlap_check(bs, QCOW2_OL_ACTIVE_L1,
                                            write_l1_at,
                                            (int64_t)l1_size * 8);
        if (ret == 0) {
            ret = bdrv_pwrite_sync(bs->file, write_l1_at,
                                   (int64_t)l1_size * 8, be, 0);
        }
        if (ret < 0) {
            return ret;
        }
    }
    return qcow2_flush_caches(bs);
}

/* Read a snapshot's L1 table (host order). */
static int read_snapshot_l1(BlockDriverState *bs, const Qcow2Snapshot *sn,
                            uint64_t **pl1)
{
    int64_t file_size = bdrv_getlength(bs->file->bs);
    uint64_t bytes = (uint64_t)sn->l1_size * 8;
    uint64_t *l1;
    int ret;

    *pl1 = NULL;
    if (file_size < 0) {
        return file_size;
    }
    if (sn->l1_table_offset + bytes > (uint64_t)file_size) {
        return -EIO;
    }
    l1 = g_try_new0(uint64_t, MAX(sn->l1_size, 1));
    if (!l1) {
        return -ENOMEM;
    }
    if (bytes) {
        ret = bdrv_pread(bs->file, sn->l1_table_offset, bytes, l1, 0);
        if (ret < 0) {
            g_free(l1);
            return ret;
        }
    }
    for (uint32_t i = 0; i < sn->l1_size; i++) {
        l1[i] = GUINT64_FROM_BE(l1[i]);
    }
    *pl1 = l1;
    return 0;
}

static int find_by_id(BDRVQcow2State *s, const char *id)
{
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        if (!strcmp(s->snapshots[i].id_str, id)) {
            return i;
        }
    }
    return -1;
}

static int find_by_name(BDRVQcow2State *s, const char *name)
{
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        if (!strcmp(s->snapshots[i].name, name)) {
            return i;
        }
    }
    return -1;
}

/* A copy of the table with room for one more entry; strings are shared
 * with the current table (ownership moves in write_snapshots). */
static Qcow2Snapshot *table_copy(BDRVQcow2State *s, uint32_t extra)
{
    Qcow2Snapshot *t = g_new0(Qcow2Snapshot, s->nb_snapshots + extra);
    if (s->nb_snapshots) {
        memcpy(t, s->snapshots, sizeof(*t) * s->nb_snapshots);
    }
    return t;
}

static int do_create(BlockDriverState *bs, QBSnapshotInfo *info)
{
    BDRVQcow2State *s = bs->opaque;
    Qcow2Snapshot sn = { 0 };
    Qcow2Snapshot *table;
    g_autofree uint64_t *l1_be = NULL;
    int64_t l1_off = 0;
    uint64_t l1_bytes = (uint64_t)s->l1_size * 8;
    int ret;

    /* No refcounts on external data clusters: nothing to share. */
    if (qcow2_has_data_file(s)) {
        return -ENOTSUP;
    }
    if (s->nb_snapshots >= QCOW2_MAX_SNAPSHOTS) {
        return -EFBIG;
    }
    if (!info->id_str[0]) {
        /* Next id: one past the largest numeric id. */
        unsigned long max = 0;
        for (uint32_t i = 0; i < s->nb_snapshots; i++) {
            unsigned long v = strtoul(s->snapshots[i].id_str, NULL, 10);
            max = MAX(max, v);
        }
        g_snprintf(info->id_str, sizeof(info->id_str), "%lu", max + 1);
    }
    if (find_by_id(s, info->id_str) >= 0) {
        return -EEXIST;
    }
    if (strlen(info->id_str) > UINT16_MAX || strlen(info->name) > UINT16_MAX) {
        return -EINVAL;
    }

    /* The frozen L1 copy (COPIED flags are meaningless there). */
    if (l1_bytes) {
        l1_be = g_new(uint64_t, s->l1_size);
        for (uint32_t i = 0; i < s->l1_size; i++) {
            l1_be[i] = GUINT64_TO_BE(s->l1_table[i] & ~QCOW_OFLAG_COPIED);
        }
        l1_off = qcow2_alloc_clusters(bs, l1_bytes);
        if (l1_off < 0) {
            return l1_off;
        }
        ret = qcow2_pre_write_overlap_check(bs, 0, l1_off, l1_bytes);
        if (ret == 0) {
            ret = bdrv_pwrite(bs->file, l1_off, l1_bytes, l1_be, 0);
        }
        if (ret < 0) {
            qcow2_free_clusters(bs, l1_off, l1_bytes, QCOW2_DISCARD_ALWAYS);
            return ret;
        }
    }

    /* One more reference to everything the active L1 reaches. */
    ret = update_refcounts_via_l1(bs, s->l1_table, s->l1_size, 1,
                                  s->hi.h.l1_table_offset);
    if (ret < 0) {
        goto undo_l1;
    }

    sn.l1_table_offset = l1_off;
    sn.l1_size = s->l1_size;
    sn.id_str = g_strdup(info->id_str);
    sn.name = g_strdup(info->name);
    sn.date_sec = info->date_sec;
    sn.date_nsec = info->date_nsec;
    sn.vm_clock_nsec = info->vm_clock_nsec;
    sn.vm_state_size = info->vm_state_size;
    sn.disk_size = s->hi.h.size;
    sn.icount = info->icount;
    sn.extra_data_size = SN_EXTRA_KNOWN;
    table = table_copy(s, 1);
    table[s->nb_snapshots] = sn;
    ret = write_snapshots(bs, table, s->nb_snapshots + 1);
    if (ret < 0) {
        snapshot_clear(&table[s->nb_snapshots]);
        g_free(table);
        /* Give the references back (best effort: a failure only leaks). */
        update_refcounts_via_l1(bs, s->l1_table, s->l1_size, -1,
                                s->hi.h.l1_table_offset);
        goto undo_l1;
    }
    return 0;

undo_l1:
    if (l1_bytes) {
        qcow2_free_clusters(bs, l1_off, l1_bytes, QCOW2_DISCARD_ALWAYS);
    }
    return ret;
}

int qcow2_snapshot_create(BlockDriverState *bs, QBSnapshotInfo *info)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    co_mutex_lock(&s->lock);
    qcow2_quiesce_data_io(bs);   /* no unlocked transfer spans the change */
    ret = do_create(bs, info);
    co_mutex_unlock(&s->lock);
    return ret;
}

static int do_goto(BlockDriverState *bs, const char *id_or_name,
                   Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    g_autofree uint64_t *sn_l1 = NULL, *old_l1 = NULL;
    uint32_t old_size = s->l1_size;
    Qcow2Snapshot *sn;
    int idx, ret;

    idx = find_by_id(s, id_or_name);
    if (idx < 0) {
        idx = find_by_name(s, id_or_name);
    }
    if (idx < 0) {
        error_setg_errno(errp, ENOENT, "Failed to load snapshot");
        return -ENOENT;
    }
    sn = &s->snapshots[idx];
    if (sn->disk_size != s->hi.h.size) {
        error_setg(errp, "qcow2: Loading snapshots with different disk size "
                   "is not supported");
        return -ENOTSUP;
    }
    ret = read_snapshot_l1(bs, sn, &sn_l1);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to load snapshot");
        return ret;
    }
    if (sn->l1_size > s->l1_size) {
        ret = qcow2_grow_l1_table(bs, sn->l1_size, true);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Failed to load snapshot");
            return ret;
        }
    }
    /* References for the new active state first, then drop the old one:
     * a crash in between leaks, never frees something still in use. */
    ret = update_refcounts_via_l1(bs, sn_l1, sn->l1_size, 1, 0);
    if (ret < 0) {
        goto fail;
    }
    old_size = s->l1_size;
    old_l1 = g_memdup2(s->l1_table, (size_t)old_size * 8);
    memset(s->l1_table, 0, (size_t)s->l1_size * 8);
    for (uint32_t i = 0; i < sn->l1_size; i++) {
        s->l1_table[i] = sn_l1[i] & ~QCOW_OFLAG_COPIED;
    }
    ret = update_refcounts_via_l1(bs, s->l1_table, s->l1_size, 0,
                                  s->hi.h.l1_table_offset);
    if (ret < 0) {
        goto fail;
    }
    ret = update_refcounts_via_l1(bs, old_l1, old_size, -1, 0);
    if (ret < 0) {
        goto fail;
    }
    /* Clusters that were shared with the old state may now be private. */
    ret = update_refcounts_via_l1(bs, s->l1_table, s->l1_size, 0,
                                  s->hi.h.l1_table_offset);
    if (ret < 0) {
        goto fail;
    }
    return 0;

fail:
    error_setg_errno(errp, -ret, "Failed to load snapshot");
    return ret;
}

int qcow2_snapshot_goto(BlockDriverState *bs, const char *id_or_name,
                        Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    /* A snapshot taken at another size: resize the active state to its
     * size first, as QEMU 7.2 does (H33; data.c takes s->lock itself). */
    {
        int idx = find_by_id(s, id_or_name);
        if (idx < 0) {
            idx = find_by_name(s, id_or_name);
        }
        if (idx >= 0 && s->snapshots[idx].disk_size != s->hi.h.size) {
            ret = qcow2_co_truncate(bs, s->snapshots[idx].disk_size, true,
                                    PREALLOC_MODE_OFF, 0, errp);
            if (ret < 0) {
                return ret;
            }
        }
    }
    co_mutex_lock(&s->lock);
    qcow2_quiesce_data_io(bs);   /* no unlocked transfer spans the change */
    ret = do_goto(bs, id_or_name, errp);
    co_mutex_unlock(&s->lock);
    return ret;
}

/*
 * Show the snapshot matching id and/or name (NULL: don't care) instead of
 * the current state, by swapping in its L1 table.  Only for a read-only
 * node (the block layer checks): nothing is written, refcounts and the
 * COPIED flags stay those of the current state, and the guest size stays
 * the node's (QEMU 7.2 does the same: a snapshot taken at another size
 * shows unallocated past its L1 table).  The L2 cache is keyed by table
 * offset, so cached slices of the current state stay correct.
 */
int qcow2_snapshot_load_tmp(BlockDriverState *bs, const char *id,
                            const char *name, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t *l1 = NULL;
    Qcow2Snapshot *sn = NULL;
    int ret;

    assert(bdrv_is_read_only(bs));
    co_mutex_lock(&s->lock);
    for (uint32_t i = 0; i < s->nb_snapshots && !sn; i++) {
        if ((!id || !strcmp(s->snapshots[i].id_str, id)) &&
            (!name || !strcmp(s->snapshots[i].name, name))) {
            sn = &s->snapshots[i];
        }
    }
    if (!sn) {
        error_setg(errp, "Can't find snapshot");
        ret = -ENOENT;
        goto out;
    }
    /* The table was validated at open (aligned, within the limits). */
    ret = read_snapshot_l1(bs, sn, &l1);
    if (ret < 0) {
        error_setg(errp, "Failed to read l1 table for snapshot");
        goto out;
    }
    g_free(s->l1_table);
    s->l1_table = l1;
    s->l1_size = sn->l1_size;
    s->hi.h.l1_size = sn->l1_size;
    s->hi.h.l1_table_offset = sn->l1_table_offset;
    ret = 0;
out:
    co_mutex_unlock(&s->lock);
    return ret;
}

static int do_delete(BlockDriverState *bs, const char *id, const char *name,
                     Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    g_autofree uint64_t *sn_l1 = NULL;
    Qcow2Snapshot sn, *table;
    int idx = -1, ret;

    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        if ((!id || !strcmp(s->snapshots[i].id_str, id)) &&
            (!name || !strcmp(s->snapshots[i].name, name))) {
            idx = i;
            break;
        }
    }
    if (idx < 0) {
        error_setg(errp, "snapshot not found");
        return -ENOENT;
    }
    sn = s->snapshots[idx];
    ret = read_snapshot_l1(bs, &sn, &sn_l1);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to read snapshot L1 table");
        return ret;
    }

    /* Unlink first (invariant 2); the entry's strings die with it. */
    table = table_copy(s, 0);
    memmove(&table[idx], &table[idx + 1],
            sizeof(*table) * (s->nb_snapshots - idx - 1));
    ret = write_snapshots(bs, table, s->nb_snapshots - 1);
    if (ret < 0) {
        g_free(table);
        error_setg_errno(errp, -ret, "Failed to remove snapshot from "
                         "snapshot list");
        return ret;
    }

    ret = update_refcounts_via_l1(bs, sn_l1, sn.l1_size, -1, 0);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to free the cluster and L1 "
                         "table");
        goto out;
    }
    if (sn.l1_size) {
        qcow2_free_clusters(bs, sn.l1_table_offset, (int64_t)sn.l1_size * 8,
                            QCOW2_DISCARD_SNAPSHOT);
    }
    /* What only the deleted snapshot shared is private again. */
    ret = update_refcounts_via_l1(bs, s->l1_table, s->l1_size, 0,
                                  s->hi.h.l1_table_offset);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Failed to update snapshot status in "
                         "disk");
    }
out:
    snapshot_clear(&sn);
    return ret;
}

int qcow2_snapshot_delete(BlockDriverState *bs, const char *id,
                          const char *name, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    co_mutex_lock(&s->lock);
    qcow2_quiesce_data_io(bs);   /* no unlocked transfer spans the change */
    ret = do_delete(bs, id, name, errp);
    co_mutex_unlock(&s->lock);
    return ret;
}

int qcow2_snapshot_list(BlockDriverState *bs, QBSnapshotInfo **psn)
{
    BDRVQcow2State *s = bs->opaque;
    QBSnapshotInfo *out;

    *psn = NULL;
    if (!s->nb_snapshots) {
        return 0;
    }
    out = g_new0(QBSnapshotInfo, s->nb_snapshots);
    for (uint32_t i = 0; i < s->nb_snapshots; i++) {
        Qcow2Snapshot *sn = &s->snapshots[i];
        g_strlcpy(out[i].id_str, sn->id_str, sizeof(out[i].id_str));
        g_strlcpy(out[i].name, sn->name, sizeof(out[i].name));
        out[i].vm_state_size = sn->vm_state_size;
        out[i].date_sec = sn->date_sec;
        out[i].date_nsec = sn->date_nsec;
        out[i].vm_clock_nsec = sn->vm_clock_nsec;
        out[i].icount = sn->icount;
    }
    *psn = out;
    return s->nb_snapshots;
}
