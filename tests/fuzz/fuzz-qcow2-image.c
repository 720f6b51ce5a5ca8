/*
 * libFuzzer target: a whole qcow2 image through the driver.  The input is
 * written to a file in a scratch directory (tmpfs when available:
 * $QBLOCK_FUZZ_DIR, else /dev/shm, else $TMPDIR), opened read-only through
 * blk_new_open with driver=qcow2 (header, extensions, L1, refcount table,
 * snapshot table and bitmap directory are all parsed at open), then every
 * cluster of the guest view is read (bounded: at most MAX_READ bytes, so a
 * huge virtual size cannot make one input run for minutes) and the driver's
 * check runs without repair.
 * "Must not crash, hang or allocate unboundedly": libFuzzer's -timeout and
 * -rss_limit_mb / -malloc_limit_mb enforce the last two.
 * QBLOCK_FUZZ_SKIP_CHECK=1 leaves the check out, to explore open and read
 * while a known check bug keeps stopping the fuzzer (see
 * tests/fuzz/crashers/README.md).
 */
#include "block/block.h"
#include "block/block-backend.h"
#include "block/block-int.h"
#include "block/check.h"
#include "util/coroutine.h"
#include "util/aio.h"

#include <assert.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_READ (64 * 1024 * 1024)
#define CHUNK    (64 * 1024)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static char *img_path;
static bool skip_check;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = getenv("QBLOCK_FUZZ_DIR");

    if (!dir) {
        dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : g_get_tmp_dir();
    }
    img_path = g_strdup_printf("%s/qblock-fuzz-%d.qcow2", dir, (int)getpid());
    skip_check = g_strcmp0(getenv("QBLOCK_FUZZ_SKIP_CHECK"), "1") == 0;
    bdrv_register_builtin_drivers();
    return 0;
}

typedef struct CheckCo {
    BlockDriverState *bs;
    BdrvCheckResult res;
    bool done;
    int ret;
} CheckCo;

static void coroutine_fn check_entry(void *opaque)
{
    CheckCo *c = opaque;

    c->ret = c->bs->drv->bdrv_co_check(c->bs, &c->res, 0);
    c->done = true;
}

static void run_check(BlockDriverState *bs)
{
    CheckCo c = { .bs = bs };

    if (!bs->drv || !bs->drv->bdrv_co_check) {
        return;
    }
    coroutine_enter(coroutine_create(check_entry, &c));
    AIO_WAIT_WHILE(qb_get_aio_context(), !c.done);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Error *err = NULL;
    BlockBackend *blk;
    int fd;
    int64_t len;
    uint8_t *buf;

    fd = open(img_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert(fd >= 0);
    assert(write(fd, data, size) == (ssize_t)size);
    close(fd);

    blk = blk_new_open(img_path, NULL, json_pack("{s:s}", "driver", "qcow2"),
                       BDRV_O_CHECK | BDRV_O_NO_BACKING, &err);
    if (!blk) {
        assert(err);
        error_free(err);
        unlink(img_path);
        return 0;
    }
    len = blk_getlength(blk);
    buf = g_malloc(CHUNK);
    for (int64_t off = 0; len > 0 && off < MIN(len, MAX_READ); off += CHUNK) {
        /* Errors are fine (a corrupt L2 entry gives -EIO); crashes not. */
        blk_pread(blk, off, MIN(CHUNK, len - off), buf, 0);
    }
    g_free(buf);
    if (!skip_check) {
        run_check(blk_bs(blk));
    }
    blk_unref(blk);
    unlink(img_path);
    return 0;
}
