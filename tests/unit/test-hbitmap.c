/*
 * Unit tests for util/hbitmap.c.  The property tests run random operation
 * sequences against a naive model (one byte per bit) and compare every
 * observable result; the other tests cover chunk boundaries, huge sizes and
 * the serialized form / SHA-256 that must match QEMU's.
 */
#include "util/hbitmap.h"

typedef struct Model {
    uint64_t size, gran, nbits;
    uint8_t *bits;
} Model;

static Model *model_new(uint64_t size, uint64_t gran)
{
    Model *m = g_new0(Model, 1);
    m->size = size;
    m->gran = gran;
    m->nbits = size ? (size - 1) / gran + 1 : 0;
    m->bits = g_malloc0(m->nbits + 1);
    return m;
}

static void model_free(Model *m)
{
    g_free(m->bits);
    g_free(m);
}

static void model_update(Model *m, uint64_t off, uint64_t len, uint8_t v)
{
    if (!len || off >= m->size) {
        return;
    }
    len = MIN(len, m->size - off);
    for (uint64_t b = off / m->gran; b <= (off + len - 1) / m->gran; b++) {
        m->bits[b] = v;
    }
}

static int64_t model_next(Model *m, uint64_t off, uint64_t len, uint8_t v)
{
    if (!len || off >= m->size) {
        return -1;
    }
    len = MIN(len, m->size - off);
    for (uint64_t b = off / m->gran; b <= (off + len - 1) / m->gran; b++) {
        if (m->bits[b] == v) {
            return MAX(b * m->gran, off);
        }
    }
    return -1;
}

static uint64_t model_count(Model *m)
{
    uint64_t n = 0;
    for (uint64_t b = 0; b < m->nbits; b++) {
        n += m->bits[b];
    }
    return n * m->gran;
}

static void check_equal(HBitmap *hb, Model *m)
{
    g_assert_cmpuint(hbitmap_count(hb), ==, model_count(m));
    g_assert_cmpuint(hbitmap_nbits(hb), ==, m->nbits);
    for (uint64_t b = 0; b < m->nbits; b++) {
        if (hbitmap_get(hb, b * m->gran) != m->bits[b]) {
            g_error("bit %" PRIu64 " differs: hbitmap %d model %d", b,
                    hbitmap_get(hb, b * m->gran), m->bits[b]);
        }
    }
    /* Serialized form: LSB-first bytes of the model. */
    uint64_t ssize = hbitmap_serialization_size(hb, 0, m->size);
    g_assert_cmpuint(ssize, ==, QB_DIV_ROUND_UP(m->nbits, 64) * 8);
    g_autofree uint8_t *buf = g_malloc0(ssize + 1);
    hbitmap_serialize_part(hb, buf, 0, m->size);
    for (uint64_t b = 0; b < ssize * 8; b++) {
        int expect = b < m->nbits ? m->bits[b] : 0;
        g_assert_cmpint((buf[b / 8] >> (b % 8)) & 1, ==, expect);
    }
}

static uint64_t rand_range(GRand *r, uint64_t max)
{
    /* Biased towards small and boundary values to hit edge cases. */
    switch (g_rand_int_range(r, 0, 4)) {
    case 0:
        return g_rand_int_range(r, 0, 3);
    case 1:
        return max;
    default:
        return ((uint64_t)g_rand_int(r) << 32 | g_rand_int(r)) % (max + 1);
    }
}

static void run_property(uint64_t nbits_target, uint64_t gran, guint32 seed,
                         int ops)
{
    GRand *r = g_rand_new_with_seed(seed);
    uint64_t size = nbits_target * gran - g_rand_int(r) % gran;
    HBitmap *hb = hbitmap_alloc(size, gran);
    Model *m = model_new(size, gran);

    for (int i = 0; i < ops; i++) {
        uint64_t off = rand_range(r, size + gran);
        uint64_t len = rand_range(r, size);
        int op = g_rand_int_range(r, 0, 9);

        switch (op) {
        case 0: case 1: case 2:
            hbitmap_set(hb, off, len);
            model_update(m, off, len, 1);
            break;
        case 3: case 4:
            hbitmap_reset(hb, off, len);
            model_update(m, off, len, 0);
            break;
        case 5:
            g_assert_cmpint(hbitmap_next_dirty(hb, off, len), ==,
                            model_next(m, off, len, 1));
            g_assert_cmpint(hbitmap_next_clean(hb, off, len), ==,
                            model_next(m, off, len, 0));
            break;
        case 6: {
            uint64_t max_len = g_rand_boolean(r) ? 0 : rand_range(r, size) + 1;
            uint64_t end = off + len, s, l;
            bool found = hbitmap_next_dirty_area(hb, off, end, max_len, &s, &l);
            int64_t d = model_next(m, off, end > off ? end - off : 0, 1);
            g_assert_cmpint(found, ==, d >= 0);
            if (found) {
                uint64_t lim = MIN(end, size);
                if (max_len && max_len < lim - d) {
                    lim = d + max_len;
                }
                int64_t c = model_next(m, d, lim - d, 0);
                g_assert_cmpuint(s, ==, d);
                g_assert_cmpuint(l, ==, (c < 0 ? lim : (uint64_t)c) - d);
            }
            break;
        }
        case 7: {
            /* Round trip of an aligned sub-range through the serialized form. */
            uint64_t align = hbitmap_serialization_align(hb);
            uint64_t start = QB_ALIGN_DOWN(MIN(off, size), align);
            if (start >= size) {
                break;
            }
            uint64_t slen = size - start;
            if (g_rand_boolean(r) && slen > align) {
                slen = QB_ALIGN_DOWN(slen / 2, align) ?: align;
            }
            uint64_t n = hbitmap_serialization_size(hb, start, slen);
            g_autofree uint8_t *buf = g_malloc(n);
            hbitmap_serialize_part(hb, buf, start, slen);
            hbitmap_reset(hb, start, slen);
            if (g_rand_boolean(r)) {
                hbitmap_set(hb, start, slen);  /* garbage that must vanish */
            }
            hbitmap_deserialize_part(hb, buf, start, slen);
            break;
        }
        case 8: {
            g_autoptr(HBitmap) copy = hbitmap_copy(hb);
            hbitmap_reset_all(hb);
            g_assert_cmpuint(hbitmap_count(hb), ==, 0);
            hbitmap_restore(hb, copy);
            break;
        }
        }
        if (i % 16 == 15 || i == ops - 1) {
            check_equal(hb, m);
        }
    }
    hbitmap_free(hb);
    model_free(m);
    g_rand_free(r);
}

static void test_property(void)
{
    static const uint64_t grans[] = { 1, 512, 4096, 65536, 1 << 20, 1U << 31 };
    /* Bit counts around the chunk size (32768) and the word size. */
    static const uint64_t nbits[] = { 1, 63, 64, 65, 1000, 32767, 32768,
                                      32769, 70000 };
    guint32 seed = 1;

    for (unsigned g = 0; g < G_N_ELEMENTS(grans); g++) {
        for (unsigned n = 0; n < G_N_ELEMENTS(nbits); n++) {
            int ops = nbits[n] > 10000 ? 60 : 300;
            run_property(nbits[n], grans[g], seed++, ops);
        }
    }
}

static void test_truncate_property(void)
{
    GRand *r = g_rand_new_with_seed(42);
    for (int iter = 0; iter < 40; iter++) {
        uint64_t gran = 512;
        uint64_t size = (g_rand_int_range(r, 1, 90000)) * gran;
        HBitmap *hb = hbitmap_alloc(size, gran);
        Model *m = model_new(size, gran);
        for (int i = 0; i < 10; i++) {
            uint64_t off = rand_range(r, size), len = rand_range(r, size);
            hbitmap_set(hb, off, len);
            model_update(m, off, len, 1);
        }
        uint64_t new_size = g_rand_int_range(r, 0, 90000) * gran +
                            g_rand_int(r) % gran;
        hbitmap_truncate(hb, new_size);
        Model *m2 = model_new(new_size, gran);
        memcpy(m2->bits, m->bits, MIN(m->nbits, m2->nbits));
        check_equal(hb, m2);
        /* New bits must be clean and usable. */
        hbitmap_set(hb, 0, new_size);
        model_update(m2, 0, new_size, 1);
        check_equal(hb, m2);
        hbitmap_free(hb);
        model_free(m);
        model_free(m2);
    }
    g_rand_free(r);
}

static void test_full_chunk_truncate(void)
{
    /* A full, partial last chunk must not claim the bits added by growth. */
    HBitmap *hb = hbitmap_alloc(100 * 512, 512);
    hbitmap_set_all(hb);
    g_assert_cmpuint(hbitmap_count(hb), ==, 100 * 512);
    hbitmap_truncate(hb, 40000 * 512);
    g_assert_cmpuint(hbitmap_count(hb), ==, 100 * 512);
    g_assert_cmpint(hbitmap_next_clean(hb, 0, UINT64_MAX), ==, 100 * 512);
    g_assert_false(hbitmap_get(hb, 100 * 512));
    hbitmap_truncate(hb, 50 * 512);
    g_assert_cmpuint(hbitmap_count(hb), ==, 50 * 512);
    hbitmap_free(hb);
}

static void test_count_not_clipped(void)
{
    /* QEMU semantics: count is bits * granularity, even past the end. */
    HBitmap *hb = hbitmap_alloc(1 * MiB, 2 * GiB);
    hbitmap_set(hb, 4096, 1);
    g_assert_cmpuint(hbitmap_count(hb), ==, 2 * GiB);
    hbitmap_free(hb);

    hb = hbitmap_alloc(4 * MiB, 512);
    hbitmap_set(hb, 0, 64 * KiB + 512 + 1);   /* from qmp-compat.md */
    g_assert_cmpuint(hbitmap_count(hb), ==, 66560);
    hbitmap_free(hb);
}

static void test_huge_sparse(void)
{
    /* 16 TiB at 512 B granularity: 2^35 bits, but memory follows the dirty
     * areas: only partly dirty chunks are materialized. */
    uint64_t size = 16 * TiB;
    HBitmap *hb = hbitmap_alloc(size, 512);
    size_t empty_mem = hbitmap_memory_usage(hb);

    hbitmap_set(hb, 0, 4096);
    hbitmap_set(hb, 8 * TiB, 1);
    hbitmap_set(hb, size - 1, 1);
    hbitmap_set(hb, 2 * TiB, 64 * MiB);        /* full chunks: no storage */
    g_assert_cmpuint(hbitmap_count(hb), ==, 4096 + 512 + 512 + 64 * MiB);
    g_assert_cmpuint(hbitmap_memory_usage(hb) - empty_mem, <=, 4 * 4096);
    g_assert_cmpint(hbitmap_next_dirty(hb, 4096, UINT64_MAX), ==, 2 * TiB);
    g_assert_cmpint(hbitmap_next_dirty(hb, 2 * TiB + 64 * MiB, UINT64_MAX), ==,
                    8 * TiB);
    g_assert_cmpint(hbitmap_next_clean(hb, 2 * TiB, UINT64_MAX), ==,
                    2 * TiB + 64 * MiB);
    g_assert_cmpint(hbitmap_next_dirty(hb, 8 * TiB + 512, 4 * TiB), ==, -1);
    g_assert_cmpint(hbitmap_next_dirty(hb, 8 * TiB + 512, UINT64_MAX), ==,
                    size - 512);

    uint64_t s, l;
    g_assert_true(hbitmap_next_dirty_area(hb, 1 * TiB, size, 1 * MiB, &s, &l));
    g_assert_cmpuint(s, ==, 2 * TiB);
    g_assert_cmpuint(l, ==, 1 * MiB);

    hbitmap_reset(hb, 2 * TiB, 64 * MiB);
    hbitmap_reset(hb, 0, 4096);
    hbitmap_reset(hb, 8 * TiB, 512);
    hbitmap_reset(hb, size - 512, 512);
    g_assert_true(hbitmap_is_empty(hb));
    g_assert_cmpuint(hbitmap_memory_usage(hb), ==, empty_mem);
    hbitmap_free(hb);
}

static void test_huge_granularities(void)
{
    /* 16 TiB at 64 KiB and 2 GiB; merge across granularities. */
    HBitmap *a = hbitmap_alloc(16 * TiB, 64 * KiB);
    HBitmap *b = hbitmap_alloc(16 * TiB, 2 * GiB);
    hbitmap_set(a, 3 * GiB + 5, 1);
    g_assert_true(hbitmap_merge_into(b, a));
    g_assert_cmpuint(hbitmap_count(b), ==, 2 * GiB);
    g_assert_true(hbitmap_get(b, 2 * GiB));
    hbitmap_set(b, 10 * TiB, 1);
    g_assert_true(hbitmap_merge_into(a, b));
    g_assert_cmpuint(hbitmap_count(a), ==, 2 * 2 * GiB);
    HBitmap *c = hbitmap_alloc(8 * TiB, 64 * KiB);
    g_assert_false(hbitmap_merge_into(a, c));
    hbitmap_free(a);
    hbitmap_free(b);
    hbitmap_free(c);
}

static void test_serialized_layout(void)
{
    /* qcow2-bitmaps.md §4: 4 MiB disk, 64 KiB granularity, write at 1 MiB
     * → byte 2 = 0x01; 512 B granularity, 4 KiB at 1 MiB → byte 256 = 0xff. */
    HBitmap *hb = hbitmap_alloc(4 * MiB, 64 * KiB);
    uint8_t buf[8];
    hbitmap_set(hb, 1 * MiB, 1);
    g_assert_cmpuint(hbitmap_serialization_size(hb, 0, 4 * MiB), ==, 8);
    hbitmap_serialize_part(hb, buf, 0, 4 * MiB);
    g_assert_cmpuint(buf[2], ==, 0x01);
    g_assert_cmpuint(buf[0] | buf[1] | buf[3] | buf[4] | buf[5] | buf[6] | buf[7], ==, 0);
    hbitmap_free(hb);

    hb = hbitmap_alloc(4 * MiB, 512);
    hbitmap_set(hb, 1 * MiB, 4096);
    uint64_t n = hbitmap_serialization_size(hb, 0, 4 * MiB);
    g_assert_cmpuint(n, ==, 1024);
    g_autofree uint8_t *big = g_malloc(n);
    hbitmap_serialize_part(hb, big, 0, 4 * MiB);
    for (uint64_t i = 0; i < n; i++) {
        g_assert_cmpuint(big[i], ==, i == 256 ? 0xff : 0);
    }
    g_assert_true(hbitmap_range_is_zero(hb, 0, 1 * MiB));
    g_assert_false(hbitmap_range_is_zero(hb, 0, 1 * MiB + 1));
    g_assert_true(hbitmap_range_is_full(hb, 1 * MiB, 4096));
    hbitmap_free(hb);
}

static void test_sha256(void)
{
    /* An all-clean bitmap of <= 64 bits hashes 8 zero bytes (observed on
     * QEMU 7.2's x-debug-block-dirty-bitmap-sha256). */
    HBitmap *hb = hbitmap_alloc(1 * MiB, 64 * KiB);
    g_autofree char *h = hbitmap_sha256(hb);
    g_assert_cmpstr(h, ==,
        "af5570f5a1810b7af78caf4bc70a660f0df51e42baf91d4de5b2328de0e83dfc");
    hbitmap_free(hb);

    /* The digest equals the SHA-256 of the serialized bytes, also across
     * chunk boundaries and with full/empty chunk fast paths. */
    hb = hbitmap_alloc(200000 * 512ULL, 512);
    hbitmap_set(hb, 12345, 999999);
    hbitmap_set(hb, 40000 * 512ULL, 33000 * 512ULL);
    uint64_t n = hbitmap_serialization_size(hb, 0, hbitmap_size(hb));
    g_autofree uint8_t *buf = g_malloc(n);
    hbitmap_serialize_part(hb, buf, 0, hbitmap_size(hb));
    g_autofree char *expect = g_compute_checksum_for_data(G_CHECKSUM_SHA256, buf, n);
    g_autofree char *got = hbitmap_sha256(hb);
    g_assert_cmpstr(got, ==, expect);
    hbitmap_free(hb);
}

static void test_zero_size(void)
{
    HBitmap *hb = hbitmap_alloc(0, 512);
    uint64_t s, l;
    hbitmap_set(hb, 0, 100);
    g_assert_cmpuint(hbitmap_count(hb), ==, 0);
    g_assert_cmpint(hbitmap_next_dirty(hb, 0, UINT64_MAX), ==, -1);
    g_assert_false(hbitmap_next_dirty_area(hb, 0, UINT64_MAX, 0, &s, &l));
    hbitmap_truncate(hb, 4096);
    hbitmap_set(hb, 0, 1);
    g_assert_cmpuint(hbitmap_count(hb), ==, 512);
    hbitmap_free(hb);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/hbitmap/property", test_property);
    g_test_add_func("/hbitmap/truncate-property", test_truncate_property);
    g_test_add_func("/hbitmap/full-chunk-truncate", test_full_chunk_truncate);
    g_test_add_func("/hbitmap/count-not-clipped", test_count_not_clipped);
    g_test_add_func("/hbitmap/huge-sparse", test_huge_sparse);
    g_test_add_func("/hbitmap/huge-granularities", test_huge_granularities);
    g_test_add_func("/hbitmap/serialized-layout", test_serialized_layout);
    g_test_add_func("/hbitmap/sha256", test_sha256);
    g_test_add_func("/hbitmap/zero-size", test_zero_size);
    return g_test_run();
}
