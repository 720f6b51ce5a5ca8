/*
 * qblock-img rebase: change the backing file of an image, as qemu-img 7.2
 * does.
 *
 * Safe mode (default): every range not allocated in the image reads from
 * the old backing chain today and would read from the new one afterwards;
 * where the two differ, the old data is first copied into the image, so
 * the guest-visible content never changes.  If the new backing file is
 * itself in the old chain, only ranges changed above it are examined.
 * -b "" removes the backing file (the image becomes standalone).
 * Unsafe mode (-u) only rewrites the backing file name in the header,
 * without opening any backing file.
 */
#include "tools/img-util.h"

#include <getopt.h>

#define REBASE_BUF_SIZE (2 * 1024 * 1024)

/* Backing name relative to the overlay's directory, as QEMU resolves it. */
static char *full_backing_filename(const char *overlay, const char *backing)
{
    g_autofree char *dir = NULL;

    if (g_path_is_absolute(backing) || strstr(backing, ":") ||
        !strchr(overlay, '/')) {
        return g_strdup(backing);
    }
    dir = g_path_get_dirname(overlay);
    return g_build_filename(dir, backing, NULL);
}

/* Safe-mode copy of ranges whose visible data would change. */
static int rebase_copy(BlockBackend *blk, BlockDriverState *bs,
                       BlockBackend *old_blk, BlockBackend *new_blk,
                       BlockDriverState *prefix_chain_bs,
                       const char *filename, const char *out_baseimg)
{
    g_autofree uint8_t *buf_old = g_malloc(REBASE_BUF_SIZE);
    g_autofree uint8_t *buf_new = g_malloc(REBASE_BUF_SIZE);
    int64_t size, old_size = 0, new_size = 0, n;
    float local_progress = 0;
    int ret;

    size = blk_getlength(blk);
    if (size < 0) {
        error_report("Could not get size of '%s': %s", filename,
                     strerror(-size));
        return -1;
    }
    if (old_blk) {
        old_size = blk_getlength(old_blk);
        if (old_size < 0) {
            error_report("Could not get size of '%s': %s", bs->backing_file,
                         strerror(-old_size));
            return -1;
        }
    }
    if (new_blk) {
        new_size = blk_getlength(new_blk);
        if (new_size < 0) {
            error_report("Could not get size of '%s': %s", out_baseimg,
                         strerror(-new_size));
            return -1;
        }
    }
    if (size != 0) {
        local_progress = (float)100 / (size / MIN(size, REBASE_BUF_SIZE));
    }

    for (int64_t offset = 0; offset < size; offset += n) {
        bool buf_old_is_zero = false;
        int64_t written = 0;

        n = MIN(REBASE_BUF_SIZE, size - offset);

        /* Allocated in the image itself: its data stays visible. */
        ret = bdrv_block_status(bs, offset, n, &n, NULL, NULL);
        if (ret < 0 || n <= 0) {
            ret = ret < 0 ? ret : -EIO;
            error_report("error while reading image metadata: %s",
                         strerror(-ret));
            return ret;
        }
        if (ret & BDRV_BLOCK_ALLOCATED) {
            continue;
        }

        if (prefix_chain_bs) {
            /* Unchanged since the new backing file: nothing to do. */
            int depth = 0;
            int64_t pnum = 0;

            ret = img_block_status_above(bs->backing->bs, prefix_chain_bs,
                                         offset, n, &pnum, NULL, NULL,
                                         &depth);
            if (ret < 0) {
                error_report("error while reading image metadata: %s",
                             strerror(-ret));
                return ret;
            }
            if (pnum <= 0) {
                /* Past the end of the layers above the new backing
                 * file: nothing there was changed since it. */
                continue;
            }
            n = pnum;
            if (!(ret & BDRV_BLOCK_ALLOCATED) || depth == 0) {
                continue;
            }
        }

        /* Backing files may be shorter than the image. */
        if (offset >= old_size) {
            memset(buf_old, 0, n);
            buf_old_is_zero = true;
        } else {
            if (offset + n > old_size) {
                n = old_size - offset;
            }
            ret = blk_pread(old_blk, offset, n, buf_old, 0);
            if (ret < 0) {
                error_report("error while reading from old backing file");
                return ret;
            }
        }
        if (offset >= new_size || !new_blk) {
            memset(buf_new, 0, n);
        } else {
            if (offset + n > new_size) {
                n = new_size - offset;
            }
            ret = blk_pread(new_blk, offset, n, buf_new, 0);
            if (ret < 0) {
                error_report("error while reading from new backing file");
                return ret;
            }
        }

        while (written < n) {
            int64_t pnum;

            if (img_compare_buffers(buf_old + written, buf_new + written,
                                    n - written, &pnum)) {
                if (buf_old_is_zero) {
                    ret = blk_pwrite_zeroes(blk, offset + written, pnum, 0);
                } else {
                    ret = blk_pwrite(blk, offset + written, pnum,
                                     buf_old + written, 0);
                }
                if (ret < 0) {
                    error_report("Error while writing to COW image: %s",
                                 strerror(-ret));
                    return ret;
                }
            }
            written += pnum;
        }
        img_progress_print(local_progress, 100);
    }
    return 0;
}

static int change_backing_file(BlockDriverState *bs, const char *file,
                               const char *fmt, bool require)
{
    int ret;

    if (!bs->drv) {
        return -ENOMEDIUM;
    }
    /* A format without a file makes no sense; and a new file needs its
     * format stated (qemu-img does not probe into headers). */
    if (fmt && !file) {
        return -EINVAL;
    }
    if (require && file && !fmt) {
        return -EINVAL;
    }
    if (!bs->drv->bdrv_change_backing_file) {
        return -ENOTSUP;
    }
    ret = bs->drv->bdrv_change_backing_file(bs, file, fmt);
    if (ret == 0) {
        g_strlcpy(bs->backing_file, file ? file : "",
                  sizeof(bs->backing_file));
        g_strlcpy(bs->backing_format, fmt ? fmt : "",
                  sizeof(bs->backing_format));
        g_strlcpy(bs->auto_backing_file, file ? file : "",
                  sizeof(bs->auto_backing_file));
    }
    return ret;
}

int img_rebase(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL, *cache = "writeback", *src_cache = "writeback";
    const char *out_basefmt = NULL, *out_baseimg = NULL, *filename;
    bool unsafe = false, progress = false, quiet = false;
    bool force_share = false, image_opts = false;
    bool writethrough = false, src_writethrough = false;
    BlockBackend *blk = NULL, *old_blk = NULL, *new_blk = NULL;
    BlockDriverState *bs, *prefix_chain_bs = NULL;
    int flags, src_flags = 0, c, ret = -1;
    Error *err = NULL;

    while ((c = getopt_long(argc, argv, ":hf:F:b:upt:T:qU", long_options,
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
        case 'F':
            out_basefmt = optarg;
            break;
        case 'b':
            out_baseimg = optarg;
            break;
        case 'u':
            unsafe = true;
            break;
        case 'p':
            progress = true;
            break;
        case 't':
            cache = optarg;
            break;
        case 'T':
            src_cache = optarg;
            break;
        case 'q':
            quiet = true;
            break;
        case 'U':
            force_share = true;
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
    if (!unsafe && !out_baseimg) {
        img_error_exit("Must specify backing file (-b) or use unsafe mode "
                       "(-u)");
    }
    filename = argv[optind++];

    img_progress_init(progress, 2.0);
    img_progress_print(0, 100);

    /* Unsafe mode may be fixing a moved backing file: don't open it. */
    flags = BDRV_O_RDWR | (unsafe ? BDRV_O_NO_BACKING : 0);
    if (img_parse_cache_mode(cache, &flags, &writethrough) < 0) {
        error_report("Invalid cache option: %s", cache);
        goto out;
    }
    if (img_parse_cache_mode(src_cache, &src_flags, &src_writethrough) < 0) {
        error_report("Invalid source cache option: %s", src_cache);
        goto out;
    }

    blk = img_open(image_opts, filename, fmt, flags, writethrough, false,
                   false);
    if (!blk) {
        goto out;
    }
    bs = img_skip_filters(blk_bs(blk));

    if (out_basefmt && !bdrv_find_format(out_basefmt)) {
        error_report("Invalid format name: '%s'", out_basefmt);
        goto out;
    }

    if (!unsafe) {
        BlockDriverState *base_bs = bs->backing ? bs->backing->bs : NULL;

        if (base_bs) {
            old_blk = blk_new(qb_get_aio_context(), BLK_PERM_CONSISTENT_READ,
                              BLK_PERM_ALL);
            if (blk_insert_bs(old_blk, base_bs, &err) < 0) {
                error_prepend(&err, "Could not reuse old backing file '%s': ",
                              base_bs->filename);
                error_report_err(err);
                goto out;
            }
        }

        if (out_baseimg[0]) {
            const char *overlay;
            g_autofree char *real_path = NULL;

            bdrv_refresh_filename(bs);
            overlay = bs->exact_filename[0] ? bs->exact_filename
                                            : bs->filename;
            real_path = full_backing_filename(overlay, out_baseimg);

            /* Rebasing onto an image further down the current chain? */
            prefix_chain_bs = img_find_backing_image(bs, real_path);
            if (prefix_chain_bs) {
                new_blk = blk_new(qb_get_aio_context(),
                                  BLK_PERM_CONSISTENT_READ, BLK_PERM_ALL);
                if (blk_insert_bs(new_blk, prefix_chain_bs, &err) < 0) {
                    error_prepend(&err, "Could not reuse backing file '%s': ",
                                  out_baseimg);
                    error_report_err(err);
                    goto out;
                }
            } else {
                json_t *options = json_object();

                if (out_basefmt) {
                    json_object_set_new(options, "driver",
                                        json_string(out_basefmt));
                }
                if (force_share) {
                    json_object_set_new(options, "force-share", json_true());
                }
                new_blk = blk_new_open(real_path, NULL, options, src_flags,
                                       &err);
                if (!new_blk) {
                    error_prepend(&err, "Could not open new backing file "
                                  "'%s': ", out_baseimg);
                    error_report_err(err);
                    goto out;
                }
            }
        }

        ret = rebase_copy(blk, bs, old_blk, new_blk, prefix_chain_bs,
                          filename, out_baseimg);
        if (ret < 0) {
            goto out;
        }
    }

    /* Every range that would change is now in the image: switch. */
    if (out_baseimg && *out_baseimg) {
        ret = change_backing_file(bs, out_baseimg, out_basefmt, true);
    } else {
        ret = change_backing_file(bs, NULL, NULL, false);
    }
    if (ret == -ENOSPC) {
        error_report("Could not change the backing file to '%s': No space "
                     "left in the file header", out_baseimg);
    } else if (ret == -EINVAL && out_baseimg && !out_basefmt) {
        error_report("Could not change the backing file to '%s': backing "
                     "format must be specified", out_baseimg);
    } else if (ret < 0) {
        error_report("Could not change the backing file to '%s': %s",
                     out_baseimg ? out_baseimg : "(null)", strerror(-ret));
    }
    img_progress_print(100, 0);

out:
    img_progress_end();
    if (old_blk) {
        blk_unref(old_blk);
    }
    if (new_blk) {
        blk_unref(new_blk);
    }
    if (blk) {
        blk_unref(blk);
    }
    return ret ? 1 : 0;
}
