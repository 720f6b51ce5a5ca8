/*
 * qblock-img commit: write the data of an image (and of the layers between
 * it and the base) down into its backing file, as qemu-img 7.2 does.
 *
 * The base is the immediate backing file, or the -b image (found by name
 * in the chain; -b implies -d).  The base is reopened read-write, grown if
 * the top is larger, and every range allocated above it is copied (ranges
 * reading as zero are written as zeroes).  Unless -d is given, the top
 * image is emptied afterwards so that it reads through to the base again
 * (formats that cannot be emptied keep their now redundant data).
 */
#include "tools/img-util.h"
#include "block/reopen.h"

#include <getopt.h>

#define COMMIT_BUF_SIZE (2 * 1024 * 1024)

typedef struct CommitState {
    BlockBackend *top_blk;
    BlockBackend *base_blk;
    BlockDriverState *top, *base;
    int64_t len;
    int64_t rate_limit;      /* bytes per second, 0 = unlimited */
    Error **errp;
    int ret;
} CommitState;

static void coroutine_fn commit_co(void *opaque)
{
    CommitState *s = opaque;
    uint8_t *buf = blk_blockalign(s->top_blk, COMMIT_BUF_SIZE);
    int64_t start_ns = qb_clock_ns_monotonic(), copied = 0;
    int64_t offset = 0;

    s->ret = 0;
    while (offset < s->len) {
        int64_t pnum, n;
        int depth, ret;
        IOVector qiov;

        ret = bdrv_co_block_status_above(s->top, s->base, offset,
                                         MIN(s->len - offset,
                                             BDRV_REQUEST_MAX_BYTES),
                                         &pnum, NULL, NULL, &depth);
        if (ret < 0 || pnum <= 0) {
            error_setg_errno(s->errp, ret < 0 ? -ret : EIO,
                             "Could not read block status");
            s->ret = ret < 0 ? ret : -EIO;
            break;
        }
        n = MIN(pnum, COMMIT_BUF_SIZE);
        if ((ret & BDRV_BLOCK_ALLOCATED) && depth > 0) {
            if (ret & BDRV_BLOCK_ZERO) {
                ret = blk_co_pwrite_zeroes(s->base_blk, offset, n,
                                           BDRV_REQ_MAY_UNMAP);
            } else {
                qiov_init_buf(&qiov, buf, n);
                ret = blk_co_preadv(s->top_blk, offset, n, &qiov, 0);
                if (ret >= 0) {
                    ret = blk_co_pwritev(s->base_blk, offset, n, &qiov, 0);
                }
                copied += n;
            }
            if (ret < 0) {
                error_setg_errno(s->errp, -ret, "Could not commit data");
                s->ret = ret;
                break;
            }
            if (s->rate_limit) {
                int64_t due = start_ns + copied * 1000000000LL / s->rate_limit;
                int64_t now = qb_clock_ns_monotonic();
                if (due > now) {
                    co_sleep_ns(due - now);
                }
            }
        }
        offset += n;
        img_progress_print((float)offset / s->len * 100.f, 0);
    }
    if (!s->ret) {
        s->ret = blk_co_flush(s->base_blk);
        if (s->ret < 0) {
            error_setg_errno(s->errp, -s->ret, "Could not flush base image");
        }
    }
    qb_vfree(buf);
}

int img_commit(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { NULL, 0, NULL, 0 },
    };
    const char *filename, *fmt = NULL, *cache = "writeback", *base = NULL;
    bool progress = false, quiet = false, drop = false, image_opts = false;
    bool writethrough = false, base_was_ro = false;
    int64_t rate_limit = 0, base_len;
    CommitState s = { 0 };
    BlockBackend *blk;
    BlockDriverState *bs, *base_bs = NULL;
    Error *err = NULL;
    int flags, c;

    while ((c = getopt_long(argc, argv, ":f:ht:b:dpqr:", long_options,
                            NULL)) != -1) {
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'f':
            fmt = optarg;
            break;
        case 't':
            cache = optarg;
            break;
        case 'b':
            base = optarg;
            drop = true;        /* -b implies -d */
            break;
        case 'd':
            drop = true;
            break;
        case 'p':
            progress = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 'r':
            rate_limit = img_cvtnum_full("rate limit", optarg, 0, INT64_MAX);
            if (rate_limit < 0) {
                return 1;
            }
            break;
        case OPTION_OBJECT:
            error_report("--object is not supported");
            return 1;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        }
    }
    if (quiet) {
        progress = false;
    }
    if (optind != argc - 1) {
        img_error_exit("Expecting one image file name");
    }
    filename = argv[optind++];

    flags = BDRV_O_RDWR | BDRV_O_UNMAP;
    if (img_parse_cache_mode(cache, &flags, &writethrough) < 0) {
        error_report("Invalid cache option: %s", cache);
        return 1;
    }
    blk = img_open(image_opts, filename, fmt, flags, writethrough, quiet,
                   false);
    if (!blk) {
        return 1;
    }
    bs = blk_bs(blk);

    img_progress_init(progress, 1.f);
    img_progress_print(0.f, 100);

    if (base) {
        base_bs = img_find_backing_image(bs, base);
        if (!base_bs) {
            error_setg(&err, "Did not find '%s' in the backing chain of '%s'",
                       base, filename);
            goto done;
        }
    } else {
        /* qemu-img's traditional default: the immediate backing file. */
        base_bs = bdrv_backing_chain_next(bs);
        if (!base_bs) {
            error_setg(&err, "Image does not have a backing file");
            goto done;
        }
    }

    if (bdrv_is_read_only(base_bs)) {
        if (bdrv_reopen_set_read_only(base_bs, false, &err) < 0) {
            goto done;
        }
        base_was_ro = true;
    }
    s.base_blk = blk_new(qb_get_aio_context(),
                         BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE |
                         BLK_PERM_RESIZE, BLK_PERM_ALL);
    if (blk_insert_bs(s.base_blk, base_bs, &err) < 0) {
        goto done;
    }
    s.len = blk_getlength(blk);
    base_len = blk_getlength(s.base_blk);
    if (s.len < 0 || base_len < 0) {
        error_setg_errno(&err, -(s.len < 0 ? s.len : base_len),
                         "Could not get image size");
        goto done;
    }
    if (base_len < s.len &&
        blk_truncate(s.base_blk, s.len, false, PREALLOC_MODE_OFF, 0,
                     &err) < 0) {
        goto done;
    }

    s.top_blk = blk;
    s.top = bs;
    s.base = base_bs;
    s.rate_limit = rate_limit;
    s.errp = &err;
    img_run_in_coroutine(commit_co, &s);
    if (s.ret < 0) {
        goto done;
    }
    img_progress_print(100.f, 0);

    if (!drop) {
        /* Only the layer itself is emptied; with an intermediate base it
         * would be the whole chain above base, which -b excludes. */
        if (bs->drv->bdrv_make_empty) {
            int ret = bs->drv->bdrv_make_empty(bs);
            if (ret < 0 && ret != -ENOTSUP) {
                error_setg_errno(&err, -ret, "Could not empty %s", filename);
                goto done;
            }
        }
    }

done:
    img_progress_end();
    if (s.base_blk) {
        blk_unref(s.base_blk);
    }
    if (base_was_ro && !err) {
        /* Back to how the chain had it (errors only over-claim). */
        Error *ignored = NULL;
        bdrv_reopen_set_read_only(base_bs, true, &ignored);
        error_free(ignored);
    }
    blk_unref(blk);
    if (err) {
        error_report_err(err);
        return 1;
    }
    if (!quiet) {
        printf("Image committed.\n");
    }
    return 0;
}
