/*
 * Unit tests for block/io.c, the request gatekeeper.  A fake in-memory
 * driver asserts that every request it receives is aligned and within
 * max_transfer (the invariant io.c promises drivers), logs requests and can
 * yield in the middle of them so that concurrent requests interleave.
 * Nodes are built by hand so the tests only need io.c and the util layer.
 */
#include "block/block-int.h"

#define DISK_SIZE (1 * MiB)

typedef struct FakeState {
    uint8_t *data;
    int64_t size;
    bool yield_in_read;           /* reschedule in the middle of reads */
    int64_t latency_ns;           /* sleep in every request */
    bool zeroes_unsupported;      /* pwrite_zeroes returns -ENOTSUP */
    bool has_fua;
    int reads, writes, zero_calls, discards, flushes;
    int64_t max_seen;             /* largest request length seen */
    GArray *discard_log;          /* int64_t pairs offset, bytes */
    uint8_t *alloc;               /* per 4 KiB: 0 unalloc, 1 data, 2 zero */
} FakeState;

static void check_aligned(BlockDriverState *bs, int64_t offset, int64_t bytes)
{
    FakeState *s = bs->opaque;
    uint32_t a = bs->bl.request_alignment;
    g_assert_cmpint(offset % a, ==, 0);
    g_assert_cmpint(bytes % a, ==, 0);
    if (bs->bl.max_transfer) {
        g_assert_cmpint(bytes, <=, bs->bl.max_transfer);
    }
    g_assert_cmpint(offset + bytes, <=, s->size);
    s->max_seen = MAX(s->max_seen, bytes);
}

static void coroutine_fn fake_delay(BlockDriverState *bs, bool is_read)
{
    FakeState *s = bs->opaque;
    if (s->latency_ns) {
        co_sleep_ns(s->latency_ns);
    } else if (is_read && s->yield_in_read) {
        aio_co_schedule(qb_get_aio_context(), coroutine_self());
        coroutine_yield();
    }
}

static int coroutine_fn fake_preadv(BlockDriverState *bs, int64_t offset,
                                    int64_t bytes, IOVector *qiov,
                                    BdrvRequestFlags flags)
{
    FakeState *s = bs->opaque;
    check_aligned(bs, offset, bytes);
    s->reads++;
    /* Snapshot first, complete later: a concurrent RMW that is not
     * serialised would then write back stale bytes. */
    qiov_from_buf(qiov, 0, s->data + offset, bytes);
    fake_delay(bs, true);
    return 0;
}

static int coroutine_fn fake_pwritev(BlockDriverState *bs, int64_t offset,
                                     int64_t bytes, IOVector *qiov,
                                     BdrvRequestFlags flags)
{
    FakeState *s = bs->opaque;
    check_aligned(bs, offset, bytes);
    if (!s->has_fua) {
        g_assert_false(flags & BDRV_REQ_FUA);
    }
    s->writes++;
    fake_delay(bs, false);
    qiov_to_buf(qiov, 0, s->data + offset, bytes);
    for (int64_t i = offset / 4096; i < QB_DIV_ROUND_UP(offset + bytes, 4096);
         i++) {
        s->alloc[i] = 1;
    }
    return 0;
}

static int coroutine_fn fake_pwrite_zeroes(BlockDriverState *bs,
                                           int64_t offset, int64_t bytes,
                                           BdrvRequestFlags flags)
{
    FakeState *s = bs->opaque;
    check_aligned(bs, offset, bytes);
    s->zero_calls++;
    if (s->zeroes_unsupported) {
        return -ENOTSUP;
    }
    if (bs->bl.pwrite_zeroes_alignment) {
        g_assert_cmpint(offset % bs->bl.pwrite_zeroes_alignment, ==, 0);
        g_assert_cmpint(bytes % bs->bl.pwrite_zeroes_alignment, ==, 0);
    }
    memset(s->data + offset, 0, bytes);
    return 0;
}

static int coroutine_fn fake_pdiscard(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes)
{
    FakeState *s = bs->opaque;
    check_aligned(bs, offset, bytes);
    s->discards++;
    g_array_append_val(s->discard_log, offset);
    g_array_append_val(s->discard_log, bytes);
    return 0;
}

static int coroutine_fn fake_flush(BlockDriverState *bs)
{
    FakeState *s = bs->opaque;
    s->flushes++;
    return 0;
}

static int coroutine_fn fake_block_status(BlockDriverState *bs,
                                          bool want_zero, int64_t offset,
                                          int64_t bytes, int64_t *pnum,
                                          int64_t *map,
                                          BlockDriverState **file)
{
    FakeState *s = bs->opaque;
    int64_t blk = offset / 4096, n = 0;
    uint8_t st = s->alloc[blk];

    while (n < bytes && s->alloc[(offset + n) / 4096] == st) {
        n += 4096 - (offset + n) % 4096;
    }
    *pnum = MIN(n, bytes);
    *map = offset;
    *file = bs;
    return st == 1 ? BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID
         : st == 2 ? BDRV_BLOCK_ZERO | BDRV_BLOCK_OFFSET_VALID : 0;
}

static int64_t fake_getlength(BlockDriverState *bs)
{
    FakeState *s = bs->opaque;
    return s->size;
}

static BlockDriver fake_drv = {
    .format_name = "fake",
    .instance_size = sizeof(FakeState),
    .bdrv_co_preadv = fake_preadv,
    .bdrv_co_pwritev = fake_pwritev,
    .bdrv_co_pwrite_zeroes = fake_pwrite_zeroes,
    .bdrv_co_pdiscard = fake_pdiscard,
    .bdrv_co_flush_to_disk = fake_flush,
    .bdrv_co_block_status = fake_block_status,
    .bdrv_getlength = fake_getlength,
    .supported_zero_flags = BDRV_REQ_MAY_UNMAP | BDRV_REQ_NO_FALLBACK,
};

/* A hand-built node and an edge into it (as a BlockBackend would own). */
typedef struct Fixture {
    BlockDriverState *bs;
    FakeState *s;
    BdrvChild *child;
} Fixture;

static BlockDriverState *fake_node(uint32_t align, int64_t size)
{
    BlockDriverState *bs = g_new0(BlockDriverState, 1);
    FakeState *s;

    bs->drv = &fake_drv;
    bs->opaque = s = g_new0(FakeState, 1);
    s->size = size;
    s->data = g_malloc0(size);
    s->alloc = g_malloc0(size / 4096 + 1);
    s->discard_log = g_array_new(false, false, sizeof(int64_t));
    bs->bl.request_alignment = align;
    bs->total_sectors = size / BDRV_SECTOR_SIZE;
    bs->aio_context = qb_get_aio_context();
    bs->refcnt = 1;
    snprintf(bs->node_name, sizeof(bs->node_name), "fake");
    co_mutex_init(&bs->flush_lock);
    co_mutex_init(&bs->reqs_lock);
    return bs;
}

static BdrvChild *fake_edge(BlockDriverState *bs, uint64_t perm)
{
    BdrvChild *c = g_new0(BdrvChild, 1);
    c->bs = bs;
    c->name = g_strdup("root");
    c->perm = perm;
    c->shared_perm = BLK_PERM_ALL;
    bs->parents = g_list_append(bs->parents, c);
    return c;
}

static void fixture_init(Fixture *f, uint32_t align)
{
    f->bs = fake_node(align, DISK_SIZE);
    f->s = f->bs->opaque;
    f->child = fake_edge(f->bs, BLK_PERM_ALL);
}

static void fixture_free(Fixture *f)
{
    g_assert_cmpint(f->bs->in_flight, ==, 0);
    g_assert_null(f->bs->tracked_requests);
    g_list_free(f->bs->parents);
    g_free(f->child->name);
    g_free(f->child);
    g_free(f->s->data);
    g_free(f->s->alloc);
    g_array_free(f->s->discard_log, true);
    g_free(f->s);
    g_free(f->bs);
}

/* ---------------------------------------------------------------------- */

static void test_range_checks(void)
{
    Fixture f;
    uint8_t buf[512];

    fixture_init(&f, 512);
    g_assert_cmpint(bdrv_pread(f.child, -1, 512, buf, 0), ==, -EIO);
    g_assert_cmpint(bdrv_pwrite(f.child, -512, 512, buf, 0), ==, -EIO);
    g_assert_cmpint(bdrv_pread(f.child, BDRV_MAX_LENGTH, 512, buf, 0), ==,
                    -EIO);
    g_assert_cmpint(f.s->reads + f.s->writes, ==, 0);
    g_assert_cmpint(bdrv_pread(NULL, 0, 512, buf, 0), ==, -ENOMEDIUM);
    fixture_free(&f);
}

static void test_perm_and_readonly(void)
{
    Fixture f;
    uint8_t buf[512] = { 1 };
    BdrvChild *ro_edge;

    fixture_init(&f, 512);
    ro_edge = fake_edge(f.bs, BLK_PERM_CONSISTENT_READ);
    g_assert_cmpint(bdrv_pwrite(ro_edge, 0, 512, buf, 0), ==, -EPERM);
    g_assert_cmpint(bdrv_pread(ro_edge, 0, 512, buf, 0), ==, 0);
    /* WRITE_UNCHANGED needs only that permission. */
    ro_edge->perm |= BLK_PERM_WRITE_UNCHANGED;
    g_assert_cmpint(bdrv_pwrite(ro_edge, 0, 512, buf,
                                BDRV_REQ_WRITE_UNCHANGED), ==, 0);
    g_assert_cmpint(bdrv_pwrite(ro_edge, 0, 512, buf, 0), ==, -EPERM);
    f.bs->read_only = true;
    g_assert_cmpint(bdrv_pwrite(f.child, 0, 512, buf, 0), ==, -EACCES);
    f.bs->read_only = false;
    f.bs->open_flags |= BDRV_O_INACTIVE;
    g_assert_cmpint(bdrv_pwrite(f.child, 0, 512, buf, 0), ==, -EPERM);
    f.bs->open_flags &= ~BDRV_O_INACTIVE;
    g_assert_cmpint(f.s->writes, ==, 1);
    f.bs->parents = g_list_remove(f.bs->parents, ro_edge);
    g_free(ro_edge->name);
    g_free(ro_edge);
    fixture_free(&f);
}

static void test_rmw_alignment(void)
{
    Fixture f;
    uint8_t buf[4096], out[4096];

    fixture_init(&f, 512);
    memset(f.s->data, 0xee, DISK_SIZE);
    memset(buf, 0x11, sizeof(buf));
    /* Unaligned head and tail in different blocks. */
    g_assert_cmpint(bdrv_pwrite(f.child, 300, 1000, buf, 0), ==, 0);
    g_assert_cmpint(f.s->data[299], ==, 0xee);
    g_assert_cmpint(f.s->data[300], ==, 0x11);
    g_assert_cmpint(f.s->data[1299], ==, 0x11);
    g_assert_cmpint(f.s->data[1300], ==, 0xee);
    /* Inside one block. */
    memset(buf, 0x22, sizeof(buf));
    g_assert_cmpint(bdrv_pwrite(f.child, 2050, 10, buf, 0), ==, 0);
    g_assert_cmpint(f.s->data[2049], ==, 0xee);
    g_assert_cmpint(f.s->data[2050], ==, 0x22);
    g_assert_cmpint(f.s->data[2060], ==, 0xee);
    /* Unaligned read. */
    g_assert_cmpint(bdrv_pread(f.child, 1295, 10, out, 0), ==, 0);
    g_assert_cmpint(out[4], ==, 0x11);
    g_assert_cmpint(out[5], ==, 0xee);
    g_assert_cmpint(bdrv_pread(f.child, 2049, 3, out, 0), ==, 0);
    g_assert_cmpint(out[0], ==, 0xee);
    g_assert_cmpint(out[1], ==, 0x22);
    /* Read past the end of the node reads zeroes beyond EOF. */
    memset(out, 0x55, sizeof(out));
    g_assert_cmpint(bdrv_pread(f.child, DISK_SIZE - 512, 1024, out, 0), ==,
                    0);
    g_assert_cmpint(out[0], ==, 0xee);
    g_assert_cmpint(out[600], ==, 0);
    fixture_free(&f);
}

typedef struct ConcWrite {
    BdrvChild *child;
    int64_t offset, bytes;
    uint8_t pattern;
    int ret;
    bool done;
} ConcWrite;

static void coroutine_fn conc_write_entry(void *opaque)
{
    ConcWrite *w = opaque;
    g_autofree uint8_t *buf = g_malloc(w->bytes);
    memset(buf, w->pattern, w->bytes);
    w->ret = bdrv_co_pwrite(w->child, w->offset, w->bytes, buf, 0);
    w->done = true;
}

static void test_concurrent_rmw(void)
{
    Fixture f;
    ConcWrite w[4];
    int64_t deadline = qb_clock_ns_monotonic() + 10 * 1000000000LL;

    fixture_init(&f, 4096);
    f.s->yield_in_read = true;
    /* Four unaligned writes into the same two blocks, different bytes:
     * without serialisation the later RMW writes back stale bytes. */
    for (int i = 0; i < 4; i++) {
        w[i] = (ConcWrite) { .child = f.child, .offset = 1000 + i * 1500,
                             .bytes = 100, .pattern = 0xa0 + i };
        aio_co_enter(qb_get_aio_context(),
                     coroutine_create(conc_write_entry, &w[i]));
    }
    while (!(w[0].done && w[1].done && w[2].done && w[3].done) &&
           qb_clock_ns_monotonic() < deadline) {
        aio_poll(qb_get_aio_context(), true);
    }
    for (int i = 0; i < 4; i++) {
        g_assert_true(w[i].done);
        g_assert_cmpint(w[i].ret, ==, 0);
        g_assert_cmpint(f.s->data[w[i].offset], ==, 0xa0 + i);
        g_assert_cmpint(f.s->data[w[i].offset + 99], ==, 0xa0 + i);
        g_assert_cmpint(f.s->data[w[i].offset + 100], ==, 0);
    }
    fixture_free(&f);
}

static void test_max_transfer_split(void)
{
    Fixture f;
    g_autofree uint8_t *buf = g_malloc(20480);
    g_autofree uint8_t *out = g_malloc(20480);

    fixture_init(&f, 512);
    f.bs->bl.max_transfer = 4096;
    for (int i = 0; i < 20480; i++) {
        buf[i] = i % 251;
    }
    g_assert_cmpint(bdrv_pwrite(f.child, 512, 20480, buf, 0), ==, 0);
    g_assert_cmpint(f.s->writes, ==, 5);
    g_assert_cmpint(f.s->max_seen, ==, 4096);
    g_assert_cmpint(bdrv_pread(f.child, 512, 20480, out, 0), ==, 0);
    g_assert_cmpint(f.s->reads, ==, 5);
    g_assert_cmpmem(buf, 20480, out, 20480);
    fixture_free(&f);
}

typedef struct ZeroArgs {
    BdrvChild *child;
    int64_t offset, bytes;
    BdrvRequestFlags flags;
    int ret;
} ZeroArgs;

static void coroutine_fn zero_entry(void *opaque)
{
    ZeroArgs *z = opaque;
    z->ret = bdrv_co_pwrite_zeroes(z->child, z->offset, z->bytes, z->flags);
}

static int do_zero(BdrvChild *c, int64_t offset, int64_t bytes,
                   BdrvRequestFlags flags)
{
    ZeroArgs z = { c, offset, bytes, flags, -1 };
    coroutine_run_sync(zero_entry, &z);
    return z.ret;
}

static void test_write_zeroes(void)
{
    Fixture f;

    fixture_init(&f, 512);
    memset(f.s->data, 0xff, DISK_SIZE);
    /* Driver path. */
    g_assert_cmpint(do_zero(f.child, 4096, 8192, 0), ==, 0);
    g_assert_cmpint(f.s->zero_calls, ==, 1);
    g_assert_cmpint(f.s->data[4095], ==, 0xff);
    g_assert_cmpint(f.s->data[4096], ==, 0);
    g_assert_cmpint(f.s->data[12287], ==, 0);
    g_assert_cmpint(f.s->data[12288], ==, 0xff);
    /* Unaligned to request_alignment: RMW of the partial blocks. */
    g_assert_cmpint(do_zero(f.child, 20000, 3000, 0), ==, 0);
    g_assert_cmpint(f.s->data[19999], ==, 0xff);
    g_assert_cmpint(f.s->data[20000], ==, 0);
    g_assert_cmpint(f.s->data[22999], ==, 0);
    g_assert_cmpint(f.s->data[23000], ==, 0xff);
    /* Fallback to zero buffers when the driver says -ENOTSUP. */
    f.s->zeroes_unsupported = true;
    f.s->writes = 0;
    memset(f.s->data, 0xff, DISK_SIZE);
    g_assert_cmpint(do_zero(f.child, 0, 3 * MiB / 4, 0), ==, 0);
    g_assert_cmpint(f.s->writes, >=, 1);
    g_assert_cmpint(f.s->data[0], ==, 0);
    g_assert_cmpint(f.s->data[3 * MiB / 4 - 1], ==, 0);
    g_assert_cmpint(f.s->data[3 * MiB / 4], ==, 0xff);
    /* ...but not with NO_FALLBACK. */
    f.s->writes = 0;
    g_assert_cmpint(do_zero(f.child, 0, 4096, BDRV_REQ_NO_FALLBACK), ==,
                    -ENOTSUP);
    g_assert_cmpint(f.s->writes, ==, 0);
    /* Unaligned to pwrite_zeroes_alignment: head/tail by fallback, middle
     * by the driver (which asserts its alignment). */
    f.s->zeroes_unsupported = false;
    f.bs->bl.pwrite_zeroes_alignment = 65536;
    f.s->writes = 0;
    f.s->zero_calls = 0;
    memset(f.s->data, 0xff, DISK_SIZE);
    g_assert_cmpint(do_zero(f.child, 61440, 65536 + 8192, 0), ==, 0);
    g_assert_cmpint(f.s->zero_calls, ==, 1);
    g_assert_cmpint(f.s->writes, ==, 2);
    g_assert_cmpint(f.s->data[61439], ==, 0xff);
    g_assert_cmpint(f.s->data[61440], ==, 0);
    g_assert_cmpint(f.s->data[61440 + 65536 + 8191], ==, 0);
    g_assert_cmpint(f.s->data[61440 + 65536 + 8192], ==, 0xff);
    fixture_free(&f);
}

static void test_detect_zeroes_and_fua(void)
{
    Fixture f;
    uint8_t zero[4096] = { 0 }, one[4096];

    fixture_init(&f, 512);
    f.bs->detect_zeroes = BLOCKDEV_DETECT_ZEROES_OPTIONS_ON;
    g_assert_cmpint(bdrv_pwrite(f.child, 0, 4096, zero, 0), ==, 0);
    g_assert_cmpint(f.s->zero_calls, ==, 1);
    g_assert_cmpint(f.s->writes, ==, 0);
    memset(one, 1, sizeof(one));
    g_assert_cmpint(bdrv_pwrite(f.child, 0, 4096, one, 0), ==, 0);
    g_assert_cmpint(f.s->writes, ==, 1);
    /* FUA emulated with a flush after the write. */
    f.s->flushes = 0;
    g_assert_cmpint(bdrv_pwrite(f.child, 0, 4096, one, BDRV_REQ_FUA), ==, 0);
    g_assert_cmpint(f.s->flushes, ==, 1);
    fixture_free(&f);
}

typedef struct DiscardArgs {
    BdrvChild *child;
    int64_t offset, bytes;
    int ret;
} DiscardArgs;

static void coroutine_fn discard_entry(void *opaque)
{
    DiscardArgs *d = opaque;
    d->ret = bdrv_co_pdiscard(d->child, d->offset, d->bytes);
}

static int do_discard(BdrvChild *c, int64_t offset, int64_t bytes)
{
    DiscardArgs d = { c, offset, bytes, -1 };
    coroutine_run_sync(discard_entry, &d);
    return d.ret;
}

static void test_discard(void)
{
    Fixture f;
    int64_t *log;

    fixture_init(&f, 512);
    /* Ignored without discard=unmap. */
    g_assert_cmpint(do_discard(f.child, 0, 65536), ==, 0);
    g_assert_cmpint(f.s->discards, ==, 0);
    f.bs->open_flags |= BDRV_O_UNMAP;
    f.bs->bl.pdiscard_alignment = 4096;
    /* Sub-block head/tail dropped; split at 4 KiB boundaries. */
    g_assert_cmpint(do_discard(f.child, 1000, 9000), ==, 0);
    log = (int64_t *)f.s->discard_log->data;
    g_assert_cmpint(f.s->discards, ==, 3);
    g_assert_cmpint(log[0], ==, 1024);
    g_assert_cmpint(log[1], ==, 4096 - 1024);
    g_assert_cmpint(log[2], ==, 4096);
    g_assert_cmpint(log[3], ==, 4096);
    g_assert_cmpint(log[4], ==, 8192);
    g_assert_cmpint(log[5], ==, 9728 - 8192);
    /* Wholly inside one block: nothing reaches the driver. */
    g_assert_cmpint(do_discard(f.child, 100, 200), ==, 0);
    g_assert_cmpint(f.s->discards, ==, 3);
    /* Read-only: refused. */
    f.bs->read_only = true;
    g_assert_cmpint(do_discard(f.child, 0, 4096), ==, -EACCES);
    f.bs->read_only = false;
    fixture_free(&f);
}

static void test_flush_skip(void)
{
    Fixture f;
    uint8_t buf[512] = { 0 };

    fixture_init(&f, 512);
    g_assert_cmpint(bdrv_pwrite(f.child, 0, 512, buf, 0), ==, 0);
    g_assert_cmpint(bdrv_flush(f.bs), ==, 0);
    g_assert_cmpint(f.s->flushes, ==, 1);
    g_assert_cmpint(bdrv_flush(f.bs), ==, 0);
    g_assert_cmpint(f.s->flushes, ==, 1);    /* nothing new written */
    g_assert_cmpint(bdrv_pwrite(f.child, 0, 512, buf, 0), ==, 0);
    g_assert_cmpint(bdrv_flush(f.bs), ==, 0);
    g_assert_cmpint(f.s->flushes, ==, 2);
    f.bs->open_flags |= BDRV_O_NO_FLUSH;
    g_assert_cmpint(bdrv_pwrite(f.child, 0, 512, buf, 0), ==, 0);
    g_assert_cmpint(bdrv_flush(f.bs), ==, 0);
    g_assert_cmpint(f.s->flushes, ==, 2);
    fixture_free(&f);
}

static void test_block_status(void)
{
    Fixture f;
    int64_t pnum, map;
    BlockDriverState *file;
    int ret;

    fixture_init(&f, 512);
    f.s->alloc[0] = f.s->alloc[1] = 1;   /* [0, 8K) data */
    f.s->alloc[2] = 2;                   /* [8K, 12K) zero */
    ret = bdrv_block_status(f.bs, 0, DISK_SIZE, &pnum, &map, &file);
    g_assert_cmpint(ret, ==, BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID |
                    BDRV_BLOCK_ALLOCATED);
    g_assert_cmpint(pnum, ==, 8192);
    g_assert_true(file == f.bs);
    /* Unaligned start: the answer is for the caller's offset. */
    ret = bdrv_block_status(f.bs, 1000, DISK_SIZE, &pnum, &map, &file);
    g_assert_cmpint(pnum, ==, 8192 - 1000);
    g_assert_cmpint(map, ==, 1000);
    ret = bdrv_block_status(f.bs, 8192, DISK_SIZE, &pnum, NULL, NULL);
    g_assert_cmpint(ret, ==, BDRV_BLOCK_ZERO | BDRV_BLOCK_OFFSET_VALID |
                    BDRV_BLOCK_ALLOCATED);
    g_assert_cmpint(pnum, ==, 4096);
    ret = bdrv_block_status(f.bs, 12288, DISK_SIZE, &pnum, NULL, NULL);
    g_assert_cmpint(ret, ==, BDRV_BLOCK_EOF);
    g_assert_cmpint(pnum, ==, DISK_SIZE - 12288);
    ret = bdrv_block_status(f.bs, DISK_SIZE, 512, &pnum, NULL, NULL);
    g_assert_cmpint(ret, ==, BDRV_BLOCK_EOF);
    g_assert_cmpint(pnum, ==, 0);
    fixture_free(&f);
}

typedef struct ChainArgs {
    BlockDriverState *bs;
    int64_t offset, bytes, pnum;
    int depth, ret, alloc;
} ChainArgs;

static void coroutine_fn chain_entry(void *opaque)
{
    ChainArgs *a = opaque;
    a->ret = bdrv_co_block_status_above(a->bs, NULL, a->offset, a->bytes,
                                        &a->pnum, NULL, NULL, &a->depth);
    a->alloc = bdrv_co_is_allocated(a->bs, a->offset, a->bytes, NULL);
}

static void test_block_status_above(void)
{
    BlockDriverState *top = fake_node(512, DISK_SIZE);
    BlockDriverState *base = fake_node(512, DISK_SIZE / 2);
    FakeState *ts = top->opaque, *bsb = base->opaque;
    BdrvChild *backing = g_new0(BdrvChild, 1);
    ChainArgs a;

    fake_drv.supports_backing = true;
    backing->bs = base;
    backing->name = g_strdup("backing");
    backing->role = BDRV_CHILD_COW;
    top->backing = backing;
    top->children = g_list_append(NULL, backing);
    base->parents = g_list_append(NULL, backing);
    ts->alloc[0] = 1;
    bsb->alloc[1] = 1;

    a = (ChainArgs) { .bs = top, .offset = 0, .bytes = 65536 };
    coroutine_run_sync(chain_entry, &a);
    g_assert_cmpint(a.depth, ==, 1);
    g_assert_cmpint(a.pnum, ==, 4096);
    g_assert_cmpint(a.alloc, ==, 1);

    a = (ChainArgs) { .bs = top, .offset = 4096, .bytes = 65536 };
    coroutine_run_sync(chain_entry, &a);
    g_assert_true(a.ret & BDRV_BLOCK_DATA);
    g_assert_cmpint(a.depth, ==, 2);
    g_assert_cmpint(a.pnum, ==, 4096);
    g_assert_cmpint(a.alloc, ==, 0);

    a = (ChainArgs) { .bs = top, .offset = 8192, .bytes = 65536 };
    coroutine_run_sync(chain_entry, &a);
    g_assert_false(a.ret & BDRV_BLOCK_ALLOCATED);
    g_assert_cmpint(a.depth, ==, 0);

    /* Past the backing file's end: zeroes, reported allocated below. */
    a = (ChainArgs) { .bs = top, .offset = DISK_SIZE / 2, .bytes = 4096 };
    coroutine_run_sync(chain_entry, &a);
    g_assert_true(a.ret & BDRV_BLOCK_ZERO);

    fake_drv.supports_backing = false;
    g_list_free(top->children);
    g_list_free(base->parents);
    g_free(backing->name);
    g_free(backing);
    for (int i = 0; i < 2; i++) {
        BlockDriverState *bs = i ? base : top;
        FakeState *s = bs->opaque;
        g_free(s->data);
        g_free(s->alloc);
        g_array_free(s->discard_log, true);
        g_free(s);
        g_free(bs);
    }
}

static void test_drain_waits(void)
{
    Fixture f;
    ConcWrite w[3];

    fixture_init(&f, 512);
    f.s->latency_ns = 20 * 1000 * 1000;
    for (int i = 0; i < 3; i++) {
        w[i] = (ConcWrite) { .child = f.child, .offset = i * 4096,
                             .bytes = 4096, .pattern = 7 };
        aio_co_enter(qb_get_aio_context(),
                     coroutine_create(conc_write_entry, &w[i]));
    }
    g_assert_cmpint(f.bs->in_flight, ==, 3);
    bdrv_drained_begin(f.bs);
    g_assert_cmpint(f.bs->in_flight, ==, 0);
    for (int i = 0; i < 3; i++) {
        g_assert_true(w[i].done);
        g_assert_cmpint(w[i].ret, ==, 0);
    }
    g_assert_cmpint(f.bs->quiesce_counter, ==, 1);
    bdrv_drained_end(f.bs);
    g_assert_cmpint(f.bs->quiesce_counter, ==, 0);
    fixture_free(&f);
}

/* Draining a node drains its node parents too: a parent's request may be
 * between two I/Os to the child. */
static void test_drain_parents(void)
{
    static const BdrvChildClass node_parent = { .parent_is_bds = true };
    Fixture top, low;
    BdrvChild *edge;
    ConcWrite w = { 0 };

    fixture_init(&top, 512);
    fixture_init(&low, 512);
    edge = fake_edge(low.bs, BLK_PERM_ALL);
    edge->klass = &node_parent;
    edge->opaque = top.bs;
    top.s->latency_ns = 20 * 1000 * 1000;
    w = (ConcWrite) { .child = top.child, .offset = 0, .bytes = 4096,
                      .pattern = 9 };
    aio_co_enter(qb_get_aio_context(), coroutine_create(conc_write_entry, &w));
    g_assert_cmpint(top.bs->in_flight, ==, 1);
    g_assert_cmpint(low.bs->in_flight, ==, 0);
    bdrv_drained_begin(low.bs);
    g_assert_true(w.done);
    g_assert_cmpint(top.bs->in_flight, ==, 0);
    g_assert_cmpint(top.bs->quiesce_counter, ==, 1);
    g_assert_cmpint(low.bs->quiesce_counter, ==, 1);
    bdrv_drained_end(low.bs);
    g_assert_cmpint(top.bs->quiesce_counter, ==, 0);
    g_assert_cmpint(low.bs->quiesce_counter, ==, 0);
    low.bs->parents = g_list_remove(low.bs->parents, edge);
    g_free(edge->name);
    g_free(edge);
    fixture_free(&low);
    fixture_free(&top);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/io/range-checks", test_range_checks);
    g_test_add_func("/io/perm-and-readonly", test_perm_and_readonly);
    g_test_add_func("/io/rmw-alignment", test_rmw_alignment);
    g_test_add_func("/io/concurrent-rmw", test_concurrent_rmw);
    g_test_add_func("/io/max-transfer-split", test_max_transfer_split);
    g_test_add_func("/io/write-zeroes", test_write_zeroes);
    g_test_add_func("/io/detect-zeroes-and-fua", test_detect_zeroes_and_fua);
    g_test_add_func("/io/discard", test_discard);
    g_test_add_func("/io/flush-skip", test_flush_skip);
    g_test_add_func("/io/block-status", test_block_status);
    g_test_add_func("/io/block-status-above", test_block_status_above);
    g_test_add_func("/io/drain-waits", test_drain_waits);
    g_test_add_func("/io/drain-parents", test_drain_parents);
    return g_test_run();
}
