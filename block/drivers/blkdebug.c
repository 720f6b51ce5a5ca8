/*
 * The blkdebug filter driver: passes requests to its "image" child and
 * injects failures on command, for testing error paths of the layers
 * above (as QEMU's blkdebug, option- and config-file compatible).
 *
 * Rules hang off debug events (bdrv_debug_event, raised by format drivers
 * on their file child: "l2_load", "write_aio", ...; "none" fires once at
 * open).  When an event fires, its rules whose state matches the current
 * state (0 = any) run:
 *   inject-error: the rule becomes active; while active, every request of
 *                 a matching I/O type touching its offset (or any offset)
 *                 fails with its errno; "once" retires it after one hit.
 *   set-state:    the state machine moves to new_state.
 *   break:        (qemu-io "break") the raising coroutine suspends until
 *                 "resume TAG".
 * Each firing that matches inject-error rules replaces the active set.
 * Extension (not in QEMU): inject-error.N.after=K lets K matching requests
 * through before the rule starts failing (docs/drivers/blkdebug.md).
 */
#include "block/block-int.h"
#include "block/options.h"

typedef enum {
    IOTYPE_READ, IOTYPE_WRITE, IOTYPE_WRITE_ZEROES, IOTYPE_DISCARD,
    IOTYPE_FLUSH, IOTYPE_BLOCK_STATUS, IOTYPE__MAX,
} BlkdebugReqType;   /* same order as QAPI's BlkdebugReqType */

static const char *const iotype_names[] = {
    "read", "write", "write-zeroes", "discard", "flush", "block-status", NULL,
};

/* QEMU's default: every type but block-status. */
#define IOTYPE_DEFAULT_MASK ((1u << IOTYPE_BLOCK_STATUS) - 1)

typedef enum { ACTION_INJECT_ERROR, ACTION_SET_STATE, ACTION_SUSPEND }
    RuleAction;

typedef struct BlkdebugRule {
    BlkdbgEvent event;
    RuleAction action;
    int state;                    /* 0: any state */
    /* inject-error */
    int error;
    unsigned iotype_mask;
    int64_t offset;               /* -1: any offset */
    bool once;
    bool immediately;
    int64_t after;                /* extension: matches to let pass first */
    /* set-state */
    int new_state;
    /* break */
    char *tag;
} BlkdebugRule;

typedef struct BlkdebugSuspended {
    Coroutine *co;
    char *tag;
} BlkdebugSuspended;

typedef struct BDRVBlkdebugState {
    int state;
    uint64_t align, max_transfer;
    uint64_t opt_write_zero, max_write_zero, opt_discard, max_discard;
    GList *rules[BLKDBG_EV__MAX];   /* BlkdebugRule*, config order */
    GList *active_rules;            /* BlkdebugRule* (borrowed) */
    GList *suspended;               /* BlkdebugSuspended* */
    char *config_file;
} BDRVBlkdebugState;

static int event_by_name(const char *name)
{
    for (int i = 0; i < BLKDBG_EV__MAX; i++) {
        if (!strcmp(bdrv_debug_event_names[i], name)) {
            return i;
        }
    }
    return -1;
}

static void rule_free(BlkdebugRule *r)
{
    g_free(r->tag);
    g_free(r);
}

static void remove_rule(BDRVBlkdebugState *s, BlkdebugRule *r)
{
    s->rules[r->event] = g_list_remove(s->rules[r->event], r);
    s->active_rules = g_list_remove(s->active_rules, r);
    rule_free(r);
}

/* ---------------------------------------------------------------------- */
/* Rule parsing: one flat string map per rule, from options or config    */

/* A rule's fields as strings or JSON values; accessor helpers take keys. */
static int add_rule(BDRVBlkdebugState *s, json_t *fields, RuleAction action,
                    Error **errp)
{
    Error *local_err = NULL;
    g_autofree char *event = qb_opt_take_str(fields, "event");
    BlkdebugRule *r;
    int ev;

    if (!event) {
        error_setg(errp, "Missing event name for rule");
        return -EINVAL;
    }
    ev = event_by_name(event);
    if (ev < 0) {
        error_setg(errp, "invalid parameter value: %s", event);
        return -EINVAL;
    }
    r = g_new0(BlkdebugRule, 1);
    r->event = ev;
    r->action = action;
    r->state = qb_opt_take_int(fields, "state", 0, &local_err);
    if (local_err) {
        goto fail;
    }
    if (action == ACTION_INJECT_ERROR) {
        int64_t sector;
        int iotype;
        r->error = qb_opt_take_int(fields, "errno", EIO, &local_err);
        if (local_err) {
            goto fail;
        }
        sector = qb_opt_take_int(fields, "sector", -1, &local_err);
        if (local_err) {
            goto fail;
        }
        r->offset = sector < 0 ? -1 : sector * (int64_t)BDRV_SECTOR_SIZE;
        r->once = qb_opt_take_bool(fields, "once", false, &local_err);
        if (local_err) {
            goto fail;
        }
        r->immediately = qb_opt_take_bool(fields, "immediately", false,
                                          &local_err);
        if (local_err) {
            goto fail;
        }
        r->after = qb_opt_take_int(fields, "after", 0, &local_err);
        if (local_err) {
            goto fail;
        }
        iotype = qb_opt_take_enum(fields, "iotype", iotype_names, -1,
                                  &local_err);
        if (local_err) {
            goto fail;
        }
        r->iotype_mask = iotype < 0 ? IOTYPE_DEFAULT_MASK : 1u << iotype;
    } else {
        r->new_state = qb_opt_take_int(fields, "new_state", 0, &local_err);
        if (local_err) {
            goto fail;
        }
    }
    s->rules[ev] = g_list_append(s->rules[ev], r);
    return 0;

fail:
    error_propagate(errp, local_err);
    rule_free(r);
    return -EINVAL;
}

/* inject-error / set-state from options: an array (QMP) or an object
 * {"0": {...}, "1": {...}} (dotted keys).  Consumes the key. */
static int add_rules_from_options(BDRVBlkdebugState *s, json_t *options,
                                  const char *key, RuleAction action,
                                  Error **errp)
{
    json_t *list = json_object_get(options, key);
    g_autoptr(GPtrArray) items = g_ptr_array_new();
    int ret = 0;

    if (!list) {
        return 0;
    }
    json_incref(list);
    json_object_del(options, key);
    if (json_is_array(list)) {
        size_t i;
        json_t *v;
        json_array_foreach(list, i, v) {
            g_ptr_array_add(items, v);
        }
    } else if (json_is_object(list)) {
        /* Numeric keys, in numeric order. */
        for (int i = 0; i < 4096; i++) {
            char k[16];
            json_t *v;
            snprintf(k, sizeof(k), "%d", i);
            v = json_object_get(list, k);
            if (!v) {
                break;
            }
            g_ptr_array_add(items, v);
        }
    } else {
        error_setg(errp, "Invalid parameter type for '%s', expected: array",
                   key);
        json_decref(list);
        return -EINVAL;
    }
    for (guint i = 0; i < items->len && ret == 0; i++) {
        json_t *fields = json_deep_copy(items->pdata[i]);
        if (!json_is_object(fields)) {
            error_setg(errp, "Invalid parameter type for '%s.%u', expected: "
                       "object", key, i);
            ret = -EINVAL;
        } else {
            ret = add_rule(s, fields, action, errp);
        }
        json_decref(fields);
    }
    json_decref(list);
    return ret;
}

/*
 * QEMU's config file: sections [inject-error] and [set-state] with
 * `key = "value"` lines, '#' comments.  Sections repeat, which is why
 * GKeyFile (one group per name) does not fit.
 */
static int read_config(BDRVBlkdebugState *s, const char *path, Error **errp)
{
    g_autofree char *text = NULL;
    g_auto(GStrv) lines = NULL;
    json_t *fields = NULL;
    RuleAction action = ACTION_INJECT_ERROR;
    int ret = 0;

    int fd = open(path, O_RDONLY);

    if (fd < 0) {
        error_setg_errno(errp, errno, "Could not read blkdebug config file");
        return -errno;
    }
    close(fd);
    if (!g_file_get_contents(path, &text, NULL, NULL)) {
        error_setg_errno(errp, EIO, "Could not read blkdebug config file");
        return -EIO;
    }
    lines = g_strsplit(text, "\n", -1);
    for (int i = 0; lines[i] && ret == 0; i++) {
        char *line = g_strstrip(lines[i]);
        char *eq;
        if (!*line || *line == '#' || *line == ';') {
            continue;
        }
        if (*line == '[') {
            if (fields) {
                ret = add_rule(s, fields, action, errp);
                json_decref(fields);
                fields = NULL;
                if (ret < 0) {
                    break;
                }
            }
            if (!strcmp(line, "[inject-error]")) {
                action = ACTION_INJECT_ERROR;
            } else if (!strcmp(line, "[set-state]")) {
                action = ACTION_SET_STATE;
            } else {
                error_setg(errp, "Could not read blkdebug config file: "
                           "unknown section %s", line);
                ret = -EINVAL;
                break;
            }
            fields = json_object();
            continue;
        }
        eq = strchr(line, '=');
        if (!eq || !fields) {
            error_setg(errp, "Could not read blkdebug config file: "
                       "parse error at line %d", i + 1);
            ret = -EINVAL;
            break;
        }
        *eq = '\0';
        {
            char *key = g_strstrip(line);
            char *val = g_strstrip(eq + 1);
            size_t len = strlen(val);
            if (len >= 2 && val[0] == '"' && val[len - 1] == '"') {
                val[len - 1] = '\0';
                val++;
            }
            json_object_set_new(fields, key, json_string(val));
        }
    }
    if (fields) {
        if (ret == 0) {
            ret = add_rule(s, fields, action, errp);
        }
        json_decref(fields);
    }
    return ret;
}

/* ---------------------------------------------------------------------- */
/* Open / close                                                            */

/* "blkdebug:CONFIG:IMAGE" -> config, x-image. */
static void blkdebug_parse_filename(const char *filename, json_t *options,
                                    Error **errp)
{
    const char *rest, *colon;

    if (!g_str_has_prefix(filename, "blkdebug:")) {
        error_setg(errp, "File name string must start with 'blkdebug:'");
        return;
    }
    rest = filename + strlen("blkdebug:");
    colon = strchr(rest, ':');
    if (!colon) {
        error_setg(errp, "Image filename missing");
        return;
    }
    if (colon != rest) {
        json_object_set_new(options, "config",
                            json_stringn(rest, colon - rest));
    }
    json_object_set_new(options, "x-image", json_string(colon + 1));
}

static bool check_limit(uint64_t v, uint64_t align, bool need_pow2,
                        const char *name, Error **errp)
{
    if (v && (v >= INT_MAX || (need_pow2 && !QB_IS_POWER_OF_2(v)) ||
              (align && v % align))) {
        error_setg(errp, "Cannot meet constraints with %s %" PRIu64, name, v);
        return false;
    }
    return true;
}

static int blkdebug_open(BlockDriverState *bs, json_t *options, int flags,
                         Error **errp)
{
    BDRVBlkdebugState *s = bs->opaque;
    Error *local_err = NULL;
    uint64_t align;
    int ret;

    s->config_file = qb_opt_take_str(options, "config");
    if (s->config_file) {
        ret = read_config(s, s->config_file, errp);
        if (ret < 0) {
            return ret;
        }
    }
    ret = add_rules_from_options(s, options, "inject-error",
                                 ACTION_INJECT_ERROR, errp);
    if (ret < 0) {
        return ret;
    }
    ret = add_rules_from_options(s, options, "set-state", ACTION_SET_STATE,
                                 errp);
    if (ret < 0) {
        return ret;
    }

    /* The child: "image", or a filename from "blkdebug:CONFIG:IMAGE"
     * (x-image), opened like any image file (probed). */
    {
        g_autofree char *x_image = qb_opt_take_str(options, "x-image");
        bs->file = bdrv_open_child(x_image, options, "image", bs,
                                   &child_of_bds,
                                   BDRV_CHILD_FILTERED | BDRV_CHILD_PRIMARY,
                                   false, errp);
    }
    if (!bs->file) {
        return -EINVAL;
    }

    s->align = qb_opt_take_size(options, "align", 0, &local_err);
    s->max_transfer = qb_opt_take_size(options, "max-transfer", 0,
                                       &local_err);
    s->opt_write_zero = qb_opt_take_size(options, "opt-write-zero", 0,
                                         &local_err);
    s->max_write_zero = qb_opt_take_size(options, "max-write-zero", 0,
                                         &local_err);
    s->opt_discard = qb_opt_take_size(options, "opt-discard", 0, &local_err);
    s->max_discard = qb_opt_take_size(options, "max-discard", 0, &local_err);
    if (local_err) {
        error_propagate(errp, local_err);
        return -EINVAL;
    }
    align = MAX(s->align, (uint64_t)(bs->file->bs->bl.request_alignment ?
                                     bs->file->bs->bl.request_alignment : 1));
    if (!check_limit(s->align, 0, true, "align", errp) ||
        !check_limit(s->max_transfer, align, false, "max-transfer", errp) ||
        !check_limit(s->opt_write_zero, align, false, "opt-write-zero",
                     errp) ||
        !check_limit(s->max_write_zero, MAX(s->opt_write_zero, align), false,
                     "max-write-zero", errp) ||
        !check_limit(s->opt_discard, align, false, "opt-discard", errp) ||
        !check_limit(s->max_discard, MAX(s->opt_discard, align), false,
                     "max-discard", errp)) {
        return -EINVAL;
    }

    bs->supported_write_flags = BDRV_REQ_WRITE_UNCHANGED |
        (BDRV_REQ_FUA & bs->file->bs->supported_write_flags);
    bs->supported_zero_flags = BDRV_REQ_WRITE_UNCHANGED |
        ((BDRV_REQ_FUA | BDRV_REQ_MAY_UNMAP | BDRV_REQ_NO_FALLBACK) &
         bs->file->bs->supported_zero_flags);
    /* Limits are applied here too, so they hold even before the core's
     * refresh (which calls blkdebug_refresh_limits again). */
    if (s->align) {
        bs->bl.request_alignment = s->align;
    }
    s->state = 1;
    bdrv_debug_event(bs, BLKDBG_EV_NONE);
    return 0;
}

static void blkdebug_close(BlockDriverState *bs)
{
    BDRVBlkdebugState *s = bs->opaque;

    for (int i = 0; i < BLKDBG_EV__MAX; i++) {
        g_list_free_full(s->rules[i], (GDestroyNotify)rule_free);
        s->rules[i] = NULL;
    }
    g_list_free(s->active_rules);
    s->active_rules = NULL;
    g_free(s->config_file);
}

static void blkdebug_refresh_limits(BlockDriverState *bs, Error **errp)
{
    BDRVBlkdebugState *s = bs->opaque;

    if (s->align) {
        bs->bl.request_alignment = s->align;
    }
    if (s->max_transfer) {
        bs->bl.max_transfer = s->max_transfer;
    }
    if (s->opt_write_zero) {
        bs->bl.pwrite_zeroes_alignment = s->opt_write_zero;
    }
    if (s->max_write_zero) {
        bs->bl.max_pwrite_zeroes = s->max_write_zero;
    }
    if (s->opt_discard) {
        bs->bl.pdiscard_alignment = s->opt_discard;
    }
    if (s->max_discard) {
        bs->bl.max_pdiscard = s->max_discard;
    }
}

/* ---------------------------------------------------------------------- */
/* Events and error injection                                              */

static void blkdebug_debug_event(BlockDriverState *bs, BlkdbgEvent event)
{
    BDRVBlkdebugState *s = bs->opaque;
    int new_state = s->state;
    bool injected = false;
    GList *l, *next;

    for (l = s->rules[event]; l; l = next) {
        BlkdebugRule *r = l->data;
        next = l->next;
        if (r->state && r->state != s->state) {
            continue;
        }
        switch (r->action) {
        case ACTION_INJECT_ERROR:
            if (!injected) {
                g_list_free(s->active_rules);
                s->active_rules = NULL;
                injected = true;
            }
            s->active_rules = g_list_prepend(s->active_rules, r);
            break;
        case ACTION_SET_STATE:
            new_state = r->new_state;
            break;
        case ACTION_SUSPEND:
            if (in_coroutine()) {
                BlkdebugSuspended susp = { coroutine_self(), r->tag };
                r->tag = NULL;
                remove_rule(s, r);
                /* next may have been r's successor only; restart is not
                 * needed since suspend rules are one-shot. */
                s->suspended = g_list_append(s->suspended, &susp);
                coroutine_yield();
                s->suspended = g_list_remove(s->suspended, &susp);
                g_free(susp.tag);
                /* The list may have changed while suspended. */
                next = NULL;
            }
            break;
        }
    }
    s->state = new_state;
}

/* Return -errno if an active rule matches this request. */
static int coroutine_fn rule_check(BlockDriverState *bs, int64_t offset,
                                   int64_t bytes, BlkdebugReqType iotype)
{
    BDRVBlkdebugState *s = bs->opaque;
    BlkdebugRule *hit = NULL;
    bool immediately;
    int error;

    for (GList *l = s->active_rules; l; l = l->next) {
        BlkdebugRule *r = l->data;
        if (!(r->iotype_mask & (1u << iotype))) {
            continue;
        }
        if (r->offset != -1 &&
            !(offset <= r->offset && r->offset < offset + bytes)) {
            continue;
        }
        if (r->after > 0) {
            r->after--;
            continue;
        }
        hit = r;
        break;
    }
    if (!hit) {
        return 0;
    }
    error = hit->error;
    immediately = hit->immediately;
    if (hit->once) {
        remove_rule(s, hit);
    }
    if (!immediately && in_coroutine()) {
        /* Fail from the event loop, as a real device would. */
        AioContext *ctx = bs->aio_context ? bs->aio_context
                                          : qb_get_aio_context();
        aio_co_schedule(ctx, coroutine_self());
        coroutine_yield();
    }
    return -error;
}

static int coroutine_fn blkdebug_co_preadv(BlockDriverState *bs,
                                           int64_t offset, int64_t bytes,
                                           IOVector *qiov,
                                           BdrvRequestFlags flags)
{
    int err = rule_check(bs, offset, bytes, IOTYPE_READ);
    if (err) {
        return err;
    }
    return bdrv_co_preadv(bs->file, offset, bytes, qiov, flags);
}

static int coroutine_fn blkdebug_co_pwritev(BlockDriverState *bs,
                                            int64_t offset, int64_t bytes,
                                            IOVector *qiov,
                                            BdrvRequestFlags flags)
{
    int err = rule_check(bs, offset, bytes, IOTYPE_WRITE);
    if (err) {
        return err;
    }
    return bdrv_co_pwritev(bs->file, offset, bytes, qiov, flags);
}

static int coroutine_fn blkdebug_co_pwrite_zeroes(BlockDriverState *bs,
                                                  int64_t offset,
                                                  int64_t bytes,
                                                  BdrvRequestFlags flags)
{
    int err = rule_check(bs, offset, bytes, IOTYPE_WRITE_ZEROES);
    if (err) {
        return err;
    }
    return bdrv_co_pwrite_zeroes(bs->file, offset, bytes, flags);
}

static int coroutine_fn blkdebug_co_pdiscard(BlockDriverState *bs,
                                             int64_t offset, int64_t bytes)
{
    int err = rule_check(bs, offset, bytes, IOTYPE_DISCARD);
    if (err) {
        return err;
    }
    return bdrv_co_pdiscard(bs->file, offset, bytes);
}

/* flush_to_disk, as QEMU: skipped by the core when nothing was written. */
static int coroutine_fn blkdebug_co_flush(BlockDriverState *bs)
{
    int err = rule_check(bs, 0, 0, IOTYPE_FLUSH);
    if (err) {
        return err;
    }
    return 0;   /* the core flushes the image child afterwards */
}

static int coroutine_fn blkdebug_co_block_status(BlockDriverState *bs,
                                                 bool want_zero,
                                                 int64_t offset, int64_t bytes,
                                                 int64_t *pnum, int64_t *map,
                                                 BlockDriverState **file)
{
    int err = rule_check(bs, offset, bytes, IOTYPE_BLOCK_STATUS);
    if (err) {
        return err;
    }
    *pnum = bytes;
    *map = offset;
    *file = bs->file->bs;
    return BDRV_BLOCK_RAW | BDRV_BLOCK_OFFSET_VALID;
}

static int64_t blkdebug_getlength(BlockDriverState *bs)
{
    return bdrv_getlength(bs->file->bs);
}

static int coroutine_fn blkdebug_co_truncate(BlockDriverState *bs,
                                             int64_t offset, bool exact,
                                             PreallocMode prealloc,
                                             BdrvRequestFlags flags,
                                             Error **errp)
{
    return bdrv_co_truncate(bs->file, offset, exact, prealloc, flags, errp);
}

/* ---------------------------------------------------------------------- */
/* Breakpoints (qemu-io break / resume / wait_break / remove_break)        */

static int blkdebug_debug_breakpoint(BlockDriverState *bs, const char *event,
                                     const char *tag)
{
    BDRVBlkdebugState *s = bs->opaque;
    BlkdebugRule *r;
    int ev = event_by_name(event);

    if (ev < 0) {
        return -ENOENT;
    }
    r = g_new0(BlkdebugRule, 1);
    r->event = ev;
    r->action = ACTION_SUSPEND;
    r->tag = g_strdup(tag);
    s->rules[ev] = g_list_append(s->rules[ev], r);
    return 0;
}

static int blkdebug_debug_remove_breakpoint(BlockDriverState *bs,
                                            const char *tag)
{
    BDRVBlkdebugState *s = bs->opaque;
    int ret = -ENOENT;

    for (int i = 0; i < BLKDBG_EV__MAX; i++) {
        GList *l = s->rules[i], *next;
        for (; l; l = next) {
            BlkdebugRule *r = l->data;
            next = l->next;
            if (r->action == ACTION_SUSPEND && !strcmp(r->tag, tag)) {
                remove_rule(s, r);
                ret = 0;
            }
        }
    }
    for (GList *l = s->suspended; l; l = l->next) {
        BlkdebugSuspended *susp = l->data;
        if (!strcmp(susp->tag, tag)) {
            ret = 0;
        }
    }
    if (ret == 0) {
        GList *copy = g_list_copy(s->suspended);
        for (GList *l = copy; l; l = l->next) {
            BlkdebugSuspended *susp = l->data;
            if (!strcmp(susp->tag, tag)) {
                aio_co_wake(susp->co);
            }
        }
        g_list_free(copy);
    }
    return ret;
}

static int blkdebug_debug_resume(BlockDriverState *bs, const char *tag)
{
    BDRVBlkdebugState *s = bs->opaque;

    for (GList *l = s->suspended; l; l = l->next) {
        BlkdebugSuspended *susp = l->data;
        if (!strcmp(susp->tag, tag)) {
            aio_co_wake(susp->co);
            return 0;
        }
    }
    return -ENOENT;
}

static bool blkdebug_debug_is_suspended(BlockDriverState *bs, const char *tag)
{
    BDRVBlkdebugState *s = bs->opaque;

    for (GList *l = s->suspended; l; l = l->next) {
        BlkdebugSuspended *susp = l->data;
        if (!strcmp(susp->tag, tag)) {
            return true;
        }
    }
    return false;
}

static const char *const blkdebug_strong_runtime_opts[] = {
    "config", "inject-error.", "set-state.", "align", "max-transfer",
    "opt-write-zero", "max-write-zero", "opt-discard", "max-discard", NULL
};

BlockDriver bdrv_blkdebug = {
    .format_name = "blkdebug",
    .protocol_name = "blkdebug",
    .instance_size = sizeof(BDRVBlkdebugState),
    .is_filter = true,
    .bdrv_parse_filename = blkdebug_parse_filename,
    .bdrv_open = blkdebug_open,
    .bdrv_close = blkdebug_close,
    .bdrv_refresh_limits = blkdebug_refresh_limits,
    .bdrv_co_preadv = blkdebug_co_preadv,
    .bdrv_co_pwritev = blkdebug_co_pwritev,
    .bdrv_co_pwrite_zeroes = blkdebug_co_pwrite_zeroes,
    .bdrv_co_pdiscard = blkdebug_co_pdiscard,
    .bdrv_co_flush_to_disk = blkdebug_co_flush,
    .bdrv_co_block_status = blkdebug_co_block_status,
    .bdrv_co_truncate = blkdebug_co_truncate,
    .bdrv_getlength = blkdebug_getlength,
    .bdrv_child_perm = bdrv_filter_default_perms,
    .bdrv_debug_event = blkdebug_debug_event,
    .bdrv_debug_breakpoint = blkdebug_debug_breakpoint,
    .bdrv_debug_remove_breakpoint = blkdebug_debug_remove_breakpoint,
    .bdrv_debug_resume = blkdebug_debug_resume,
    .bdrv_debug_is_suspended = blkdebug_debug_is_suspended,
    .strong_runtime_opts = blkdebug_strong_runtime_opts,
    .supported_write_flags = BDRV_REQ_WRITE_UNCHANGED,
    .supported_zero_flags = BDRV_REQ_WRITE_UNCHANGED,
};
