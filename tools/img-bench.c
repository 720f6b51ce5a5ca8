/*
 * qblock-img bench: a simple I/O benchmark with qemu-img 7.2's options and
 * output.  `count` requests of `bufsize` bytes are kept `depth` deep
 * through blk_aio_preadv/pwritev, each one `step` bytes after the previous
 * (wrapping at the image end); writes may be followed by a flush every
 * `flush_interval` requests, either after draining the requests in flight
 * (default) or alongside them (--no-drain).
 *
 * Invariants of the request loop (BenchState):
 *  1. issued <= count, done <= issued, in_flight == issued - done (plus one
 *     while a flush is in flight).
 *  2. In drain mode nothing new is issued while a flush is pending or in
 *     flight, so every flush covers exactly the writes issued before it.
 */
#include "tools/qblock-img.h"
#include "block/block-int.h"

#include <getopt.h>

typedef struct BenchState {
    BlockBackend *blk;
    uint8_t *buf;           /* depth * bufsize bytes, pattern-filled */
    IOVector qiov;          /* the first bufsize bytes of buf */
    int64_t image_size;
    int64_t offset;         /* next request's offset */
    int64_t step;
    int bufsize;
    int depth;
    int count;
    bool write;
    int flush_interval;
    bool drain_on_flush;

    int issued;
    int done;
    int in_flight;
    int since_flush;        /* requests issued since the last flush */
    bool flush_pending;     /* drain mode: waiting for in_flight to drop */
    bool in_flush;
} BenchState;

static void bench_pump(BenchState *b);

static void G_GNUC_NORETURN bench_fail(int ret)
{
    error_report("Failed request: %s", strerror(-ret));
    exit(EXIT_FAILURE);
}

static void bench_flush_cb(void *opaque, int ret)
{
    BenchState *b = opaque;

    if (ret < 0) {
        bench_fail(ret);
    }
    b->in_flush = false;
    b->in_flight--;
    bench_pump(b);
}

static void bench_cb(void *opaque, int ret)
{
    BenchState *b = opaque;

    if (ret < 0) {
        bench_fail(ret);
    }
    b->done++;
    b->in_flight--;
    bench_pump(b);
}

static void bench_start_flush(BenchState *b)
{
    b->flush_pending = false;
    b->in_flush = true;
    b->in_flight++;
    b->since_flush = 0;
    blk_aio_flush(b->blk, bench_flush_cb, b);
}

/* Issue whatever may be issued now (keeps the queue full). */
static void bench_pump(BenchState *b)
{
    if (b->flush_pending && b->in_flight == 0) {
        bench_start_flush(b);
    }
    while (b->issued < b->count && !b->flush_pending &&
           !(b->in_flush && b->drain_on_flush) &&
           b->in_flight - b->in_flush < b->depth) {
        /* Every request uses the same buffer, as qemu-img 7.2 does (it
         * allocates depth buffers but passes the first to all requests):
         * the memory footprint, and so the cache behaviour of the copies
         * the kernel or the device makes, matches QEMU's. */
        b->issued++;
        b->in_flight++;
        if (b->write) {
            blk_aio_pwritev(b->blk, b->offset, &b->qiov, 0, bench_cb, b);
        } else {
            blk_aio_preadv(b->blk, b->offset, &b->qiov, 0, bench_cb, b);
        }
        /* Wrap at the end of the image as qemu-img does: a request that
         * starts inside the image but ends past it fails (-EIO). */
        b->offset += b->step;
        if (b->image_size <= b->bufsize) {
            b->offset = 0;
        } else {
            b->offset %= b->image_size;
        }

        if (b->flush_interval && ++b->since_flush >= b->flush_interval) {
            if (b->drain_on_flush) {
                b->flush_pending = true;
                if (b->in_flight == 0) {
                    bench_start_flush(b);
                }
            } else {
                bench_start_flush(b);
            }
        }
    }
}

/* Parse a bounded positive int with qemu-img's "Invalid NAME specified". */
static int parse_int_opt(const char *s, const char *what, long min, long max)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 0);
    if (!*s || *end || errno || v < min || v > max) {
        error_report("Invalid %s specified", what);
        exit(EXIT_FAILURE);
    }
    return (int)v;
}

int img_bench(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "flush-interval", required_argument, NULL, OPTION_FLUSH_INTERVAL },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "pattern", required_argument, NULL, OPTION_PATTERN },
        { "no-drain", no_argument, NULL, OPTION_NO_DRAIN },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    BenchState b = {
        .count = 75000, .depth = 64, .bufsize = 4096, .step = 0,
        .drain_on_flush = true,
    };
    const char *fmt = NULL, *filename;
    bool image_opts = false, quiet = false, force_share = false;
    bool writethrough = false;
    int flags = 0, pattern = 0, c;
    int64_t offset = 0, t0, t1;

    while ((c = getopt_long(argc, argv, ":hc:d:f:ni:o:qs:S:t:wU",
                            long_options, NULL)) != -1) {
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'c':
            b.count = parse_int_opt(optarg, "request count", 0, INT_MAX);
            break;
        case 'd':
            b.depth = parse_int_opt(optarg, "queue depth", 1, INT_MAX);
            break;
        case 'f':
            fmt = optarg;
            break;
        case 'n':
            flags |= BDRV_O_NATIVE_AIO;
            break;
        case 'i':
            if (img_parse_aio(optarg, &flags) < 0) {
                error_report("Invalid aio option: %s", optarg);
                return EXIT_FAILURE;
            }
            break;
        case 'o':
            offset = img_cvtnum_full("offset", optarg, 0, INT64_MAX);
            if (offset < 0) {
                return EXIT_FAILURE;
            }
            break;
        case 'q':
            quiet = true;
            break;
        case 's': {
            int64_t sval = img_cvtnum_full("buffer size", optarg, 0,
                                           INT_MAX);
            if (sval < 0) {
                return EXIT_FAILURE;
            }
            b.bufsize = (int)sval;
            break;
        }
        case 'S': {
            int64_t sval = img_cvtnum_full("step_size", optarg, 0, INT_MAX);
            if (sval < 0) {
                return EXIT_FAILURE;
            }
            b.step = sval;
            break;
        }
        case 't':
            if (img_parse_cache_mode(optarg, &flags, &writethrough) < 0) {
                error_report("Invalid cache mode");
                return EXIT_FAILURE;
            }
            break;
        case 'w':
            flags |= BDRV_O_RDWR;
            b.write = true;
            break;
        case 'U':
            force_share = true;
            break;
        case OPTION_PATTERN:
            pattern = parse_int_opt(optarg, "pattern byte", 0, 0xff);
            break;
        case OPTION_FLUSH_INTERVAL:
            b.flush_interval = parse_int_opt(optarg, "flush interval", 0,
                                             INT_MAX);
            break;
        case OPTION_NO_DRAIN:
            b.drain_on_flush = false;
            break;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        }
    }
    if (optind != argc - 1) {
        img_error_exit("Expecting one image file name");
    }
    filename = argv[optind];
    if (b.flush_interval && !b.write) {
        error_report("--flush-interval is only available in write tests");
        return EXIT_FAILURE;
    }
    if (b.flush_interval && b.flush_interval < b.depth) {
        error_report("Flush interval can't be smaller than depth");
        return EXIT_FAILURE;
    }
    if (image_opts && fmt) {
        error_report("--image-opts and --format are mutually exclusive");
        return EXIT_FAILURE;
    }

    b.blk = img_open(image_opts, filename, fmt, flags, writethrough, quiet,
                     force_share);
    if (!b.blk) {
        return EXIT_FAILURE;
    }
    /* Our callbacks never wait: let them run straight from the finished
     * request, so the refill joins the I/O engine's current batch. */
    blk_set_aio_direct_completion(b.blk, true);
    b.image_size = blk_getlength(b.blk);
    if (b.image_size < 0) {
        error_report("Could not get image size: %s",
                     strerror(-b.image_size));
        blk_unref(b.blk);
        return EXIT_FAILURE;
    }
    if (!b.step) {
        b.step = b.bufsize;
    }
    b.offset = offset;

    /* depth * bufsize bytes like qemu-img, never more than count needs. */
    {
        int slots = MIN(b.depth, MAX(b.count, 1));
        size_t total = (size_t)b.bufsize * slots;

        b.buf = blk_blockalign(b.blk, total ? total : 1);
        memset(b.buf, pattern, total);
        qiov_init_buf(&b.qiov, b.buf, b.bufsize);
    }

    printf("Sending %d %s requests, %d bytes each, %d in parallel "
           "(starting at offset %" PRId64 ", step size %" PRId64 ")\n",
           b.count, b.write ? "write" : "read", b.bufsize, b.depth,
           offset, b.step);
    if (b.flush_interval) {
        printf("Sending flush every %d requests\n", b.flush_interval);
    }

    t0 = qb_clock_ns_monotonic();
    bench_pump(&b);
    AIO_WAIT_WHILE(blk_get_aio_context(b.blk),
                   b.done < b.count || b.in_flight > 0);
    t1 = qb_clock_ns_monotonic();

    printf("Run completed in %3.3f seconds.\n", (t1 - t0) / 1e9);

    qiov_destroy(&b.qiov);
    qb_vfree(b.buf);
    blk_unref(b.blk);
    bdrv_close_all();
    return EXIT_SUCCESS;
}
