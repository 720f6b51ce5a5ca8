/*
 * Unit tests for the pure parts of the qcow2 driver: header parsing and
 * serialisation (including hand-made corrupt headers, which must fail with
 * QEMU's texts and never crash), refcount entry packing, L2 entry decoding,
 * compression round trips and the metadata cache's LRU/write-back/dependency
 * behaviour (through an in-memory I/O hook).
 */
#include "util/common.h"
#include "util/bswap.h"
#include "util/error.h"
#include "../../block/drivers/qcow2/qcow2.h"

/* A header like `qemu-img create -f qcow2 x 64M` writes. */
static uint8_t *make_header(size_t *len)
{
    Qcow2HeaderInfo hi;
    uint8_t *buf = g_malloc0(65536);
    int n;

    qcow2_header_info_init(&hi);
    hi.h.magic = QCOW2_MAGIC;
    hi.h.version = 3;
    hi.h.cluster_bits = 16;
    hi.h.size = 64 * MiB;
    hi.h.l1_size = 1;
    hi.h.l1_table_offset = 0x30000;
    hi.h.refcount_table_offset = 0x10000;
    hi.h.refcount_table_clusters = 1;
    hi.h.refcount_order = 4;
    n = qcow2_build_header(&hi, buf, 65536);
    g_assert_cmpint(n, ==, 112 + 8 + 384 + 8);
    qcow2_header_info_clear(&hi);
    *len = 65536;
    return buf;
}

static void test_header_roundtrip(void)
{
    size_t len;
    g_autofree uint8_t *buf = make_header(&len);
    Qcow2HeaderInfo hi;
    Error *err = NULL;

    /* Bytes QEMU writes for the same image. */
    static const uint8_t expect[] = {
        0x51, 0x46, 0x49, 0xfb, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0x04, 0, 0, 0,
        0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 3, 0, 0,
        0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1,
    };
    g_assert_cmpmem(buf, sizeof(expect), expect, sizeof(expect));
    g_assert_cmpint(buf[0x63], ==, 4);
    g_assert_cmpint(buf[0x67], ==, 0x70);
    g_assert_cmpmem(buf + 0x70, 4, "\x68\x03\xf8\x57", 4);
    g_assert_cmpstr((char *)buf + 0x7a, ==, "dirty bit");
    g_assert_cmpstr((char *)buf + 0x1ca, ==, "raw external data");

    qcow2_header_info_init(&hi);
    g_assert_cmpint(qcow2_parse_header(buf, len, 196616, &hi, &err), ==, 0);
    g_assert_null(err);
    g_assert_cmpuint(hi.h.size, ==, 64 * MiB);
    g_assert_cmpuint(hi.h.cluster_bits, ==, 16);
    g_assert_cmpuint(hi.h.header_length, ==, 112);
    g_assert_cmpuint(hi.features->len, ==, 8);
    g_assert_null(hi.backing_file);
    qcow2_header_info_clear(&hi);
}

static void test_header_backing_and_unknown_ext(void)
{
    Qcow2HeaderInfo hi, hi2;
    uint8_t buf[4096];
    Qcow2UnknownExt *e;
    Error *err = NULL;
    int n;

    qcow2_header_info_init(&hi);
    hi.h.magic = QCOW2_MAGIC;
    hi.h.version = 2;
    hi.h.cluster_bits = 12;
    hi.h.size = 1 * MiB;
    hi.h.l1_size = 1;
    hi.h.l1_table_offset = 0x3000;
    hi.h.refcount_table_offset = 0x1000;
    hi.h.refcount_table_clusters = 1;
    hi.h.refcount_order = 4;
    hi.backing_file = g_strdup("a.qcow2");
    hi.backing_fmt = g_strdup("qcow2");
    e = g_new0(Qcow2UnknownExt, 1);
    e->magic = 0x12345678;
    e->len = 3;
    e->data = g_memdup2("abc", 3);
    g_ptr_array_add(hi.unknown_exts, e);
    n = qcow2_build_header(&hi, buf, sizeof(buf));
    g_assert_cmpint(n, >, 0);
    /* v2: no feature table (and none for 4 KiB clusters anyway). */
    g_assert_cmpmem(buf + 72, 4, "\xe2\x79\x2a\xca", 4);

    qcow2_header_info_init(&hi2);
    g_assert_cmpint(qcow2_parse_header(buf, sizeof(buf), 1 << 20, &hi2, &err),
                    ==, 0);
    g_assert_cmpstr(hi2.backing_file, ==, "a.qcow2");
    g_assert_cmpstr(hi2.backing_fmt, ==, "qcow2");
    g_assert_cmpuint(hi2.unknown_exts->len, ==, 1);
    e = g_ptr_array_index(hi2.unknown_exts, 0);
    g_assert_cmpuint(e->magic, ==, 0x12345678);
    g_assert_cmpmem(e->data, e->len, "abc", 3);
    qcow2_header_info_clear(&hi);
    qcow2_header_info_clear(&hi2);
}

typedef struct {
    int off, width;      /* width 4 or 8 (or 1) */
    uint64_t val;
    const char *msg;
} Corruption;

static void test_header_corrupt(void)
{
    static const Corruption cases[] = {
        { 0, 4, 0x12345678, "Image is not in qcow2 format" },
        { 4, 4, 1, "Unsupported qcow2 version 1" },
        { 4, 4, 4, "Unsupported qcow2 version 4" },
        { 20, 4, 8, "Unsupported cluster size: 2^8" },
        { 20, 4, 22, "Unsupported cluster size: 2^22" },
        { 96, 4, 7, "Reference count entry width too large; may not exceed "
                    "64 bits" },
        { 72, 8, (1 << 4) | (1 << 10), "Unsupported qcow2 feature(s): "
          "Unknown incompatible feature: 400" },
        { 100, 4, 50, "qcow2 header too short" },
        { 100, 4, 0x20000, "qcow2 header exceeds cluster size" },
        { 40, 8, 0x30001, "Active L1 table offset invalid" },
        { 36, 4, 0x7fffffff, "Active L1 table too large" },
        { 36, 4, 0, "L1 table is too small" },
        { 48, 8, 0x10001, "Reference count table offset invalid" },
        { 56, 4, 0x1000000, "Reference count table too large" },
        { 56, 4, 0, "Image does not contain a reference count table" },
        { 32, 4, 3, "Unsupported encryption method 3" },
        { 104, 1, 5, "qcow2: unknown compression type: 5" },
        { 24, 8, UINT64_C(1) << 62, "Image is too big" },
        { 8, 8, 0x10000000, "Invalid backing file offset" },
        { 60, 4, 70000, "Snapshot table too large" },
        { 0x74, 4, 0x10000, "Header extension too large" },
    };
    for (size_t i = 0; i < QB_ARRAY_SIZE(cases); i++) {
        size_t len;
        g_autofree uint8_t *buf = make_header(&len);
        Qcow2HeaderInfo hi;
        Error *err = NULL;

        if (cases[i].width == 8) {
            st64_be(buf + cases[i].off, cases[i].val);
        } else if (cases[i].width == 4) {
            st32_be(buf + cases[i].off, cases[i].val);
        } else {
            buf[cases[i].off] = cases[i].val;
        }
        qcow2_header_info_init(&hi);
        g_assert_cmpint(qcow2_parse_header(buf, len, 196616, &hi, &err), <, 0);
        g_assert_nonnull(err);
        g_assert_cmpstr(error_get_pretty(err), ==, cases[i].msg);
        error_free(err);
        qcow2_header_info_clear(&hi);
    }
}

static void test_header_truncated(void)
{
    size_t len;
    g_autofree uint8_t *buf = make_header(&len);
    /* Every prefix length fails cleanly or succeeds; never crashes. */
    for (size_t n = 0; n < 600; n += 7) {
        Qcow2HeaderInfo hi;
        Error *err = NULL;
        qcow2_header_info_init(&hi);
        int ret = qcow2_parse_header(buf, n, n, &hi, &err);
        g_assert_true((ret < 0) == (err != NULL));
        if (err) {
            error_free(err);
        }
        qcow2_header_info_clear(&hi);
    }
}

static void test_feature_names(void)
{
    g_autoptr(GArray) t = qcow2_default_feature_table();
    Qcow2Feature *f = &g_array_index(t, Qcow2Feature, 4);
    g_autofree char *s1 = NULL, *s2 = NULL;

    f->bit = 5;   /* as if a newer writer named bit 5 */
    s1 = qcow2_unsupported_features_str(t, (1 << 5) | (1 << 12));
    g_assert_cmpstr(s1, ==, "extended L2 entries, Unknown incompatible "
                    "feature: 1000");
    s2 = qcow2_unsupported_features_str(NULL, UINT64_C(1) << 40);
    g_assert_cmpstr(s2, ==, "Unknown incompatible feature: 10000000000");
}

static void test_refcount_entries(void)
{
    for (int order = 0; order <= 6; order++) {
        uint8_t block[512] = { 0 };
        int bits = 1 << order;
        uint64_t max = bits == 64 ? UINT64_MAX : (UINT64_C(1) << bits) - 1;
        uint64_t n = 512 * 8 / bits;
        for (uint64_t i = 0; i < n; i++) {
            qcow2_refcount_set_entry(block, order, i, (i * 7 + 3) & max);
        }
        for (uint64_t i = 0; i < n; i++) {
            g_assert_cmpuint(qcow2_refcount_get_entry(block, order, i), ==,
                             (i * 7 + 3) & max);
        }
        qcow2_refcount_set_entry(block, order, 1, max);
        g_assert_cmpuint(qcow2_refcount_get_entry(block, order, 1), ==, max);
        g_assert_cmpuint(qcow2_refcount_get_entry(block, order, 0), ==, 3 & max);
    }
    /* 16-bit entries are big-endian; sub-byte entries start at the LSB. */
    uint8_t b[4] = { 0 };
    qcow2_refcount_set_entry(b, 4, 1, 0x0102);
    g_assert_cmpint(b[2], ==, 1);
    g_assert_cmpint(b[3], ==, 2);
    memset(b, 0, 4);
    qcow2_refcount_set_entry(b, 0, 1, 1);
    g_assert_cmpint(b[0], ==, 2);
}

static void test_l2_decoding(void)
{
    BDRVQcow2State s;
    uint64_t coff;
    int csize;

    memset(&s, 0, sizeof(s));
    qcow2_init_geometry(&s, 16, 4, false);
    g_assert_cmpint(s.l2_size, ==, 8192);
    g_assert_cmpint(s.refblock_size, ==, 32768);
    g_assert_cmpint(s.csize_shift, ==, 54);
    g_assert_cmpuint(qcow2_l1_size_for(16, false, 64 * MiB), ==, 1);
    g_assert_cmpuint(qcow2_l1_size_for(16, false, 512 * MiB + 1), ==, 2);
    g_assert_cmpint(qcow2_get_subcluster_type(&s, 0, 0, 0), ==,
                    QCOW2_SC_UNALLOCATED_PLAIN);
    g_assert_cmpint(qcow2_get_subcluster_type(&s, 0x50000 | QCOW_OFLAG_COPIED,
                                              0, 0), ==, QCOW2_SC_NORMAL);
    g_assert_cmpint(qcow2_get_subcluster_type(&s, 1, 0, 0), ==,
                    QCOW2_SC_ZERO_PLAIN);
    g_assert_cmpint(qcow2_get_subcluster_type(&s, 0x50001, 0, 0), ==,
                    QCOW2_SC_ZERO_ALLOC);
    g_assert_cmpint(qcow2_get_subcluster_type(&s, 0x50200, 0, 0), ==,
                    QCOW2_SC_INVALID);
    /* Compressed: 3 extra sectors at byte 0x51234. */
    uint64_t e = QCOW_OFLAG_COMPRESSED | 0x51234 | (UINT64_C(3) << 54);
    g_assert_cmpint(qcow2_get_subcluster_type(&s, e, 0, 0), ==,
                    QCOW2_SC_COMPRESSED);
    qcow2_parse_compressed_l2_entry(&s, e, &coff, &csize);
    g_assert_cmpuint(coff, ==, 0x51234);
    g_assert_cmpint(csize, ==, 4 * 512 - 0x34);

    /* Extended L2: 32 subclusters, alloc bits low, zero bits high. */
    qcow2_init_geometry(&s, 16, 4, true);
    g_assert_cmpint(s.subcluster_size, ==, 2048);
    g_assert_cmpint(s.l2_size, ==, 4096);
    uint64_t bm = 0x1 | (UINT64_C(0x2) << 32);
    g_assert_cmpint(qcow2_get_subcluster_type(&s, 0x50000, bm, 0), ==,
                    QCOW2_SC_NORMAL);
    g_assert_cmpint(qcow2_get_subcluster_type(&s, 0x50000, bm, 1), ==,
                    QCOW2_SC_ZERO_ALLOC);
    g_assert_cmpint(qcow2_get_subcluster_type(&s, 0x50000, bm, 2), ==,
                    QCOW2_SC_UNALLOCATED_ALLOC);
    g_assert_cmpint(qcow2_get_subcluster_type(&s, 0, bm, 0), ==,
                    QCOW2_SC_INVALID);
    g_assert_cmpint(qcow2_get_subcluster_type(&s, 0, UINT64_C(2) << 32, 1), ==,
                    QCOW2_SC_ZERO_PLAIN);
    g_assert_cmpint(qcow2_get_subcluster_type(&s, 0x50000, 0x3 | (UINT64_C(1) << 32), 0),
                    ==, QCOW2_SC_INVALID);
}

static void test_compress(void)
{
    for (int type = 0; type <= 1; type++) {
        g_autofree uint8_t *src = g_malloc(65536);
        g_autofree uint8_t *cmp = g_malloc(65536);
        g_autofree uint8_t *out = g_malloc(65536);
        for (int i = 0; i < 65536; i++) {
            src[i] = (i / 100) & 0xff;
        }
        ssize_t n = qcow2_compress(type, cmp, 65535, src, 65536);
        g_assert_cmpint(n, >, 0);
        g_assert_cmpint(n, <, 4096);
        /* Sector padding after the stream must not matter. */
        memset(cmp + n, 0xaa, 512);
        g_assert_cmpint(qcow2_decompress(type, out, 65536, cmp, n + 512), ==, 0);
        g_assert_cmpmem(out, 65536, src, 65536);
        /* Truncated input fails. */
        g_assert_cmpint(qcow2_decompress(type, out, 65536, cmp, n / 2), <, 0);
        /* Random data does not fit in less than its size. */
        GRand *r = g_rand_new_with_seed(type + 1);
        for (int i = 0; i < 65536; i++) {
            src[i] = g_rand_int(r);
        }
        g_rand_free(r);
        g_assert_cmpint(qcow2_compress(type, cmp, 65535, src, 65536), ==,
                        -ENOMEM);
    }
}

/* In-memory disk for the cache tests; records the order of writes. */
typedef struct {
    uint8_t disk[64 * 1024];
    GString *log;
} MemDisk;

static int memdisk_io(void *opaque, bool write, uint64_t offset, void *buf,
                      size_t len)
{
    MemDisk *d = opaque;
    g_assert_cmpuint(offset + len, <=, sizeof(d->disk));
    if (write) {
        memcpy(d->disk + offset, buf, len);
        g_string_append_printf(d->log, "w%" PRIu64 " ", offset / 512);
    } else {
        memcpy(buf, d->disk + offset, len);
        g_string_append_printf(d->log, "r%" PRIu64 " ", offset / 512);
    }
    return 0;
}

static void test_cache(void)
{
    MemDisk d;
    Qcow2Cache *l2, *rc;
    void *t, *t2, *t3;

    memset(d.disk, 0, sizeof(d.disk));
    d.log = g_string_new(NULL);
    for (int i = 0; i < 16; i++) {
        d.disk[i * 512] = i;
    }
    l2 = qcow2_cache_create(NULL, 2, 512, "l2");
    rc = qcow2_cache_create(NULL, 2, 512, "refcount");
    qcow2_cache_set_io(l2, memdisk_io, &d);
    qcow2_cache_set_io(rc, memdisk_io, &d);
    g_assert_cmpint(qcow2_cache_num_entries(l2), ==, 2);

    /* A hit does not read twice. */
    g_assert_cmpint(qcow2_cache_get(NULL, l2, 512, &t), ==, 0);
    g_assert_cmpint(((uint8_t *)t)[0], ==, 1);
    qcow2_cache_put(l2, &t);
    g_assert_null(t);
    g_assert_cmpint(qcow2_cache_get(NULL, l2, 512, &t), ==, 0);
    qcow2_cache_put(l2, &t);
    g_assert_cmpstr(d.log->str, ==, "r1 ");

    /* Both slots in use: a third table cannot be loaded. */
    g_assert_cmpint(qcow2_cache_get(NULL, l2, 512, &t), ==, 0);
    g_assert_cmpint(qcow2_cache_get(NULL, l2, 1024, &t2), ==, 0);
    g_assert_cmpint(qcow2_cache_get(NULL, l2, 1536, &t3), ==, -ENOSPC);
    ((uint8_t *)t2)[1] = 0x77;
    qcow2_cache_entry_mark_dirty(l2, t2);
    qcow2_cache_put(l2, &t);
    qcow2_cache_put(l2, &t2);

    /* Dependency: the refcount cache is written before dirty L2 tables. */
    g_assert_cmpint(qcow2_cache_get(NULL, rc, 4096, &t), ==, 0);
    ((uint8_t *)t)[1] = 0x55;
    qcow2_cache_entry_mark_dirty(rc, t);
    qcow2_cache_put(rc, &t);
    qcow2_cache_set_dependency(l2, rc);
    g_string_truncate(d.log, 0);
    /* LRU: 512 was used after 1024? No: 1024 was got last, so 512 is the
     * victim and is clean; then 1024 is evicted (dirty) by the next load. */
    g_assert_cmpint(qcow2_cache_get(NULL, l2, 2048, &t), ==, 0);
    qcow2_cache_put(l2, &t);
    g_assert_cmpstr(d.log->str, ==, "r4 ");
    g_assert_cmpint(qcow2_cache_get(NULL, l2, 2560, &t), ==, 0);
    qcow2_cache_put(l2, &t);
    g_assert_cmpstr(d.log->str, ==, "r4 w8 w2 r5 ");
    g_assert_cmpint(d.disk[1024 + 1], ==, 0x77);
    g_assert_cmpint(d.disk[4096 + 1], ==, 0x55);

    /* get_empty does not read; flush writes dirty entries once. */
    g_string_truncate(d.log, 0);
    g_assert_cmpint(qcow2_cache_get_empty(NULL, l2, 3072, &t), ==, 0);
    memset(t, 0xee, 512);
    qcow2_cache_entry_mark_dirty(l2, t);
    qcow2_cache_put(l2, &t);
    g_assert_cmpint(qcow2_cache_write(NULL, l2), ==, 0);
    g_assert_cmpint(qcow2_cache_write(NULL, l2), ==, 0);
    g_assert_cmpstr(d.log->str, ==, "w6 ");
    g_assert_cmpint(d.disk[3072 + 100], ==, 0xee);

    /* Discard and clean-unused drop entries. */
    qcow2_cache_discard(l2, 3072);
    g_assert_cmpint(qcow2_cache_num_loaded(l2), ==, 1);
    qcow2_cache_clean_unused(l2);   /* marks all as unused */
    qcow2_cache_clean_unused(l2);   /* drops them */
    g_assert_cmpint(qcow2_cache_num_loaded(l2), ==, 0);

    qcow2_cache_destroy(l2);
    qcow2_cache_destroy(rc);
    g_string_free(d.log, true);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/qcow2/header/roundtrip", test_header_roundtrip);
    g_test_add_func("/qcow2/header/backing-unknown-ext",
                    test_header_backing_and_unknown_ext);
    g_test_add_func("/qcow2/header/corrupt", test_header_corrupt);
    g_test_add_func("/qcow2/header/truncated", test_header_truncated);
    g_test_add_func("/qcow2/header/feature-names", test_feature_names);
    g_test_add_func("/qcow2/refcount/entries", test_refcount_entries);
    g_test_add_func("/qcow2/l2/decoding", test_l2_decoding);
    g_test_add_func("/qcow2/compress", test_compress);
    g_test_add_func("/qcow2/cache", test_cache);
    return g_test_run();
}
