/*
 * qblock-img info: describe an image (and with --backing-chain its backing
 * files) in qemu-img 7.2's human or JSON form.
 *
 * The image description is built once as a JSON ImageInfo object, members
 * inserted in QAPI schema order (filename, format, dirty-flag, actual-size,
 * virtual-size, cluster-size, encrypted, backing-filename,
 * full-backing-filename, backing-filename-format, format-specific) so that
 * util/json-qemu.c reproduces QEMU's member order; the human form is
 * rendered from the same object.
 */
#include "tools/qblock-img.h"
#include "block/block-int.h"
#include "util/json-qemu.h"

#include <getopt.h>

/* Backing filename as seen from the directory of the overlay (QEMU's
 * full-backing-filename for plain paths). */
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

json_t *img_collect_info(BlockDriverState *bs, Error **errp)
{
    json_t *info = json_object();
    BlockDriverInfo bdi = { 0 };
    int64_t size, allocated;
    bool have_bdi;

    size = bdrv_getlength(bs);
    if (size < 0) {
        error_setg_errno(errp, -size, "Can't get image size '%s'",
                         bs->exact_filename[0] ? bs->exact_filename
                                               : bs->filename);
        json_decref(info);
        return NULL;
    }
    bdrv_refresh_filename(bs);
    have_bdi = bdrv_get_info(bs, &bdi) >= 0;
    allocated = bdrv_get_allocated_file_size(bs);

    json_object_set_new(info, "filename", json_string(bs->filename));
    json_object_set_new(info, "format",
                        json_string(bdrv_get_format_name(bs)));
    json_object_set_new(info, "dirty-flag", json_boolean(bdi.is_dirty));
    if (allocated >= 0) {
        json_object_set_new(info, "actual-size", json_integer(allocated));
    }
    json_object_set_new(info, "virtual-size", json_integer(size));
    if (have_bdi && bdi.cluster_size) {
        json_object_set_new(info, "cluster-size",
                            json_integer(bdi.cluster_size));
    }
    if (bs->encrypted) {
        json_object_set_new(info, "encrypted", json_true());
    }
    if (bs->backing_file[0]) {
        g_autofree char *full = full_backing_filename(bs->filename,
                                                      bs->backing_file);
        json_object_set_new(info, "backing-filename",
                            json_string(bs->backing_file));
        json_object_set_new(info, "full-backing-filename", json_string(full));
        if (bs->backing_format[0]) {
            json_object_set_new(info, "backing-filename-format",
                                json_string(bs->backing_format));
        }
    }
    {
        /* Internal snapshots (img-snapshot.c), before format-specific. */
        json_t *snaps = img_snapshot_list_json(bs);
        if (snaps) {
            json_object_set_new(info, "snapshots", snaps);
        }
    }
    if (bs->drv->bdrv_get_specific_info) {
        Error *err = NULL;
        json_t *spec = bdrv_get_specific_info(bs, &err);
        if (err) {
            error_propagate(errp, err);
            json_decref(info);
            return NULL;
        }
        if (spec) {
            json_object_set_new(info, "format-specific", spec);
        }
    }
    return info;
}

static void dump_value(json_t *v, int indent);

static bool is_composite(json_t *v)
{
    return json_is_object(v) || json_is_array(v);
}

static void dump_dict(json_t *dict, int indent)
{
    g_autofree const char **keys = qemu_json_object_keys(dict);

    for (size_t i = 0; keys[i]; i++) {
        json_t *v = json_object_get(dict, keys[i]);
        g_autofree char *name = g_strdup(keys[i]);
        g_strdelimit(name, "-", ' ');
        printf("%*s%s:%c", indent * 4, "", name, is_composite(v) ? '\n' : ' ');
        dump_value(v, indent + 1);
    }
}

static void dump_value(json_t *v, int indent)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        dump_dict(v, indent);
        break;
    case JSON_ARRAY:
        for (size_t i = 0; i < json_array_size(v); i++) {
            json_t *e = json_array_get(v, i);
            printf("%*s[%zu]:%c", indent * 4, "", i,
                   is_composite(e) ? '\n' : ' ');
            dump_value(e, indent + 1);
        }
        break;
    case JSON_STRING:
        printf("%s\n", json_string_value(v));
        break;
    case JSON_INTEGER:
        printf("%" JSON_INTEGER_FORMAT "\n", json_integer_value(v));
        break;
    case JSON_REAL:
        printf("%f\n", json_real_value(v));
        break;
    case JSON_TRUE:
        printf("true\n");
        break;
    case JSON_FALSE:
        printf("false\n");
        break;
    case JSON_NULL:
        printf("null\n");
        break;
    }
}

void img_dump_info_human(json_t *info)
{
    const char *s;
    json_t *v;
    int64_t size = json_integer_value(json_object_get(info, "virtual-size"));
    g_autofree char *size_str = img_size_to_str(size);

    printf("image: %s\n", json_string_value(json_object_get(info,
                                                            "filename")));
    printf("file format: %s\n",
           json_string_value(json_object_get(info, "format")));
    printf("virtual size: %s (%" PRId64 " bytes)\n", size_str, size);
    v = json_object_get(info, "actual-size");
    if (v) {
        g_autofree char *disk = img_size_to_str(json_integer_value(v));
        printf("disk size: %s\n", disk);
    } else {
        printf("disk size: unavailable\n");
    }
    if (json_is_true(json_object_get(info, "encrypted"))) {
        printf("encrypted: yes\n");
    }
    v = json_object_get(info, "cluster-size");
    if (v) {
        printf("cluster_size: %" JSON_INTEGER_FORMAT "\n",
               json_integer_value(v));
    }
    if (json_is_true(json_object_get(info, "dirty-flag"))) {
        printf("cleanly shut down: no\n");
    }
    s = json_string_value(json_object_get(info, "backing-filename"));
    if (s) {
        const char *full = json_string_value(
            json_object_get(info, "full-backing-filename"));
        printf("backing file: %s", s);
        if (full && strcmp(full, s)) {
            printf(" (actual path: %s)", full);
        }
        printf("\n");
    }
    s = json_string_value(json_object_get(info, "backing-filename-format"));
    if (s) {
        printf("backing file format: %s\n", s);
    }
    v = json_object_get(info, "snapshots");
    if (v && json_array_size(v)) {
        img_dump_snapshots_human(v);
    }
    v = json_object_get(info, "format-specific");
    if (v && json_object_get(v, "data")) {
        printf("Format specific information:\n");
        dump_value(json_object_get(v, "data"), 1);
    }
}

int img_info(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "format", required_argument, NULL, 'f' },
        { "output", required_argument, NULL, OPTION_OUTPUT },
        { "backing-chain", no_argument, NULL, OPTION_BACKING_CHAIN },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    const char *fmt = NULL, *output = NULL, *filename;
    bool chain = false, image_opts = false, force_share = false, json;
    g_autofree char *next_name = NULL, *next_fmt = NULL;
    GPtrArray *seen;
    json_t *list;
    int c, ret = EXIT_SUCCESS;

    while ((c = getopt_long(argc, argv, ":f:hU", long_options,
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
        case 'U':
            force_share = true;
            break;
        case OPTION_OUTPUT:
            output = optarg;
            break;
        case OPTION_BACKING_CHAIN:
            chain = true;
            break;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        case OPTION_OBJECT:
            if (!img_tls_object(optarg)) {
                return EXIT_FAILURE;
            }
            break;
        }
    }
    if (optind != argc - 1) {
        img_error_exit("Expecting one image file name");
    }
    filename = argv[optind];
    if (output && !strcmp(output, "json")) {
        json = true;
    } else if (!output || !strcmp(output, "human")) {
        json = false;
    } else {
        error_report("--output must be used with human or json as argument.");
        return EXIT_FAILURE;
    }
    if (image_opts && fmt) {
        error_report("--image-opts and --format are mutually exclusive");
        return EXIT_FAILURE;
    }

    /* Open each image of the chain alone (no backing, no I/O), then follow
     * its backing file name, as qemu-img does; stop on a loop. */
    list = json_array();
    seen = g_ptr_array_new_with_free_func(g_free);
    next_name = g_strdup(filename);
    next_fmt = g_strdup(fmt);
    while (next_name) {
        BlockBackend *blk;
        BlockDriverState *bs;
        Error *err = NULL;
        json_t *info;

        for (guint i = 0; i < seen->len; i++) {
            if (!strcmp(seen->pdata[i], next_name)) {
                error_report("Backing file '%s' creates an infinite loop.",
                             next_name);
                ret = EXIT_FAILURE;
                goto out;
            }
        }
        g_ptr_array_add(seen, g_strdup(next_name));

        blk = img_open(image_opts, next_name, next_fmt,
                       BDRV_O_NO_BACKING | BDRV_O_NO_IO, false, false,
                       force_share);
        if (!blk) {
            ret = EXIT_FAILURE;
            goto out;
        }
        bs = blk_bs(blk);
        info = img_collect_info(bs, &err);
        blk_unref(blk);
        if (!info) {
            error_report_err(err);
            ret = EXIT_FAILURE;
            goto out;
        }
        json_array_append_new(list, info);

        g_free(next_name);
        g_free(next_fmt);
        next_name = next_fmt = NULL;
        if (chain && json_object_get(info, "backing-filename")) {
            next_name = g_strdup(json_string_value(
                json_object_get(info, "full-backing-filename")));
            next_fmt = g_strdup(json_string_value(
                json_object_get(info, "backing-filename-format")));
            image_opts = false;
        }
    }

    if (json) {
        g_autofree char *text = qemu_json_to_pretty(
            chain ? list : json_array_get(list, 0));
        printf("%s\n", text);
    } else {
        for (size_t i = 0; i < json_array_size(list); i++) {
            if (i) {
                printf("\n");
            }
            img_dump_info_human(json_array_get(list, i));
        }
    }
out:
    g_ptr_array_free(seen, TRUE);
    json_decref(list);
    bdrv_close_all();
    return ret;
}
