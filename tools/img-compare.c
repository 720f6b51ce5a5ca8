/*
 * qblock-img compare: tell whether two images show the same guest data,
 * as qemu-img 7.2 does.
 *
 * Both images are walked with block status so that ranges reading as zero
 * on both sides are skipped without I/O; allocated ranges are read and
 * compared sector by sector; a range allocated on one side only must read
 * as zeroes there.  If sizes differ, the tail of the larger image must be
 * zero.  Strict mode (-s) also fails on differing sizes or block status.
 *
 * Exit codes: 0 identical, 1 different, 2 open/argument error, 3 block
 * status failed, 4 read error.
 */
#include "tools/img-util.h"

#include <getopt.h>

/* Chunk read at a time, as qemu-img's IO_BUF_SIZE. */
#define COMPARE_BUF_SIZE (2 * 1024 * 1024)


static void G_GNUC_PRINTF(2, 3) qprintf(bool quiet, const char *fmt, ...)
{
    va_list ap;

    if (quiet) {
        return;
    }
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
}

/* Index of the first sector of buf that is not all zero, or -1. */
static int64_t find_nonzero(const uint8_t *buf, int64_t n)
{
    for (int64_t i = 0; i < n; i += BDRV_SECTOR_SIZE) {
        if (!buffer_is_zero(buf + i, MIN((int64_t)BDRV_SECTOR_SIZE,
                                             n - i))) {
            return i;
        }
    }
    return -1;
}

/* 0 if [offset, offset+bytes) of blk reads as zeroes, else the exit code
 * (1 with the mismatch message, 4 on a read error). */
static int check_empty_sectors(BlockBackend *blk, int64_t offset,
                               int64_t bytes, const char *filename,
                               uint8_t *buffer, bool quiet)
{
    int64_t idx;
    int ret = blk_pread(blk, offset, bytes, buffer, 0);

    if (ret < 0) {
        error_report("Error while reading offset %" PRId64 " of %s: %s",
                     offset, filename, strerror(-ret));
        return 4;
    }
    idx = find_nonzero(buffer, bytes);
    if (idx >= 0) {
        qprintf(quiet, "Content mismatch at offset %" PRId64 "!\n",
                offset + idx);
        return 1;
    }
    return 0;
}

static int status_of(BlockBackend *blk, int64_t offset, int64_t bytes,
                     int64_t *pnum)
{
    return img_block_status_above(blk_bs(blk), NULL, offset,
                                  MIN(bytes, BDRV_REQUEST_MAX_BYTES), pnum,
                                  NULL, NULL, NULL);
}

static int do_compare(BlockBackend *blk1, BlockBackend *blk2,
                      const char *filename1, const char *filename2,
                      bool strict, bool quiet)
{
    int64_t total_size1, total_size2, total_size, progress_base;
    int64_t offset = 0, chunk;
    g_autofree uint8_t *buf1 = NULL, *buf2 = NULL;
    int ret;

    buf1 = g_malloc(COMPARE_BUF_SIZE);
    buf2 = g_malloc(COMPARE_BUF_SIZE);

    total_size1 = blk_getlength(blk1);
    if (total_size1 < 0) {
        error_report("Can't get size of %s: %s", filename1,
                     strerror(-total_size1));
        return 4;
    }
    total_size2 = blk_getlength(blk2);
    if (total_size2 < 0) {
        error_report("Can't get size of %s: %s", filename2,
                     strerror(-total_size2));
        return 4;
    }
    total_size = MIN(total_size1, total_size2);
    progress_base = MAX(total_size1, total_size2);

    img_progress_print(0, 100);

    if (strict && total_size1 != total_size2) {
        qprintf(quiet, "Strict mode: Image size mismatch!\n");
        return 1;
    }

    while (offset < total_size) {
        int64_t pnum1, pnum2;
        int status1, status2;
        bool allocated1, allocated2;

        status1 = status_of(blk1, offset, total_size1 - offset, &pnum1);
        if (status1 < 0) {
            error_report("Sector allocation test failed for %s", filename1);
            return 3;
        }
        allocated1 = status1 & BDRV_BLOCK_ALLOCATED;
        status2 = status_of(blk2, offset, total_size2 - offset, &pnum2);
        if (status2 < 0) {
            error_report("Sector allocation test failed for %s", filename2);
            return 3;
        }
        allocated2 = status2 & BDRV_BLOCK_ALLOCATED;
        if (pnum1 <= 0 || pnum2 <= 0) {
            error_report("Sector allocation test failed for %s",
                         pnum1 <= 0 ? filename1 : filename2);
            return 3;
        }
        chunk = MIN(pnum1, pnum2);

        if (strict && status1 != status2) {
            qprintf(quiet, "Strict mode: Offset %" PRId64
                    " block status mismatch!\n", offset);
            return 1;
        }
        if ((status1 & BDRV_BLOCK_ZERO) && (status2 & BDRV_BLOCK_ZERO)) {
            /* Both read as zero: nothing to read. */
        } else if (allocated1 == allocated2) {
            if (allocated1) {
                int64_t pnum;

                chunk = MIN(chunk, COMPARE_BUF_SIZE);
                ret = blk_pread(blk1, offset, chunk, buf1, 0);
                if (ret < 0) {
                    error_report("Error while reading offset %" PRId64
                                 " of %s: %s", offset, filename1,
                                 strerror(-ret));
                    return 4;
                }
                ret = blk_pread(blk2, offset, chunk, buf2, 0);
                if (ret < 0) {
                    error_report("Error while reading offset %" PRId64
                                 " of %s: %s", offset, filename2,
                                 strerror(-ret));
                    return 4;
                }
                ret = img_compare_buffers(buf1, buf2, chunk, &pnum);
                if (ret || pnum != chunk) {
                    qprintf(quiet, "Content mismatch at offset %" PRId64
                            "!\n", offset + (ret ? 0 : pnum));
                    return 1;
                }
            }
        } else {
            chunk = MIN(chunk, COMPARE_BUF_SIZE);
            if (allocated1) {
                ret = check_empty_sectors(blk1, offset, chunk, filename1,
                                          buf1, quiet);
            } else {
                ret = check_empty_sectors(blk2, offset, chunk, filename2,
                                          buf1, quiet);
            }
            if (ret) {
                return ret;
            }
        }
        offset += chunk;
        img_progress_print(((float)chunk / progress_base) * 100, 100);
    }

    if (total_size1 != total_size2) {
        BlockBackend *blk_over = total_size1 > total_size2 ? blk1 : blk2;
        const char *filename_over = total_size1 > total_size2 ? filename1
                                                              : filename2;

        qprintf(quiet, "Warning: Image size mismatch!\n");
        while (offset < progress_base) {
            ret = status_of(blk_over, offset, progress_base - offset, &chunk);
            if (ret < 0 || chunk <= 0) {
                error_report("Sector allocation test failed for %s",
                             filename_over);
                return 3;
            }
            if ((ret & BDRV_BLOCK_ALLOCATED) && !(ret & BDRV_BLOCK_ZERO)) {
                chunk = MIN(chunk, COMPARE_BUF_SIZE);
                ret = check_empty_sectors(blk_over, offset, chunk,
                                          filename_over, buf1, quiet);
                if (ret) {
                    return ret;
                }
            }
            offset += chunk;
            img_progress_print(((float)chunk / progress_base) * 100, 100);
        }
    }

    qprintf(quiet, "Images are identical.\n");
    return 0;
}

int img_compare(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt1 = NULL, *fmt2 = NULL, *cache = "writeback";
    const char *filename1, *filename2;
    bool progress = false, quiet = false, strict = false;
    bool image_opts = false, force_share = false, writethrough = false;
    BlockBackend *blk1, *blk2;
    int flags = 0, c, ret;

    while ((c = getopt_long(argc, argv, ":hf:F:T:pqsU", long_options,
                            NULL)) != -1) {
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'f':
            fmt1 = optarg;
            break;
        case 'F':
            fmt2 = optarg;
            break;
        case 'T':
            cache = optarg;
            break;
        case 'p':
            progress = true;
            break;
        case 'q':
            quiet = true;
            break;
        case 's':
            strict = true;
            break;
        case 'U':
            force_share = true;
            break;
        case OPTION_OBJECT:
            error_report("--object is not supported");
            return 2;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        }
    }

    /* Progress is not shown in quiet mode. */
    if (quiet) {
        progress = false;
    }
    img_progress_init(progress, 2.0);

    if (optind != argc - 2) {
        img_error_exit("Expecting two image file names");
    }
    filename1 = argv[optind++];
    filename2 = argv[optind++];

    if (img_parse_cache_mode(cache, &flags, &writethrough) < 0) {
        error_report("Invalid source cache option: %s", cache);
        ret = 2;
        goto out;
    }

    blk1 = img_open(image_opts, filename1, fmt1, flags, writethrough, quiet,
                    force_share);
    if (!blk1) {
        ret = 2;
        goto out;
    }
    blk2 = img_open(image_opts, filename2, fmt2, flags, writethrough, quiet,
                    force_share);
    if (!blk2) {
        blk_unref(blk1);
        ret = 2;
        goto out;
    }

    ret = do_compare(blk1, blk2, filename1, filename2, strict, quiet);
    blk_unref(blk2);
    blk_unref(blk1);
out:
    img_progress_end();
    return ret;
}
