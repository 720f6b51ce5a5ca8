/*
 * qcow2 data path: guest reads (backing files, zero and compressed
 * clusters), writes with copy-on-write and run allocation, compressed
 * writes, write-zeroes, discard, block status, flush and resize.  Entered
 * from the vtable in qcow2.c; metadata helpers live in cluster.c and
 * refcount.c.
 *
 * Concurrency: s->lock (a CoMutex) is held for every metadata lookup or
 * change.  Reads drop it for the data transfer (except of compressed
 * clusters); writes keep it for the whole request, so a cluster's
 * copy-on-write never races with another write to the same cluster.
 */
#include "qcow2.h"
#include "bitmap.h"

/* ------------------------------------------------------------------ */
/* Reads                                                               */

/* Guest bytes [offset, offset+len) of the backing file, zero past its end. */
static int read_backing(BlockDriverState *bs, int64_t offset, int64_t len,
                        IOVector *qiov, size_t qoff)
{
    int64_t blen, n;
    int ret;

    if (!bs->backing) {
        qiov_memset(qiov, qoff, 0, len);
        return 0;
    }
    blen = bdrv_getlength(bs->backing->bs);
    if (blen < 0) {
        return blen;
    }
    n = offset < blen ? MIN(len, blen - offset) : 0;
    if (n > 0) {
        IOVector sl;
        qiov_init_slice(&sl, qiov, qoff, n);
        BLKDBG_EVENT(bs->file, BLKDBG_EV_READ_BACKING_AIO);
        ret = bdrv_co_preadv(bs->backing, offset, n, &sl, 0);
        qiov_destroy(&sl);
        if (ret < 0) {
            return ret;
        }
    }
    if (n < len) {
        qiov_memset(qiov, qoff + n, 0, len - n);
    }
    return 0;
}

static int read_compressed(BlockDriverState *bs, uint64_t l2_entry,
                           int64_t offset, int64_t len, IOVector *qiov,
                           size_t qoff)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t coff;
    int csize, ret;
    int64_t flen;
    g_autofree uint8_t *in = NULL, *out = NULL;

    qcow2_parse_compressed_l2_entry(s, l2_entry, &coff, &csize);
    flen = bdrv_getlength(bs->file->bs);
    if (flen < 0) {
        return flen;
    }
    if ((int64_t)coff >= flen) {
        return -EIO;
    }
    if ((int64_t)(coff + csize) > flen) {
        csize = flen - coff;   /* the last sector may be short */
    }
    in = g_try_malloc(csize);
    out = g_try_malloc(s->cluster_size);
    if (!in || !out) {
        return -ENOMEM;
    }
    BLKDBG_EVENT(bs->file, BLKDBG_EV_READ_COMPRESSED);
    ret = bdrv_co_pread(bs->file, coff, csize, in, 0);
    if (ret < 0) {
        return ret;
    }
    ret = qcow2_decompress(s->compression_type, out, s->cluster_size, in,
                           csize);
    if (ret < 0) {
        return -EIO;
    }
    qiov_from_buf(qiov, qoff, out + qcow2_offset_into_cluster(s, offset), len);
    return 0;
}

/* Read with s->lock held by the caller iff locked. */
static int qcow2_read(BlockDriverState *bs, int64_t offset, int64_t bytes,
                      IOVector *qiov, size_t qoff, bool locked)
{
    BDRVQcow2State *s = bs->opaque;
    int ret = 0;

    while (bytes > 0) {
        uint64_t cur = bytes, host;
        Qcow2SubclusterType type;

        if (!locked) {
            co_mutex_lock(&s->lock);
        }
        ret = qcow2_get_host_offset(bs, offset, &cur, &host, &type);
        if (ret == 0 && type == QCOW2_SC_COMPRESSED) {
            /* Decompress under the lock: the cluster may be freed. */
            ret = read_compressed(bs, host, offset, cur, qiov, qoff);
            type = QCOW2_SC_INVALID;   /* done */
        }
        if (!locked) {
            co_mutex_unlock(&s->lock);
        }
        if (ret < 0) {
            return ret;
        }
        switch (type) {
        case QCOW2_SC_ZERO_PLAIN:
        case QCOW2_SC_ZERO_ALLOC:
            qiov_memset(qiov, qoff, 0, cur);
            break;
        case QCOW2_SC_UNALLOCATED_PLAIN:
        case QCOW2_SC_UNALLOCATED_ALLOC:
            ret = read_backing(bs, offset, cur, qiov, qoff);
            break;
        case QCOW2_SC_NORMAL: {
            IOVector sl;
            qiov_init_slice(&sl, qiov, qoff, cur);
            BLKDBG_EVENT(bs->file, BLKDBG_EV_READ_AIO);
            ret = bdrv_co_preadv(s->data_file, host, cur, &sl, 0);
            qiov_destroy(&sl);
            break;
        }
        default:
            break;
        }
        if (ret < 0) {
            return ret;
        }
        offset += cur;
        qoff += cur;
        bytes -= cur;
    }
    return 0;
}

int coroutine_fn qcow2_co_preadv(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes, IOVector *qiov,
                                        BdrvRequestFlags flags)
{
    BDRVQcow2State *s = bs->opaque;
    if (s->broken) {
        return -ENOMEDIUM;   /* QEMU detaches the driver: "No medium" */
    }
    return qcow2_read(bs, offset, bytes, qiov, 0, false);
}

/* ------------------------------------------------------------------ */
/* Writes                                                              */

/* Current guest content of [off, off+len) (inside one cluster, whose L2
 * entry and bitmap are given) into buf.  Lock held. */
static int read_cluster_content(BlockDriverState *bs, int64_t cluster_off,
                                uint64_t entry, uint64_t bitmap,
                                int64_t off, int64_t len, uint8_t *buf)
{
    BDRVQcow2State *s = bs->opaque;
    IOVector q;
    int ret = 0;

    if (len <= 0) {
        return 0;
    }
    qiov_init_buf(&q, buf, len);
    if (entry & QCOW_OFLAG_COMPRESSED) {
        return read_compressed(bs, entry, cluster_off + off, len, &q, 0);
    }
    int64_t pos = off;
    while (pos < off + len && ret == 0) {
        int sc = pos >> s->subcluster_bits;
        Qcow2SubclusterType t = qcow2_get_subcluster_type(s, entry, bitmap,
                                                          sc);
        int64_t end = MIN(off + len, (int64_t)(sc + 1) << s->subcluster_bits);
        switch (t) {
        case QCOW2_SC_NORMAL:
            ret = bdrv_co_pread(s->data_file,
                                (entry & L2E_OFFSET_MASK) + pos, end - pos,
                                buf + (pos - off), 0);
            break;
        case QCOW2_SC_UNALLOCATED_PLAIN:
        case QCOW2_SC_UNALLOCATED_ALLOC:
            ret = read_backing(bs, cluster_off + pos, end - pos, &q,
                               pos - off);
            break;
        case QCOW2_SC_INVALID:
            ret = -EIO;
            break;
        default:
            memset(buf + (pos - off), 0, end - pos);
        }
        pos = end;
    }
    return ret < 0 ? ret : 0;
}

static int64_t alloc_data_cluster(BlockDriverState *bs, int64_t guest_off)
{
    BDRVQcow2State *s = bs->opaque;
    if (qcow2_has_data_file(s)) {
        /* External data files map 1:1. */
        return qcow2_start_of_cluster(s, guest_off);
    }
    return qcow2_alloc_clusters(bs, s->cluster_size);
}

static uint64_t sc_range_mask(BDRVQcow2State *s, int64_t a, int64_t b)
{
    int first = a >> s->subcluster_bits;
    int last = (b - 1) >> s->subcluster_bits;
    uint64_t m = 0;
    for (int i = first; i <= last; i++) {
        m |= UINT64_C(1) << i;
    }
    return m;
}

static int write_data(BlockDriverState *bs, int64_t host, int64_t len,
                      IOVector *q, BdrvRequestFlags flags)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;
    if (!qcow2_has_data_file(s)) {
        ret = qcow2_pre_write_overlap_check(bs, 0, host, len);
        if (ret < 0) {
            return ret;
        }
    }
    return bdrv_co_pwritev(s->data_file, host, len, q, flags & BDRV_REQ_FUA);
}

/*
 * Write guest bytes [offset, offset+len) inside one cluster from qiov at
 * qoff (or zeros if qiov is NULL).  Lock held.
 */
static int write_cluster(BlockDriverState *bs, int64_t offset, int64_t len,
                         IOVector *qiov, size_t qoff, BdrvRequestFlags flags)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t cl = qcow2_start_of_cluster(s, offset);
    int64_t a = offset - cl, b = a + len;
    uint64_t *slice;
    int idx, ret;
    uint64_t entry, bitmap, host;
    bool compressed, inplace;
    int64_t wa, wb, new_host;
    uint8_t *buf = NULL;
    IOVector q;

    ret = qcow2_get_l2_slice(bs, offset, true, &slice, &idx);
    if (ret < 0) {
        return ret;
    }
    entry = qcow2_l2_entry(s, slice, idx);
    bitmap = qcow2_l2_bitmap(s, slice, idx);
    host = entry & L2E_OFFSET_MASK;
    compressed = entry & QCOW_OFLAG_COMPRESSED;
    bool has = qcow2_entry_has_host(s, entry);
    inplace = has && (entry & QCOW_OFLAG_COPIED);
    if (!compressed && qcow2_offset_into_cluster(s, host)) {
        qcow2_cache_put(s->l2_table_cache, (void **)&slice);
        qcow2_signal_corruption(bs, true, -1, -1, "Cluster allocation offset "
                                "%#" PRIx64 " unaligned", host);
        return -EIO;
    }

    /* The range to write: [wa, wb) within the cluster. */
    if (!s->extended_l2) {
        if (inplace && !(entry & QCOW_OFLAG_ZERO)) {
            wa = a;
            wb = b;
        } else {
            wa = 0;
            wb = s->cluster_size;
        }
    } else if (compressed || (has && !inplace)) {
        wa = 0;
        wb = s->cluster_size;
    } else {
        int sa = QB_ALIGN_DOWN(a, s->subcluster_size);
        int sb = QB_ALIGN_UP(b, s->subcluster_size);
        wa = sa;
        wb = sb;
        if (inplace) {
            if (qcow2_get_subcluster_type(s, entry, bitmap, a >>
                                          s->subcluster_bits) ==
                QCOW2_SC_NORMAL) {
                wa = a;
            }
            if (qcow2_get_subcluster_type(s, entry, bitmap, (b - 1) >>
                                          s->subcluster_bits) ==
                QCOW2_SC_NORMAL) {
                wb = b;
            }
        }
    }

    new_host = inplace ? (int64_t)host : -1;
    if (!inplace) {
        new_host = alloc_data_cluster(bs, offset);
        if (new_host < 0) {
            qcow2_cache_put(s->l2_table_cache, (void **)&slice);
            return new_host;
        }
    }

    if (wa == a && wb == b && qiov) {
        qiov_init_slice(&q, qiov, qoff, len);
        BLKDBG_EVENT(bs->file, BLKDBG_EV_WRITE_AIO);
        ret = write_data(bs, new_host + a, len, &q, flags);
        qiov_destroy(&q);
    } else {
        buf = qb_try_memalign(QB_MEM_ALIGN, wb - wa);
        if (!buf) {
            ret = -ENOMEM;
            goto out;
        }
        /* Guest data merged with the copied-on-write parts of the cluster
         * goes out as one write, as QEMU's merged COW does. */
        if (wa < a || b < wb) {
            BLKDBG_EVENT(bs->file, BLKDBG_EV_COW_READ);
        }
        ret = read_cluster_content(bs, cl, entry, bitmap, wa, a - wa, buf);
        if (ret == 0) {
            ret = read_cluster_content(bs, cl, entry, bitmap, b, wb - b,
                                       buf + (b - wa));
        }
        if (ret < 0) {
            goto out;
        }
        if (qiov) {
            qiov_to_buf(qiov, qoff, buf + (a - wa), len);
        } else {
            memset(buf + (a - wa), 0, len);
        }
        qiov_init_buf(&q, buf, wb - wa);
        BLKDBG_EVENT(bs->file, qiov ? BLKDBG_EV_COW_WRITE : BLKDBG_EV_WRITE_AIO);
        ret = write_data(bs, new_host + wa, wb - wa, &q, flags);
    }
    if (ret < 0) {
        goto out;
    }

    /* Metadata: point the entry at the (new) cluster. */
    {
        uint64_t new_entry = new_host | QCOW_OFLAG_COPIED;
        uint64_t new_bitmap = bitmap;
        if (s->extended_l2) {
            if (compressed || (has && !inplace)) {
                new_bitmap = 0xffffffffu;
            } else {
                uint64_t m = sc_range_mask(s, wa, wb);
                new_bitmap = (bitmap | m) & ~(m << 32);
            }
        }
        if (new_entry != entry || new_bitmap != bitmap) {
            qcow2_set_l2_entry(s, slice, idx, new_entry);
            if (s->extended_l2) {
                qcow2_set_l2_bitmap(s, slice, idx, new_bitmap);
            }
            qcow2_cache_entry_mark_dirty(s->l2_table_cache, slice);
        }
        qcow2_cache_put(s->l2_table_cache, (void **)&slice);
        if (!inplace && qcow2_entry_holds(s, entry)) {
            qcow2_free_any_cluster(bs, entry, QCOW2_DISCARD_NEVER);
        }
    }
    qb_vfree(buf);
    return 0;

out:
    qb_vfree(buf);
    qcow2_cache_put(s->l2_table_cache, (void **)&slice);
    if (!inplace && new_host >= 0 && !qcow2_has_data_file(s)) {
        qcow2_free_clusters(bs, new_host, s->cluster_size,
                            QCOW2_DISCARD_NEVER);
    }
    return ret;
}

/*
 * Fast path for whole clusters that hold nothing (unallocated or plain
 * zero, so nothing needs copying): allocate them as one contiguous run and
 * write the data in one request.  Sets *done to the bytes written (0 if
 * fewer than two such clusters start at offset).  Lock held.
 */
static int write_run(BlockDriverState *bs, int64_t offset, int64_t bytes,
                     IOVector *qiov, size_t qoff, BdrvRequestFlags flags,
                     int64_t *done)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t *slice;
    int idx, n = 0, ret;
    int64_t host;
    IOVector q;

    *done = 0;
    ret = qcow2_get_l2_slice(bs, offset, true, &slice, &idx);
    if (ret < 0) {
        return ret;
    }
    while (idx + n < s->l2_slice_size &&
           ((int64_t)(n + 1) << s->cluster_bits) <= bytes) {
        uint64_t e = qcow2_l2_entry(s, slice, idx + n);
        if ((e & ~QCOW_OFLAG_ZERO) ||
            (s->extended_l2 &&
             (qcow2_l2_bitmap(s, slice, idx + n) & 0xffffffffu))) {
            break;
        }
        n++;
    }
    if (n < 2) {
        qcow2_cache_put(s->l2_table_cache, (void **)&slice);
        return 0;
    }
    host = qcow2_has_data_file(s) ? offset :
           qcow2_alloc_clusters(bs, (int64_t)n << s->cluster_bits);
    if (host < 0) {
        qcow2_cache_put(s->l2_table_cache, (void **)&slice);
        return host;
    }
    qiov_init_slice(&q, qiov, qoff, (int64_t)n << s->cluster_bits);
    BLKDBG_EVENT(bs->file, BLKDBG_EV_WRITE_AIO);
    ret = write_data(bs, host, (int64_t)n << s->cluster_bits, &q, flags);
    qiov_destroy(&q);
    if (ret < 0) {
        qcow2_cache_put(s->l2_table_cache, (void **)&slice);
        if (!qcow2_has_data_file(s)) {
            qcow2_free_clusters(bs, host, (int64_t)n << s->cluster_bits,
                                QCOW2_DISCARD_NEVER);
        }
        return ret;
    }
    for (int i = 0; i < n; i++) {
        qcow2_set_l2_entry(s, slice, idx + i,
                           (host + ((int64_t)i << s->cluster_bits)) |
                           QCOW_OFLAG_COPIED);
        if (s->extended_l2) {
            qcow2_set_l2_bitmap(s, slice, idx + i, 0xffffffffu);
        }
    }
    qcow2_cache_entry_mark_dirty(s->l2_table_cache, slice);
    qcow2_cache_put(s->l2_table_cache, (void **)&slice);
    *done = (int64_t)n << s->cluster_bits;
    return 0;
}

static int qcow2_write_locked(BlockDriverState *bs, int64_t offset,
                              int64_t bytes, IOVector *qiov,
                              BdrvRequestFlags flags)
{
    BDRVQcow2State *s = bs->opaque;
    size_t qoff = 0;
    int ret;

    ret = qcow2_mark_dirty(bs);
    if (ret < 0) {
        return ret;
    }
    while (bytes > 0) {
        int64_t cur = MIN(bytes, s->cluster_size -
                          qcow2_offset_into_cluster(s, offset));
        if (qiov && !qcow2_offset_into_cluster(s, offset) &&
            bytes >= 2 * (int64_t)s->cluster_size) {
            int64_t done;
            ret = write_run(bs, offset, bytes, qiov, qoff, flags, &done);
            if (ret < 0) {
                return ret;
            }
            if (done) {
                offset += done;
                qoff += done;
                bytes -= done;
                continue;
            }
        }
        ret = write_cluster(bs, offset, cur, qiov, qoff, flags);
        if (ret < 0) {
            return ret;
        }
        offset += cur;
        qoff += cur;
        bytes -= cur;
    }
    return 0;
}

int coroutine_fn qcow2_co_pwritev(BlockDriverState *bs, int64_t offset,
                                         int64_t bytes, IOVector *qiov,
                                         BdrvRequestFlags flags)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    if (s->broken) {
        return -ENOMEDIUM;   /* QEMU detaches the driver: "No medium" */
    }
    if (flags & BDRV_REQ_WRITE_COMPRESSED) {
        return qcow2_co_pwritev_compressed(bs, offset, bytes, qiov);
    }
    co_mutex_lock(&s->lock);
    ret = qcow2_write_locked(bs, offset, bytes, qiov, flags);
    co_mutex_unlock(&s->lock);
    return ret;
}

static int compressed_write_cluster(BlockDriverState *bs, int64_t offset,
                                    int64_t len, IOVector *qiov, size_t qoff)
{
    BDRVQcow2State *s = bs->opaque;
    g_autofree uint8_t *in = g_malloc0(s->cluster_size);
    g_autofree uint8_t *out = g_malloc(s->cluster_size);
    ssize_t csize;
    uint64_t *slice;
    int idx, ret;
    int64_t coff;

    qiov_to_buf(qiov, qoff, in, len);
    csize = qcow2_compress(s->compression_type, out, s->cluster_size - 1,
                           in, s->cluster_size);
    if (csize == -ENOMEM || csize >= s->cluster_size) {
        /* Incompressible: store it normally. */
        return qcow2_write_locked(bs, offset, len, qiov, 0);
    }
    if (csize < 0) {
        return -EIO;
    }
    ret = qcow2_mark_dirty(bs);
    if (ret < 0) {
        return ret;
    }
    ret = qcow2_get_l2_slice(bs, offset, true, &slice, &idx);
    if (ret < 0) {
        return ret;
    }
    uint64_t old = qcow2_l2_entry(s, slice, idx);
    coff = qcow2_alloc_bytes(bs, csize);
    if (coff < 0) {
        qcow2_cache_put(s->l2_table_cache, (void **)&slice);
        return coff;
    }
    /* QEMU raises this when the entry is decided, before the data write. */
    BLKDBG_EVENT(bs->file, BLKDBG_EV_L2_UPDATE_COMPRESSED);
    ret = qcow2_pre_write_overlap_check(bs, 0, coff, csize);
    if (ret == 0) {
        BLKDBG_EVENT(bs->file, BLKDBG_EV_WRITE_COMPRESSED);
        ret = bdrv_co_pwrite(bs->file, coff, csize, out, 0);
    }
    if (ret < 0) {
        qcow2_cache_put(s->l2_table_cache, (void **)&slice);
        return ret;
    }
    uint64_t nb_sectors = ((coff + csize - 1) >> 9) - (coff >> 9);
    uint64_t entry = QCOW_OFLAG_COMPRESSED | (uint64_t)coff |
                     (nb_sectors << s->csize_shift);
    qcow2_set_l2_entry(s, slice, idx, entry);
    if (s->extended_l2) {
        qcow2_set_l2_bitmap(s, slice, idx, 0);
    }
    qcow2_cache_entry_mark_dirty(s->l2_table_cache, slice);
    qcow2_cache_put(s->l2_table_cache, (void **)&slice);
    if (qcow2_entry_holds(s, old)) {
        qcow2_free_any_cluster(bs, old, QCOW2_DISCARD_NEVER);
    }
    return 0;
}

int coroutine_fn qcow2_co_pwritev_compressed(BlockDriverState *bs,
                                                    int64_t offset,
                                                    int64_t bytes,
                                                    IOVector *qiov)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t size = s->hi.h.size;
    size_t qoff = 0;
    int ret = 0;

    if (s->broken) {
        return -ENOMEDIUM;   /* QEMU detaches the driver: "No medium" */
    }
    if (qcow2_has_data_file(s)) {
        return -ENOTSUP;
    }
    if (qcow2_offset_into_cluster(s, offset) ||
        (qcow2_offset_into_cluster(s, bytes) && offset + bytes != size)) {
        return -EINVAL;
    }
    co_mutex_lock(&s->lock);
    while (bytes > 0 && ret == 0) {
        int64_t cur = MIN(bytes, s->cluster_size);
        ret = compressed_write_cluster(bs, offset, cur, qiov, qoff);
        offset += cur;
        qoff += cur;
        bytes -= cur;
    }
    co_mutex_unlock(&s->lock);
    return ret;
}

/* Does the whole cluster at cl read as zeros right now?  Lock held. */
static bool cluster_reads_zero(BlockDriverState *bs, int64_t cl)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t cur = s->cluster_size, host;
    Qcow2SubclusterType t;

    if (cl + s->cluster_size > (int64_t)s->hi.h.size &&
        cl >= (int64_t)s->hi.h.size) {
        return false;
    }
    if (qcow2_get_host_offset(bs, cl, &cur, &host, &t) < 0 ||
        cur != (uint64_t)s->cluster_size) {
        return false;
    }
    if (t == QCOW2_SC_ZERO_PLAIN || t == QCOW2_SC_ZERO_ALLOC) {
        return true;
    }
    if (t == QCOW2_SC_UNALLOCATED_PLAIN || t == QCOW2_SC_UNALLOCATED_ALLOC) {
        if (!bs->backing) {
            return true;
        }
        int64_t blen = bdrv_getlength(bs->backing->bs);
        return blen >= 0 && cl >= blen;
    }
    return false;
}

/* Make the subclusters of [a, b) (aligned) of cluster cl read as zero. */
static int zero_in_cluster(BlockDriverState *bs, int64_t cl, int64_t a,
                           int64_t b, bool unmap)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t *slice;
    int idx, ret;

    /* v2 (no zero flag, only reached without a backing file): an
     * unallocated cluster reads as zero, so deallocate, as QEMU does; that
     * never needs a new L2 table. */
    bool v2 = s->hi.h.version < 3;

    ret = qcow2_get_l2_slice(bs, cl, !v2, &slice, &idx);
    if (ret < 0 || !slice) {
        return ret;
    }
    uint64_t entry = qcow2_l2_entry(s, slice, idx);
    uint64_t bitmap = qcow2_l2_bitmap(s, slice, idx);
    uint64_t host = entry & L2E_OFFSET_MASK;
    bool compressed = entry & QCOW_OFLAG_COMPRESSED;
    bool whole = a == 0 && b == s->cluster_size;
    bool has = qcow2_entry_has_host(s, entry);
    bool keep = has && (entry & QCOW_OFLAG_COPIED) && !(unmap && whole) &&
                !v2;
    uint64_t new_entry, new_bitmap = 0;

    if (!whole && (compressed || (has && !(entry & QCOW_OFLAG_COPIED)))) {
        /* Part of a shared or compressed cluster: copy-on-write zeros. */
        qcow2_cache_put(s->l2_table_cache, (void **)&slice);
        return write_cluster(bs, cl + a, b - a, NULL, 0, 0);
    }
    if (v2) {
        new_entry = 0;
    } else if (!s->extended_l2) {
        new_entry = (keep ? host | QCOW_OFLAG_COPIED : 0) | QCOW_OFLAG_ZERO;
    } else {
        uint64_t m = sc_range_mask(s, a, b);
        new_entry = keep ? host | QCOW_OFLAG_COPIED : 0;
        new_bitmap = keep ? bitmap : (whole ? 0 : bitmap & ~0xffffffffULL);
        new_bitmap = (new_bitmap & ~m) | (m << 32);
    }
    qcow2_set_l2_entry(s, slice, idx, new_entry);
    if (s->extended_l2) {
        qcow2_set_l2_bitmap(s, slice, idx, new_bitmap);
    }
    qcow2_cache_entry_mark_dirty(s->l2_table_cache, slice);
    qcow2_cache_put(s->l2_table_cache, (void **)&slice);
    if (!keep && qcow2_entry_holds(s, entry)) {
        qcow2_free_any_cluster(bs, entry, QCOW2_DISCARD_REQUEST);
    }
    return 0;
}

int coroutine_fn qcow2_co_pwrite_zeroes(BlockDriverState *bs,
                                               int64_t offset, int64_t bytes,
                                               BdrvRequestFlags flags)
{
    BDRVQcow2State *s = bs->opaque;
    bool unmap = flags & BDRV_REQ_MAY_UNMAP;
    int ret = 0;

    if (s->broken) {
        return -ENOMEDIUM;   /* QEMU detaches the driver: "No medium" */
    }
    if (s->hi.h.version < 3 && bs->backing) {
        /* Deallocating would expose the backing file. */
        return -ENOTSUP;
    }
    co_mutex_lock(&s->lock);
    ret = qcow2_mark_dirty(bs);
    while (ret == 0 && bytes > 0) {
        int64_t cl = qcow2_start_of_cluster(s, offset);
        int64_t a = offset - cl;
        int64_t b = MIN((int64_t)s->cluster_size, a + bytes);
        int64_t sa = QB_ALIGN_DOWN(a, s->subcluster_size);
        int64_t sb = QB_ALIGN_UP(b, s->subcluster_size);
        bool at_end = cl + b >= (int64_t)s->hi.h.size;

        if (a == sa && (b == sb || at_end)) {
            ret = zero_in_cluster(bs, cl, sa, sb, unmap);
        } else if (cluster_reads_zero(bs, cl)) {
            ret = zero_in_cluster(bs, cl, 0, s->cluster_size, unmap);
        } else if (flags & BDRV_REQ_NO_FALLBACK) {
            ret = -ENOTSUP;
        } else {
            ret = write_cluster(bs, offset, b - a, NULL, 0, 0);
        }
        offset += b - a;
        bytes -= b - a;
    }
    co_mutex_unlock(&s->lock);
    return ret;
}

int coroutine_fn qcow2_co_pdiscard(BlockDriverState *bs,
                                          int64_t offset, int64_t bytes)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t end = offset + bytes;
    int ret = 0;

    if (s->broken) {
        return -ENOMEDIUM;   /* QEMU detaches the driver: "No medium" */
    }
    if (s->hi.h.version < 3 && bs->backing) {
        /* v2 cannot make the range read as zero, and exposing the backing
         * file's data would change guest content: do nothing (as QEMU). */
        return 0;
    }
    /* Only whole clusters (or the partial one at the end of the image). */
    offset = QB_ALIGN_UP(offset, s->cluster_size);
    if (end < (int64_t)s->hi.h.size) {
        end = QB_ALIGN_DOWN(end, s->cluster_size);
    } else {
        end = QB_ALIGN_UP(end, s->cluster_size);
    }
    co_mutex_lock(&s->lock);
    for (int64_t cl = offset; cl < end && ret == 0; cl += s->cluster_size) {
        /* v3 keeps discarded clusters reading as zero, as QEMU does. */
        bool zero = s->hi.h.version >= 3;
        uint64_t *slice;
        int idx;
        ret = qcow2_get_l2_slice(bs, cl, zero, &slice, &idx);
        if (ret < 0 || !slice) {
            continue;
        }
        uint64_t entry = qcow2_l2_entry(s, slice, idx);
        uint64_t bitmap = qcow2_l2_bitmap(s, slice, idx);
        uint64_t new_entry = 0, new_bitmap = 0;
        if (zero) {
            if (s->extended_l2) {
                new_bitmap = 0xffffffffULL << 32;
            } else {
                new_entry = QCOW_OFLAG_ZERO;
            }
        }
        if (new_entry != entry || new_bitmap != bitmap) {
            ret = qcow2_mark_dirty(bs);
            qcow2_set_l2_entry(s, slice, idx, new_entry);
            if (s->extended_l2) {
                qcow2_set_l2_bitmap(s, slice, idx, new_bitmap);
            }
            qcow2_cache_entry_mark_dirty(s->l2_table_cache, slice);
        }
        qcow2_cache_put(s->l2_table_cache, (void **)&slice);
        if (qcow2_entry_holds(s, entry)) {
            qcow2_free_any_cluster(bs, entry, QCOW2_DISCARD_REQUEST);
        }
    }
    co_mutex_unlock(&s->lock);
    return ret;
}

int coroutine_fn qcow2_co_flush_to_os(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    if (s->broken) {
        return 0;
    }
    co_mutex_lock(&s->lock);
    ret = qcow2_cache_write(bs, s->l2_table_cache);
    if (ret == 0) {
        ret = qcow2_cache_write(bs, s->refcount_block_cache);
    }
    co_mutex_unlock(&s->lock);
    return ret;
}

int coroutine_fn qcow2_co_block_status(BlockDriverState *bs,
                                              bool want_zero, int64_t offset,
                                              int64_t bytes, int64_t *pnum,
                                              int64_t *map,
                                              BlockDriverState **file)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t cur = bytes, host;
    Qcow2SubclusterType type;
    int ret, status = 0;

    if (s->broken) {
        return -ENOMEDIUM;   /* QEMU detaches the driver: "No medium" */
    }
    co_mutex_lock(&s->lock);
    ret = qcow2_get_host_offset(bs, offset, &cur, &host, &type);
    co_mutex_unlock(&s->lock);
    if (ret < 0) {
        return ret;
    }
    *pnum = cur;
    if (type == QCOW2_SC_NORMAL || type == QCOW2_SC_ZERO_ALLOC ||
        type == QCOW2_SC_UNALLOCATED_ALLOC) {
        *map = host;
        *file = s->data_file->bs;
        status |= BDRV_BLOCK_OFFSET_VALID;
    }
    if (type == QCOW2_SC_ZERO_PLAIN || type == QCOW2_SC_ZERO_ALLOC) {
        status |= BDRV_BLOCK_ZERO;
    } else if (type != QCOW2_SC_UNALLOCATED_PLAIN &&
               type != QCOW2_SC_UNALLOCATED_ALLOC) {
        status |= BDRV_BLOCK_DATA;
    }
    if (type == QCOW2_SC_COMPRESSED) {
        status |= BDRV_BLOCK_COMPRESSED;
    }
    return status;
}

/* ------------------------------------------------------------------ */
/* Resize                                                              */

static int write_header_size(BlockDriverState *bs, uint64_t size)
{
    uint64_t be = GUINT64_TO_BE(size);
    int ret = bdrv_pwrite_sync(bs->file, 24, 8, &be, 0);
    return ret < 0 ? ret : 0;
}

/* Preallocate metadata (and data clusters) for [from, to).  Lock held. */
static int preallocate_metadata(BlockDriverState *bs, int64_t from, int64_t to)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t cl = qcow2_start_of_cluster(s, from);

    /* Like QEMU: per L2 slice, one contiguous run for the unallocated
     * entries (so refcount blocks land after the run, as in its images). */
    while (cl < to) {
        uint64_t *slice;
        int idx, ret, n = 0;
        ret = qcow2_get_l2_slice(bs, cl, true, &slice, &idx);
        if (ret < 0) {
            return ret;
        }
        while (idx + n < s->l2_slice_size &&
               cl + ((int64_t)n << s->cluster_bits) < to &&
               !qcow2_entry_holds(s, qcow2_l2_entry(s, slice, idx + n))) {
            n++;
        }
        if (n == 0) {
            qcow2_cache_put(s->l2_table_cache, (void **)&slice);
            cl += s->cluster_size;
            continue;
        }
        int64_t h = qcow2_has_data_file(s) ? cl :
                    qcow2_alloc_clusters(bs, (int64_t)n << s->cluster_bits);
        if (h < 0) {
            qcow2_cache_put(s->l2_table_cache, (void **)&slice);
            return h;
        }
        for (int i = 0; i < n; i++) {
            qcow2_set_l2_entry(s, slice, idx + i,
                               (h + ((int64_t)i << s->cluster_bits)) |
                               QCOW_OFLAG_COPIED);
            if (s->extended_l2) {
                qcow2_set_l2_bitmap(s, slice, idx + i, 0xffffffffu);
            }
        }
        qcow2_cache_entry_mark_dirty(s->l2_table_cache, slice);
        qcow2_cache_put(s->l2_table_cache, (void **)&slice);
        cl += (int64_t)n << s->cluster_bits;
    }
    return 0;
}

int coroutine_fn qcow2_co_truncate(BlockDriverState *bs, int64_t offset,
                                          bool exact, PreallocMode prealloc,
                                          BdrvRequestFlags flags, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t old = s->hi.h.size;
    const char *what = "Failed to resize the image";
    int ret = 0;

    if (prealloc != PREALLOC_MODE_OFF && prealloc != PREALLOC_MODE_METADATA) {
        static const char *const names[] = { "off", "metadata", "falloc",
                                             "full" };
        error_setg(errp, "Unsupported preallocation mode '%s'",
                   prealloc < PREALLOC_MODE__MAX ? names[prealloc] : "?");
        return -ENOTSUP;
    }
    if (offset & 511) {
        error_setg(errp, "The new size must be a multiple of 512");
        return -EINVAL;
    }
    if (s->nb_snapshots) {
        error_setg(errp, "Can't resize an image which has snapshots");
        return -ENOTSUP;
    }
    if (qcow2_truncate_bitmaps_check(bs, errp) < 0) {   /* bitmap.c */
        return -ENOTSUP;
    }
    if (offset < old && prealloc != PREALLOC_MODE_OFF) {
        error_setg(errp, "Preallocation can't be used for shrinking an image");
        return -EINVAL;
    }
    if (s->broken) {
        error_setg(errp, "Image is corrupt");
        return -EIO;
    }
    co_mutex_lock(&s->lock);
    if (offset < old) {
        /* Drop every cluster past the new end, then the L2 tables. */
        int64_t start = QB_ALIGN_UP(offset, s->cluster_size);
        for (int64_t cl = start; cl < old && ret == 0; cl += s->cluster_size) {
            uint64_t *slice;
            int idx;
            ret = qcow2_get_l2_slice(bs, cl, false, &slice, &idx);
            if (ret < 0 || !slice) {
                continue;
            }
            uint64_t entry = qcow2_l2_entry(s, slice, idx);
            if (entry || qcow2_l2_bitmap(s, slice, idx)) {
                qcow2_set_l2_entry(s, slice, idx, 0);
                if (s->extended_l2) {
                    qcow2_set_l2_bitmap(s, slice, idx, 0);
                }
                qcow2_cache_entry_mark_dirty(s->l2_table_cache, slice);
            }
            qcow2_cache_put(s->l2_table_cache, (void **)&slice);
            if (qcow2_entry_holds(s, entry)) {
                qcow2_free_any_cluster(bs, entry, QCOW2_DISCARD_ALWAYS);
            }
        }
        uint64_t keep = qcow2_l1_size_for(s->cluster_bits, s->extended_l2,
                                          offset);
        for (uint64_t i = keep; i < s->l1_size && ret == 0; i++) {
            uint64_t l2 = s->l1_table[i] & L1E_OFFSET_MASK;
            if (!l2) {
                continue;
            }
            ret = qcow2_cache_write(bs, s->l2_table_cache);
            for (int k = 0; ret == 0 && k < s->l2_size / s->l2_slice_size;
                 k++) {
                qcow2_cache_discard(s->l2_table_cache, l2 + (uint64_t)k *
                                    s->l2_slice_size * s->l2_entry_bytes);
            }
            s->l1_table[i] = 0;
            if (ret == 0) {
                ret = qcow2_write_l1_entry(bs, i);
            }
            if (ret == 0) {
                qcow2_free_clusters(bs, l2, s->cluster_size,
                                    QCOW2_DISCARD_ALWAYS);
            }
        }
    } else if (offset > old) {
        uint64_t need = qcow2_l1_size_for(s->cluster_bits, s->extended_l2,
                                          offset);
        ret = qcow2_grow_l1_table(bs, need, true);
        if (ret < 0) {
            /* QEMU's message for this step (the caller prefixes nothing). */
            what = "Failed to grow the L1 table";
        }
        if (ret == 0 && prealloc == PREALLOC_MODE_METADATA) {
            ret = preallocate_metadata(bs, old, offset);
        }
        if (ret == 0 && prealloc == PREALLOC_MODE_METADATA &&
            !qcow2_has_data_file(s)) {
            /* The file covers the preallocated clusters (reads as zero). */
            int64_t flen = bdrv_getlength(bs->file->bs);
            int64_t end = (int64_t)s->free_cluster_index << s->cluster_bits;
            if (flen >= 0 && end > flen) {
                ret = bdrv_co_truncate(bs->file, end, false,
                                       PREALLOC_MODE_OFF, 0, NULL);
            }
        }
    }
    if (ret == 0) {
        ret = qcow2_flush_caches(bs);
    }
    if (ret == 0) {
        ret = write_header_size(bs, offset);
    }
    if (ret == 0 && offset < old) {
        /* Give back the file's tail past the last used cluster. */
        int64_t flen = bdrv_getlength(bs->file->bs);
        int64_t last = flen > 0 ? qcow2_size_to_clusters(s, flen) - 1 : -1;
        uint64_t rc = 0;
        while (last >= 0 && qcow2_get_refcount(bs, last, &rc) == 0 &&
               rc == 0) {
            last--;
        }
        if (flen > 0 && (last + 1) * s->cluster_size < flen &&
            bdrv_co_truncate(bs->file, (last + 1) * s->cluster_size, false,
                             PREALLOC_MODE_OFF, 0, NULL) < 0) {
            warn_report("Failed to truncate the tail of the image");
        }
    }
    if (ret == 0) {
        s->hi.h.size = offset;
        s->l1_vm_state_index = qcow2_l1_size_for(s->cluster_bits,
                                                 s->extended_l2, offset);
        bs->total_sectors = offset / BDRV_SECTOR_SIZE;
    }
    co_mutex_unlock(&s->lock);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "%s", what);
    }
    return ret;
}

int64_t qcow2_getlength(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    return s->hi.h.size;
}

int64_t qcow2_get_allocated_file_size(BlockDriverState *bs)
{
    /* As QEMU 7.2: the metadata file only, not an external data file. */
    return bdrv_get_allocated_file_size(bs->file->bs);
}
