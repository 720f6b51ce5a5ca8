/*
 * qblock-img resize: change an image's virtual size, as qemu-img 7.2 does.
 *
 * The size is the last argument and is taken off argv before option
 * parsing, so "-1G" is a relative size and not an option.  Shrinking needs
 * --shrink (data past the new end is lost); preallocation only applies to
 * growing.  The resize is exact: success means the image now has the
 * requested size.
 */
#include "tools/img-util.h"

#include <getopt.h>

static int parse_prealloc(const char *s)
{
    /* QAPI PreallocMode names, indexed by PreallocMode. */
    static const char *const names[PREALLOC_MODE__MAX] = {
        [PREALLOC_MODE_OFF] = "off",
        [PREALLOC_MODE_METADATA] = "metadata",
        [PREALLOC_MODE_FALLOC] = "falloc",
        [PREALLOC_MODE_FULL] = "full",
    };

    for (int i = 0; i < PREALLOC_MODE__MAX; i++) {
        if (!strcmp(s, names[i])) {
            return i;
        }
    }
    return PREALLOC_MODE__MAX;
}

int img_resize(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "preallocation", required_argument, NULL, OPTION_PREALLOCATION },
        { "shrink", no_argument, NULL, OPTION_SHRINK },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL, *filename;
    char *size;
    bool quiet = false, image_opts = false, shrink = false;
    PreallocMode prealloc = PREALLOC_MODE_OFF;
    int64_t n, current_size, total_size;
    int relative, c, ret;
    uint64_t v;
    BlockBackend *blk;
    Error *err = NULL;

    /* Take the size off first: negative sizes look like options. */
    if (argc < 3) {
        img_error_exit("Not enough arguments");
    }
    size = argv[--argc];

    while ((c = getopt_long(argc, argv, ":f:hq", long_options,
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
        case 'q':
            quiet = true;
            break;
        case OPTION_OBJECT:
            error_report("--object is not supported");
            return 1;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPTION_PREALLOCATION:
            prealloc = parse_prealloc(optarg);
            if (prealloc == PREALLOC_MODE__MAX) {
                error_report("Invalid preallocation mode '%s'", optarg);
                return 1;
            }
            break;
        case OPTION_SHRINK:
            shrink = true;
            break;
        }
    }
    if (optind != argc - 1) {
        img_error_exit("Expecting image file name and size");
    }
    filename = argv[optind++];

    switch (size[0]) {
    case '+':
        relative = 1;
        size++;
        break;
    case '-':
        relative = -1;
        size++;
        break;
    default:
        relative = 0;
        break;
    }
    if (qb_strtosz(size, NULL, &v) < 0 || v > INT64_MAX) {
        error_report("Parameter 'size' expects a non-negative number below "
                     "2^64");
        fprintf(stderr, "Optional suffix k, M, G, T, P or E means kilo-, mega-, "
                     "giga-, tera-, peta-\nand exabytes, respectively.\n");
        return 1;
    }
    n = v;

    blk = img_open(image_opts, filename, fmt, BDRV_O_RDWR | BDRV_O_RESIZE,
                   false, quiet, false);
    if (!blk) {
        return 1;
    }

    ret = -1;
    current_size = blk_getlength(blk);
    if (current_size < 0) {
        error_report("Failed to inquire current image length: %s",
                     strerror(-current_size));
        goto out;
    }
    total_size = relative ? current_size + n * relative : n;
    if (total_size <= 0) {
        error_report("New image size must be positive");
        goto out;
    }
    if (total_size <= current_size && prealloc != PREALLOC_MODE_OFF) {
        error_report("Preallocation can only be used for growing images");
        goto out;
    }
    if (total_size < current_size && !shrink) {
        error_report("Use the --shrink option to perform a shrink "
                     "operation.");
        warn_report("Shrinking an image will delete all data beyond the "
                    "shrunken image's end. Before performing such an "
                    "operation, make sure there is no important data there.");
        goto out;
    }

    /* exact: report success only if the image has exactly this size. */
    ret = blk_truncate(blk, total_size, true, prealloc, 0, &err);
    if (!ret) {
        if (!quiet) {
            printf("Image resized.\n");
        }
    } else {
        error_report_err(err);
    }
out:
    blk_unref(blk);
    return ret ? 1 : 0;
}
