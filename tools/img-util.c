/*
 * Helpers shared by the format-generic qblock-img subcommands: coroutine
 * trampolines for the tool's single thread, synchronous block-status, the
 * progress meter and the --output argument (see img-util.h).
 */
#include "tools/img-util.h"
#include "util/coroutine.h"
#include "block/snapshot.h"

int img_parse_output_format(const char *output, ImgOutputFormat *fmt)
{
    if (!output || !strcmp(output, "human")) {
        *fmt = IMG_OFORMAT_HUMAN;
    } else if (!strcmp(output, "json")) {
        *fmt = IMG_OFORMAT_JSON;
    } else {
        error_report("--output must be used with human or json as argument.");
        return -1;
    }
    return 0;
}

typedef struct RunCo {
    CoroutineEntry *fn;
    void *opaque;
    bool done;
} RunCo;

static void coroutine_fn run_co_entry(void *opaque)
{
    RunCo *r = opaque;

    r->fn(r->opaque);
    r->done = true;
    aio_notify(qb_get_aio_context());
}

void img_run_in_coroutine(CoroutineEntry *fn, void *opaque)
{
    RunCo r = { .fn = fn, .opaque = opaque };

    if (in_coroutine()) {
        fn(opaque);
        return;
    }
    coroutine_enter(coroutine_create(run_co_entry, &r));
    AIO_WAIT_WHILE(qb_get_aio_context(), !r.done);
}

BlockDriverState *img_skip_filters(BlockDriverState *bs)
{
    while (bs && bs->drv && bs->drv->is_filter) {
        BdrvChild *c = bs->file ? bs->file : bs->backing;
        if (!c) {
            break;
        }
        bs = c->bs;
    }
    return bs;
}

typedef struct StatusCo {
    BlockDriverState *bs, *base;
    int64_t offset, bytes;
    int64_t *pnum, *map;
    BlockDriverState **file;
    int *depth;
    int ret;
} StatusCo;

static void coroutine_fn status_entry(void *opaque)
{
    StatusCo *s = opaque;

    s->ret = bdrv_co_block_status_above(s->bs, s->base, s->offset, s->bytes,
                                        s->pnum, s->map, s->file, s->depth);
}

int img_block_status_above(BlockDriverState *bs, BlockDriverState *base,
                           int64_t offset, int64_t bytes, int64_t *pnum,
                           int64_t *map, BlockDriverState **file, int *depth)
{
    StatusCo s = {
        .bs = bs, .base = base, .offset = offset, .bytes = bytes,
        .pnum = pnum, .map = map, .file = file, .depth = depth,
    };

    img_run_in_coroutine(status_entry, &s);
    return s.ret;
}

/* The meter's state: one per process, as qemu-img has one. */
static struct {
    bool enabled;
    float current, last_print, min_skip;
} progress;

void img_progress_init(bool enabled, float min_skip)
{
    progress.enabled = enabled;
    progress.current = 0;
    progress.last_print = 0;
    progress.min_skip = min_skip;
}

void img_progress_print(float delta, int max)
{
    float current;

    if (max == 0) {
        current = delta;
    } else {
        current = progress.current + delta / 100 * max;
    }
    if (current > 100) {
        current = 100;
    }
    progress.current = current;
    if (current > progress.last_print + progress.min_skip ||
        current < progress.last_print - progress.min_skip ||
        current == 0 || current == 100) {
        progress.last_print = current;
        if (progress.enabled) {
            printf("    (%3.2f/100%%)\r", current);
            fflush(stdout);
        }
    }
}

void img_progress_end(void)
{
    if (progress.enabled) {
        printf("\n");
        fflush(stdout);
    }
}

int img_compare_buffers(const uint8_t *a, const uint8_t *b, int64_t bytes,
                        int64_t *pnum)
{
    int64_t i = MIN(bytes, (int64_t)BDRV_SECTOR_SIZE);
    bool res = !!memcmp(a, b, i);

    /* The answer for the first sector, then as many following whole
     * (or final partial) sectors as give the same answer. */
    while (i < bytes) {
        int64_t len = MIN(bytes - i, (int64_t)BDRV_SECTOR_SIZE);

        if (!!memcmp(a + i, b + i, len) != res) {
            break;
        }
        i += len;
    }
    *pnum = i;
    return res;
}

static const CreateOptDesc *find_opt(const CreateOptDesc *const *lists,
                                     int nlists, const char *name)
{
    for (int i = 0; i < nlists; i++) {
        for (const CreateOptDesc *d = lists[i]; d && d->name; d++) {
            if (!strcmp(d->name, name)) {
                return d;
            }
        }
    }
    return NULL;
}

bool img_util_can_create(BlockDriver *drv)
{
    if (drv->bdrv_co_create_opts) {
        return true;
    }
    return !strcmp(drv->format_name, "raw") &&
           bdrv_find_format("file")->bdrv_co_create_opts;
}

json_t *img_util_create_opts(BlockDriver *drv, const char *options,
                             Error **errp)
{
    BlockDriver *proto = drv->protocol_name ? NULL
                                            : bdrv_find_format("file");
    const CreateOptDesc *lists[2] = {
        img_create_opts_of(drv), img_create_opts_of(proto),
    };

    return img_util_parse_opts(lists, 2, options, errp);
}

json_t *img_util_parse_opts(const CreateOptDesc *const *lists, int nlists,
                            const char *options, Error **errp)
{
    const char *key;
    json_t *opts, *val;
    void *tmp;

    opts = options ? img_parse_optlist(options, errp) : json_object();
    if (!opts) {
        return NULL;
    }
    json_object_foreach_safe(opts, tmp, key, val) {
        const CreateOptDesc *d = find_opt(lists, nlists, key);
        const char *s = json_string_value(val);
        if (!d) {
            error_setg(errp, "Invalid parameter '%s'", key);
            goto fail;
        }
        if (!s) {
            continue;
        }
        if (!img_check_create_opt(opts, key, s, d, errp)) {
            goto fail;
        }
    }
    return opts;

fail:
    json_decref(opts);
    return NULL;
}

typedef struct CreateCo {
    BlockDriver *drv;
    const char *filename;
    json_t *opts;
    Error **errp;
    int ret;
} CreateCo;

static void coroutine_fn create_entry(void *opaque)
{
    CreateCo *c = opaque;

    c->ret = c->drv->bdrv_co_create_opts(c->drv, c->filename, c->opts,
                                         c->errp);
}

int img_util_create(BlockDriver *drv, const char *filename, json_t *opts,
                    Error **errp)
{
    CreateCo c = { .drv = drv, .filename = filename, .opts = opts };
    Error *err = NULL;

    if (!drv->bdrv_co_create_opts && !strcmp(drv->format_name, "raw")) {
        /* A raw image is its protocol's file. */
        c.drv = bdrv_find_format("file");
    }
    if (!c.drv || !c.drv->bdrv_co_create_opts) {
        error_setg(errp, "Format driver '%s' does not support image "
                   "creation", drv->format_name);
        return -ENOTSUP;
    }
    c.errp = &err;
    img_run_in_coroutine(create_entry, &c);
    if (c.ret < 0) {
        if (!err) {
            error_setg_errno(&err, -c.ret, "Could not create image");
        }
        error_propagate(errp, err);
    }
    return c.ret;
}

/* The node in bs's backing chain whose image is named base (as the
 * chain records it, or the same file). */
BlockDriverState *img_find_backing_image(BlockDriverState *bs,
                                        const char *base)
{
    g_autofree char *want = realpath(base, NULL);

    for (BlockDriverState *p = bs; p; p = bdrv_backing_chain_next(p)) {
        BlockDriverState *next = bdrv_backing_chain_next(p);
        g_autofree char *have = NULL;

        if (!next) {
            break;
        }
        if (!strcmp(p->backing_file, base) || !strcmp(next->filename, base)) {
            return next;
        }
        have = realpath(next->filename, NULL);
        if (want && have && !strcmp(want, have)) {
            return next;
        }
    }
    return NULL;
}

int img_parse_snapshot_param(const char *param, char **id, char **name)
{
    json_t *opts;
    const char *key;
    json_t *val;
    Error *err = NULL;

    *id = *name = NULL;
    if (!g_str_has_prefix(param, "snapshot.")) {
        *name = g_strdup(param);
        return 0;
    }
    opts = img_parse_optlist(param, &err);
    if (!opts) {
        error_report_err(err);
        goto fail;
    }
    json_object_foreach(opts, key, val) {
        if (!strcmp(key, "snapshot.id")) {
            g_free(*id);
            *id = g_strdup(json_string_value(val));
        } else if (!strcmp(key, "snapshot.name")) {
            g_free(*name);
            *name = g_strdup(json_string_value(val));
        } else {
            error_report("Invalid parameter '%s'", key);
            json_decref(opts);
            goto fail;
        }
    }
    json_decref(opts);
    return 1;

fail:
    error_report("Failed in parsing snapshot param '%s'", param);
    g_clear_pointer(id, g_free);
    g_clear_pointer(name, g_free);
    return -1;
}

/*
 * -l: make the (read-only) source show an internal snapshot.  by_opts:
 * snapshot.id/snapshot.name were given; else name is an id or a name.
 */
int img_load_snapshot(BlockDriverState *bs, bool by_opts, const char *id,
                      const char *name)
{
    Error *err = NULL;
    int ret = by_opts ? bdrv_snapshot_load_tmp(bs, id, name, &err)
                      : bdrv_snapshot_load_tmp_by_id_or_name(bs, name, &err);

    if (ret < 0) {
        error_prepend(&err, "Failed to load snapshot: ");
        error_report_err(err);
    }
    return ret;
}
