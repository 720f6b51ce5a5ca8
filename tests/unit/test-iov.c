/* Unit tests for util/iov.c: building, slicing and copying IOVectors. */
#include "util/iov.h"

/* A 3-element vector over one 64-byte pattern buffer: [0,10) [10,30) [30,64) */
static unsigned char pattern[64];

static void make_split(IOVector *q)
{
    for (int i = 0; i < 64; i++) {
        pattern[i] = i + 1;
    }
    qiov_init(q, 1);   /* forces growth */
    qiov_add(q, pattern, 10);
    qiov_add(q, pattern + 10, 20);
    qiov_add(q, pattern + 30, 34);
}

static void test_build(void)
{
    IOVector q;
    make_split(&q);
    g_assert_cmpint(q.niov, ==, 3);
    g_assert_cmpuint(q.size, ==, 64);
    g_assert_cmpuint(iov_size(q.iov, q.niov), ==, 64);
    qiov_add(&q, pattern, 0);          /* empty add is a no-op */
    g_assert_cmpint(q.niov, ==, 3);
    qiov_reset(&q);
    g_assert_cmpint(q.niov, ==, 0);
    g_assert_cmpuint(q.size, ==, 0);
    qiov_destroy(&q);

    char buf[8];
    qiov_init_buf(&q, buf, sizeof(buf));
    g_assert_cmpint(q.niov, ==, 1);
    g_assert_cmpuint(q.size, ==, 8);
    g_assert_true(q.iov[0].iov_base == buf);
    qiov_destroy(&q);

    struct iovec ext[2] = { { buf, 3 }, { buf + 3, 5 } };
    qiov_init_external(&q, ext, 2);
    g_assert_cmpuint(q.size, ==, 8);
    g_assert_true(q.iov == ext);
    qiov_destroy(&q);   /* must not free ext */
}

static void test_copy(void)
{
    IOVector q;
    unsigned char out[64];
    make_split(&q);

    memset(out, 0, sizeof(out));
    g_assert_cmpuint(qiov_to_buf(&q, 0, out, 64), ==, 64);
    g_assert_cmpmem(out, 64, pattern, 64);

    /* Crossing element boundaries from an inner offset. */
    memset(out, 0, sizeof(out));
    g_assert_cmpuint(qiov_to_buf(&q, 5, out, 30), ==, 30);
    for (int i = 0; i < 30; i++) {
        g_assert_cmpint(out[i], ==, 6 + i);
    }
    /* Reading past the end is truncated. */
    g_assert_cmpuint(qiov_to_buf(&q, 60, out, 30), ==, 4);
    g_assert_cmpuint(qiov_to_buf(&q, 64, out, 30), ==, 0);
    g_assert_cmpuint(qiov_to_buf(&q, 100, out, 30), ==, 0);

    unsigned char src[20];
    memset(src, 0xAA, sizeof(src));
    g_assert_cmpuint(qiov_from_buf(&q, 8, src, 20), ==, 20);
    g_assert_cmpint(pattern[7], ==, 8);
    for (int i = 8; i < 28; i++) {
        g_assert_cmpint(pattern[i], ==, 0xAA);
    }
    g_assert_cmpint(pattern[28], ==, 29);

    g_assert_cmpuint(qiov_memset(&q, 25, 0, 100), ==, 39);
    g_assert_cmpint(pattern[24], ==, 0xAA);
    g_assert_true(qiov_is_zero(&q, 25, 39));
    g_assert_false(qiov_is_zero(&q, 24, 40));
    qiov_destroy(&q);
}

static void test_slice_concat(void)
{
    IOVector q, s, c;
    unsigned char out[64];
    make_split(&q);

    qiov_init_slice(&s, &q, 7, 30);     /* [7,10) [10,30) [30,37) */
    g_assert_cmpuint(s.size, ==, 30);
    g_assert_cmpint(s.niov, ==, 3);
    g_assert_cmpuint(s.iov[0].iov_len, ==, 3);
    g_assert_cmpuint(s.iov[2].iov_len, ==, 7);
    qiov_to_buf(&s, 0, out, 30);
    for (int i = 0; i < 30; i++) {
        g_assert_cmpint(out[i], ==, 8 + i);
    }

    qiov_init_slice(&c, &q, 12, 3);     /* inside one element */
    g_assert_cmpint(c.niov, ==, 1);
    g_assert_true(c.iov[0].iov_base == pattern + 12);
    qiov_concat(&c, &q, 0, 64);
    g_assert_cmpuint(c.size, ==, 67);
    g_assert_cmpint(c.niov, ==, 4);
    qiov_concat(&c, &q, 64, 0);         /* empty tail is allowed */
    g_assert_cmpuint(c.size, ==, 67);

    qiov_destroy(&s);
    qiov_destroy(&c);
    qiov_destroy(&q);
}

static void test_compare(void)
{
    unsigned char a[100], b[100];
    IOVector qa, qb;
    for (int i = 0; i < 100; i++) {
        a[i] = b[i] = i * 7;
    }
    qiov_init(&qa, 2);
    qiov_add(&qa, a, 33);
    qiov_add(&qa, a + 33, 67);
    struct iovec bi[4] = { { b, 1 }, { b + 1, 0 }, { b + 1, 90 }, { b + 91, 9 } };
    qiov_init_external(&qb, bi, 4);
    g_assert_cmpint(qiov_compare(&qa, &qb), ==, -1);
    b[95] ^= 1;
    g_assert_cmpint(qiov_compare(&qa, &qb), ==, 95);
    b[40] ^= 1;
    g_assert_cmpint(qiov_compare(&qa, &qb), ==, 40);
    b[0] ^= 1;
    g_assert_cmpint(qiov_compare(&qa, &qb), ==, 0);
    qiov_destroy(&qa);
}

static void test_aligned_zero(void)
{
    void *buf = qb_memalign(4096, 8192);
    IOVector q;
    qiov_init(&q, 2);
    qiov_add(&q, buf, 4096);
    qiov_add(&q, (char *)buf + 4096, 4096);
    g_assert_true(qiov_is_aligned(&q, 512));
    g_assert_true(qiov_is_aligned(&q, 4096));
    qiov_reset(&q);
    qiov_add(&q, (char *)buf + 512, 1024);
    g_assert_true(qiov_is_aligned(&q, 512));
    g_assert_false(qiov_is_aligned(&q, 4096));
    qiov_add(&q, (char *)buf + 2048, 100);
    g_assert_false(qiov_is_aligned(&q, 512));
    qiov_destroy(&q);

    memset(buf, 0, 8192);
    g_assert_true(buffer_is_zero(buf, 8192));
    g_assert_true(buffer_is_zero(buf, 0));
    g_assert_true(buffer_is_zero(buf, 17));
    for (size_t pos = 0; pos < 8192; pos += 509) {
        ((char *)buf)[pos] = 1;
        g_assert_false(buffer_is_zero(buf, 8192));
        g_assert_true(pos == 0 || buffer_is_zero(buf, pos));
        ((char *)buf)[pos] = 0;
    }
    ((char *)buf)[8191] = 1;
    g_assert_false(buffer_is_zero(buf, 8192));
    g_assert_true(buffer_is_zero(buf, 8191));
    qb_vfree(buf);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/iov/build", test_build);
    g_test_add_func("/iov/copy", test_copy);
    g_test_add_func("/iov/slice-concat", test_slice_concat);
    g_test_add_func("/iov/compare", test_compare);
    g_test_add_func("/iov/aligned-zero", test_aligned_zero);
    return g_test_run();
}
