/*
 * qcow2 image creation: blockdev-create form (bdrv_co_create, on an
 * existing protocol node) and qemu-img create form (bdrv_co_create_opts,
 * creating the file first).  The layout matches what qemu-img 7.2 writes:
 * header in cluster 0, refcount table in cluster 1, the first refcount
 * block in cluster 2, then the L1 table allocated by growing the empty
 * image to its size, then the final header (with the feature table and
 * backing file name) rewritten in place.
 */
#include "qcow2.h"
#include "block/block-backend.h"
#include "block/options.h"

typedef struct Qcow2CreateOpts {
    uint64_t size;
    int version;                 /* 2 or 3 */
    uint64_t cluster_size;
    uint64_t refcount_bits;
    bool lazy_refcounts;
    bool extended_l2;
    int compression_type;
    PreallocMode prealloc;
    char *backing_file;
    char *backing_fmt;
    char *data_file_name;        /* recorded in the header */
    bool data_file_raw;
    bool has_data_file;
} Qcow2CreateOpts;

static void create_opts_clear(Qcow2CreateOpts *o)
{
    g_free(o->backing_file);
    g_free(o->backing_fmt);
    g_free(o->data_file_name);
}

/* check_l1: qemu-img create refuses sizes whose L1 table would be too
 * large up front; blockdev-create only fails when growing the image. */
static int validate(Qcow2CreateOpts *o, bool check_l1, Error **errp)
{
    int v3hint_needed = o->version < 3;

    if (o->cluster_size < 512 || o->cluster_size > 2 * MiB ||
        !QB_IS_POWER_OF_2(o->cluster_size)) {
        error_setg(errp, "Cluster size must be a power of two between 512 "
                   "and 2048k");
        return -EINVAL;
    }
    if (!QB_IS_POWER_OF_2(o->refcount_bits) || o->refcount_bits > 64) {
        error_setg(errp, "Refcount width must be a power of two and may not "
                   "exceed 64 bits");
        return -EINVAL;
    }
    if (v3hint_needed && o->refcount_bits != 16) {
        error_setg(errp, "Different refcount widths than 16 bits require "
                   "compatibility level 1.1 or above (use version=v3 or "
                   "greater)");
        return -EINVAL;
    }
    if (v3hint_needed && o->lazy_refcounts) {
        error_setg(errp, "Lazy refcounts only supported with compatibility "
                   "level 1.1 and above (use version=v3 or greater)");
        return -EINVAL;
    }
    if (o->extended_l2) {
        if (v3hint_needed) {
            error_setg(errp, "Extended L2 entries are only supported with "
                       "compatibility level 1.1 and above (use version=v3 "
                       "or greater)");
            return -EINVAL;
        }
        if (o->cluster_size < 16 * KiB) {
            error_setg(errp, "Extended L2 entries are only supported with "
                       "cluster sizes of at least 16384 bytes");
            return -EINVAL;
        }
    }
    if (o->compression_type != QCOW2_COMPRESSION_ZLIB && v3hint_needed) {
        error_setg(errp, "Non-zlib compression type is only supported with "
                   "compatibility level 1.1 and above (use version=v3 or "
                   "greater)");
        return -EINVAL;
    }
    if (o->has_data_file && v3hint_needed) {
        error_setg(errp, "External data files are only supported with "
                   "compatibility level 1.1 and above (use version=v3 or "
                   "greater)");
        return -EINVAL;
    }
    if (o->data_file_raw && !o->has_data_file) {
        error_setg(errp, "data-file-raw requires data-file");
        return -EINVAL;
    }
    if (o->backing_fmt && !o->backing_file) {
        error_setg(errp, "Backing format cannot be used without backing "
                   "file");
        return -EINVAL;
    }
    if (o->backing_file && o->data_file_raw) {
        error_setg(errp, "Backing file and data-file-raw cannot be used at "
                   "the same time");
        return -EINVAL;
    }
    if (check_l1 &&
        qcow2_l1_size_for(__builtin_ctzll(o->cluster_size), o->extended_l2,
                          o->size) > QCOW2_MAX_L1_SIZE / 8) {
        error_setg(errp, "The image size is too large for file format "
                   "'qcow2' (try using a larger cluster size)");
        return -EINVAL;
    }
    if (o->size & 511) {
        error_setg(errp, "Image size must be a multiple of %u bytes", 512);
        return -EINVAL;
    }
    return 0;
}

/* Format file_bs (and record data_bs) as a qcow2 image. */
static int create_on(BlockDriverState *file_bs, BlockDriverState *data_bs,
                     Qcow2CreateOpts *o, bool check_l1, Error **errp)
{
    BlockBackend *blk;
    Qcow2HeaderInfo hi;
    int cs = o->cluster_size;
    int cluster_bits = __builtin_ctz(cs);
    int refcount_order = __builtin_ctzll(o->refcount_bits);
    g_autofree uint8_t *buf = NULL;
    json_t *qopts;
    int ret;

    ret = validate(o, check_l1, errp);
    if (ret < 0) {
        return ret;
    }
    if (o->data_file_raw && o->prealloc == PREALLOC_MODE_OFF) {
        /* A raw data file is only valid with every cluster mapped. */
        o->prealloc = PREALLOC_MODE_METADATA;
    }

    blk = blk_new(qb_get_aio_context(), BLK_PERM_CONSISTENT_READ |
                  BLK_PERM_WRITE | BLK_PERM_RESIZE, BLK_PERM_ALL);
    ret = blk_insert_bs(blk, file_bs, errp);
    if (ret < 0) {
        blk_unref(blk);
        return ret;
    }
    /* Like QEMU, an existing file is not emptied first: bytes beyond the
     * new metadata stay (qemu-img create starts from an empty file). */
    blk_set_allow_write_beyond_eof(blk, true);

    /* Minimal image: header, refcount table, one refcount block. */
    qcow2_header_info_init(&hi);
    hi.h.magic = QCOW2_MAGIC;
    hi.h.version = o->version;
    hi.h.cluster_bits = cluster_bits;
    hi.h.refcount_table_offset = cs;
    hi.h.refcount_table_clusters = 1;
    hi.h.refcount_order = refcount_order;
    hi.h.header_length = QCOW2_HEADER_SIZE;
    hi.h.compression_type = o->compression_type;
    if (o->version >= 3) {
        if (o->extended_l2) {
            hi.h.incompatible_features |= QCOW2_INCOMPAT_EXTL2;
        }
        if (o->compression_type != QCOW2_COMPRESSION_ZLIB) {
            hi.h.incompatible_features |= QCOW2_INCOMPAT_COMPRESSION;
        }
        if (o->has_data_file) {
            hi.h.incompatible_features |= QCOW2_INCOMPAT_DATA_FILE;
        }
        if (o->lazy_refcounts) {
            hi.h.compatible_features |= QCOW2_COMPAT_LAZY_REFCOUNTS;
        }
        if (o->data_file_raw) {
            hi.h.autoclear_features |= QCOW2_AUTOCLEAR_DATA_RAW;
        }
    }
    /* The data file name is needed to open the image below. */
    hi.data_file = g_strdup(o->data_file_name);
    buf = g_malloc0(3 * cs);
    ret = qcow2_build_header(&hi, buf, cs);
    qcow2_header_info_clear(&hi);
    if (ret < 0) {
        error_setg(errp, "Header does not fit in a cluster");
        blk_unref(blk);
        return ret;
    }
    {
        uint64_t rt0 = GUINT64_TO_BE((uint64_t)2 * cs);
        memcpy(buf + cs, &rt0, 8);
        for (int i = 0; i < 3; i++) {
            qcow2_refcount_set_entry(buf + 2 * cs, refcount_order, i, 1);
        }
    }
    ret = blk_pwrite(blk, 0, 3 * cs, buf, 0);
    blk_unref(blk);
    if (ret < 0) {
        error_setg_errno(errp, -ret, "Could not write qcow2 header");
        return ret;
    }

    /* Open it as qcow2 and grow it to its size (this allocates the L1). */
    qopts = json_pack("{s:s, s:s}", "driver", "qcow2", "file",
                      bdrv_get_node_name(file_bs));
    if (data_bs) {
        json_object_set_new(qopts, "data-file",
                            json_string(bdrv_get_node_name(data_bs)));
    }
    blk = blk_new_open(NULL, NULL, qopts, BDRV_O_RDWR | BDRV_O_RESIZE |
                       BDRV_O_NO_FLUSH | BDRV_O_NO_BACKING, errp);
    if (!blk) {
        return -EIO;
    }
    ret = blk_truncate(blk, o->size, true,
                       o->prealloc == PREALLOC_MODE_OFF ? PREALLOC_MODE_OFF
                                                        : PREALLOC_MODE_METADATA,
                       0, errp);
    if (ret < 0) {
        error_prepend(errp, "Could not resize image: ");
        blk_unref(blk);
        return ret;
    }
    {
        BlockDriverState *bs = blk_bs(blk);
        BDRVQcow2State *s = bs->opaque;
        g_free(s->hi.backing_file);
        g_free(s->hi.backing_fmt);
        s->hi.backing_file = g_strdup(o->backing_file);
        s->hi.backing_fmt = g_strdup(o->backing_fmt);
        ret = qcow2_update_header(bs);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not update qcow2 header");
            blk_unref(blk);
            return ret;
        }
        if (o->prealloc == PREALLOC_MODE_FALLOC ||
            o->prealloc == PREALLOC_MODE_FULL) {
            /* Data clusters are allocated: back them with real space. */
            int64_t end = bdrv_getlength(bs->file->bs);
            int64_t want = QB_ALIGN_UP(end, cs);
            if (end >= 0) {
                uint64_t rc;
                int64_t c = qcow2_size_to_clusters(s, want) + 64;
                /* Last cluster in use: the end of the preallocated area. */
                while (c > 0 && qcow2_get_refcount(bs, c - 1, &rc) == 0 &&
                       rc == 0) {
                    c--;
                }
                want = MAX(want, c * cs);
                ret = bdrv_truncate(bs->file, want, false, o->prealloc, 0,
                                    errp);
                if (ret < 0) {
                    blk_unref(blk);
                    return ret;
                }
            }
        }
        if (data_bs) {
            ret = bdrv_truncate(s->data_file, o->size, false, PREALLOC_MODE_OFF,
                                0, errp);
            if (ret < 0) {
                blk_unref(blk);
                return ret;
            }
        }
    }
    blk_unref(blk);
    return 0;
}

static const char *const prealloc_names[] = {
    "off", "metadata", "falloc", "full", NULL
};
static const char *const compression_names[] = { "zlib", "zstd", NULL };

/*
 * A BlockdevRef: the name of a device or node (QEMU's lookup text when
 * missing), or an inline node definition opened for the creation only.
 * Returns a reference the caller drops.
 */
static BlockDriverState *open_ref(json_t *ref, Error **errp)
{
    if (json_is_string(ref)) {
        const char *name = json_string_value(ref);
        BlockDriverState *bs = bdrv_lookup_bs(name, name, errp);

        if (bs) {
            bdrv_ref(bs);
        }
        return bs;
    }
    /* QEMU's create job yields to the main loop before opening an inline
     * definition (its events then follow the command's reply); do the
     * same so the two are indistinguishable over QMP. */
    if (in_coroutine()) {
        aio_co_schedule(qb_get_current_aio_context(), coroutine_self());
        coroutine_yield();
    }
    return bdrv_open(NULL, NULL, json_deep_copy(ref), BDRV_O_RDWR, errp);
}

/* blockdev-create: {"driver":"qcow2","file":REF,"size":N,...}. */
int coroutine_fn qcow2_co_create(json_t *create_options, Error **errp)
{
    static const char *const version_names[] = { "v2", "v3", NULL };
    Qcow2CreateOpts o = { 0 };
    Error *err = NULL;
    BlockDriverState *file_bs, *data_bs = NULL;
    int v, ret;
    json_t *opts = json_deep_copy(create_options);
    json_t *file = json_incref(json_object_get(opts, "file"));
    json_t *data = json_incref(json_object_get(opts, "data-file"));
    bool encrypt = json_object_get(opts, "encrypt") != NULL;

    json_object_del(opts, "driver");
    json_object_del(opts, "file");
    json_object_del(opts, "data-file");
    json_object_del(opts, "encrypt");
    o.size = qb_opt_take_size(opts, "size", 0, &err);
    if (!err) {
        v = qb_opt_take_enum(opts, "version", version_names, 1, &err);
        o.version = v + 2;
    }
    if (!err) {
        o.cluster_size = qb_opt_take_size(opts, "cluster-size", 64 * KiB,
                                          &err);
    }
    if (!err) {
        o.refcount_bits = qb_opt_take_int(opts, "refcount-bits", 16, &err);
    }
    if (!err) {
        o.lazy_refcounts = qb_opt_take_bool(opts, "lazy-refcounts", false,
                                            &err);
    }
    if (!err) {
        o.extended_l2 = qb_opt_take_bool(opts, "extended-l2", false, &err);
    }
    if (!err) {
        o.compression_type = qb_opt_take_enum(opts, "compression-type",
                                              compression_names, 0, &err);
    }
    if (!err) {
        o.prealloc = qb_opt_take_enum(opts, "preallocation", prealloc_names,
                                      0, &err);
    }
    if (!err) {
        o.data_file_raw = qb_opt_take_bool(opts, "data-file-raw", false,
                                           &err);
    }
    o.backing_file = qb_opt_take_str(opts, "backing-file");
    o.backing_fmt = qb_opt_take_str(opts, "backing-fmt");
    json_decref(opts);
    ret = -EINVAL;
    if (err) {
        error_propagate(errp, err);
        goto out;
    }
    if (!file) {
        error_setg(errp, "Parameter 'file' is missing");
        goto out;
    }
    file_bs = open_ref(file, errp);
    if (!file_bs) {
        goto out;
    }
    if (data) {
        data_bs = open_ref(data, errp);
        if (!data_bs) {
            bdrv_unref(file_bs);
            goto out;
        }
        o.has_data_file = true;
        o.data_file_name = g_strdup(data_bs->filename);
    }
    if (encrypt) {
        /* Refuse rather than write an unencrypted image. */
        error_setg(errp, "qcow2 encryption is not supported");
    } else {
        ret = create_on(file_bs, data_bs, &o, false, errp);
    }
    if (data_bs) {
        bdrv_unref(data_bs);
    }
    bdrv_unref(file_bs);
out:
    json_decref(file);
    json_decref(data);
    create_opts_clear(&o);
    return ret;
}

static BlockDriverState *create_and_open_file(const char *filename,
                                              uint64_t size, Error **errp)
{
    BlockDriver *file_drv = bdrv_find_format("file");
    json_t *fopts;
    int ret;

    if (!file_drv || !file_drv->bdrv_co_create_opts) {
        error_setg(errp, "Protocol driver 'file' does not support image "
                   "creation");
        return NULL;
    }
    fopts = json_pack("{s:I}", "size", (json_int_t)size);
    ret = file_drv->bdrv_co_create_opts(file_drv, filename, fopts, errp);
    json_decref(fopts);
    if (ret < 0) {
        return NULL;
    }
    return bdrv_open(filename, NULL, json_pack("{s:s}", "driver", "file"),
                     BDRV_O_RDWR | BDRV_O_PROTOCOL | BDRV_O_RESIZE, errp);
}

/* qemu-img create -f qcow2 FILE -o ... */
int coroutine_fn qcow2_co_create_opts(BlockDriver *drv, const char *filename,
                                      json_t *opts_in, Error **errp)
{
    Qcow2CreateOpts o = { 0 };
    Error *err = NULL;
    json_t *opts = json_deep_copy(opts_in);
    g_autofree char *compat = NULL, *enc = NULL;
    BlockDriverState *file_bs = NULL, *data_bs = NULL;
    int ret = -EINVAL;

    o.size = qb_opt_take_size(opts, "size", 0, &err);
    o.size = QB_ALIGN_UP(o.size, 512);
    compat = qb_opt_take_str(opts, "compat");
    if (!compat || g_str_equal(compat, "1.1") || g_str_equal(compat, "v3")) {
        o.version = 3;
    } else if (g_str_equal(compat, "0.10") || g_str_equal(compat, "v2")) {
        o.version = 2;
    } else if (!err) {
        error_setg(&err, "Parameter 'version' does not accept value '%s'",
                   compat);
    }
    if (!err) {
        o.cluster_size = qb_opt_take_size(opts, "cluster_size", 64 * KiB,
                                          &err);
    }
    if (!err) {
        o.refcount_bits = qb_opt_take_int(opts, "refcount_bits", 16, &err);
    }
    if (!err) {
        o.lazy_refcounts = qb_opt_take_bool(opts, "lazy_refcounts", false,
                                            &err);
    }
    if (!err) {
        o.extended_l2 = qb_opt_take_bool(opts, "extended_l2", false, &err);
    }
    if (!err) {
        int ct = qb_opt_take_enum(opts, "compression_type", compression_names,
                                  0, NULL);
        if (ct < 0) {
            error_setg(&err, "Parameter 'compression-type' does not accept "
                       "value '%s'", qb_opt_get_str(opts, "compression_type"));
        }
        o.compression_type = ct;
    }
    if (!err) {
        int p = qb_opt_take_enum(opts, "preallocation", prealloc_names, 0,
                                 NULL);
        if (p < 0) {
            error_setg(&err, "Parameter 'preallocation' does not accept "
                       "value '%s'", qb_opt_get_str(opts, "preallocation"));
        }
        o.prealloc = p;
    }
    if (!err) {
        o.data_file_raw = qb_opt_take_bool(opts, "data_file_raw", false,
                                           &err);
    }
    if (!err) {
        bool e = qb_opt_take_bool(opts, "encryption", false, NULL);
        enc = qb_opt_take_str(opts, "encrypt.format");
        if (e || enc) {
            error_setg(&err, "Parameter 'encrypt.key-secret' is required for "
                       "cipher");
        }
    }
    o.backing_file = qb_opt_take_str(opts, "backing_file");
    o.backing_fmt = qb_opt_take_str(opts, "backing_fmt");
    o.data_file_name = qb_opt_take_str(opts, "data_file");
    o.has_data_file = o.data_file_name != NULL;
    json_decref(opts);
    if (!err && validate(&o, true, &err) == 0) {
        file_bs = create_and_open_file(filename, 0, &err);
    }
    if (file_bs && o.has_data_file) {
        data_bs = create_and_open_file(o.data_file_name, 0, &err);
    }
    if (!err) {
        ret = create_on(file_bs, data_bs, &o, true, &err);
    }
    if (data_bs) {
        bdrv_unref(data_bs);
    }
    if (file_bs) {
        bdrv_unref(file_bs);
    }
    if (err) {
        error_propagate(errp, err);
        ret = ret < 0 ? ret : -EINVAL;
    }
    create_opts_clear(&o);
    return ret;
}

/* In the order of qemu-img's "Formatting" line; "-o help" sorts them. */
const CreateOptDesc qcow2_create_opts[] = {
    { "encryption", CREATE_OPT_BOOL, "Encrypt the image with format 'aes'. "
      "(Deprecated in favor of encrypt.format=aes)", NULL },
    { "encrypt.format", CREATE_OPT_STRING, "Encrypt the image, format "
      "choices: 'aes', 'luks'", NULL },
    { "encrypt.key-secret", CREATE_OPT_STRING, "ID of secret providing qcow "
      "AES key or LUKS passphrase", NULL },
    { "encrypt.cipher-alg", CREATE_OPT_STRING, "Name of encryption cipher "
      "algorithm", NULL },
    { "encrypt.cipher-mode", CREATE_OPT_STRING, "Name of encryption cipher "
      "mode", NULL },
    { "encrypt.ivgen-alg", CREATE_OPT_STRING, "Name of IV generator "
      "algorithm", NULL },
    { "encrypt.ivgen-hash-alg", CREATE_OPT_STRING, "Name of IV generator "
      "hash algorithm", NULL },
    { "encrypt.hash-alg", CREATE_OPT_STRING, "Name of encryption hash "
      "algorithm", NULL },
    { "encrypt.iter-time", CREATE_OPT_NUMBER, "Time to spend in PBKDF in "
      "milliseconds", NULL },
    { "cluster_size", CREATE_OPT_SIZE, "qcow2 cluster size", "65536" },
    { "extended_l2", CREATE_OPT_BOOL, "Extended L2 tables", "off" },
    { "preallocation", CREATE_OPT_STRING, "Preallocation mode (allowed "
      "values: off, metadata, falloc, full)", NULL },
    { "compression_type", CREATE_OPT_STRING, "Compression method used for "
      "image cluster compression", "zlib" },
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
    { "lazy_refcounts", CREATE_OPT_BOOL, "Postpone refcount updates", "off" },
    { "refcount_bits", CREATE_OPT_NUMBER, "Width of a reference count entry "
      "in bits", "16" },
    { NULL },
};
