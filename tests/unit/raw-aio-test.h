/*
 * Body shared by test-linux-aio.c and test-io-uring.c: the including file
 * defines ENGINE_* to select the engine; the checks are identical.
 * The scratch file lives next to the test executable (in the build tree),
 * because /tmp is often tmpfs, where O_DIRECT fails.
 */
#ifndef RAW_AIO_TEST_H
#define RAW_AIO_TEST_H

#define BLK 4096
#define NBLK 64

static AioContext *ctx;
static char *path;
static int fd = -1;

static bool setup_file(void)
{
    g_autofree char *exe = g_file_read_link("/proc/self/exe", NULL);
    g_autofree char *dir = g_path_get_dirname(exe);

    path = g_strdup_printf("%s/%s-scratch.%d", dir, ENGINE_NAME, getpid());
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_DIRECT, 0600);
    if (fd < 0) {
        return false;
    }
    return true;
}

typedef struct {
    ENGINE_STATE *s;
    int ret;
    size_t transferred;
    IOVector *qiov;
    uint64_t offset;
    QBAioType type;
    bool done;
} Req;

static int done_count;

static void coroutine_fn req_co(void *opaque)
{
    Req *r = opaque;
    r->ret = ENGINE_SUBMIT(r->s, fd, r->offset, r->qiov, r->type,
                           &r->transferred);
    r->done = true;
    done_count++;
}

static void wait_for(int n)
{
    int64_t deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
    while (done_count < n && g_get_monotonic_time() < deadline) {
        aio_poll(ctx, true);
    }
    g_assert_cmpint(done_count, ==, n);
}

static bool skip_if_unusable(void)
{
    if (!ENGINE_AVAILABLE()) {
        g_test_skip(ENGINE_NAME " not available");
        return true;
    }
    if (fd < 0) {
        g_test_skip("O_DIRECT not supported in the build directory");
        return true;
    }
    return false;
}

static void test_write_read(void)
{
    Error *err = NULL;
    ENGINE_STATE *s;
    uint8_t *wbuf, *rbuf;
    IOVector wq[NBLK], rq[NBLK];
    Req reqs[NBLK];

    if (skip_if_unusable()) {
        return;
    }
    s = ENGINE_GET(ctx, &err);
    g_assert_null(err);
    g_assert_nonnull(s);
    g_assert_true(ENGINE_GET(ctx, &error_abort) == s);

    wbuf = qb_memalign(BLK, BLK * NBLK);
    rbuf = qb_memalign(BLK, BLK * NBLK);
    for (int i = 0; i < BLK * NBLK; i++) {
        wbuf[i] = (i / BLK) * 7 + i % 251;
    }
    memset(rbuf, 0xEE, BLK * NBLK);

    /* All writes are issued before the loop runs: one batch. */
    done_count = 0;
    for (int i = 0; i < NBLK; i++) {
        /* Two-element vectors, to exercise preadv/pwritev. */
        qiov_init(&wq[i], 2);
        qiov_add(&wq[i], wbuf + i * BLK, BLK / 2);
        qiov_add(&wq[i], wbuf + i * BLK + BLK / 2, BLK / 2);
        reqs[i] = (Req){ s, -1, 0, &wq[i], (uint64_t)i * BLK, QB_AIO_WRITE };
        coroutine_enter(coroutine_create(req_co, &reqs[i]));
    }
    g_assert_cmpint(done_count, ==, 0);   /* nothing completes synchronously */
    wait_for(NBLK);
    for (int i = 0; i < NBLK; i++) {
        g_assert_cmpint(reqs[i].ret, ==, 0);
        g_assert_cmpuint(reqs[i].transferred, ==, BLK);
    }

    /* Flush. */
    Req fl = { s, -1, 0, NULL, 0, QB_AIO_FLUSH };
    done_count = 0;
    coroutine_enter(coroutine_create(req_co, &fl));
    wait_for(1);
    g_assert_cmpint(fl.ret, ==, 0);

    /* Read back in reverse order. */
    done_count = 0;
    for (int i = NBLK - 1; i >= 0; i--) {
        qiov_init_buf(&rq[i], rbuf + i * BLK, BLK);
        reqs[i] = (Req){ s, -1, 0, &rq[i], (uint64_t)i * BLK, QB_AIO_READ };
        coroutine_enter(coroutine_create(req_co, &reqs[i]));
    }
    wait_for(NBLK);
    for (int i = 0; i < NBLK; i++) {
        g_assert_cmpint(reqs[i].ret, ==, 0);
        g_assert_cmpuint(reqs[i].transferred, ==, BLK);
        qiov_destroy(&wq[i]);
    }
    g_assert_cmpmem(rbuf, BLK * NBLK, wbuf, BLK * NBLK);

    /* Short read: 2 blocks from the last block of the file. */
    IOVector sq;
    memset(rbuf, 0xEE, 2 * BLK);
    qiov_init_buf(&sq, rbuf, 2 * BLK);
    Req sr = { s, -1, 0, &sq, (uint64_t)(NBLK - 1) * BLK, QB_AIO_READ };
    done_count = 0;
    coroutine_enter(coroutine_create(req_co, &sr));
    wait_for(1);
    g_assert_cmpint(sr.ret, ==, 0);
    g_assert_cmpuint(sr.transferred, ==, BLK);
    g_assert_cmpmem(rbuf, BLK, wbuf + (NBLK - 1) * BLK, BLK);

    /* Misaligned O_DIRECT request: an error, not a hang or crash. */
    IOVector bq;
    qiov_init_buf(&bq, rbuf + 1, 512);
    Req br = { s, 1, 0, &bq, 3, QB_AIO_READ };
    done_count = 0;
    coroutine_enter(coroutine_create(req_co, &br));
    wait_for(1);
    g_assert_cmpint(br.ret, ==, -EINVAL);

    qb_vfree(wbuf);
    qb_vfree(rbuf);
}

/*
 * Depth 32 the way a guest or qemu-img bench drives it: each of 32
 * coroutines issues its next request as soon as the previous one
 * completes, i.e. from the engine's completion handler (linux-aio sends
 * such a request to the kernel at once).  Every chain must finish and
 * every block must read back what its last write put there.
 */
enum { CHAINS = 32, CHAIN_LEN = 40 };

typedef struct {
    ENGINE_STATE *s;
    int id;
    uint8_t *buf;        /* one block */
    int failures;
} Chain;

static void coroutine_fn chain_co(void *opaque)
{
    Chain *c = opaque;

    for (int i = 0; i < CHAIN_LEN; i++) {
        int blk = (c->id + i * CHAINS) % NBLK;
        IOVector q;
        size_t n = 0;
        int ret;

        qiov_init_buf(&q, c->buf, BLK);
        if (i % 2 == 0) {
            memset(c->buf, c->id * 5 + i, BLK);
            ret = ENGINE_SUBMIT(c->s, fd, (uint64_t)blk * BLK, &q,
                                QB_AIO_WRITE, &n);
        } else {
            /* Read back what the previous iteration wrote (same chain,
             * previous block), then check it. */
            int prev = (c->id + (i - 1) * CHAINS) % NBLK;
            memset(c->buf, 0xEE, BLK);
            ret = ENGINE_SUBMIT(c->s, fd, (uint64_t)prev * BLK, &q,
                                QB_AIO_READ, &n);
            for (int k = 0; ret == 0 && k < BLK; k++) {
                if (c->buf[k] != (uint8_t)(c->id * 5 + i - 1)) {
                    ret = -EILSEQ;
                }
            }
        }
        qiov_destroy(&q);
        if (ret < 0 || n != BLK) {
            c->failures++;
        }
    }
    done_count++;
}

static void test_chained_depth(void)
{
    Chain chains[CHAINS];
    ENGINE_STATE *s;

    if (skip_if_unusable()) {
        return;
    }
    s = ENGINE_GET(ctx, &error_abort);
    done_count = 0;
    for (int i = 0; i < CHAINS; i++) {
        chains[i] = (Chain){ s, i, qb_memalign(BLK, BLK), 0 };
        coroutine_enter(coroutine_create(chain_co, &chains[i]));
    }
    wait_for(CHAINS);
    for (int i = 0; i < CHAINS; i++) {
        g_assert_cmpint(chains[i].failures, ==, 0);
        qb_vfree(chains[i].buf);
    }
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    ctx = qb_get_aio_context();
    setup_file();
    g_test_add_func("/" ENGINE_NAME "/write-read", test_write_read);
    g_test_add_func("/" ENGINE_NAME "/chained-depth", test_chained_depth);
    ret = g_test_run();
    if (fd >= 0) {
        close(fd);
    }
    unlink(path);
    g_free(path);
    return ret;
}

#endif
