/*
 * qcow2 amend (qemu-img amend): change creation options of an open image
 * in place: compat level (upgrade v2 -> v3, downgrade v3 -> v2 with zero
 * clusters expanded), lazy_refcounts, refcount_bits (refcount structures
 * rewritten in the new width) and size, with qemu-img 7.2's messages for
 * what cannot change.
 *
 * Order of the steps, as QEMU's: upgrade first (later steps may need v3),
 * then refcount width, lazy refcounts and size, downgrade last.  Every
 * refusal is decided before anything is written, so a refused amend leaves
 * the image untouched.  Unlike QEMU 7.2, a downgrade of an image holding
 * persistent bitmaps is refused (v2 cannot carry them; QEMU drops the
 * extension and leaks the bitmap clusters).
 */
#include "qcow2.h"
#include "bitmap.h"
#include "util/coroutine.h"
#include "util/aio.h"

typedef void AmendStatusCB(BlockDriverState *bs, int64_t done, int64_t total,
                           void *opaque);

/* What qemu-img amend accepts for qcow2 (and lists for -o help). */
const CreateOptDesc qcow2_amend_opts[] = {
    { "size", CREATE_OPT_SIZE, "Virtual disk size", NULL },
    { "compat", CREATE_OPT_STRING, "Compatibility level (v2 [0.10] or v3 "
      "[1.1])", NULL },
    { "backing_file", CREATE_OPT_STRING, "File name of a base image", NULL },
    { "backing_fmt", CREATE_OPT_STRING, "Image format of the base image",
      NULL },
    { "data_file", CREATE_OPT_STRING, "File name of an external data file",
      NULL },
    { "data_file_raw", CREATE_OPT_BOOL, "The external data file must stay "
      "valid as a raw image", NULL },
    { "encrypt.keyslot", CREATE_OPT_NUMBER, "Select a single keyslot to "
      "modify explicitly", NULL },
    { "encrypt.state", CREATE_OPT_STRING, "Select new state of affected "
      "keyslots (active/inactive)", NULL },
    { "encrypt.old-secret", CREATE_OPT_STRING, "Select all keyslots that "
      "match this password", NULL },
    { "encrypt.new-secret", CREATE_OPT_STRING, "New secret to set in the "
      "matching keyslots. Empty string to erase", NULL },
    { "encrypt.iter-time", CREATE_OPT_NUMBER, "Time to spend in PBKDF in "
      "milliseconds", NULL },
    { "lazy_refcounts", CREATE_OPT_BOOL, "Postpone refcount updates", NULL },
    { "refcount_bits", CREATE_OPT_NUMBER, "Width of a reference count entry "
      "in bits", NULL },
    { NULL },
};

typedef struct AmendRequest {
    int version;                /* 0: unchanged */
    int lazy;                   /* -1 unchanged, 0 off, 1 on */
    int refcount_order;         /* -1 unchanged */
    int64_t size;               /* -1 unchanged */
    int data_file_raw;          /* -1 unchanged */
} AmendRequest;

static bool parse_bool_opt(const char *v, const char *name, int *out,
                           Error **errp)
{
    if (!strcmp(v, "on")) {
        *out = 1;
    } else if (!strcmp(v, "off")) {
        *out = 0;
    } else {
        error_setg(errp, "Parameter '%s' expects 'on' or 'off'", name);
        return false;
    }
    return true;
}

/* Turn the -o strings into a request; nothing is changed here. */
static int parse_request(BlockDriverState *bs, json_t *opts, AmendRequest *r,
                         Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    const char *key;
    json_t *val;

    *r = (AmendRequest) { .lazy = -1, .refcount_order = -1, .size = -1,
                          .data_file_raw = -1 };
    json_object_foreach(opts, key, val) {
        const char *v = json_is_string(val) ? json_string_value(val) : "";
        if (!strcmp(key, "compat")) {
            if (!strcmp(v, "0.10") || !strcmp(v, "v2")) {
                r->version = 2;
            } else if (!strcmp(v, "1.1") || !strcmp(v, "v3")) {
                r->version = 3;
            } else {
                error_setg(errp, "Unknown compatibility level %s", v);
                return -EINVAL;
            }
        } else if (!strcmp(key, "lazy_refcounts")) {
            if (!parse_bool_opt(v, key, &r->lazy, errp)) {
                return -EINVAL;
            }
        } else if (!strcmp(key, "refcount_bits")) {
            char *end;
            unsigned long long bits = strtoull(v, &end, 10);
            if (*end || !bits || bits > 64 || (bits & (bits - 1))) {
                error_setg(errp, "Refcount width must be a power of two and "
                           "may not exceed 64 bits");
                return -EINVAL;
            }
            r->refcount_order = __builtin_ctzll(bits);
        } else if (!strcmp(key, "size")) {
            char *end;
            double d = g_ascii_strtod(v, &end);
            int shift = 0;
            const char *suffixes = "kmgtpe";
            const char *p = *end ? strchr(suffixes, g_ascii_tolower(*end))
                                 : NULL;
            if (p) {
                shift = 10 * (p - suffixes + 1);
                end++;
            } else if (*end == 'b' || *end == 'B') {
                end++;
            }
            double sz = d * (double)(UINT64_C(1) << shift);
            if (end == v || *end || d < 0 || sz >= 9.2e18) {
                error_setg(errp, "Parameter 'size' expects a non-negative "
                           "number below 2^64");
                return -EINVAL;
            }
            r->size = sz;
        } else if (!strcmp(key, "backing_file") ||
                   !strcmp(key, "backing_fmt")) {
            error_setg(errp, "Cannot amend the backing file");
            error_append_hint(errp, "You can use 'qemu-img rebase' "
                              "instead.\n");
            return -EINVAL;
        } else if (!strcmp(key, "data_file")) {
            if (!qcow2_has_data_file(s)) {
                error_setg(errp, "data-file can only be set for images that "
                           "use an external data file");
                return -EINVAL;
            }
            error_setg(errp, "Changing the data file name is not supported");
            return -ENOTSUP;
        } else if (!strcmp(key, "data_file_raw")) {
            if (!parse_bool_opt(v, key, &r->data_file_raw, errp)) {
                return -EINVAL;
            }
            if (r->data_file_raw && !s->data_file_raw) {
                error_setg(errp, "data-file-raw cannot be set on existing "
                           "images");
                return -EINVAL;
            }
        } else if (g_str_has_prefix(key, "encrypt.")) {
            error_setg(errp, "Can't amend encryption options - encryption "
                       "not present");
            return -EINVAL;
        } else {
            /* The tool filters options; anything else is a creation one. */
            error_setg(errp, "Invalid parameter '%s'", key);
            return -EINVAL;
        }
    }
    return 0;
}

/* Decide every refusal up front (the image is untouched on error). */
static int check_request(BlockDriverState *bs, AmendRequest *r, Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int version = r->version ? r->version : (int)s->hi.h.version;
    int order = r->refcount_order >= 0 ? r->refcount_order
                                       : s->refcount_order;
    bool lazy = r->lazy >= 0 ? r->lazy
                             : !!(s->compatible_features &
                                  QCOW2_COMPAT_LAZY_REFCOUNTS);

    if (version < 3 && order != 4 && r->refcount_order >= 0 &&
        r->refcount_order != s->refcount_order) {
        error_setg(errp, "Refcount widths other than 16 bits require "
                   "compatibility level 1.1 or above (use compat=1.1 or "
                   "greater)");
        return -EINVAL;
    }
    if (version < 3 && lazy && r->lazy == 1) {
        error_setg(errp, "Lazy refcounts only supported with compatibility "
                   "level 1.1 and above (use compat=1.1 or greater)");
        return -EINVAL;
    }
    if (r->size >= 0 && r->size != (int64_t)s->hi.h.size && s->nb_snapshots) {
        error_setg(errp, "Can't resize an image which has snapshots");
        return -ENOTSUP;
    }
    if (version < (int)s->hi.h.version) {
        uint64_t incompat = s->incompatible_features &
                            ~(QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT |
                              QCOW2_INCOMPAT_COMPRESSION);
        /* QEMU refuses a downgrade of a non-16-bit image first (an explicit
         * width change was refused above with its own message). */
        if (order != 4) {
            error_setg(errp, "compat=0.10 requires refcount_bits=16");
            return -ENOTSUP;
        }
        /* v2 snapshot entries cannot describe a different disk size or a
         * VM state of 4 GiB or more. */
        for (uint32_t i = 0; i < s->nb_snapshots; i++) {
            if (s->snapshots[i].vm_state_size > UINT32_MAX ||
                s->snapshots[i].disk_size != s->hi.h.size) {
                error_setg(errp, "Internal snapshots prevent downgrade of "
                           "image");
                return -ENOTSUP;
            }
        }
        if (qcow2_has_data_file(s)) {
            error_setg(errp, "Cannot downgrade an image with a data file");
            return -ENOTSUP;
        }
        if (incompat) {
            error_setg(errp, "Cannot downgrade an image with incompatible "
                       "features %#" PRIx64 " set", incompat);
            return -ENOTSUP;
        }
        if (qcow2_has_bitmaps(bs) || s->hi.has_bitmaps_ext) {
            error_setg(errp, "Cannot downgrade an image with persistent "
                       "dirty bitmaps (compat=0.10 cannot store them)");
            error_append_hint(errp, "Remove them first with 'qemu-img "
                              "bitmap --remove'.\n");
            return -ENOTSUP;
        }
    }
    return 0;
}

/* ---- refcount width change ---- */

/*
 * Rewrite the refcount table and blocks in refcount order new_order: read
 * every refcount, lay out new structures after the end of the file (their
 * own clusters included in what they describe), write them, switch the
 * header in one write, then reload.  The old structures become free space.
 */
static int change_refcount_order(BlockDriverState *bs, int new_order,
                                 AmendStatusCB *cb, void *opaque,
                                 Error **errp)
{
    BDRVQcow2State *s = bs->opaque;
    int64_t file_len = bdrv_getlength(bs->file->bs);
    uint64_t n, meta_start, rb_entries, rt_clusters = 0, rb_count = 0;
    uint64_t new_max = new_order == 6 ? UINT64_MAX
                                      : (UINT64_C(1) << (1 << new_order)) - 1;
    g_autofree uint64_t *refs = NULL;
    g_autofree uint64_t *reftable = NULL;
    g_autofree uint8_t *block = NULL;
    int ret;

    if (file_len < 0) {
        error_setg_errno(errp, -file_len, "Could not get the file size");
        return file_len;
    }
    ret = qcow2_flush_caches(bs);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not flush metadata");
        return ret;
    }
    n = qcow2_size_to_clusters(s, file_len);
    refs = g_try_new0(uint64_t, MAX(n, 1));
    if (!refs) {
        error_setg(errp, "Could not allocate refcount array");
        return -ENOMEM;
    }
    for (uint64_t i = 0; i < n; i++) {
        ret = qcow2_get_refcount(bs, i, &refs[i]);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not read refcount");
            return ret;
        }
        if (refs[i] > new_max) {
            error_setg(errp, "Cannot decrease refcount entry width to %i "
                       "bits: Cluster at offset %#" PRIx64 " has a refcount "
                       "of %" PRIu64, 1 << new_order,
                       (uint64_t)i << s->cluster_bits, refs[i]);
            return -EINVAL;
        }
        /* The old refcount structures die with the switch. */
    }
    for (uint32_t i = 0; i < s->refcount_table_size; i++) {
        uint64_t rb = s->refcount_table[i] & REFT_OFFSET_MASK;
        if (rb && (rb >> s->cluster_bits) < n) {
            refs[rb >> s->cluster_bits] = 0;
        }
    }
    for (uint64_t c = 0; c < s->refcount_table_size * 8 / s->cluster_size;
         c++) {
        uint64_t ci = (s->hi.h.refcount_table_offset >> s->cluster_bits) + c;
        if (ci < n) {
            refs[ci] = 0;
        }
    }

    /* New layout: [old file][refblocks][reftable], sizes to a fixpoint. */
    meta_start = n;
    rb_entries = ((uint64_t)s->cluster_size * 8) >> new_order;
    for (int iter = 0; iter < 16; iter++) {
        uint64_t total = meta_start + rb_count + rt_clusters;
        uint64_t need_rb = QB_DIV_ROUND_UP(total, rb_entries);
        uint64_t need_rt = QB_DIV_ROUND_UP(need_rb * 8, s->cluster_size);
        if (need_rb == rb_count && need_rt == rt_clusters) {
            break;
        }
        rb_count = need_rb;
        rt_clusters = need_rt;
    }
    if (rt_clusters * s->cluster_size > QCOW2_MAX_REFTABLE_SIZE) {
        error_setg(errp, "Refcount table would be too large");
        return -EFBIG;
    }
    uint64_t total = meta_start + rb_count + rt_clusters;
    uint64_t rt_start = meta_start + rb_count;

    reftable = g_new0(uint64_t, rt_clusters * s->cluster_size / 8);
    block = qb_try_memalign(QB_MEM_ALIGN, s->cluster_size);
    if (!block) {
        error_setg(errp, "Could not allocate refcount block");
        return -ENOMEM;
    }
    for (uint64_t b = 0; b < rb_count; b++) {
        uint64_t off = (meta_start + b) << s->cluster_bits;
        memset(block, 0, s->cluster_size);
        for (uint64_t k = 0; k < rb_entries; k++) {
            uint64_t ci = b * rb_entries + k;
            uint64_t v = ci < n ? refs[ci] : ci < total ? 1 : 0;
            if (v) {
                qcow2_refcount_set_entry(block, new_order, k, v);
            }
        }
        ret = bdrv_pwrite(bs->file, off, s->cluster_size, block, 0);
        if (ret < 0) {
            qb_vfree(g_steal_pointer(&block));
            error_setg_errno(errp, -ret, "Could not write refcount block");
            return ret;
        }
        reftable[b] = GUINT64_TO_BE(off);
        if (cb) {
            cb(bs, b + 1, rb_count + 1, opaque);
        }
    }
    qb_vfree(g_steal_pointer(&block));
    ret = bdrv_pwrite(bs->file, rt_start << s->cluster_bits,
                      rt_clusters * s->cluster_size, reftable, 0);
    if (ret == 0) {
        ret = bdrv_flush(bs->file->bs);
    }
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not write refcount table");
        return ret;
    }

    /* Switch: one header write, then reload the in-memory state. */
    ret = qcow2_cache_empty(s->refcount_block_cache);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Refcount cache busy");
        return ret;
    }
    Qcow2Header old = s->hi.h;
    s->hi.h.refcount_order = new_order;
    s->hi.h.refcount_table_offset = rt_start << s->cluster_bits;
    s->hi.h.refcount_table_clusters = rt_clusters;
    ret = qcow2_update_header(bs);
    if (ret < 0) {
        s->hi.h = old;
        error_setg_errno(errp, -ret, "Could not update the header");
        return ret;
    }
    qcow2_refcount_close(bs);
    qcow2_init_geometry(s, s->cluster_bits, new_order, s->extended_l2);
    s->free_cluster_index = 0;
    return qcow2_refcount_init(bs, errp);
}

/* ---- downgrade helpers ---- */

/*
 * v2 has no zero flag: give every zero cluster reachable from the active
 * and the snapshot L1 tables real zeroes (zero-alloc: write them; plain
 * zero: unallocate without a backing file, else allocate a zeroed cluster
 * with as many references as its L2 table has).  Progress is reported per
 * L1 entry, intermediate steps only (qemu-img prints 0% and 100% itself).
 */
static int expand_l1(BlockDriverState *bs, uint64_t *l1, uint32_t l1_size,
                     uint64_t done, uint64_t total, AmendStatusCB *cb,
                     void *opaque)
{
    BDRVQcow2State *s = bs->opaque;
    bool has_backing = s->hi.backing_file || bs->backing;
    g_autofree uint64_t *l2 = g_malloc(s->cluster_size);
    g_autofree uint8_t *zeroes = g_malloc0(s->cluster_size);
    int ret;

    for (uint32_t i = 0; i < l1_size; i++) {
        uint64_t l2_off = l1[i] & L1E_OFFSET_MASK;
        uint64_t l2_rc;
        bool dirty = false;

        if (cb && done + i + 1 < total) {
            cb(bs, done + i + 1, total, opaque);
        }
        if (!l2_off || qcow2_offset_into_cluster(s, l2_off)) {
            continue;
        }
        ret = qcow2_get_refcount(bs, l2_off >> s->cluster_bits, &l2_rc);
        if (ret < 0) {
            return ret;
        }
        ret = bdrv_pread(bs->file, l2_off, s->cluster_size, l2, 0);
        if (ret < 0) {
            return ret;
        }
        for (int j = 0; j < s->l2_size; j++) {
            uint64_t e = GUINT64_FROM_BE(l2[j]);
            uint64_t off = e & L2E_OFFSET_MASK;

            if ((e & QCOW_OFLAG_COMPRESSED) || !(e & QCOW_OFLAG_ZERO)) {
                continue;
            }
            if (!off && !has_backing) {
                e = 0;
            } else {
                if (!off) {
                    int64_t c = qcow2_alloc_clusters(bs, s->cluster_size);
                    if (c < 0) {
                        return c;
                    }
                    off = c;
                    if (l2_rc > 1) {
                        ret = qcow2_update_refcount(bs, off, s->cluster_size,
                                                    l2_rc - 1,
                                                    QCOW2_DISCARD_NEVER);
                        if (ret < 0) {
                            return ret;
                        }
                    }
                    e = off | (l2_rc == 1 ? QCOW_OFLAG_COPIED : 0);
                } else {
                    e &= ~QCOW_OFLAG_ZERO;
                }
                ret = qcow2_pre_write_overlap_check(bs, 0, off,
                                                    s->cluster_size);
                if (ret == 0) {
                    /* A real write: fresh clusters may lie past the end of
                     * the file, which write-zeroes need not extend. */
                    ret = bdrv_pwrite(bs->file, off, s->cluster_size, zeroes,
                                      0);
                }
                if (ret < 0) {
                    return ret;
                }
            }
            l2[j] = GUINT64_TO_BE(e);
            dirty = true;
        }
        if (dirty) {
            ret = qcow2_flush_caches(bs);
            if (ret == 0) {
                ret = qcow2_pre_write_overlap_check(bs, QCOW2_OL_ACTIVE_L2 |
                                                    QCOW2_OL_INACTIVE_L2,
                                                    l2_off, s->cluster_size);
            }
            if (ret == 0) {
                ret = bdrv_pwrite(bs->file, l2_off, s->cluster_size, l2, 0);
            }
            if (ret < 0) {
                return ret;
            }
        }
    }
    return 0;
}

static int expand_zero_clusters(BlockDriverState *bs, AmendStatusCB *cb,
                                void *opaque)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t total = s->l1_size, done;
    int ret;

    ret = qcow2_cache_flush(bs, s->l2_table_cache);
    if (ret < 0 || (ret = qcow2_cache_empty(s->l2_table_cache)) < 0) {
        return ret;
    }
    for (uint32_t k = 0; k < s->nb_snapshots; k++) {
        total += s->snapshots[k].l1_size;
    }
    ret = expand_l1(bs, s->l1_table, s->l1_size, 0, total, cb, opaque);
    done = s->l1_size;
    for (uint32_t k = 0; ret == 0 && k < s->nb_snapshots; k++) {
        Qcow2Snapshot *sn = &s->snapshots[k];
        g_autofree uint64_t *l1 = g_try_new0(uint64_t, MAX(sn->l1_size, 1));
        if (!l1) {
            return -ENOMEM;
        }
        if (sn->l1_size) {
            ret = bdrv_pread(bs->file, sn->l1_table_offset,
                             (int64_t)sn->l1_size * 8, l1, 0);
            if (ret < 0) {
                return ret;
            }
        }
        for (uint32_t i = 0; i < sn->l1_size; i++) {
            l1[i] = GUINT64_FROM_BE(l1[i]);
        }
        ret = expand_l1(bs, l1, sn->l1_size, done, total, cb, opaque);
        done += sn->l1_size;
    }
    if (ret < 0) {
        return ret;
    }
    return qcow2_flush_caches(bs);
}

/* Does the active L1 reach a compressed cluster? */
static int has_compressed_clusters(BlockDriverState *bs)
{
    BDRVQcow2State *s = bs->opaque;
    uint64_t bytes;
    uint64_t host;
    Qcow2SubclusterType type;
    int ret;

    for (uint64_t off = 0; off < s->hi.h.size; off += bytes) {
        bytes = s->hi.h.size - off;
        ret = qcow2_get_host_offset(bs, off, &bytes, &host, &type);
        if (ret < 0) {
            return ret;
        }
        if (type == QCOW2_SC_COMPRESSED) {
            return 1;
        }
        if (!bytes) {
            return -EIO;
        }
    }
    return 0;
}

static int set_lazy(BlockDriverState *bs, bool on)
{
    BDRVQcow2State *s = bs->opaque;
    int ret;

    if (on) {
        s->compatible_features |= QCOW2_COMPAT_LAZY_REFCOUNTS;
        ret = qcow2_update_header(bs);
        if (ret < 0) {
            s->compatible_features &= ~QCOW2_COMPAT_LAZY_REFCOUNTS;
            return ret;
        }
        s->lazy_refcounts = s->use_lazy_refcounts = true;
        qcow2_cache_set_dependency(s->l2_table_cache, NULL);
        return 0;
    }
    /* Refcounts must be exact on disk before the image stops saying they
     * may not be. */
    ret = qcow2_mark_clean(bs);
    if (ret < 0) {
        return ret;
    }
    s->compatible_features &= ~QCOW2_COMPAT_LAZY_REFCOUNTS;
    ret = qcow2_update_header(bs);
    if (ret < 0) {
        return ret;
    }
    s->lazy_refcounts = s->use_lazy_refcounts = false;
    qcow2_cache_set_dependency(s->l2_table_cache, s->refcount_block_cache);
    return 0;
}

typedef struct AmendCo {
    BlockDriverState *bs;
    json_t *opts;
    AmendStatusCB *cb;
    void *opaque;
    Error **errp;
    int ret;
    bool done;
} AmendCo;

static int do_amend(AmendCo *a)
{
    BlockDriverState *bs = a->bs;
    BDRVQcow2State *s = bs->opaque;
    AmendRequest r;
    int ret;

    ret = parse_request(bs, a->opts, &r, a->errp);
    if (ret < 0) {
        return ret;
    }
    ret = check_request(bs, &r, a->errp);
    if (ret < 0) {
        return ret;
    }

    /* Upgrade first. */
    if (r.version == 3 && s->hi.h.version < 3) {
        s->hi.h.version = 3;
        s->hi.h.refcount_order = s->refcount_order;
        ret = qcow2_update_header(bs);
        if (ret < 0) {
            s->hi.h.version = 2;
            error_setg_errno(a->errp, -ret, "Failed to update the image "
                             "header");
            return ret;
        }
    }
    if (r.refcount_order >= 0 && r.refcount_order != s->refcount_order) {
        ret = change_refcount_order(bs, r.refcount_order, a->cb, a->opaque,
                                    a->errp);
        if (ret < 0) {
            return ret;
        }
    }
    if (r.lazy >= 0 && s->hi.h.version >= 3 &&
        r.lazy != !!(s->compatible_features & QCOW2_COMPAT_LAZY_REFCOUNTS)) {
        ret = set_lazy(bs, r.lazy);
        if (ret < 0) {
            error_setg_errno(a->errp, -ret, "Failed to update the image "
                             "header");
            return ret;
        }
    }
    if (r.data_file_raw == 0 && s->data_file_raw) {
        s->autoclear_features &= ~QCOW2_AUTOCLEAR_DATA_RAW;
        s->data_file_raw = false;
        ret = qcow2_update_header(bs);
        if (ret < 0) {
            error_setg_errno(a->errp, -ret, "Failed to update the image "
                             "header");
            return ret;
        }
    }
    if (r.size >= 0 && r.size != (int64_t)s->hi.h.size) {
        /* truncate takes s->lock itself. */
        co_mutex_unlock(&s->lock);
        ret = qcow2_co_truncate(bs, r.size, false, PREALLOC_MODE_OFF, 0,
                                a->errp);
        co_mutex_lock(&s->lock);
        if (ret < 0) {
            return ret;
        }
        bs->total_sectors = s->hi.h.size / BDRV_SECTOR_SIZE;
    }

    /* Downgrade last. */
    if (r.version == 2 && s->hi.h.version >= 3) {
        if (s->compression_type != QCOW2_COMPRESSION_ZLIB) {
            ret = has_compressed_clusters(bs);
            if (ret < 0) {
                error_setg_errno(a->errp, -ret, "Failed to scan for "
                                 "compressed clusters");
                return ret;
            }
            if (ret) {
                error_setg(a->errp, "Cannot downgrade an image with zstd "
                           "compression type and existing compressed "
                           "clusters");
                return -ENOTSUP;
            }
        }
        if (s->compatible_features & QCOW2_COMPAT_LAZY_REFCOUNTS) {
            ret = set_lazy(bs, false);
            if (ret < 0) {
                error_setg_errno(a->errp, -ret, "Failed to make the image "
                                 "clean");
                return ret;
            }
        }
        ret = qcow2_mark_clean(bs);
        if (ret == 0) {
            ret = expand_zero_clusters(bs, a->cb, a->opaque);
        }
        if (ret < 0) {
            error_setg_errno(a->errp, -ret, "Failed to turn zero into data "
                             "clusters");
            return ret;
        }
        s->hi.h.version = 2;
        s->compatible_features = 0;
        s->autoclear_features = 0;
        s->incompatible_features &= ~QCOW2_INCOMPAT_COMPRESSION;
        s->compression_type = QCOW2_COMPRESSION_ZLIB;
        s->hi.h.compression_type = QCOW2_COMPRESSION_ZLIB;
        ret = qcow2_update_header(bs);
        if (ret < 0) {
            s->hi.h.version = 3;
            error_setg_errno(a->errp, -ret, "Failed to update the image "
                             "header");
            return ret;
        }
    }
    return 0;
}

static void coroutine_fn amend_co_entry(void *opaque)
{
    AmendCo *a = opaque;
    BDRVQcow2State *s = a->bs->opaque;

    co_mutex_lock(&s->lock);
    qcow2_quiesce_data_io(a->bs);   /* no data I/O under the rebuild */
    a->ret = do_amend(a);
    co_mutex_unlock(&s->lock);
    a->done = true;
    aio_notify(qb_get_aio_context());
}

int qcow2_amend_options(BlockDriverState *bs, json_t *opts,
                        AmendStatusCB *status_cb, void *cb_opaque,
                        bool force, Error **errp)
{
    AmendCo a = { .bs = bs, .opts = opts, .cb = status_cb,
                  .opaque = cb_opaque, .errp = errp };

    if (in_coroutine()) {
        amend_co_entry(&a);
    } else {
        coroutine_enter(coroutine_create(amend_co_entry, &a));
        AIO_WAIT_WHILE(qb_get_aio_context(), !a.done);
    }
    return a.ret;
}
