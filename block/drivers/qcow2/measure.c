/*
 * qcow2 size measurement (qemu-img measure -O qcow2): the host bytes a new
 * qcow2 image would take for the given create options, either for a
 * virtual size alone or for the data of an input image, plus the space
 * the input's persistent bitmaps would need.
 *
 * The numbers follow qemu-img 7.2 so that tools sizing LVs or files from
 * them get the same answers: "fully allocated" is the data of every
 * cluster plus header, L2 tables and L1 table rounded to whole tables,
 * and refcount blocks/table found as a fixed point (refcount metadata is
 * itself refcounted).  "required" is that metadata plus only the data
 * clusters the input actually has (or none for --size; all of them when
 * preallocated or when a backing file makes sharing unknowable).
 */
#include "qcow2.h"
#include "block/dirty-bitmap.h"
#include "block/options.h"

#define MEASURE_L1E_SIZE        8
#define MEASURE_L2E_NORMAL      8
#define MEASURE_L2E_EXTENDED    16
#define MEASURE_REFTABLE_E_SIZE 8
#define MEASURE_BMTABLE_E_SIZE  8
#define MEASURE_BMDIR_E_SIZE    24  /* fixed part of a directory entry */

/*
 * Bytes of refcount blocks + refcount table needed to count `clusters`
 * host clusters and the refcount clusters themselves: iterate until adding
 * the refcount clusters no longer changes how many are needed.
 */
static uint64_t refcount_meta_size(uint64_t clusters, uint64_t cluster_size,
                                   uint64_t refcount_bits)
{
    uint64_t per_block = cluster_size * 8 / refcount_bits;
    uint64_t per_table = cluster_size / MEASURE_REFTABLE_E_SIZE;
    uint64_t blocks = 0, table = 0, n = 0, last;

    do {
        last = n;
        blocks = QB_DIV_ROUND_UP(clusters + table + blocks, per_block);
        table = QB_DIV_ROUND_UP(blocks, per_table);
        n = clusters + blocks + table;
    } while (n != last);
    return (blocks + table) * cluster_size;
}

/* Host size of an image with every cluster of virtual_size allocated. */
static uint64_t fully_allocated_size(uint64_t virtual_size,
                                     uint64_t cluster_size,
                                     uint64_t refcount_bits, bool extended_l2)
{
    uint64_t size = QB_ALIGN_UP(virtual_size, cluster_size);
    uint64_t l2e = extended_l2 ? MEASURE_L2E_EXTENDED : MEASURE_L2E_NORMAL;
    uint64_t meta = cluster_size;  /* header */
    uint64_t nl2e, nl1e;

    /* L2 tables are whole clusters, so round to full tables. */
    nl2e = QB_ALIGN_UP(size / cluster_size, cluster_size / l2e);
    meta += nl2e * l2e;
    /* One L1 entry per L2 table; the L1 table is whole clusters too. */
    nl1e = QB_ALIGN_UP(nl2e * l2e / cluster_size,
                       cluster_size / MEASURE_L1E_SIZE);
    meta += nl1e * MEASURE_L1E_SIZE;
    meta += refcount_meta_size((meta + size) / cluster_size, cluster_size,
                               refcount_bits);
    return meta + size;
}

/*
 * Space for in_bs's persistent bitmaps in an image with cluster_size:
 * every bitmap fully allocated, its table, and the directory.
 */
static uint64_t bitmaps_size(BlockDriverState *in_bs, uint64_t cluster_size)
{
    uint64_t total = 0, dir = 0;

    for (BdrvDirtyBitmap *bm = bdrv_dirty_bitmap_first(in_bs); bm;
         bm = bdrv_dirty_bitmap_next(bm)) {
        uint64_t bits, clusters;

        if (!bdrv_dirty_bitmap_get_persistent(bm)) {
            continue;
        }
        bits = QB_DIV_ROUND_UP((uint64_t)bdrv_dirty_bitmap_size(bm),
                               bdrv_dirty_bitmap_granularity(bm));
        clusters = QB_DIV_ROUND_UP(QB_DIV_ROUND_UP(bits, 8), cluster_size);
        total += clusters * cluster_size;
        total += QB_ALIGN_UP(clusters * MEASURE_BMTABLE_E_SIZE, cluster_size);
        dir += QB_ALIGN_UP(MEASURE_BMDIR_E_SIZE +
                           strlen(bdrv_dirty_bitmap_name(bm)), 8);
    }
    return total + QB_ALIGN_UP(dir, cluster_size);
}

/* Only a qcow2 v3 source stores persistent bitmaps (QEMU asks the
 * source's driver; no other driver here can). */
static bool source_has_bitmap_support(BlockDriverState *bs)
{
    BDRVQcow2State *s;

    if (bs->drv != &bdrv_qcow2) {
        return false;
    }
    s = bs->opaque;
    return s->hi.h.version >= 3;
}

typedef struct MeasureCo {
    BlockDriverState *bs;
    uint64_t cluster_size;
    int64_t size;
    uint64_t required;
    int ret;
} MeasureCo;

/*
 * Data bytes of the input, whole clusters of the new image: runs that
 * read as zero need nothing, allocated data (anywhere in the chain) is
 * counted from the start of its first cluster to the end of its last.
 */
static void coroutine_fn count_data_entry(void *opaque)
{
    MeasureCo *m = opaque;
    int64_t offset, pnum = 0;

    m->required = 0;
    for (offset = 0; offset < m->size; offset += pnum) {
        int ret = bdrv_co_block_status_above(m->bs, NULL, offset,
                                             m->size - offset, &pnum, NULL,
                                             NULL, NULL);
        if (ret < 0) {
            m->ret = ret;
            return;
        }
        if (pnum <= 0) {
            break;
        }
        if (ret & BDRV_BLOCK_ZERO) {
            continue;
        }
        if ((ret & (BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED)) ==
            (BDRV_BLOCK_DATA | BDRV_BLOCK_ALLOCATED)) {
            /* Continue after the end of this cluster: it is counted. */
            pnum = QB_ALIGN_UP((uint64_t)(offset + pnum), m->cluster_size) -
                   offset;
            m->required += offset % m->cluster_size + pnum;
        }
    }
    m->ret = 0;
}

static const char *const measure_prealloc_names[] = {
    "off", "metadata", "falloc", "full", NULL
};

int qcow2_measure(json_t *opts_in, BlockDriverState *in_bs,
                  BlockMeasureInfo *info, Error **errp)
{
    json_t *opts = json_deep_copy(opts_in);
    g_autofree char *compat = NULL, *enc = NULL, *prealloc_str = NULL;
    g_autofree char *backing = NULL;
    uint64_t cluster_size, refcount_bits, virtual_size, required = 0;
    bool extended_l2;
    int version, prealloc;
    Error *err = NULL;
    int ret = -EINVAL;

    /* LUKS would add its header; without key secrets (qblock takes none)
     * QEMU stops here.  Legacy aes needs no extra space. */
    enc = qb_opt_take_str(opts, "encrypt.format");
    if (enc && g_str_equal(enc, "luks")) {
        error_setg(&err, "Parameter 'encrypt.key-secret' is required for "
                   "cipher");
        goto out;
    }

    cluster_size = qb_opt_take_size(opts, "cluster_size", 64 * KiB, &err);
    if (err) {
        goto out;
    }
    if (cluster_size < 512 || cluster_size > 2 * MiB ||
        !QB_IS_POWER_OF_2(cluster_size)) {
        error_setg(&err, "Cluster size must be a power of two between 512 "
                   "and 2048k");
        goto out;
    }

    compat = qb_opt_take_str(opts, "compat");
    if (!compat || g_str_equal(compat, "1.1")) {
        version = 3;
    } else if (g_str_equal(compat, "0.10")) {
        version = 2;
    } else {
        error_setg(&err, "Invalid compatibility level: '%s'", compat);
        goto out;
    }

    refcount_bits = qb_opt_take_int(opts, "refcount_bits", 16, &err);
    if (err) {
        goto out;
    }
    if (refcount_bits > 64 || !QB_IS_POWER_OF_2(refcount_bits)) {
        error_setg(&err, "Refcount width must be a power of two and may not "
                   "exceed 64 bits");
        goto out;
    }
    if (version < 3 && refcount_bits != 16) {
        error_setg(&err, "Different refcount widths than 16 bits require "
                   "compatibility level 1.1 or above (use compat=1.1 or "
                   "greater)");
        goto out;
    }

    extended_l2 = qb_opt_take_bool(opts, "extended_l2", false, &err);
    if (err) {
        goto out;
    }
    if (extended_l2 && cluster_size < 16 * KiB) {
        error_setg(&err, "Extended L2 entries are only supported with "
                   "cluster sizes of at least 16384 bytes");
        goto out;
    }

    prealloc_str = qb_opt_take_str(opts, "preallocation");
    prealloc = 0;
    if (prealloc_str) {
        prealloc = -1;
        for (int i = 0; measure_prealloc_names[i]; i++) {
            if (g_str_equal(prealloc_str, measure_prealloc_names[i])) {
                prealloc = i;
            }
        }
        if (prealloc < 0) {
            error_setg(&err, "invalid parameter value: %s", prealloc_str);
            goto out;
        }
    }
    backing = qb_opt_take_str(opts, "backing_file");

    /* Only a --size is checked against the L1 limit (an input image's
     * size is not, as in QEMU). */
    virtual_size = QB_ALIGN_UP(qb_opt_take_size(opts, "size", 0, NULL),
                               cluster_size);
    if (QB_DIV_ROUND_UP(virtual_size / cluster_size,
                        cluster_size / (extended_l2 ? MEASURE_L2E_EXTENDED
                                                    : MEASURE_L2E_NORMAL)) *
        MEASURE_L1E_SIZE > QCOW2_MAX_L1_SIZE) {
        error_setg(&err, "The image size is too large (try using a larger "
                   "cluster size)");
        goto out;
    }

    if (in_bs) {
        int64_t ssize = bdrv_getlength(in_bs);

        if (ssize < 0) {
            error_setg_errno(&err, -ssize, "Unable to get image virtual_size");
            ret = ssize;
            goto out;
        }
        virtual_size = QB_ALIGN_UP((uint64_t)ssize, cluster_size);
        if (backing) {
            /* The new backing file may share nothing with the input:
             * assume every cluster is written. */
            required = virtual_size;
        } else {
            MeasureCo m = { .bs = in_bs, .cluster_size = cluster_size,
                            .size = ssize };

            coroutine_run_sync(count_data_entry, &m);
            if (m.ret < 0) {
                error_setg_errno(&err, -m.ret, "Unable to get block status");
                ret = m.ret;
                goto out;
            }
            required = m.required;
        }
    }

    /* falloc/full write every data cluster; metadata is always counted. */
    if (prealloc == PREALLOC_MODE_FALLOC || prealloc == PREALLOC_MODE_FULL) {
        required = virtual_size;
    }

    memset(info, 0, sizeof(*info));
    info->fully_allocated = fully_allocated_size(virtual_size, cluster_size,
                                                 refcount_bits, extended_l2);
    /* All metadata of the full image stays counted (an overestimate);
     * only data clusters the input lacks are left out. */
    info->required = info->fully_allocated - virtual_size + required;
    info->has_bitmaps = version >= 3 && in_bs &&
                        source_has_bitmap_support(in_bs);
    if (info->has_bitmaps) {
        info->bitmaps = bitmaps_size(in_bs, cluster_size);
    }
    ret = 0;

out:
    json_decref(opts);
    if (err) {
        error_propagate(errp, err);
    }
    return ret;
}
