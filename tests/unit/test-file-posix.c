/*
 * Unit tests of the file protocol driver's data path, open options,
 * truncation and creation.  The driver is driven through its vtable on a
 * hand-made node, so these tests check the driver alone (io.c and the
 * graph code have their own tests).  Scratch files live in a directory
 * under the current directory, not /tmp: /tmp may be tmpfs, where O_DIRECT
 * does not work.
 */
#include "block/block-int.h"
#include "util/raw-aio.h"

#include <sys/stat.h>

extern BlockDriver bdrv_file;

static char *test_dir;

static char *test_path(const char *name)
{
    return g_build_filename(test_dir, name, NULL);
}

/* Make a file of size bytes filled with byte pattern (0 = sparse). */
static char *make_file(const char *name, int64_t size, int pattern)
{
    char *path = test_path(name);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(ftruncate(fd, size), ==, 0);
    if (pattern) {
        g_autofree char *buf = g_malloc(size);
        memset(buf, pattern, size);
        g_assert_cmpint(pwrite(fd, buf, size, 0), ==, size);
    }
    close(fd);
    return path;
}

static BlockDriverState *node_new(int flags)
{
    BlockDriverState *bs = g_new0(BlockDriverState, 1);

    bs->drv = &bdrv_file;
    bs->opaque = g_malloc0(bdrv_file.instance_size);
    bs->open_flags = flags;
    bs->read_only = !(flags & BDRV_O_RDWR);
    bs->refcnt = 1;
    return bs;
}

static void node_free(BlockDriverState *bs)
{
    g_free(bs->opaque);
    g_free(bs);
}

/* Open path with extra options (a JSON text or NULL).  On failure returns
 * NULL and the error; on success checks every option was consumed. */
static BlockDriverState *open_node(const char *path, const char *extra,
                                   int flags, Error **errp)
{
    BlockDriverState *bs = node_new(flags);
    json_t *opts = extra ? json_loads(extra, 0, NULL) : json_object();
    int ret;

    g_assert(opts);
    if (path) {
        json_object_set_new(opts, "filename", json_string(path));
    }
    ret = bdrv_file.bdrv_open(bs, opts, flags, errp);
    if (ret < 0) {
        json_decref(opts);
        node_free(bs);
        return NULL;
    }
    g_assert_cmpint(json_object_size(opts), ==, 0);
    json_decref(opts);
    bdrv_file.bdrv_refresh_limits(bs, NULL);
    return bs;
}

static void close_node(BlockDriverState *bs)
{
    bdrv_file.bdrv_close(bs);
    node_free(bs);
}

/* Run fn(opaque) in a coroutine and wait for it in the main context. */
typedef struct CoRun {
    void (*fn)(void *opaque);
    void *opaque;
    bool done;
} CoRun;

static void coroutine_fn co_run_entry(void *opaque)
{
    CoRun *r = opaque;
    r->fn(r->opaque);
    r->done = true;
}

static void run_in_coroutine(void (*fn)(void *), void *opaque)
{
    CoRun r = { .fn = fn, .opaque = opaque };
    Coroutine *co = coroutine_create(co_run_entry, &r);
    int64_t deadline = g_get_monotonic_time() + 60 * G_USEC_PER_SEC;

    coroutine_enter(co);
    while (!r.done) {
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        aio_poll(qb_get_aio_context(), true);
    }
}

static int co_rw(BlockDriverState *bs, bool write, int64_t offset, void *buf,
                 int64_t bytes)
{
    IOVector qiov;
    int ret;

    qiov_init_buf(&qiov, buf, bytes);
    ret = write ? bdrv_file.bdrv_co_pwritev(bs, offset, bytes, &qiov, 0)
                : bdrv_file.bdrv_co_preadv(bs, offset, bytes, &qiov, 0);
    qiov_destroy(&qiov);
    return ret;
}

static void assert_bytes(const uint8_t *buf, size_t len, int val)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != val) {
            g_error("byte %zu is 0x%02x, expected 0x%02x", i, buf[i], val);
        }
    }
}

/* ---------------------------------------------------------------- */

static void expect_open_error(const char *path, const char *extra, int flags,
                              const char *msg)
{
    Error *err = NULL;
    BlockDriverState *bs = open_node(path, extra, flags, &err);

    g_assert_null(bs);
    g_assert_nonnull(err);
    g_assert_cmpstr(error_get_pretty(err), ==, msg);
    error_free(err);
}

static void test_open_errors(void)
{
    g_autofree char *f = make_file("open.raw", 4096, 0);
    g_autofree char *missing = test_path("missing.raw");
    g_autofree char *msg = g_strdup_printf(
        "Could not open '%s': No such file or directory", missing);
    g_autofree char *dirmsg = g_strdup_printf(
        "'file' driver requires '%s' to be a regular file", test_dir);

    expect_open_error(NULL, NULL, BDRV_O_RDWR,
                      "The 'file' block driver requires a file name");
    expect_open_error(missing, NULL, BDRV_O_RDWR, msg);
    /* Open comes before the aio=native check, as in QEMU. */
    expect_open_error(missing, "{\"aio\":\"native\"}", BDRV_O_RDWR, msg);
    expect_open_error(test_dir, NULL, 0, dirmsg);
    expect_open_error(f, "{\"aio\":\"native\"}", BDRV_O_RDWR,
                      "aio=native was specified, but it requires "
                      "cache.direct=on, which was not specified.");
    expect_open_error(f, "{\"aio\":\"bogus\"}", BDRV_O_RDWR,
                      "invalid parameter value: bogus");
    expect_open_error(f, "{\"locking\":\"maybe\"}", BDRV_O_RDWR,
                      "invalid parameter value: maybe");
    expect_open_error(f, "{\"pr-manager\":\"pr0\"}", BDRV_O_RDWR,
                      "No persistent reservation manager with id 'pr0'");
    expect_open_error(f, "{\"drop-cache\":\"xx\"}", BDRV_O_RDWR,
                      "Parameter 'drop-cache' expects 'on' or 'off'");

    /* Every known option is consumed. */
    Error *err = NULL;
    BlockDriverState *bs = open_node(f, "{\"locking\":\"off\",\"aio\":"
                                     "\"threads\",\"aio-max-batch\":\"8\","
                                     "\"drop-cache\":\"off\","
                                     "\"x-check-cache-dropped\":\"on\"}",
                                     0, &err);
    g_assert_null(err);
    g_assert_nonnull(bs);
    g_assert_cmpint(bdrv_file.bdrv_getlength(bs), ==, 4096);
    close_node(bs);
}

/* ---------------------------------------------------------------- */

typedef struct RwCase {
    BlockDriverState *bs;
    size_t align;          /* buffer alignment to use (0: malloc) */
    size_t misalign;       /* added to the buffer address */
    int64_t chunk;         /* request size, multiple of request_alignment */
} RwCase;

static void co_rw_roundtrip(void *opaque)
{
    RwCase *c = opaque;
    int64_t n = c->chunk;
    size_t a = MAX(c->align, 4096);
    uint8_t *wbase = qb_memalign(a, n * 4 + a);
    uint8_t *rbase = qb_memalign(a, n * 4 + a);
    uint8_t *w = wbase + c->misalign, *r = rbase + c->misalign;
    IOVector qiov;

    for (int64_t i = 0; i < 4 * n; i++) {
        w[i] = (uint8_t)(i * 7 + 3);
    }
    g_assert_cmpint(co_rw(c->bs, true, 0, w, 4 * n), ==, 0);
    memset(r, 0xee, 4 * n);
    g_assert_cmpint(co_rw(c->bs, false, 0, r, 4 * n), ==, 0);
    g_assert(memcmp(w, r, 4 * n) == 0);

    /* Scattered vector: three pieces out of order in memory. */
    memset(r, 0xee, 4 * n);
    qiov_init(&qiov, 3);
    qiov_add(&qiov, r + 3 * n, n);
    qiov_add(&qiov, r, n);
    qiov_add(&qiov, r + n, 2 * n);
    g_assert_cmpint(bdrv_file.bdrv_co_preadv(c->bs, 0, 4 * n, &qiov, 0),
                    ==, 0);
    qiov_destroy(&qiov);
    g_assert(memcmp(r + 3 * n, w, n) == 0);
    g_assert(memcmp(r, w + n, n) == 0);
    g_assert(memcmp(r + n, w + 2 * n, 2 * n) == 0);

    /* Writes land where asked, the rest stays. */
    memset(w, 0x5a, n);
    g_assert_cmpint(co_rw(c->bs, true, 2 * n, w, n), ==, 0);
    g_assert_cmpint(co_rw(c->bs, false, 2 * n, r, n), ==, 0);
    assert_bytes(r, n, 0x5a);

    qb_vfree(wbase);
    qb_vfree(rbase);
}

static void test_rw_threads(void)
{
    g_autofree char *f = make_file("rw.raw", 64 * KiB, 0);
    BlockDriverState *bs = open_node(f, NULL, BDRV_O_RDWR, &error_abort);
    RwCase c = { .bs = bs, .chunk = 4096 };

    g_assert_cmpint(bs->bl.request_alignment, ==, 1);
    run_in_coroutine(co_rw_roundtrip, &c);
    /* Unaligned everything is fine without O_DIRECT. */
    c.misalign = 3;
    c.chunk = 1000;
    run_in_coroutine(co_rw_roundtrip, &c);
    close_node(bs);
}

/* Outside a coroutine the driver does the work inline. */
static void test_rw_no_coroutine(void)
{
    g_autofree char *f = make_file("inline.raw", 8192, 0x11);
    BlockDriverState *bs = open_node(f, NULL, BDRV_O_RDWR, &error_abort);
    uint8_t buf[8192];

    g_assert_cmpint(co_rw(bs, false, 0, buf, sizeof(buf)), ==, 0);
    assert_bytes(buf, sizeof(buf), 0x11);
    close_node(bs);
}

typedef struct EofCase {
    BlockDriverState *bs;
    int64_t file_size;
    int64_t len;
} EofCase;

static void co_read_eof(void *opaque)
{
    EofCase *c = opaque;
    uint8_t *buf = qb_memalign(4096, 3 * c->len);

    memset(buf, 0xee, 3 * c->len);
    /* Straddles EOF: data then zeroes. */
    g_assert_cmpint(co_rw(c->bs, false, 0, buf, 2 * c->len), ==, 0);
    assert_bytes(buf, c->file_size, 0x22);
    assert_bytes(buf + c->file_size, 2 * c->len - c->file_size, 0);
    /* Entirely past EOF: zeroes. */
    memset(buf, 0xee, c->len);
    g_assert_cmpint(co_rw(c->bs, false, 4 * c->len, buf, c->len), ==, 0);
    assert_bytes(buf, c->len, 0);
    qb_vfree(buf);
}

static void test_short_read_eof(void)
{
    g_autofree char *f = make_file("eof.raw", 1000, 0x22);
    BlockDriverState *bs = open_node(f, NULL, 0, &error_abort);
    EofCase c = { .bs = bs, .file_size = 1000, .len = 4096 };

    run_in_coroutine(co_read_eof, &c);
    close_node(bs);
}

/*
 * Buffered reads first try the page cache in the calling thread
 * (RWF_NOWAIT) and fall back to the thread pool.  Both halves must return
 * the file's bytes: a cached range, a range evicted from the cache (the
 * NOWAIT attempt fails and the pool reads it), and a read split over
 * several buffers.
 */
typedef struct CacheCase {
    BlockDriverState *bs;
    const char *path;
} CacheCase;

static void coroutine_fn co_read_cached_and_cold(void *opaque)
{
    CacheCase *c = opaque;
    g_autofree uint8_t *buf = g_malloc(256 * KiB);
    uint8_t a[3000], b[5192];
    IOVector qiov;
    int fd;

    /* Cached: the file was just written. */
    memset(buf, 0, 256 * KiB);
    g_assert_cmpint(co_rw(c->bs, false, 0, buf, 64 * KiB), ==, 0);
    assert_bytes(buf, 64 * KiB, 0x5c);

    /* Cold: write the data back and drop it from the page cache. */
    fd = open(c->path, O_RDONLY);
    g_assert_cmpint(fd, >=, 0);
    g_assert_cmpint(fdatasync(fd), ==, 0);
    g_assert_cmpint(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), ==, 0);
    close(fd);
    memset(buf, 0, 256 * KiB);
    g_assert_cmpint(co_rw(c->bs, false, 0, buf, 256 * KiB), ==, 0);
    assert_bytes(buf, 256 * KiB, 0x5c);

    /* Two buffers, one request. */
    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    qiov_init(&qiov, 2);
    qiov_add(&qiov, a, sizeof(a));
    qiov_add(&qiov, b, sizeof(b));
    g_assert_cmpint(bdrv_file.bdrv_co_preadv(c->bs, 4096, qiov.size, &qiov,
                                             0), ==, 0);
    qiov_destroy(&qiov);
    assert_bytes(a, sizeof(a), 0x5c);
    assert_bytes(b, sizeof(b), 0x5c);
}

static void test_read_cache_miss(void)
{
    g_autofree char *f = make_file("cache.raw", 256 * KiB, 0x5c);
    CacheCase c = { .path = f };

    c.bs = open_node(f, NULL, 0, &error_abort);
    run_in_coroutine(co_read_cached_and_cold, &c);
    close_node(c.bs);
}

/* ---------------------------------------------------------------- */

static BlockDriverState *open_direct(const char *path, const char *extra,
                                     Error **errp)
{
    return open_node(path, extra, BDRV_O_RDWR | BDRV_O_NOCACHE, errp);
}

static bool direct_io_works(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECT);
    if (fd < 0) {
        return false;
    }
    close(fd);
    return true;
}

static void test_direct(void)
{
    g_autofree char *f = make_file("direct.raw", 256 * KiB, 0x33);
    BlockDriverState *bs;
    RwCase c;

    if (!direct_io_works(f)) {
        g_test_skip("O_DIRECT not supported here");
        return;
    }
    bs = open_direct(f, NULL, &error_abort);
    /* Probed values are sane powers of two within the probed range. */
    g_assert(QB_IS_POWER_OF_2(bs->bl.request_alignment));
    g_assert_cmpint(bs->bl.request_alignment, >=, 512);
    g_assert_cmpint(bs->bl.request_alignment, <=, 4096);
    g_assert(QB_IS_POWER_OF_2(bs->bl.min_mem_alignment));
    g_assert_cmpint(bs->bl.min_mem_alignment, >=, 512);
    g_assert_cmpint(bs->bl.opt_mem_alignment, >=, bs->bl.min_mem_alignment);

    c = (RwCase){ .bs = bs, .align = 4096, .chunk = 4096 };
    run_in_coroutine(co_rw_roundtrip, &c);
    /* A buffer the kernel would refuse goes through a bounce buffer. */
    c.misalign = 1;
    run_in_coroutine(co_rw_roundtrip, &c);
    c.misalign = 8;
    run_in_coroutine(co_rw_roundtrip, &c);
    close_node(bs);
}

static void test_direct_eof(void)
{
    /* O_DIRECT short reads at an unaligned EOF are zero-filled. */
    g_autofree char *f = make_file("direct-eof.raw", 4096 + 1000, 0x22);
    BlockDriverState *bs;
    EofCase c;

    if (!direct_io_works(f)) {
        g_test_skip("O_DIRECT not supported here");
        return;
    }
    bs = open_node(f, NULL, BDRV_O_NOCACHE, &error_abort);
    c = (EofCase){ .bs = bs, .file_size = 4096 + 1000, .len = 8192 };
    run_in_coroutine(co_read_eof, &c);
    close_node(bs);
}

static void test_engine(const char *aio, int flags)
{
    g_autofree char *f = make_file("engine.raw", 256 * KiB, 0);
    g_autofree char *extra = g_strdup_printf("{\"aio\":\"%s\"}", aio);
    Error *err = NULL;
    BlockDriverState *bs;
    RwCase c;

    if ((flags & BDRV_O_NOCACHE) && !direct_io_works(f)) {
        g_test_skip("O_DIRECT not supported here");
        return;
    }
    bs = open_node(f, extra, flags, &err);
    if (!bs) {
        g_autofree char *why = g_strdup_printf("aio=%s unavailable: %s", aio,
                                               error_get_pretty(err));
        g_assert(g_str_has_prefix(error_get_pretty(err), "Unable to use"));
        error_free(err);
        g_test_skip(why);
        return;
    }
    c = (RwCase){ .bs = bs, .align = 4096, .chunk = 4096 };
    run_in_coroutine(co_rw_roundtrip, &c);
    if (flags & BDRV_O_NOCACHE) {
        c.misalign = 4;
        run_in_coroutine(co_rw_roundtrip, &c);
    }
    close_node(bs);

    /* Short read past EOF through the engine. */
    g_free(f);
    f = make_file("engine-eof.raw", 4096 + 512, 0x22);
    bs = open_node(f, extra, flags, &error_abort);
    EofCase e = { .bs = bs, .file_size = 4096 + 512, .len = 8192 };
    run_in_coroutine(co_read_eof, &e);
    close_node(bs);
}

static void test_aio_native(void)
{
    test_engine("native", BDRV_O_RDWR | BDRV_O_NOCACHE);
}

static void test_io_uring(void)
{
    test_engine("io_uring", BDRV_O_RDWR);
}

static void test_io_uring_direct(void)
{
    test_engine("io_uring", BDRV_O_RDWR | BDRV_O_NOCACHE);
}

/* ---------------------------------------------------------------- */

typedef struct StatusCase {
    BlockDriverState *bs;
} StatusCase;

static int status(BlockDriverState *bs, bool want_zero, int64_t offset,
                  int64_t bytes, int64_t *pnum)
{
    int64_t map = -1;
    BlockDriverState *file = NULL;
    int ret = bdrv_file.bdrv_co_block_status(bs, want_zero, offset, bytes,
                                             pnum, &map, &file);
    g_assert_cmpint(*pnum, >, 0);
    g_assert_cmpint(*pnum, <=, bytes);
    g_assert(ret & BDRV_BLOCK_OFFSET_VALID);
    g_assert_cmpint(map, ==, offset);
    g_assert(file == bs);
    return ret & ~BDRV_BLOCK_OFFSET_VALID;
}

/* Layout: 1 MiB sparse file with data at [64K, 128K). */
static void co_block_status(void *opaque)
{
    StatusCase *c = opaque;
    BlockDriverState *bs = c->bs;
    int64_t pnum;

    g_assert_cmpint(status(bs, true, 0, MiB, &pnum), ==, BDRV_BLOCK_ZERO);
    g_assert_cmpint(pnum, ==, 64 * KiB);
    g_assert_cmpint(status(bs, true, 64 * KiB, MiB - 64 * KiB, &pnum), ==,
                    BDRV_BLOCK_DATA);
    g_assert_cmpint(pnum, ==, 64 * KiB);
    g_assert_cmpint(status(bs, true, 128 * KiB, MiB - 128 * KiB, &pnum), ==,
                    BDRV_BLOCK_ZERO);
    g_assert_cmpint(pnum, ==, MiB - 128 * KiB);
    /* Never answers for more than was asked. */
    g_assert_cmpint(status(bs, true, 0, 4096, &pnum), ==, BDRV_BLOCK_ZERO);
    g_assert_cmpint(pnum, ==, 4096);
    g_assert_cmpint(status(bs, true, 70 * KiB, 4096, &pnum), ==,
                    BDRV_BLOCK_DATA);
    g_assert_cmpint(pnum, ==, 4096);
    /* Without want_zero everything is data. */
    g_assert_cmpint(status(bs, false, 0, MiB, &pnum), ==, BDRV_BLOCK_DATA);
    g_assert_cmpint(pnum, ==, MiB);

    /* Discard punches a hole; it reads as zeroes. */
    g_assert_cmpint(bdrv_file.bdrv_co_pdiscard(bs, 64 * KiB, 32 * KiB), ==, 0);
    g_assert_cmpint(status(bs, true, 64 * KiB, 64 * KiB, &pnum), ==,
                    BDRV_BLOCK_ZERO);
    g_assert_cmpint(pnum, ==, 32 * KiB);
    uint8_t *buf = g_malloc(64 * KiB);
    g_assert_cmpint(co_rw(bs, false, 64 * KiB, buf, 64 * KiB), ==, 0);
    assert_bytes(buf, 32 * KiB, 0);
    assert_bytes(buf + 32 * KiB, 32 * KiB, 0x44);

    /* Write-zeroes keeps the allocation unless MAY_UNMAP. */
    g_assert_cmpint(bdrv_file.bdrv_co_pwrite_zeroes(bs, 96 * KiB, 16 * KiB, 0),
                    ==, 0);
    g_assert_cmpint(co_rw(bs, false, 96 * KiB, buf, 32 * KiB), ==, 0);
    assert_bytes(buf, 16 * KiB, 0);
    assert_bytes(buf + 16 * KiB, 16 * KiB, 0x44);
    g_assert_cmpint(bdrv_file.bdrv_co_pwrite_zeroes(bs, 112 * KiB, 16 * KiB,
                                                    BDRV_REQ_MAY_UNMAP),
                    ==, 0);
    g_assert_cmpint(co_rw(bs, false, 112 * KiB, buf, 16 * KiB), ==, 0);
    assert_bytes(buf, 16 * KiB, 0);
    g_assert_cmpint(status(bs, true, 112 * KiB, 16 * KiB, &pnum), ==,
                    BDRV_BLOCK_ZERO);
    g_free(buf);

    g_assert_cmpint(bdrv_file.bdrv_co_flush_to_disk(bs), ==, 0);
}

static void test_block_status(void)
{
    g_autofree char *f = make_file("status.raw", MiB, 0);
    int fd = open(f, O_RDWR);
    g_autofree char *data = g_malloc(64 * KiB);
    StatusCase c;

    memset(data, 0x44, 64 * KiB);
    g_assert_cmpint(pwrite(fd, data, 64 * KiB, 64 * KiB), ==, 64 * KiB);
    fsync(fd);
    if (lseek(fd, 0, SEEK_DATA) != 64 * KiB) {
        close(fd);
        g_test_skip("file system does not report holes");
        return;
    }
    close(fd);
    c.bs = open_node(f, NULL, BDRV_O_RDWR, &error_abort);
    run_in_coroutine(co_block_status, &c);
    close_node(c.bs);
}

/* Write-zeroes past the end of the file extends it, with and without
 * MAY_UNMAP (as QEMU's file driver does: qcow2 relies on it when it zeroes
 * freshly allocated clusters at the end of its file). */
static void co_zeroes_past_eof(void *opaque)
{
    BlockDriverState *bs = opaque;
    uint8_t buf[4096];

    g_assert_cmpint(bdrv_file.bdrv_co_pwrite_zeroes(bs, 2 * MiB, 64 * KiB, 0),
                    ==, 0);
    g_assert_cmpint(bdrv_file.bdrv_getlength(bs), ==, 2 * MiB + 64 * KiB);
    g_assert_cmpint(bdrv_file.bdrv_co_pwrite_zeroes(bs, 3 * MiB, 64 * KiB,
                                                    BDRV_REQ_MAY_UNMAP),
                    ==, 0);
    g_assert_cmpint(bdrv_file.bdrv_getlength(bs), ==, 3 * MiB + 64 * KiB);
    g_assert_cmpint(co_rw(bs, false, 3 * MiB + 60 * KiB, buf, sizeof(buf)),
                    ==, 0);
    assert_bytes(buf, sizeof(buf), 0);
}

static void test_zeroes_past_eof(void)
{
    g_autofree char *f = make_file("zeroes-eof.raw", MiB, 0x33);
    BlockDriverState *bs = open_node(f, NULL, BDRV_O_RDWR, &error_abort);

    run_in_coroutine(co_zeroes_past_eof, bs);
    close_node(bs);
}

/* ---------------------------------------------------------------- */

typedef struct TruncCase {
    BlockDriverState *bs;
    int64_t size;
    PreallocMode prealloc;
    int ret;
    Error *err;
} TruncCase;

static void co_truncate(void *opaque)
{
    TruncCase *c = opaque;
    c->ret = bdrv_file.bdrv_co_truncate(c->bs, c->size, true, c->prealloc, 0,
                                        &c->err);
}

static int do_truncate(BlockDriverState *bs, int64_t size, PreallocMode p,
                       Error **errp)
{
    TruncCase c = { .bs = bs, .size = size, .prealloc = p };
    run_in_coroutine(co_truncate, &c);
    error_propagate(errp, c.err);
    return c.ret;
}

static void test_truncate(void)
{
    g_autofree char *f = make_file("trunc.raw", 0, 0);
    BlockDriverState *bs = open_node(f, NULL, BDRV_O_RDWR, &error_abort);
    Error *err = NULL;
    int64_t alloc;

    g_assert_cmpint(do_truncate(bs, MiB, PREALLOC_MODE_OFF, &error_abort),
                    ==, 0);
    g_assert_cmpint(bdrv_file.bdrv_getlength(bs), ==, MiB);
    /* Sparse: at most the first block got written (alignment probing). */
    g_assert_cmpint(bdrv_file.bdrv_get_allocated_file_size(bs), <=,
                    64 * KiB);

    g_assert_cmpint(do_truncate(bs, 3 * MiB, PREALLOC_MODE_FALLOC,
                                &error_abort), ==, 0);
    g_assert_cmpint(bdrv_file.bdrv_getlength(bs), ==, 3 * MiB);
    alloc = bdrv_file.bdrv_get_allocated_file_size(bs);
    g_assert_cmpint(alloc, >=, 2 * MiB);

    g_assert_cmpint(do_truncate(bs, 4 * MiB, PREALLOC_MODE_FULL,
                                &error_abort), ==, 0);
    g_assert_cmpint(bdrv_file.bdrv_getlength(bs), ==, 4 * MiB);
    g_assert_cmpint(bdrv_file.bdrv_get_allocated_file_size(bs), >=,
                    alloc + MiB);

    g_assert_cmpint(do_truncate(bs, MiB, PREALLOC_MODE_FALLOC, &err), ==,
                    -ENOTSUP);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Cannot use preallocation for shrinking files");
    error_free(err);
    err = NULL;
    g_assert_cmpint(bdrv_file.bdrv_getlength(bs), ==, 4 * MiB);

    g_assert_cmpint(do_truncate(bs, 12345, PREALLOC_MODE_OFF, &error_abort),
                    ==, 0);
    g_assert_cmpint(bdrv_file.bdrv_getlength(bs), ==, 12345);

    g_assert_cmpint(do_truncate(bs, MiB, PREALLOC_MODE_METADATA, &err), ==,
                    -ENOTSUP);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "Unsupported preallocation mode: metadata");
    error_free(err);
    close_node(bs);
}

/* ---------------------------------------------------------------- */

static int create(const char *path, const char *opts_json, Error **errp)
{
    json_t *opts = json_loads(opts_json, 0, NULL);
    int ret;

    g_assert(opts);
    ret = bdrv_file.bdrv_co_create_opts(&bdrv_file, path, opts, errp);
    json_decref(opts);
    return ret;
}

static void test_create(void)
{
    g_autofree char *f = test_path("created.raw");
    g_autofree char *bad = test_path("no/such/dir.raw");
    g_autofree char *msg = g_strdup_printf(
        "Could not create '%s': No such file or directory", bad);
    Error *err = NULL;
    struct stat st;

    g_assert_cmpint(create(f, "{\"size\": 1048576}", &error_abort), ==, 0);
    g_assert_cmpint(stat(f, &st), ==, 0);
    g_assert_cmpint(st.st_size, ==, MiB);
    g_assert_cmpint((int64_t)st.st_blocks * 512, <=, 64 * KiB);

    /* Re-creating truncates first: old data does not survive. */
    int fd = open(f, O_RDWR);
    g_assert_cmpint(pwrite(fd, "junk", 4, 8192), ==, 4);
    close(fd);
    g_assert_cmpint(create(f, "{\"size\": \"2M\", \"preallocation\": "
                           "\"falloc\"}", &error_abort), ==, 0);
    g_assert_cmpint(stat(f, &st), ==, 0);
    g_assert_cmpint(st.st_size, ==, 2 * MiB);
    g_assert_cmpint((int64_t)st.st_blocks * 512, >=, 2 * MiB);
    char buf[4];
    fd = open(f, O_RDONLY);
    g_assert_cmpint(pread(fd, buf, 4, 8192), ==, 4);
    close(fd);
    assert_bytes((uint8_t *)buf, 4, 0);

    g_assert_cmpint(create(f, "{\"size\": 65536, \"preallocation\": \"full\","
                           " \"nocow\": \"on\"}", &error_abort), ==, 0);
    g_assert_cmpint(stat(f, &st), ==, 0);
    g_assert_cmpint(st.st_size, ==, 64 * KiB);
    g_assert_cmpint((int64_t)st.st_blocks * 512, >=, 64 * KiB);

    g_assert_cmpint(create(f, "{\"size\": 1024, \"preallocation\": "
                           "\"bogus\"}", &err), <, 0);
    g_assert_cmpstr(error_get_pretty(err), ==,
                    "invalid parameter value: bogus");
    error_free(err);
    err = NULL;

    g_assert_cmpint(create(bad, "{\"size\": 1024}", &err), ==, -ENOENT);
    g_assert_cmpstr(error_get_pretty(err), ==, msg);
    error_free(err);
}

typedef struct CreateCase {
    const char *path;
    int ret;
    Error *err;
} CreateCase;

static void co_blockdev_create(void *opaque)
{
    CreateCase *c = opaque;
    json_t *o = json_pack("{s:s, s:s, s:I, s:s}", "driver", "file",
                          "filename", c->path, "size", (json_int_t)(8 * KiB),
                          "preallocation", "full");
    c->ret = bdrv_file.bdrv_co_create(o, &c->err);
    json_decref(o);
}

static void test_blockdev_create(void)
{
    g_autofree char *f = test_path("bdcreate.raw");
    CreateCase c = { .path = f };
    struct stat st;

    run_in_coroutine(co_blockdev_create, &c);
    g_assert_null(c.err);
    g_assert_cmpint(c.ret, ==, 0);
    g_assert_cmpint(stat(f, &st), ==, 0);
    g_assert_cmpint(st.st_size, ==, 8 * KiB);
}

/* ---------------------------------------------------------------- */

static void reopen(BlockDriverState *bs, int new_flags, bool commit)
{
    BDRVReopenState rs = {
        .bs = bs, .flags = new_flags, .read_only = !(new_flags & BDRV_O_RDWR),
        .options = json_object(),
    };

    g_assert_cmpint(bdrv_file.bdrv_reopen_prepare(&rs, NULL, &error_abort),
                    ==, 0);
    if (commit) {
        bdrv_file.bdrv_reopen_commit(&rs);
        bs->open_flags = new_flags;
        bs->read_only = rs.read_only;
    } else {
        bdrv_file.bdrv_reopen_abort(&rs);
    }
    json_decref(rs.options);
}

static void test_reopen_rw_ro(void)
{
    g_autofree char *f = make_file("reopen.raw", 8192, 0x66);
    BlockDriverState *bs = open_node(f, NULL, 0, &error_abort);
    uint8_t buf[4096];

    memset(buf, 0x77, sizeof(buf));
    g_assert_cmpint(co_rw(bs, true, 0, buf, 4096), ==, -EBADF);

    reopen(bs, BDRV_O_RDWR, false);          /* aborted: still read-only */
    g_assert_cmpint(co_rw(bs, true, 0, buf, 4096), ==, -EBADF);

    reopen(bs, BDRV_O_RDWR, true);
    g_assert_cmpint(co_rw(bs, true, 0, buf, 4096), ==, 0);

    reopen(bs, 0, true);
    g_assert_cmpint(co_rw(bs, true, 0, buf, 4096), ==, -EBADF);
    memset(buf, 0, sizeof(buf));
    g_assert_cmpint(co_rw(bs, false, 0, buf, 4096), ==, 0);
    assert_bytes(buf, 4096, 0x77);
    close_node(bs);
}

/* ---------------------------------------------------------------- */

static void rm_rf(const char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    const char *name;

    if (!d) {
        return;
    }
    while ((name = g_dir_read_name(d))) {
        g_autofree char *p = g_build_filename(dir, name, NULL);
        if (g_file_test(p, G_FILE_TEST_IS_DIR)) {
            rm_rf(p);
        } else {
            unlink(p);
        }
    }
    g_dir_close(d);
    rmdir(dir);
}

int main(int argc, char **argv)
{
    int ret;

    g_test_init(&argc, &argv, NULL);
    test_dir = g_strdup("test-file-posix.XXXXXX");
    g_assert_nonnull(g_mkdtemp(test_dir));
    qb_get_aio_context();

    g_test_add_func("/file-posix/open-errors", test_open_errors);
    g_test_add_func("/file-posix/rw/threads", test_rw_threads);
    g_test_add_func("/file-posix/rw/no-coroutine", test_rw_no_coroutine);
    g_test_add_func("/file-posix/rw/short-read-eof", test_short_read_eof);
    g_test_add_func("/file-posix/rw/page-cache-miss", test_read_cache_miss);
    g_test_add_func("/file-posix/direct/misaligned", test_direct);
    g_test_add_func("/file-posix/direct/eof", test_direct_eof);
    g_test_add_func("/file-posix/aio/native", test_aio_native);
    g_test_add_func("/file-posix/aio/io_uring", test_io_uring);
    g_test_add_func("/file-posix/aio/io_uring-direct", test_io_uring_direct);
    g_test_add_func("/file-posix/block-status", test_block_status);
    g_test_add_func("/file-posix/truncate", test_truncate);
    g_test_add_func("/file-posix/zeroes-past-eof", test_zeroes_past_eof);
    g_test_add_func("/file-posix/create", test_create);
    g_test_add_func("/file-posix/blockdev-create", test_blockdev_create);
    g_test_add_func("/file-posix/reopen-rw-ro", test_reopen_rw_ro);

    ret = g_test_run();
    rm_rf(test_dir);
    g_free(test_dir);
    return ret;
}
