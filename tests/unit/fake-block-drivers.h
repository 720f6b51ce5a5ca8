/*
 * Small in-memory drivers for the block-core unit tests (test-graph,
 * test-perm, test-reopen): they exercise the graph, permission and reopen
 * machinery without depending on real image formats.
 *
 *  - "fproto": protocol node holding a RAM buffer.  Options: filename
 *    (optional), size (default 1 MiB), magic (string written at offset 0),
 *    align (request alignment), mut (mutable at reopen).  Records
 *    check/set/abort permission calls and reopen calls; fails check_perm
 *    when fake_fail_check names it.
 *  - "fmt": a format (probe: data starting with "FMT!"), supports backing;
 *    file child with role IMAGE, default child permissions.  Options
 *    x-backing / x-backing-fmt set bs->backing_file / backing_format,
 *    fail-prepare makes its reopen prepare fail.
 *  - "ffilter": a filter with a FILTERED|PRIMARY file child.
 *  - "fnoreopen": protocol without reopen support.
 */
#ifndef FAKE_BLOCK_DRIVERS_H
#define FAKE_BLOCK_DRIVERS_H

#include "block/block-int.h"
#include "block/block-backend.h"
#include "block/options.h"
#include "block/reopen.h"
#include "block/graph.h"
#include "block/perm.h"

typedef struct FakeProto {
    uint8_t *buf;
    int64_t size;
    uint64_t perm, shared;      /* last committed (set_perm) */
    int checks, sets, aborts;
    int reopen_prepares, reopen_commits, reopen_aborts;
    int64_t mut;
} FakeProto;

/* Node name whose check_perm fails with "fake lock failure". */
static const char *fake_fail_check;
/* Global log of reopen callbacks, "prepare:n;commit:n;..." */
static GString *fake_log;

static void fake_log_add(const char *what, BlockDriverState *bs)
{
    if (!fake_log) {
        fake_log = g_string_new(NULL);
    }
    g_string_append_printf(fake_log, "%s:%s;", what, bs->node_name);
}

static int fproto_open(BlockDriverState *bs, json_t *options, int flags,
                       Error **errp)
{
    FakeProto *s = bs->opaque;
    Error *local_err = NULL;
    g_autofree char *fn = qb_opt_take_str(options, "filename");
    g_autofree char *magic = NULL;
    uint64_t align;

    s->size = qb_opt_take_size(options, "size", 1 * MiB, &local_err);
    if (local_err) {
        error_propagate(errp, local_err);
        return -EINVAL;
    }
    align = qb_opt_take_size(options, "align", 1, &local_err);
    if (local_err) {
        error_propagate(errp, local_err);
        return -EINVAL;
    }
    s->mut = qb_opt_take_int(options, "mut", 0, &local_err);
    if (local_err) {
        error_propagate(errp, local_err);
        return -EINVAL;
    }
    if (fn && !strcmp(fn, "/nonexistent")) {
        error_setg(errp, "Could not open '%s': No such file or directory",
                   fn);
        return -ENOENT;
    }
    magic = qb_opt_take_str(options, "magic");
    s->buf = g_malloc0(s->size ? s->size : 1);
    if (magic) {
        memcpy(s->buf, magic, MIN((int64_t)strlen(magic), s->size));
    }
    bs->bl.request_alignment = align;
    if (fn) {
        g_strlcpy(bs->filename, fn, sizeof(bs->filename));
    }
    return 0;
}

static void fproto_close(BlockDriverState *bs)
{
    FakeProto *s = bs->opaque;
    g_free(s->buf);
}

static void fproto_refresh_limits(BlockDriverState *bs, Error **errp)
{
    FakeProto *s = bs->opaque;
    (void)s;
    if (bs->options && qb_opt_has(bs->options, "align")) {
        json_t *v = json_object_get(bs->options, "align");
        uint64_t a = 1;
        if (json_is_string(v)) {
            qb_strtosz(json_string_value(v), NULL, &a);
        } else if (json_is_integer(v)) {
            a = json_integer_value(v);
        }
        bs->bl.request_alignment = a;
    }
}

static int64_t fproto_getlength(BlockDriverState *bs)
{
    FakeProto *s = bs->opaque;
    return s->size;
}

static int coroutine_fn fproto_preadv(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, IOVector *qiov,
                                      BdrvRequestFlags flags)
{
    FakeProto *s = bs->opaque;
    g_autofree uint8_t *tmp = g_malloc0(bytes);
    int64_t n = offset < s->size ? MIN(bytes, s->size - offset) : 0;

    memcpy(tmp, s->buf + offset, n);
    qiov_from_buf(qiov, 0, tmp, bytes);
    return 0;
}

static int coroutine_fn fproto_pwritev(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, IOVector *qiov,
                                       BdrvRequestFlags flags)
{
    FakeProto *s = bs->opaque;
    if (offset + bytes > s->size) {
        return -ENOSPC;
    }
    qiov_to_buf(qiov, 0, s->buf + offset, bytes);
    return 0;
}

static int fproto_check_perm(BlockDriverState *bs, uint64_t perm,
                             uint64_t shared, Error **errp)
{
    FakeProto *s = bs->opaque;
    if (fake_fail_check && !strcmp(fake_fail_check, bs->node_name)) {
        error_setg(errp, "fake lock failure");
        return -EAGAIN;
    }
    s->checks++;
    return 0;
}

static void fproto_set_perm(BlockDriverState *bs, uint64_t perm,
                            uint64_t shared)
{
    FakeProto *s = bs->opaque;
    s->sets++;
    s->perm = perm;
    s->shared = shared;
}

static void fproto_abort_perm(BlockDriverState *bs)
{
    FakeProto *s = bs->opaque;
    s->aborts++;
}

static int fproto_reopen_prepare(BDRVReopenState *st, BlockReopenQueue *q,
                                 Error **errp)
{
    FakeProto *s = st->bs->opaque;
    Error *local_err = NULL;
    int64_t mut = qb_opt_take_int(st->options, "mut", 0, &local_err);

    if (local_err) {
        error_propagate(errp, local_err);
        return -EINVAL;
    }
    st->opaque = g_new(int64_t, 1);
    *(int64_t *)st->opaque = mut;
    s->reopen_prepares++;
    fake_log_add("prepare", st->bs);
    return 0;
}

static void fproto_reopen_commit(BDRVReopenState *st)
{
    FakeProto *s = st->bs->opaque;
    s->mut = *(int64_t *)st->opaque;
    g_free(st->opaque);
    s->reopen_commits++;
    fake_log_add("commit", st->bs);
}

static void fproto_reopen_abort(BDRVReopenState *st)
{
    FakeProto *s = st->bs->opaque;
    g_free(st->opaque);
    s->reopen_aborts++;
    fake_log_add("abort", st->bs);
}

static void fake_parse_filename(const char *filename, json_t *options,
                                Error **errp)
{
    const char *p = filename;
    if (g_str_has_prefix(p, "fproto:")) {
        p += strlen("fproto:");
    }
    json_object_set_new(options, "filename", json_string(p));
}

static const char *const fproto_mutable[] = { "mut", NULL };
static const char *const fproto_strong[] = { "size", NULL };

static BlockDriver bdrv_fproto = {
    .format_name = "fproto",
    .protocol_name = "fproto",
    .instance_size = sizeof(FakeProto),
    .bdrv_parse_filename = fake_parse_filename,
    .bdrv_open = fproto_open,
    .bdrv_close = fproto_close,
    .bdrv_getlength = fproto_getlength,
    .bdrv_refresh_limits = fproto_refresh_limits,
    .bdrv_co_preadv = fproto_preadv,
    .bdrv_co_pwritev = fproto_pwritev,
    .bdrv_check_perm = fproto_check_perm,
    .bdrv_set_perm = fproto_set_perm,
    .bdrv_abort_perm_update = fproto_abort_perm,
    .bdrv_reopen_prepare = fproto_reopen_prepare,
    .bdrv_reopen_commit = fproto_reopen_commit,
    .bdrv_reopen_abort = fproto_reopen_abort,
    .mutable_opts = fproto_mutable,
    .strong_runtime_opts = fproto_strong,
};

/* A second protocol that registers as "file" so plain paths work. */
static BlockDriver bdrv_ffile = {
    .format_name = "file",
    .protocol_name = "file",
    .instance_size = sizeof(FakeProto),
    .bdrv_open = fproto_open,
    .bdrv_close = fproto_close,
    .bdrv_getlength = fproto_getlength,
    .bdrv_co_preadv = fproto_preadv,
    .bdrv_co_pwritev = fproto_pwritev,
    .bdrv_check_perm = fproto_check_perm,
    .bdrv_set_perm = fproto_set_perm,
    .bdrv_abort_perm_update = fproto_abort_perm,
    .bdrv_reopen_prepare = fproto_reopen_prepare,
    .bdrv_reopen_commit = fproto_reopen_commit,
    .bdrv_reopen_abort = fproto_reopen_abort,
    .mutable_opts = fproto_mutable,
};

static BlockDriver bdrv_fnoreopen = {
    .format_name = "fnoreopen",
    .protocol_name = "fnoreopen",
    .instance_size = sizeof(FakeProto),
    .bdrv_open = fproto_open,
    .bdrv_close = fproto_close,
    .bdrv_getlength = fproto_getlength,
};

typedef struct FakeFmt {
    bool fail_prepare;
    int commits, posts;
} FakeFmt;

static int fmt_probe(const uint8_t *buf, int buf_size, const char *filename)
{
    return buf_size >= 4 && !memcmp(buf, "FMT!", 4) ? 100 : 0;
}

static int fmt_open(BlockDriverState *bs, json_t *options, int flags,
                    Error **errp)
{
    FakeFmt *s = bs->opaque;
    g_autofree char *backing = qb_opt_take_str(options, "x-backing");
    g_autofree char *backing_fmt = qb_opt_take_str(options, "x-backing-fmt");
    Error *local_err = NULL;

    s->fail_prepare = qb_opt_take_bool(options, "fail-prepare", false,
                                       &local_err);
    if (local_err) {
        error_propagate(errp, local_err);
        return -EINVAL;
    }
    bs->file = bdrv_open_child(NULL, options, "file", bs, &child_of_bds,
                               BDRV_CHILD_IMAGE, false, errp);
    if (!bs->file) {
        return -EINVAL;
    }
    if (backing) {
        g_strlcpy(bs->backing_file, backing, sizeof(bs->backing_file));
        g_strlcpy(bs->auto_backing_file, backing,
                  sizeof(bs->auto_backing_file));
    }
    if (backing_fmt) {
        g_strlcpy(bs->backing_format, backing_fmt,
                  sizeof(bs->backing_format));
    }
    return 0;
}

static int64_t fmt_getlength(BlockDriverState *bs)
{
    return bdrv_getlength(bs->file->bs);
}

static int fmt_reopen_prepare(BDRVReopenState *st, BlockReopenQueue *q,
                              Error **errp)
{
    FakeFmt *s = st->bs->opaque;
    json_object_del(st->options, "fail-prepare");
    fake_log_add("prepare", st->bs);
    if (s->fail_prepare) {
        return -EIO;
    }
    return 0;
}

static void fmt_reopen_commit(BDRVReopenState *st)
{
    FakeFmt *s = st->bs->opaque;
    s->commits++;
    fake_log_add("commit", st->bs);
}

static void fmt_reopen_commit_post(BDRVReopenState *st)
{
    FakeFmt *s = st->bs->opaque;
    s->posts++;
    fake_log_add("post", st->bs);
}

static void fmt_reopen_abort(BDRVReopenState *st)
{
    fake_log_add("abort", st->bs);
}

static const char *const fmt_mutable[] = { "fail-prepare", NULL };

static BlockDriver bdrv_fmt = {
    .format_name = "fmt",
    .instance_size = sizeof(FakeFmt),
    .is_format = true,
    .supports_backing = true,
    .bdrv_probe = fmt_probe,
    .bdrv_open = fmt_open,
    .bdrv_getlength = fmt_getlength,
    .bdrv_child_perm = bdrv_default_perms,
    .bdrv_reopen_prepare = fmt_reopen_prepare,
    .bdrv_reopen_commit = fmt_reopen_commit,
    .bdrv_reopen_commit_post = fmt_reopen_commit_post,
    .bdrv_reopen_abort = fmt_reopen_abort,
    .mutable_opts = fmt_mutable,
};

static int ffilter_open(BlockDriverState *bs, json_t *options, int flags,
                        Error **errp)
{
    bs->file = bdrv_open_child(NULL, options, "file", bs, &child_of_bds,
                               BDRV_CHILD_FILTERED | BDRV_CHILD_PRIMARY,
                               false, errp);
    return bs->file ? 0 : -EINVAL;
}

static int64_t ffilter_getlength(BlockDriverState *bs)
{
    return bdrv_getlength(bs->file->bs);
}

static int ffilter_reopen_prepare(BDRVReopenState *st, BlockReopenQueue *q,
                                  Error **errp)
{
    return 0;
}

static BlockDriver bdrv_ffilter = {
    .format_name = "ffilter",
    .instance_size = 1,
    .is_filter = true,
    .bdrv_open = ffilter_open,
    .bdrv_getlength = ffilter_getlength,
    .bdrv_child_perm = bdrv_filter_default_perms,
    .bdrv_reopen_prepare = ffilter_reopen_prepare,
};

/* A parent that is not a node, for taking permissions like a BlockBackend. */
typedef struct FakeUser {
    char *name;
    BdrvChild *c;
} FakeUser;

static char *fake_user_desc(BdrvChild *c)
{
    FakeUser *u = c->opaque;
    return u->name ? g_strdup_printf("block device '%s'", u->name)
                   : g_strdup("an unnamed block device");
}

static const BdrvChildClass fake_user_class = {
    .stay_at_node = true,
    .get_parent_desc = fake_user_desc,
};

/* Attach a user with perm/shared; NULL (with *errp) on conflict. */
static FakeUser *fake_user_new(BlockDriverState *bs, const char *name,
                               uint64_t perm, uint64_t shared, Error **errp)
{
    FakeUser *u = g_new0(FakeUser, 1);
    u->name = g_strdup(name);
    bdrv_ref(bs);
    u->c = bdrv_root_attach_child(bs, "root", &fake_user_class,
                                  BDRV_CHILD_FILTERED | BDRV_CHILD_PRIMARY,
                                  perm, shared, u, errp);
    if (!u->c) {
        g_free(u->name);
        g_free(u);
        return NULL;
    }
    return u;
}

static void fake_user_free(FakeUser *u)
{
    if (u) {
        bdrv_root_unref_child(u->c);
        g_free(u->name);
        g_free(u);
    }
}

static void fake_drivers_register(void)
{
    bdrv_register(&bdrv_fproto);
    bdrv_register(&bdrv_ffile);
    bdrv_register(&bdrv_fnoreopen);
    bdrv_register(&bdrv_fmt);
    bdrv_register(&bdrv_ffilter);
}

/* Open from a JSON text; the result is owned by the caller. */
static BlockDriverState *open_json(const char *json, int flags, Error **errp)
{
    json_error_t jerr;
    json_t *opts = json_loads(json, 0, &jerr);
    g_assert(opts);
    return bdrv_open(NULL, NULL, opts, flags, errp);
}

/* Expect failure with exactly text; frees the error. */
#define assert_error(err, text) do {                                 \
        g_assert_nonnull(err);                                       \
        g_assert_cmpstr(error_get_pretty(err), ==, (text));          \
        error_free(err);                                             \
        (err) = NULL;                                                \
    } while (0)

/* Every node opened by a test must be gone at its end. */
static void assert_no_nodes(void)
{
    g_assert_null(bdrv_next_all_nodes(NULL));
}

#endif
