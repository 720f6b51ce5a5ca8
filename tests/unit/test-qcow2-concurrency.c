/*
 * Concurrency stress of the qcow2 data path: many coroutines issue random
 * writes, write-zeroes (with and without unmap), discards, compressed
 * writes, reads and flushes against one qcow2 node, while a byte model of
 * the guest disk predicts every read.  The workers never have two requests
 * in flight on the same guest *bytes* (the result would be undefined), but
 * freely share clusters, L2 slices and refcount blocks, which is where the
 * driver's own serialisation (in-flight allocations, waits before freeing)
 * has to work.  Afterwards the real `qemu-img check` must find no errors
 * and no leaks, and `qemu-img compare` must find the model's bytes.
 *
 * Variants: cluster sizes 512 B, 64 KiB and 2 MiB, extended L2, a backing
 * file, an internal snapshot taken mid-run (in a drained section, as QMP
 * does), blkdebug-injected I/O errors (the image must stay consistent:
 * leaks at most, and every byte not touched by a failed request intact)
 * and a third of the requests compressed writes (compressed clusters are
 * read, overwritten and freed while others inflate them without the
 * driver lock).  Every run also compares the driver's overlap-check index
 * with its tables at every check (QBLOCK_QCOW2_OL_VERIFY).
 */
#include "block/block-int.h"
#include "block/block-backend.h"
#include "block/snapshot.h"
#include "util/aio.h"

static char *tmpdir;
static bool have_qemu_img;

#define NB_WORKERS 16

typedef struct Range {
    int64_t start, end;
} Range;

typedef struct Stress {
    BlockBackend *blk;
    int64_t size;
    int64_t cs;              /* cluster size */
    uint8_t *model;          /* expected guest bytes */
    uint8_t *known;          /* 0: a failed request left it undefined */
    GArray *busy;            /* Range: byte ranges of requests in flight */
    CoQueue busy_queue;
    GRand *rand;
    int ops_left;            /* bounded: every worker stops at 0 */
    int running;
    int errors;              /* failed requests (only with injection) */
    bool expect_errors;
    bool compressed_ok;
    bool snapshot;           /* one worker takes a snapshot halfway */
    bool snapshot_taken;
    bool compressed_heavy;   /* a third of the ops compressed writes */
    int mismatches;
    uint32_t seed;
} Stress;

static bool overlaps_busy(Stress *st, int64_t a, int64_t b)
{
    for (guint i = 0; i < st->busy->len; i++) {
        Range *r = &g_array_index(st->busy, Range, i);
        if (a < r->end && r->start < b) {
            return true;
        }
    }
    return false;
}

static void busy_del(Stress *st, int64_t a, int64_t b)
{
    for (guint i = 0; i < st->busy->len; i++) {
        Range *r = &g_array_index(st->busy, Range, i);
        if (r->start == a && r->end == b) {
            g_array_remove_index_fast(st->busy, i);
            co_queue_restart_all(&st->busy_queue);
            return;
        }
    }
    g_assert_not_reached();
}

static void set_known(Stress *st, int64_t a, int64_t b, bool ok)
{
    memset(st->known + a, ok, b - a);
}

/* Compare a read of [a, b) with the model, bytes the model knows only. */
static void verify(Stress *st, int64_t a, const uint8_t *buf, int64_t len)
{
    for (int64_t i = 0; i < len; i++) {
        if (st->known[a + i] && buf[i] != st->model[a + i]) {
            if (st->mismatches++ < 5) {
                g_printerr("mismatch at %" PRId64 ": got %#x want %#x\n",
                           a + i, buf[i], st->model[a + i]);
            }
        }
    }
}

static void coroutine_fn take_snapshot(Stress *st)
{
    BlockDriverState *bs = blk_bs(st->blk);
    QBSnapshotInfo sn = { 0 };

    g_strlcpy(sn.name, "mid-run", sizeof(sn.name));
    bdrv_drained_begin(bs);
    g_assert_cmpint(bdrv_snapshot_create(bs, &sn), ==, 0);
    bdrv_drained_end(bs);
    st->snapshot_taken = true;
}

static void coroutine_fn worker(void *opaque)
{
    Stress *st = opaque;
    uint8_t *buf = qb_memalign(4096, 3 * st->cs + 4096);

    while (st->ops_left > 0) {
        int op = g_rand_int_range(st->rand, 0, 100);
        int64_t a, len;
        int ret = 0;
        IOVector q;

        st->ops_left--;
        if (st->compressed_heavy && op < 30) {
            /* Compressed clusters read (inflated outside the driver
             * lock), overwritten, partly rewritten (copy-on-write from
             * compressed data) and discarded concurrently. */
            op = 85 + op % 5;
        }
        if (st->snapshot && !st->snapshot_taken && st->ops_left < 600) {
            take_snapshot(st);
            continue;
        }
        if (op >= 70 && op < 85) {
            /* discard / write-zeroes of whole clusters */
            int64_t n = g_rand_int_range(st->rand, 1, 3);
            a = g_rand_int_range(st->rand, 0, st->size / st->cs) * st->cs;
            len = MIN(n * st->cs, st->size - a);
        } else if (op >= 85 && op < 90 && st->compressed_ok) {
            a = g_rand_int_range(st->rand, 0, st->size / st->cs) * st->cs;
            len = st->cs;
        } else {
            /* byte granularity half the time, 512-aligned otherwise */
            int64_t max = 2 * st->cs + 4096;
            len = g_rand_int_range(st->rand, 1, MIN(max, 256 * KiB) + 1);
            a = g_rand_int_range(st->rand, 0, st->size - len + 1);
            if (g_rand_boolean(st->rand)) {
                a = QB_ALIGN_DOWN(a, 512);
                len = QB_ALIGN_UP(len, 512);
                len = MIN(len, st->size - a);
            }
        }
        while (overlaps_busy(st, a, a + len)) {
            co_queue_wait(&st->busy_queue, NULL);
        }
        Range r = { a, a + len };
        g_array_append_val(st->busy, r);

        if (op < 45 || (op >= 85 && op < 90 && !st->compressed_ok)) {
            uint8_t seed = g_rand_int(st->rand);
            for (int64_t i = 0; i < len; i++) {
                buf[i] = seed + i * 7 + (i >> 9);
            }
            qiov_init_buf(&q, buf, len);
            ret = blk_co_pwritev(st->blk, a, len, &q, 0);
            qiov_destroy(&q);
            if (ret >= 0) {
                memcpy(st->model + a, buf, len);
            }
        } else if (op < 70) {
            qiov_init_buf(&q, buf, len);
            ret = blk_co_preadv(st->blk, a, len, &q, 0);
            qiov_destroy(&q);
            if (ret >= 0) {
                verify(st, a, buf, len);
            }
        } else if (op < 75) {
            ret = blk_co_pdiscard(st->blk, a, len);
            if (ret >= 0) {
                memset(st->model + a, 0, len);
            }
        } else if (op < 85) {
            /* Unaligned write-zeroes as well: trim the cluster range. */
            int64_t cut = op < 80 ? g_rand_int_range(st->rand, 0, 
                                                     MIN(len, 4096)) : 0;
            BdrvRequestFlags f = (op & 1) ? BDRV_REQ_MAY_UNMAP : 0;
            ret = blk_co_pwrite_zeroes(st->blk, a + cut, len - cut, f);
            if (ret >= 0) {
                memset(st->model + a + cut, 0, len - cut);
            } else {
                set_known(st, a + cut, a + len, false);
            }
            a += cut;
            len -= cut;
        } else if (op < 90) {
            uint8_t seed = g_rand_int(st->rand);
            /* half compressible, half random-ish */
            for (int64_t i = 0; i < len; i++) {
                buf[i] = i < len / 2 ? seed : (uint8_t)(seed * i + (i >> 3));
            }
            qiov_init_buf(&q, buf, len);
            ret = blk_co_pwritev(st->blk, a, len, &q,
                                 BDRV_REQ_WRITE_COMPRESSED);
            qiov_destroy(&q);
            if (ret >= 0) {
                memcpy(st->model + a, buf, len);
            }
        } else {
            ret = blk_co_flush(st->blk);
        }
        if (ret < 0) {
            st->errors++;
            if (!st->expect_errors) {
                g_printerr("op %d at %" PRId64 "+%" PRId64 ": %s\n", op,
                           r.start, r.end - r.start, strerror(-ret));
            }
            if (op < 90) {
                set_known(st, r.start, r.end, false);
            }
        } else if (op < 45 || (op >= 70 && op < 90)) {
            set_known(st, a, a + len, true);
        }
        busy_del(st, r.start, r.end);
    }
    qb_vfree(buf);
    st->running--;
    aio_notify(qb_get_aio_context());
}

static int run_cmd(const char *cmd, char **out)
{
    int status = -1;
    g_autoptr(GError) err = NULL;
    g_autofree char *err_out = NULL;

    if (!g_spawn_command_line_sync(cmd, out, &err_out, &status, &err)) {
        g_printerr("%s: %s\n", cmd, err->message);
        return -1;
    }
    if (status && err_out && *err_out) {
        g_printerr("%s", err_out);
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

typedef struct Variant {
    const char *name;
    int64_t cluster_size;
    bool extended_l2;
    bool backing;
    bool snapshot;
    bool inject;
    int ops;
    bool compressed_heavy;
} Variant;

static void run_variant(gconstpointer data)
{
    const Variant *v = data;
    g_autofree char *img = g_strdup_printf("%s/%s.qcow2", tmpdir, v->name);
    g_autofree char *base = g_strdup_printf("%s/%s.base", tmpdir, v->name);
    g_autofree char *raw = g_strdup_printf("%s/%s.raw", tmpdir, v->name);
    g_autofree char *cmd = NULL, *out = NULL;
    Stress st = { 0 };
    json_t *o, *file;
    int ret;

    if (!have_qemu_img) {
        g_test_skip("qemu-img not installed");
        return;
    }
    st.cs = v->cluster_size;
    st.size = MAX(24 * st.cs, 4 * MiB);
    st.size = QB_ALIGN_UP(MIN(st.size, 48 * MiB), st.cs);
    st.model = g_malloc0(st.size);
    st.known = g_malloc(st.size);
    memset(st.known, 1, st.size);
    st.busy = g_array_new(false, false, sizeof(Range));
    co_queue_init(&st.busy_queue);
    st.seed = g_test_rand_int();
    st.rand = g_rand_new_with_seed(st.seed);
    st.ops_left = v->ops;
    st.expect_errors = v->inject;
    st.compressed_ok = true;
    st.snapshot = v->snapshot;
    st.compressed_heavy = v->compressed_heavy;

    if (v->backing) {
        /* Backing content the overlay's COW has to carry. */
        for (int64_t i = 0; i < st.size; i++) {
            st.model[i] = (i >> 9) * 13 + 1;
        }
        /* The backing file ends before the overlay: zeros past it. */
        int64_t blen = st.size - 3 * st.cs / 2;
        memset(st.model + blen, 0, st.size - blen);
        g_assert_true(g_file_set_contents(base, (char *)st.model, blen,
                                          NULL));
    }
    cmd = g_strdup_printf("qemu-img create -q -f qcow2 -o cluster_size=%"
                          PRId64 ",extended_l2=%s%s%s %s %" PRId64,
                          st.cs, v->extended_l2 ? "on" : "off",
                          v->backing ? " -F raw -b " : "",
                          v->backing ? base : "", img, st.size);
    g_assert_cmpint(run_cmd(cmd, NULL), ==, 0);

    if (v->inject) {
        file = json_pack("{s:s, s:[{s:s, s:i, s:i, s:b}, {s:s, s:i, s:i, "
                         "s:b}, {s:s, s:i, s:i, s:b}], s:{s:s, s:s}}",
                         "driver", "blkdebug", "inject-error",
                         "event", "write_aio", "errno", 5, "after", 60,
                         "once", true,
                         "event", "cow_write", "errno", 5, "after", 20,
                         "once", true,
                         "event", "cow_read", "errno", 5, "after", 30,
                         "once", true,
                         "image", "driver", "file", "filename", img);
    } else {
        file = json_pack("{s:s, s:s}", "driver", "file", "filename", img);
    }
    o = json_pack("{s:s, s:o}", "driver", "qcow2", "file", file);
    st.blk = blk_new_open(NULL, NULL, o, BDRV_O_RDWR | BDRV_O_UNMAP,
                          &error_abort);

    st.running = NB_WORKERS;
    for (int i = 0; i < NB_WORKERS; i++) {
        coroutine_enter(coroutine_create(worker, &st));
    }
    {
        /* Bounded by count (ops_left) and by time. */
        gint64 deadline = g_get_monotonic_time() + 100 * G_USEC_PER_SEC;
        while (st.running > 0) {
            aio_poll(qb_get_aio_context(), true);
            g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        }
    }
    if (!v->inject) {
        g_assert_cmpint(st.errors, ==, 0);
    } else {
        g_test_message("%d requests failed by injection", st.errors);
    }
    g_assert_cmpint(st.mismatches, ==, 0);
    g_assert_true(!v->snapshot || st.snapshot_taken);

    /* Whole-disk read back through qblock. */
    {
        g_autofree uint8_t *rd = g_malloc(st.size);
        g_assert_cmpint(blk_pread(st.blk, 0, st.size, rd, 0), >=, 0);
        verify(&st, 0, rd, st.size);
        g_assert_cmpint(st.mismatches, ==, 0);
    }
    ret = blk_flush(st.blk);
    g_assert_cmpint(ret, ==, 0);
    blk_unref(st.blk);

    /* The real tools: no corruption, no leak (errors may leak clusters). */
    g_free(cmd);
    cmd = g_strdup_printf("qemu-img check -f qcow2 %s", img);
    ret = run_cmd(cmd, &out);
    if (ret != 0) {
        g_printerr("%s", out);
    }
    if (v->inject) {
        g_assert_true(ret == 0 || ret == 3);
    } else {
        g_assert_cmpint(ret, ==, 0);
    }
    if (!memchr(st.known, 0, st.size)) {
        g_assert_true(g_file_set_contents(raw, (char *)st.model, st.size,
                                          NULL));
        g_free(cmd);
        cmd = g_strdup_printf("qemu-img compare -q -f raw -F qcow2 %s %s",
                              raw, img);
        g_assert_cmpint(run_cmd(cmd, NULL), ==, 0);
        unlink(raw);
    }
    unlink(img);
    unlink(base);
    g_rand_free(st.rand);
    g_array_free(st.busy, true);
    g_free(st.model);
    g_free(st.known);
}

static const Variant variants[] = {
    { "c64k", 64 * KiB, false, false, false, false, 3000 },
    { "c512", 512, false, false, false, false, 3000 },
    { "c2m", 2 * MiB, false, false, false, false, 600 },
    { "extl2", 64 * KiB, true, false, false, false, 3000 },
    { "extl2-512k", 512 * KiB, true, true, false, false, 1500 },
    { "backing", 64 * KiB, false, true, false, false, 3000 },
    { "snapshot", 64 * KiB, false, true, true, false, 3000 },
    { "inject", 64 * KiB, false, false, false, true, 2000 },
    { "inject-extl2-backing", 64 * KiB, true, true, false, true, 2000 },
    { "compressed", 64 * KiB, false, false, false, false, 3000, true },
    { "compressed-c4k-backing", 4 * KiB, false, true, false, false, 3000,
      true },
};

/*
 * A compressed cluster is inflated without the driver lock: a read is
 * stopped (blkdebug breakpoint on read_compressed) after its lookup, then
 * a write to the other half of the cluster replaces it (copy-on-write from
 * the compressed data, L2 update, free of the compressed bytes) and a
 * write to a fresh cluster allocates.  The freed host cluster must not be
 * reused (and overwritten) before the stopped read has read it: the free
 * waits for the read's in-flight record.  Without that record the fresh
 * write lands on the compressed bytes and the read returns garbage.
 */
typedef struct RwCo {
    BlockBackend *blk;
    int64_t off, len;
    uint8_t *buf;
    bool write;
    int ret;
    bool done;
} RwCo;

static void coroutine_fn rw_co(void *opaque)
{
    RwCo *c = opaque;
    IOVector q;

    qiov_init_buf(&q, c->buf, c->len);
    c->ret = c->write ? blk_co_pwritev(c->blk, c->off, c->len, &q, 0)
                      : blk_co_preadv(c->blk, c->off, c->len, &q, 0);
    qiov_destroy(&q);
    c->done = true;
    aio_notify(qb_get_aio_context());
}

/* Poll until *flag (bounded by time). */
static void poll_until(bool *flag)
{
    gint64 deadline = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;
    while (!*flag) {
        aio_poll(qb_get_aio_context(), true);
        g_assert_cmpint(g_get_monotonic_time(), <, deadline);
    }
}

/* Run the event loop for about ms milliseconds without blocking on it. */
static void poll_for(int ms)
{
    gint64 end = g_get_monotonic_time() + ms * 1000;
    while (g_get_monotonic_time() < end) {
        aio_poll(qb_get_aio_context(), false);
        g_usleep(200);
    }
}

static void test_compressed_read_vs_free(void)
{
    g_autofree char *img = g_strdup_printf("%s/rvf.qcow2", tmpdir);
    g_autofree char *cmd = NULL;
    g_autofree uint8_t *buf = g_malloc(128 * KiB);
    g_autofree uint8_t *rd = g_malloc(32 * KiB);
    g_autofree uint8_t *w1 = g_malloc(32 * KiB), *w2 = g_malloc(64 * KiB);
    BlockBackend *blk;
    BlockDriverState *bs;
    bool suspended = false;
    json_t *o;

    if (!have_qemu_img) {
        g_test_skip("qemu-img not installed");
        return;
    }
    cmd = g_strdup_printf("qemu-img create -q -f qcow2 %s 4M", img);
    g_assert_cmpint(run_cmd(cmd, NULL), ==, 0);
    o = json_pack("{s:s, s:{s:s, s:{s:s, s:s}}}", "driver", "qcow2",
                  "file", "driver", "blkdebug", "image", "driver", "file",
                  "filename", img);
    blk = blk_new_open(NULL, NULL, o, BDRV_O_RDWR, &error_abort);
    bs = blk_bs(blk);

    memset(buf, 0x11, 32 * KiB);
    memset(buf + 32 * KiB, 0x22, 32 * KiB);
    g_assert_cmpint(blk_pwrite(blk, 0, 64 * KiB, buf,
                               BDRV_REQ_WRITE_COMPRESSED), >=, 0);

    g_assert_cmpint(bdrv_debug_breakpoint(bs, "read_compressed", "A"), ==,
                    0);
    RwCo r = { .blk = blk, .off = 0, .len = 32 * KiB, .buf = rd };
    coroutine_enter(coroutine_create(rw_co, &r));
    {
        gint64 deadline = g_get_monotonic_time() + 20 * G_USEC_PER_SEC;
        while (!(suspended = bdrv_debug_is_suspended(bs, "A"))) {
            aio_poll(qb_get_aio_context(), true);
            g_assert_cmpint(g_get_monotonic_time(), <, deadline);
        }
    }
    /* Replaces the compressed cluster; its free must wait for r. */
    memset(w1, 0x33, 32 * KiB);
    RwCo w = { .blk = blk, .off = 32 * KiB, .len = 32 * KiB, .buf = w1,
               .write = true };
    coroutine_enter(coroutine_create(rw_co, &w));
    poll_for(50);
    /* A fresh cluster: must not get the compressed bytes' cluster. */
    memset(w2, 0x44, 64 * KiB);
    RwCo w2c = { .blk = blk, .off = 64 * KiB, .len = 64 * KiB, .buf = w2,
                 .write = true };
    coroutine_enter(coroutine_create(rw_co, &w2c));
    poll_until(&w2c.done);
    g_assert_cmpint(w2c.ret, >=, 0);

    g_assert_cmpint(bdrv_debug_resume(bs, "A"), ==, 0);
    poll_until(&r.done);
    poll_until(&w.done);
    g_assert_cmpint(r.ret, >=, 0);
    g_assert_cmpint(w.ret, >=, 0);
    for (int i = 0; i < 32 * KiB; i++) {
        g_assert_cmpint(rd[i], ==, 0x11);
    }
    g_assert_cmpint(blk_pread(blk, 0, 128 * KiB, buf, 0), >=, 0);
    for (int i = 0; i < 128 * KiB; i++) {
        g_assert_cmpint(buf[i], ==, i < 32 * KiB ? 0x11 : i < 64 * KiB ?
                        0x33 : 0x44);
    }
    blk_unref(blk);
    g_free(cmd);
    cmd = g_strdup_printf("qemu-img check -q -f qcow2 %s", img);
    g_assert_cmpint(run_cmd(cmd, NULL), ==, 0);
    unlink(img);
}

int main(int argc, char **argv)
{
    g_autofree char *qi = g_find_program_in_path("qemu-img");
    int ret;

    g_test_init(&argc, &argv, NULL);
    /* Every overlap check answered from the driver's index of metadata
     * clusters is compared with a walk of the tables (abort if stale). */
    g_setenv("QBLOCK_QCOW2_OL_VERIFY", "1", true);
    bdrv_register_builtin_drivers();
    have_qemu_img = qi != NULL;
    tmpdir = g_dir_make_tmp("qblock-test-qcow2-conc-XXXXXX", NULL);
    g_assert_nonnull(tmpdir);
    for (size_t i = 0; i < G_N_ELEMENTS(variants); i++) {
        g_autofree char *path = g_strdup_printf("/qcow2-concurrency/%s",
                                                variants[i].name);
        g_test_add_data_func(path, &variants[i], run_variant);
    }
    g_test_add_func("/qcow2-concurrency/compressed-read-vs-free",
                    test_compressed_read_vs_free);
    ret = g_test_run();
    rmdir(tmpdir);
    g_free(tmpdir);
    return ret;
}
