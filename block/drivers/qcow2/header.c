/*
 * qcow2 header: parsing and validating the header cluster (fixed fields and
 * header extensions) from a byte buffer, and serialising it back.  Parsing is
 * pure (no I/O) so corrupt headers can be unit-tested directly; every field is
 * checked against the format's limits and the file size before anyone uses
 * it, with QEMU's error texts.
 *
 * Unknown extensions and unknown trailing header fields are kept verbatim and
 * written back in place, so a newer writer's data survives us.  The order of
 * extensions on write is QEMU 7.2's: backing format, data file, crypto,
 * feature table (v3, clusters > 4 KiB), bitmaps, unknown ones, end marker;
 * then the backing file name.
 */
#include "qcow2.h"
#include "util/bswap.h"

static void unknown_ext_free(gpointer p)
{
    Qcow2UnknownExt *e = p;
    g_free(e->data);
    g_free(e);
}

void qcow2_header_info_init(Qcow2HeaderInfo *hi)
{
    memset(hi, 0, sizeof(*hi));
    hi->features = g_array_new(false, true, sizeof(Qcow2Feature));
    hi->unknown_exts = g_ptr_array_new_with_free_func(unknown_ext_free);
}

void qcow2_header_info_clear(Qcow2HeaderInfo *hi)
{
    g_free(hi->backing_file);
    g_free(hi->backing_fmt);
    g_free(hi->data_file);
    g_free(hi->extra_fields);
    if (hi->features) {
        g_array_free(hi->features, true);
    }
    if (hi->unknown_exts) {
        g_ptr_array_free(hi->unknown_exts, true);
    }
    memset(hi, 0, sizeof(*hi));
}

static const struct { uint8_t type, bit; const char *name; } default_features[] = {
    { QCOW2_FEAT_TYPE_INCOMPAT, 0, "dirty bit" },
    { QCOW2_FEAT_TYPE_INCOMPAT, 1, "corrupt bit" },
    { QCOW2_FEAT_TYPE_INCOMPAT, 2, "external data file" },
    { QCOW2_FEAT_TYPE_INCOMPAT, 3, "compression type" },
    { QCOW2_FEAT_TYPE_INCOMPAT, 4, "extended L2 entries" },
    { QCOW2_FEAT_TYPE_COMPAT, 0, "lazy refcounts" },
    { QCOW2_FEAT_TYPE_AUTOCLEAR, 0, "bitmaps" },
    { QCOW2_FEAT_TYPE_AUTOCLEAR, 1, "raw external data" },
};

GArray *qcow2_default_feature_table(void)
{
    GArray *a = g_array_new(false, true, sizeof(Qcow2Feature));
    for (size_t i = 0; i < QB_ARRAY_SIZE(default_features); i++) {
        Qcow2Feature f = { .type = default_features[i].type,
                           .bit = default_features[i].bit };
        g_strlcpy(f.name, default_features[i].name, sizeof(f.name));
        g_array_append_val(a, f);
    }
    return a;
}

char *qcow2_unsupported_features_str(GArray *features, uint64_t mask)
{
    GString *s = g_string_new(NULL);
    for (guint i = 0; features && i < features->len; i++) {
        Qcow2Feature *f = &g_array_index(features, Qcow2Feature, i);
        if (f->type == QCOW2_FEAT_TYPE_INCOMPAT && f->bit < 64 &&
            (mask & (UINT64_C(1) << f->bit))) {
            g_string_append_printf(s, "%s%s", s->len ? ", " : "", f->name);
            mask &= ~(UINT64_C(1) << f->bit);
        }
    }
    if (mask) {
        g_string_append_printf(s, "%sUnknown incompatible feature: %" PRIx64,
                               s->len ? ", " : "", mask);
    }
    return g_string_free(s, false);
}

/* A table at offset with len bytes must be cluster aligned and not overflow. */
static bool table_offset_ok(uint64_t offset, uint64_t entries,
                            uint64_t entry_len, int cluster_size,
                            uint64_t max_entries)
{
    if (entries > max_entries) {
        return false;
    }
    if (offset & (cluster_size - 1)) {
        return false;
    }
    if (offset > (uint64_t)INT64_MAX - entries * entry_len) {
        return false;
    }
    return true;
}

/* Walk the extension area [start, end) of buf. */
static int parse_extensions(const uint8_t *buf, size_t buf_len, uint64_t start,
                            uint64_t end, Qcow2HeaderInfo *hi, Error **errp)
{
    uint64_t off = start;

    if (end > buf_len) {
        end = buf_len;
    }
    while (off + 8 <= end) {
        uint32_t magic = ld32_be(buf + off);
        uint32_t len = ld32_be(buf + off + 4);
        off += 8;
        if (off > end || len > end - off) {
            error_setg(errp, "Header extension too large");
            return -EINVAL;
        }
        const uint8_t *d = buf + off;
        switch (magic) {
        case QCOW2_EXT_END:
            return 0;
        case QCOW2_EXT_BACKING_FMT:
            if (len >= 16) {
                error_setg(errp, "ERROR: ext_backing_format: len=%u too large "
                           "(>=%zu)", len, (size_t)16);
                return -EINVAL;
            }
            g_free(hi->backing_fmt);
            hi->backing_fmt = g_strndup((const char *)d, len);
            break;
        case QCOW2_EXT_FEATURE_TABLE:
            g_array_set_size(hi->features, 0);
            for (uint32_t i = 0; i + 48 <= len; i += 48) {
                Qcow2Feature f = { .type = d[i], .bit = d[i + 1] };
                memcpy(f.name, d + i + 2, QCOW2_FEATURE_NAME_LEN);
                f.name[QCOW2_FEATURE_NAME_LEN] = 0;
                g_array_append_val(hi->features, f);
            }
            break;
        case QCOW2_EXT_CRYPTO:
            if (hi->h.crypt_method != 2) {
                error_setg(errp, "CRYPTO header extension only expected with "
                           "LUKS encryption method");
                return -EINVAL;
            }
            if (len != 16) {
                error_setg(errp, "CRYPTO header extension size %u, but "
                           "expected size %zu", len, (size_t)16);
                return -EINVAL;
            }
            hi->has_crypto_ext = true;
            hi->crypto_offset = ld64_be(d);
            hi->crypto_length = ld64_be(d + 8);
            break;
        case QCOW2_EXT_BITMAPS:
            if (!(hi->h.autoclear_features & QCOW2_AUTOCLEAR_BITMAPS) ||
                hi->h.version < 3) {
                /*
                 * A program without bitmap support wrote the image after the
                 * bitmaps were stored: the bitmaps are stale.  Keep the bytes
                 * as an opaque extension (the bitmaps milestone decides what
                 * to drop).
                 */
                goto unknown;
            }
            if (len != 24) {
                error_setg(errp, "bitmaps_ext: Invalid extension length");
                return -EINVAL;
            }
            if (ld32_be(d + 4) != 0) {
                error_setg(errp, "bitmaps_ext: Reserved field is not zero");
                return -EINVAL;
            }
            hi->nb_bitmaps = ld32_be(d);
            hi->bitmap_dir_size = ld64_be(d + 8);
            hi->bitmap_dir_offset = ld64_be(d + 16);
            if (hi->nb_bitmaps > 65535) {
                error_setg(errp, "bitmaps_ext: Image has %u bitmaps, exceeding "
                           "the QEMU supported maximum of 65535",
                           hi->nb_bitmaps);
                return -EINVAL;
            }
            if (hi->nb_bitmaps == 0) {
                error_setg(errp, "found bitmaps extension with zero bitmaps");
                return -EINVAL;
            }
            if (hi->bitmap_dir_offset & ((1u << hi->h.cluster_bits) - 1)) {
                error_setg(errp, "bitmaps_ext: invalid bitmap directory offset");
                return -EINVAL;
            }
            if (hi->bitmap_dir_size > 65535 * 1024) {
                error_setg(errp, "bitmaps_ext: bitmap directory size (%" PRIu64
                           ") exceeds the maximum supported size (67107840)",
                           hi->bitmap_dir_size);
                return -EINVAL;
            }
            hi->has_bitmaps_ext = true;
            break;
        case QCOW2_EXT_DATA_FILE:
            g_free(hi->data_file);
            hi->data_file = g_strndup((const char *)d, len);
            break;
        default:
        unknown: {
            Qcow2UnknownExt *e = g_new0(Qcow2UnknownExt, 1);
            e->magic = magic;
            e->len = len;
            e->data = g_memdup2(d, len);
            g_ptr_array_add(hi->unknown_exts, e);
            break;
        }
        }
        off += QB_ALIGN_UP((uint64_t)len, 8);
    }
    return 0;
}

int qcow2_parse_header(const uint8_t *buf, size_t buf_len, int64_t file_size,
                       Qcow2HeaderInfo *hi, Error **errp)
{
    Qcow2Header *h = &hi->h;
    uint8_t fixed[QCOW2_HEADER_SIZE] = { 0 };
    int cluster_size;

    memcpy(fixed, buf, MIN(buf_len, sizeof(fixed)));
    h->magic = ld32_be(fixed);
    if (buf_len < QCOW2_V2_HEADER_SIZE || h->magic != QCOW2_MAGIC) {
        error_setg(errp, "Image is not in qcow2 format");
        return -EINVAL;
    }
    h->version = ld32_be(fixed + 4);
    h->backing_file_offset = ld64_be(fixed + 8);
    h->backing_file_size = ld32_be(fixed + 16);
    h->cluster_bits = ld32_be(fixed + 20);
    h->size = ld64_be(fixed + 24);
    h->crypt_method = ld32_be(fixed + 32);
    h->l1_size = ld32_be(fixed + 36);
    h->l1_table_offset = ld64_be(fixed + 40);
    h->refcount_table_offset = ld64_be(fixed + 48);
    h->refcount_table_clusters = ld32_be(fixed + 56);
    h->nb_snapshots = ld32_be(fixed + 60);
    h->snapshots_offset = ld64_be(fixed + 64);

    if (h->version < 2 || h->version > 3) {
        error_setg(errp, "Unsupported qcow2 version %u", h->version);
        return -ENOTSUP;
    }
    if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
        h->cluster_bits > QCOW2_MAX_CLUSTER_BITS) {
        error_setg(errp, "Unsupported cluster size: 2^%u", h->cluster_bits);
        return -EINVAL;
    }
    cluster_size = 1 << h->cluster_bits;

    if (h->version == 2) {
        h->incompatible_features = 0;
        h->compatible_features = 0;
        h->autoclear_features = 0;
        h->refcount_order = 4;
        h->header_length = QCOW2_V2_HEADER_SIZE;
        h->compression_type = QCOW2_COMPRESSION_ZLIB;
    } else {
        if (buf_len < QCOW2_V3_HEADER_SIZE) {
            error_setg(errp, "qcow2 header too short");
            return -EINVAL;
        }
        h->incompatible_features = ld64_be(fixed + 72);
        h->compatible_features = ld64_be(fixed + 80);
        h->autoclear_features = ld64_be(fixed + 88);
        h->refcount_order = ld32_be(fixed + 96);
        h->header_length = ld32_be(fixed + 100);
        if (h->header_length < QCOW2_V3_HEADER_SIZE) {
            error_setg(errp, "qcow2 header too short");
            return -EINVAL;
        }
        if (h->header_length > cluster_size) {
            error_setg(errp, "qcow2 header exceeds cluster size");
            return -EINVAL;
        }
        if (h->header_length > buf_len) {
            error_setg(errp, "Could not read qcow2 header");
            return -EIO;
        }
        h->compression_type = h->header_length > QCOW2_V3_HEADER_SIZE ?
                              fixed[104] : QCOW2_COMPRESSION_ZLIB;
        if (h->header_length > QCOW2_HEADER_SIZE) {
            hi->extra_fields_len = h->header_length - QCOW2_HEADER_SIZE;
            hi->extra_fields = g_memdup2(buf + QCOW2_HEADER_SIZE,
                                         hi->extra_fields_len);
        }
    }

    if (h->backing_file_offset > cluster_size) {
        error_setg(errp, "Invalid backing file offset");
        return -EINVAL;
    }

    /* Extensions run from the end of the header to the backing file name
     * (or the end of the cluster). */
    if (parse_extensions(buf, buf_len, h->header_length,
                         h->backing_file_offset ? h->backing_file_offset
                                                : (uint64_t)cluster_size,
                         hi, errp) < 0) {
        return -EINVAL;
    }

    if (h->incompatible_features & ~QCOW2_INCOMPAT_SUPPORTED) {
        g_autofree char *names = qcow2_unsupported_features_str(
            hi->features, h->incompatible_features & ~QCOW2_INCOMPAT_SUPPORTED);
        error_setg(errp, "Unsupported qcow2 feature(s): %s", names);
        return -ENOTSUP;
    }
    if (h->refcount_order > 6) {
        error_setg(errp, "Reference count entry width too large; may not "
                   "exceed 64 bits");
        return -EINVAL;
    }
    if (h->compression_type != QCOW2_COMPRESSION_ZLIB &&
        h->compression_type != QCOW2_COMPRESSION_ZSTD) {
        error_setg(errp, "qcow2: unknown compression type: %u",
                   h->compression_type);
        return -ENOTSUP;
    }
    if (h->compression_type != QCOW2_COMPRESSION_ZLIB &&
        !(h->incompatible_features & QCOW2_INCOMPAT_COMPRESSION)) {
        error_setg(errp, "qcow2: Compression type incompatible feature bit "
                   "must be set");
        return -EINVAL;
    }
    if (h->compression_type == QCOW2_COMPRESSION_ZLIB &&
        (h->incompatible_features & QCOW2_INCOMPAT_COMPRESSION)) {
        error_setg(errp, "qcow2: Compression type incompatible feature bit "
                   "must not be set");
        return -EINVAL;
    }
    if (h->crypt_method > 2) {
        error_setg(errp, "Unsupported encryption method %u", h->crypt_method);
        return -EINVAL;
    }

    /* Guest size: the L1 index of the last byte must fit an int. */
    {
        int l2_entry_bytes = (h->incompatible_features & QCOW2_INCOMPAT_EXTL2)
                             ? 16 : 8;
        int l2_bits = h->cluster_bits - (l2_entry_bytes == 16 ? 4 : 3);
        uint64_t shift = h->cluster_bits + l2_bits;
        uint64_t l1_needed = shift >= 64 ? 1 :
            (h->size + (UINT64_C(1) << shift) - 1) >> shift;
        if (h->size > UINT64_MAX - (UINT64_C(1) << shift) ||
            l1_needed > INT_MAX) {
            error_setg(errp, "Image is too big");
            return -EFBIG;
        }
        if (h->refcount_table_clusters >
            QCOW2_MAX_REFTABLE_SIZE / cluster_size) {
            error_setg(errp, "Reference count table too large");
            return -EINVAL;
        }
        if (h->refcount_table_clusters == 0) {
            error_setg(errp, "Image does not contain a reference count table");
            return -EINVAL;
        }
        if (!table_offset_ok(h->refcount_table_offset,
                             (uint64_t)h->refcount_table_clusters *
                             cluster_size, 1, cluster_size, UINT32_MAX * 2ULL)) {
            error_setg(errp, "Reference count table offset invalid");
            return -EINVAL;
        }
        if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS) {
            error_setg(errp, "Snapshot table too large");
            return -EINVAL;
        }
        if (!table_offset_ok(h->snapshots_offset, h->nb_snapshots, 40,
                             cluster_size, QCOW2_MAX_SNAPSHOTS)) {
            error_setg(errp, "Snapshot table offset invalid");
            return -EINVAL;
        }
        if (h->l1_size > QCOW2_MAX_L1_SIZE / 8) {
            error_setg(errp, "Active L1 table too large");
            return -EFBIG;
        }
        if (h->l1_size < l1_needed) {
            error_setg(errp, "L1 table is too small");
            return -EINVAL;
        }
        if (!table_offset_ok(h->l1_table_offset, h->l1_size, 8, cluster_size,
                             QCOW2_MAX_L1_SIZE / 8)) {
            error_setg(errp, "Active L1 table offset invalid");
            return -EINVAL;
        }
    }

    if (h->backing_file_offset) {
        if (h->backing_file_size > QCOW2_MAX_BACKING_NAME ||
            h->backing_file_offset + h->backing_file_size > cluster_size) {
            error_setg(errp, "Backing file name too long");
            return -EINVAL;
        }
        if (h->backing_file_offset + h->backing_file_size > buf_len) {
            error_setg(errp, "Could not read backing file name");
            return -EIO;
        }
        hi->backing_file = g_strndup((const char *)buf +
                                     h->backing_file_offset,
                                     h->backing_file_size);
    }
    (void)file_size;
    return 0;
}

/* Append one extension at *off; false when it does not fit. */
static bool put_ext(uint8_t *buf, size_t buf_len, size_t *off, uint32_t magic,
                    const void *data, uint32_t len)
{
    size_t need = 8 + QB_ALIGN_UP((size_t)len, 8);
    if (*off + need > buf_len) {
        return false;
    }
    st32_be(buf + *off, magic);
    st32_be(buf + *off + 4, len);
    if (len) {
        memcpy(buf + *off + 8, data, len);
    }
    *off += need;
    return true;
}

int qcow2_build_header(const Qcow2HeaderInfo *hi, uint8_t *buf,
                       size_t buf_len)
{
    const Qcow2Header *h = &hi->h;
    size_t off;
    size_t cluster_size = (size_t)1 << h->cluster_bits;
    uint32_t header_length = h->version >= 3 ?
        QCOW2_HEADER_SIZE + hi->extra_fields_len : QCOW2_V2_HEADER_SIZE;

    if (buf_len < header_length) {
        return -ENOSPC;
    }
    memset(buf, 0, buf_len);
    st32_be(buf, QCOW2_MAGIC);
    st32_be(buf + 4, h->version);
    /* backing_file_offset/size filled in below */
    st32_be(buf + 20, h->cluster_bits);
    st64_be(buf + 24, h->size);
    st32_be(buf + 32, h->crypt_method);
    st32_be(buf + 36, h->l1_size);
    st64_be(buf + 40, h->l1_table_offset);
    st64_be(buf + 48, h->refcount_table_offset);
    st32_be(buf + 56, h->refcount_table_clusters);
    st32_be(buf + 60, h->nb_snapshots);
    st64_be(buf + 64, h->snapshots_offset);
    if (h->version >= 3) {
        st64_be(buf + 72, h->incompatible_features);
        st64_be(buf + 80, h->compatible_features);
        st64_be(buf + 88, h->autoclear_features);
        st32_be(buf + 96, h->refcount_order);
        st32_be(buf + 100, header_length);
        buf[104] = h->compression_type;
        if (hi->extra_fields_len) {
            memcpy(buf + QCOW2_HEADER_SIZE, hi->extra_fields,
                   hi->extra_fields_len);
        }
    }
    off = header_length;

    if (hi->backing_fmt && hi->backing_file &&
        !put_ext(buf, buf_len, &off, QCOW2_EXT_BACKING_FMT, hi->backing_fmt,
                 strlen(hi->backing_fmt))) {
        return -ENOSPC;
    }
    if (hi->data_file &&
        !put_ext(buf, buf_len, &off, QCOW2_EXT_DATA_FILE, hi->data_file,
                 strlen(hi->data_file))) {
        return -ENOSPC;
    }
    if (hi->has_crypto_ext) {
        uint8_t d[16];
        st64_be(d, hi->crypto_offset);
        st64_be(d + 8, hi->crypto_length);
        if (!put_ext(buf, buf_len, &off, QCOW2_EXT_CRYPTO, d, 16)) {
            return -ENOSPC;
        }
    }
    if (h->version >= 3 && cluster_size > 4096) {
        /* Always our own table (QEMU writes its own, not the one read). */
        uint8_t d[QB_ARRAY_SIZE(default_features) * 48];
        memset(d, 0, sizeof(d));
        for (size_t i = 0; i < QB_ARRAY_SIZE(default_features); i++) {
            d[i * 48] = default_features[i].type;
            d[i * 48 + 1] = default_features[i].bit;
            memcpy(d + i * 48 + 2, default_features[i].name,
                   strlen(default_features[i].name));
        }
        if (!put_ext(buf, buf_len, &off, QCOW2_EXT_FEATURE_TABLE, d,
                     sizeof(d))) {
            return -ENOSPC;
        }
    }
    if (hi->has_bitmaps_ext) {
        uint8_t d[24] = { 0 };
        st32_be(d, hi->nb_bitmaps);
        st64_be(d + 8, hi->bitmap_dir_size);
        st64_be(d + 16, hi->bitmap_dir_offset);
        if (!put_ext(buf, buf_len, &off, QCOW2_EXT_BITMAPS, d, 24)) {
            return -ENOSPC;
        }
    }
    for (guint i = 0; i < hi->unknown_exts->len; i++) {
        Qcow2UnknownExt *e = g_ptr_array_index(hi->unknown_exts, i);
        if (!put_ext(buf, buf_len, &off, e->magic, e->data, e->len)) {
            return -ENOSPC;
        }
    }
    if (!put_ext(buf, buf_len, &off, QCOW2_EXT_END, NULL, 0)) {
        return -ENOSPC;
    }
    if (hi->backing_file) {
        size_t len = strlen(hi->backing_file);
        if (len > QCOW2_MAX_BACKING_NAME || off + len > buf_len ||
            off + len > cluster_size) {
            return -ENOSPC;
        }
        memcpy(buf + off, hi->backing_file, len);
        st64_be(buf + 8, off);
        st32_be(buf + 16, len);
        off += len;
    }
    return off;
}
