/*
 * Pieces every qblock-img subcommand shares: qemu-img's size parsing and
 * its error texts, QEMU's human-readable sizes, -o option lists, cache and
 * aio mode names, and opening an image the way qemu-img's img_open does.
 */
#include "tools/qblock-img.h"
#include "block/block-int.h"
#include "block/options.h"
#include "nbd/tls.h"

#include <getopt.h>
#include <math.h>

void img_error_exit(const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: ", qb_get_progname());
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry '%s --help' for more information\n",
            qb_get_progname());
    exit(EXIT_FAILURE);
}

void img_getopt_error(int c, char **argv)
{
    if (c == ':') {
        img_error_exit("missing argument for option '%s'", argv[optind - 1]);
    }
    img_error_exit("unrecognized option '%s'", argv[optind - 1]);
}

int64_t img_cvtnum(const char *s)
{
    uint64_t v;

    if (qb_strtosz(s, NULL, &v) < 0 || v > INT64_MAX) {
        return -1;
    }
    return (int64_t)v;
}

int64_t img_cvtnum_full(const char *name, const char *s, int64_t min,
                        int64_t max)
{
    uint64_t v;
    int ret = qb_strtosz(s, NULL, &v);

    if (ret == -ERANGE || (ret == 0 && (v > (uint64_t)max ||
                                        (int64_t)v < min))) {
        error_report("Invalid %s specified. Must be between %" PRId64
                     " and %" PRId64 ".", name, min, max);
        return -1;
    }
    if (ret < 0) {
        error_report("Invalid %s specified. You may use k, M, G, T, P or E "
                     "suffixes for", name);
        error_report("kilobytes, megabytes, gigabytes, terabytes, petabytes "
                     "and exabytes.");
        return -1;
    }
    return (int64_t)v;
}

char *img_size_to_str(uint64_t val)
{
    static const char *const suffixes[] = {
        "", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei",
    };
    int i = 0;

    /* Switch to the next unit as soon as the number would reach 1000 in
     * the current one (so 1023 KiB prints as 0.999 MiB, as QEMU does). */
    while (i < 6 && (double)val * (1024.0 / 1000.0) >=
           ldexp(1.0, 10 * (i + 1))) {
        i++;
    }
    return g_strdup_printf("%0.3g %sB", (double)val / ldexp(1.0, 10 * i),
                           suffixes[i]);
}

int img_parse_cache_mode(const char *mode, int *flags, bool *writethrough)
{
    *flags &= ~BDRV_O_CACHE_MASK;
    if (!strcmp(mode, "none") || !strcmp(mode, "off")) {
        *flags |= BDRV_O_NOCACHE;
        *writethrough = false;
    } else if (!strcmp(mode, "directsync")) {
        *flags |= BDRV_O_NOCACHE;
        *writethrough = true;
    } else if (!strcmp(mode, "writeback")) {
        *writethrough = false;
    } else if (!strcmp(mode, "unsafe")) {
        *flags |= BDRV_O_NO_FLUSH;
        *writethrough = false;
    } else if (!strcmp(mode, "writethrough")) {
        *writethrough = true;
    } else {
        return -1;
    }
    return 0;
}

int img_parse_aio(const char *aio, int *flags)
{
    *flags &= ~(BDRV_O_NATIVE_AIO | BDRV_O_IO_URING);
    if (!strcmp(aio, "native")) {
        *flags |= BDRV_O_NATIVE_AIO;
    } else if (!strcmp(aio, "io_uring")) {
        *flags |= BDRV_O_IO_URING;
    } else if (strcmp(aio, "threads")) {
        return -1;
    }
    return 0;
}

char *img_add_options(char *old, const char *add)
{
    char *n;

    if (!old) {
        return g_strdup(add);
    }
    n = g_strdup_printf("%s,%s", old, add);
    g_free(old);
    return n;
}

bool img_valid_option_list(const char *list)
{
    size_t len = strlen(list), i = len;

    if (!len || list[0] == ',') {
        return false;
    }
    while (i > 0 && list[i - 1] == ',') {
        i--;
    }
    return (len - i) % 2 == 0;
}

bool img_options_want_help(const char *opts)
{
    g_autoptr(GPtrArray) elems = NULL;

    if (!opts) {
        return false;
    }
    elems = qb_optlist_split(opts);
    for (guint i = 0; i < elems->len; i++) {
        const char *e = elems->pdata[i];
        if (!strcmp(e, "help") || !strcmp(e, "?")) {
            return true;
        }
    }
    return false;
}

json_t *img_parse_optlist(const char *list, Error **errp)
{
    g_autoptr(GPtrArray) elems = qb_optlist_split(list);
    json_t *obj = json_object();

    for (guint i = 0; i < elems->len; i++) {
        const char *e = elems->pdata[i];
        const char *eq = strchr(e, '=');
        g_autofree char *key = NULL;

        if (!*e) {
            /* An empty element is only allowed as a trailing comma. */
            if (i + 1 == elems->len && i > 0) {
                continue;
            }
            error_setg(errp, "Invalid option list: %s", list);
            json_decref(obj);
            return NULL;
        }
        if (!eq) {
            /* QemuOpts reads a bare key as key=on; creation options have no
             * such flags, so report it as an unknown parameter later. */
            json_object_set_new(obj, e, json_string("on"));
            continue;
        }
        key = g_strndup(e, eq - e);
        json_object_set_new(obj, key, json_string(eq + 1));
    }
    return obj;
}

void img_block_init(void)
{
    static bool done;

    if (!done) {
        done = true;
        bdrv_register_builtin_drivers();
        qb_get_aio_context();
    }
}

/*
 * --image-opts strings are QemuOpts, not keyval: a first element without
 * '=' is the implied option "file" (so "x.raw" names a node to use as the
 * file child), and a later bare "key" / "nokey" is the deprecated short
 * form of key=on / key=off.  Values stay strings; dotted keys are
 * crumpled into nested objects.
 */
static json_t *parse_image_opts(const char *str, Error **errp)
{
    json_t *flat = qb_optlist_parse_flat(str, "file"), *ret;

    /* "file=node" next to "file.x=...": a reference plus options for it,
     * which QEMU refuses while opening the child. */
    {
        const char *k1, *k2;
        json_t *v1, *v2;
        json_object_foreach(flat, k1, v1) {
            json_object_foreach(flat, k2, v2) {
                if (g_str_has_prefix(k2, k1) && k2[strlen(k1)] == '.') {
                    error_setg(errp, "Could not open '%s': Cannot reference "
                               "an existing block device with additional "
                               "options or a new filename", str);
                    json_decref(flat);
                    return NULL;
                }
            }
        }
    }
    ret = qb_json_crumple(flat, errp);
    json_decref(flat);
    return ret;
}

BlockBackend *img_open(bool image_opts, const char *filename,
                       const char *fmt, int flags, bool writethrough,
                       bool quiet, bool force_share)
{
    Error *err = NULL;
    json_t *options;
    BlockBackend *blk;

    img_block_init();
    if (image_opts) {
        options = parse_image_opts(filename, &err);
        if (!options) {
            error_report_err(err);
            return NULL;
        }
        if (force_share) {
            json_object_set_new(options, "force-share", json_string("on"));
        }
        blk = blk_new_open(NULL, NULL, options, flags, &err);
    } else {
        options = json_object();
        if (fmt) {
            json_object_set_new(options, "driver", json_string(fmt));
        }
        if (force_share) {
            json_object_set_new(options, "force-share", json_true());
        }
        blk = blk_new_open(filename, NULL, options, flags, &err);
    }
    if (!blk) {
        error_prepend(&err, "Could not open '%s': ", filename);
        error_report_err(err);
        return NULL;
    }
    blk_set_enable_write_cache(blk, !writethrough);
    return blk;
}

bool img_tls_object(const char *arg)
{
    Error *err = NULL;
    json_t *o = qb_keyval_parse(arg, "qom-type", &err);
    const char *type = o ? qb_opt_get_str(o, "qom-type") : NULL;
    bool ok;

    if (!o) {
        error_report_err(err);
        return false;
    }
    ok = nbd_tls_object_add(o, &err);
    if (!ok) {
        if (!nbd_tls_is_object_type(type)) {
            /* As before: QEMU's text names the whole argument. */
            error_free(err);
            error_report("Parameter 'qom-type' does not accept value '%s'",
                         arg);
        } else {
            error_report_err(err);
        }
    }
    json_decref(o);
    return ok;
}

/* Creation options of drivers that do not publish create_opts yet, with
 * the help texts qemu-img prints for -o help. */
static const CreateOptDesc raw_fmt_opts[] = {
    { "size", CREATE_OPT_SIZE, "Virtual disk size", NULL },
    { NULL },
};

static const CreateOptDesc file_proto_opts[] = {
    { "size", CREATE_OPT_SIZE, "Virtual disk size", NULL },
    { "nocow", CREATE_OPT_BOOL,
      "Turn off copy-on-write (valid only on btrfs)", NULL },
    { "preallocation", CREATE_OPT_STRING,
      "Preallocation mode (allowed values: off, falloc, full)", NULL },
    { "extent_size_hint", CREATE_OPT_SIZE,
      "Extent size hint for the image file, 0 to disable", NULL },
    { NULL },
};

const CreateOptDesc *img_create_opts_of(BlockDriver *drv)
{
    if (!drv) {
        return NULL;
    }
    if (drv->create_opts) {
        return drv->create_opts;
    }
    if (!strcmp(drv->format_name, "raw")) {
        return raw_fmt_opts;
    }
    if (!strcmp(drv->format_name, "file")) {
        return file_proto_opts;
    }
    return NULL;
}

bool img_check_create_opt(json_t *opts, const char *key, const char *s,
                          const CreateOptDesc *d, Error **errp)
{
    uint64_t sz;

    switch (d->type) {
    case CREATE_OPT_SIZE:
        if (qb_strtosz(s, NULL, &sz) < 0) {
            error_setg(errp, "Parameter '%s' expects a non-negative "
                       "number below 2^64", key);
            error_append_hint(errp, "Optional suffix k, M, G, T, P or E "
                              "means kilo-, mega-, giga-, tera-, peta-\n"
                              "and exabytes, respectively.\n");
            return false;
        }
        json_object_set_new(opts, key, json_integer((json_int_t)sz));
        return true;
    case CREATE_OPT_BOOL:
        if (strcmp(s, "on") && strcmp(s, "off")) {
            error_setg(errp, "Parameter '%s' expects 'on' or 'off'", key);
            return false;
        }
        return true;
    case CREATE_OPT_NUMBER: {
        char *end;

        errno = 0;
        g_ascii_strtoull(s, &end, 0);
        if (!*s || *end || errno || *s == '-') {
            error_setg(errp, "Parameter '%s' expects a number", key);
            return false;
        }
        return true;
    }
    default:
        return true;
    }
}
