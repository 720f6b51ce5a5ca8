/*
 * crash-writer: the victim process of the crash-consistency harness
 * (tests/crash/crash_consistency.py).  It opens an image read-write with a
 * writeback cache and issues a pseudo-random stream of writes, zero writes,
 * discards and flushes, logging each request on stdout (line-buffered) so the
 * harness, which SIGKILLs it at a random point, knows exactly which requests
 * had been acknowledged and which flushes had completed.
 *
 * Log lines (one per event, written before the next request is submitted):
 *   S ID w OFF LEN PAT   write of byte PAT over [OFF, OFF+LEN) submitted
 *   S ID z OFF LEN 0     write-zeroes submitted
 *   S ID d OFF LEN 0     discard submitted
 *   S ID f 0 0 0         flush submitted
 *   A ID RET             request ID completed with RET (0 or -errno)
 *
 * Invariants the harness relies on:
 *  1. "A" for a request is printed only after its completion callback ran,
 *     and before any later request is submitted (so stdout order is a valid
 *     happens-before order for acknowledgement vs. submission).
 *  2. Requests in flight at the same time never overlap (a batch picks
 *     disjoint ranges), so the content of a block after a crash is always
 *     one of the contents some request could have left there.
 *  3. Every range is aligned to 4 KiB; LEN is a multiple of 4 KiB.
 *
 * Usage: crash-writer FORMAT IMAGE SEED MAX_OPS
 */
#include "util/common.h"
#include "util/error.h"
#include "util/aio.h"
#include "util/iov.h"
#include "block/block.h"
#include "block/block-backend.h"
#include "block/block-int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BLOCK 4096
#define MAX_BATCH 4

typedef struct Req {
    int id;
    char op;
    int64_t off, len;
    int pat;
    uint8_t *buf;
    IOVector qiov;
    bool done;
    int ret;
} Req;

static int in_flight;

static void req_done(void *opaque, int ret)
{
    Req *r = opaque;

    r->done = true;
    r->ret = ret;
    in_flight--;
}

static bool overlaps(const Req *batch, int n, int64_t off, int64_t len)
{
    for (int i = 0; i < n; i++) {
        if (batch[i].op != 'f' && off < batch[i].off + batch[i].len &&
            batch[i].off < off + len) {
            return true;
        }
    }
    return false;
}

int main(int argc, char **argv)
{
    Error *err = NULL;
    BlockBackend *blk;
    GRand *rand;
    int64_t size, nblocks;
    long max_ops;
    int next_id = 1;
    json_t *opts;

    if (argc != 5) {
        fprintf(stderr, "usage: crash-writer FORMAT IMAGE SEED MAX_OPS\n");
        return 2;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    bdrv_register_builtin_drivers();

    opts = json_pack("{s:s}", "driver", argv[1]);
    blk = blk_new_open(argv[2], NULL, opts, BDRV_O_RDWR | BDRV_O_UNMAP, &err);
    if (!blk) {
        error_report_err(err);
        return 1;
    }
    blk_set_enable_write_cache(blk, true);
    size = blk_getlength(blk);
    if (size < 16 * BLOCK) {
        fprintf(stderr, "crash-writer: image too small\n");
        return 1;
    }
    nblocks = size / BLOCK;
    rand = g_rand_new_with_seed((guint32)strtoul(argv[3], NULL, 0));
    max_ops = strtol(argv[4], NULL, 0);

    while (next_id <= max_ops) {
        Req batch[MAX_BATCH];
        int n = 0, want = g_rand_int_range(rand, 1, MAX_BATCH + 1);
        AioContext *ctx = blk_get_aio_context(blk);

        memset(batch, 0, sizeof(batch));
        for (int i = 0; i < want; i++) {
            Req *r = &batch[n];
            int k = g_rand_int_range(rand, 0, 100);

            r->id = next_id++;
            if (k < 15) {
                r->op = 'f';
            } else {
                /* Mostly short writes inside a hot region (overwrites,
                 * L2/refblock sharing), sometimes long ones anywhere. */
                int64_t blocks = g_rand_boolean(rand) ?
                    g_rand_int_range(rand, 1, 5) :
                    g_rand_int_range(rand, 1, 33);
                int64_t span = g_rand_int_range(rand, 0, 4) ?
                    MIN(nblocks, 256) : nblocks;
                int tries = 0;

                r->op = k < 70 ? 'w' : k < 85 ? 'z' : 'd';
                blocks = MIN(blocks, span);
                do {
                    r->off = g_rand_int_range(rand, 0, span - blocks + 1) *
                             (int64_t)BLOCK;
                    r->len = blocks * BLOCK;
                } while (overlaps(batch, n, r->off, r->len) && ++tries < 8);
                if (tries == 8) {
                    next_id--;
                    break;
                }
                if (r->op == 'w') {
                    r->pat = g_rand_int_range(rand, 1, 256);
                }
            }
            n++;
            if (r->op == 'f') {
                break;          /* a flush ends the batch */
            }
        }

        for (int i = 0; i < n; i++) {
            Req *r = &batch[i];

            printf("S %d %c %" PRId64 " %" PRId64 " %d\n", r->id, r->op,
                   r->off, r->len, r->pat);
            in_flight++;
            switch (r->op) {
            case 'w':
                r->buf = blk_blockalign(blk, r->len);
                memset(r->buf, r->pat, r->len);
                qiov_init_buf(&r->qiov, r->buf, r->len);
                blk_aio_pwritev(blk, r->off, &r->qiov, 0, req_done, r);
                break;
            case 'z':
                blk_aio_pwrite_zeroes(blk, r->off, r->len, 0, req_done, r);
                break;
            case 'd':
                blk_aio_pdiscard(blk, r->off, r->len, req_done, r);
                break;
            case 'f':
                blk_aio_flush(blk, req_done, r);
                break;
            }
        }
        /* Report completions in the order they happen. */
        while (in_flight > 0) {
            aio_poll(ctx, true);
            for (int i = 0; i < n; i++) {
                if (batch[i].done) {
                    printf("A %d %d\n", batch[i].id, batch[i].ret);
                    batch[i].done = false;
                    batch[i].id = -batch[i].id;
                }
            }
        }
        for (int i = 0; i < n; i++) {
            qb_vfree(batch[i].buf);
            if (batch[i].ret < 0) {
                fprintf(stderr, "crash-writer: request %d failed: %s\n",
                        -batch[i].id, strerror(-batch[i].ret));
                return 1;
            }
        }
    }
    blk_unref(blk);
    g_rand_free(rand);
    printf("END\n");
    return 0;
}
