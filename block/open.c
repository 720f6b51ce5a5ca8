/*
 * Opening nodes: from options, json: filenames or plain filenames;
 * protocol selection, format probing, the generic options every node
 * understands, node names, children opened inline or by reference, backing
 * files, and the check that every option was consumed.  The graph
 * primitives this builds on (registry, node list, edges) are in graph.c.
 *
 * Invariants:
 *  1. bdrv_open either returns a fully opened node (driver opened, children
 *     attached with checked permissions, backing file opened, no unused
 *     option) or NULL with *errp set and no node or edge left behind.
 *  2. Options given directly win over those inside a json: filename.
 *  3. A child inherits its parent's flags (read-only, cache, ...) unless its
 *     own options say otherwise; backing files are read-only by default.
 */
#include "block/graph.h"
#include "block/dirty-bitmap.h"
#include "block/block-backend.h"
#include "block/options.h"
#include "block/perm.h"
#include "block/reopen.h"
#include "util/transaction.h"
#include "util/json-qemu.h"


/* Flags a child opened with role under parent inherits (as QEMU's
 * bdrv_inherited_options / bdrv_backing_options). */
int bdrv_child_inherited_flags(BlockDriverState *parent, int parent_flags,
                               BdrvChildRole role, json_t *child_opts)
{
    bool parent_is_format = !parent || !parent->drv || parent->drv->is_format;
    int flags = parent_flags;

    /* Only for the top layer. */
    flags &= ~(BDRV_O_SNAPSHOT | BDRV_O_TEMPORARY | BDRV_O_CHECK |
               BDRV_O_NO_BACKING | BDRV_O_COPY_ON_READ);

    /* Should the child be format-probed?  Plain data children of
     * non-format nodes are; children of formats (but backing files) and
     * metadata children never are; otherwise the parent's mode carries
     * over (a blkdebug protocol node's image is a protocol node). */
    if (!parent_is_format && (role & BDRV_CHILD_DATA) &&
        !(role & (BDRV_CHILD_METADATA | BDRV_CHILD_FILTERED))) {
        flags &= ~BDRV_O_PROTOCOL;
    }
    if ((parent_is_format && !(role & BDRV_CHILD_COW)) ||
        (role & BDRV_CHILD_METADATA)) {
        flags |= BDRV_O_PROTOCOL;
    }
    if (role & BDRV_CHILD_COW) {
        /* Backing files are probed and read-only unless asked otherwise. */
        flags &= ~(BDRV_O_RDWR | BDRV_O_AUTO_RDONLY | BDRV_O_PROTOCOL);
    }
    if (parent_is_format && !(role & BDRV_CHILD_COW) &&
        !qb_opt_has(child_opts, "discard")) {
        /* The format layer already applies the discard policy. */
        flags |= BDRV_O_UNMAP;
    }
    if (role & BDRV_CHILD_METADATA) {
        flags &= ~BDRV_O_NO_IO;
    }
    return flags;
}

static const char *const detect_zeroes_names[] = { "off", "on", "unmap", NULL };

/*
 * Consume the options every node understands and fold them into *flags.
 * Shared by open and reopen; the caller fills defaults into *flags first.
 */
int bdrv_take_generic_options(json_t *opts, int *flags,
                              BlockdevDetectZeroesOptions *detect_zeroes,
                              bool *force_share, Error **errp)
{
    Error *local_err = NULL;
    json_t *cache;
    bool b;

#define FLAG_OPT(obj, key, bit) do {                                    \
        if (qb_opt_has((obj), (key))) {                                 \
            b = qb_opt_take_bool((obj), (key), false, &local_err);      \
            if (local_err) {                                            \
                error_propagate(errp, local_err);                       \
                return -EINVAL;                                         \
            }                                                           \
            *flags = b ? (*flags | (bit)) : (*flags & ~(bit));          \
        }                                                               \
    } while (0)

    if (qb_opt_has(opts, "read-only")) {
        b = qb_opt_take_bool(opts, "read-only", false, &local_err);
        if (local_err) {
            error_propagate(errp, local_err);
            return -EINVAL;
        }
        *flags = b ? (*flags & ~BDRV_O_RDWR) : (*flags | BDRV_O_RDWR);
    }
    FLAG_OPT(opts, "auto-read-only", BDRV_O_AUTO_RDONLY);
    cache = json_object_get(opts, "cache");
    if (json_is_object(cache)) {
        /* Read nested cache options under their dotted names, as QEMU
         * (which flattens options) names them in errors. */
        static const char *const sub[] = { "direct", "no-flush" };
        for (int i = 0; i < 2; i++) {
            json_t *v = json_object_get(cache, sub[i]);
            if (v) {
                g_autofree char *k = g_strdup_printf("cache.%s", sub[i]);
                json_object_set(opts, k, v);
                json_object_del(cache, sub[i]);
            }
        }
        if (json_object_size(cache) == 0) {
            json_object_del(opts, "cache");
        }
    }
    FLAG_OPT(opts, "cache.direct", BDRV_O_NOCACHE);
    FLAG_OPT(opts, "cache.no-flush", BDRV_O_NO_FLUSH);
#undef FLAG_OPT

    if (qb_opt_has(opts, "discard")) {
        g_autofree char *d = qb_opt_take_str(opts, "discard");
        if (d && (!strcmp(d, "off") || !strcmp(d, "ignore"))) {
            *flags &= ~BDRV_O_UNMAP;
        } else if (d && (!strcmp(d, "on") || !strcmp(d, "unmap"))) {
            *flags |= BDRV_O_UNMAP;
        } else {
            error_setg(errp, "Invalid discard option");
            return -EINVAL;
        }
    }
    if (qb_opt_has(opts, "detect-zeroes")) {
        g_autofree char *dz = qb_opt_take_str(opts, "detect-zeroes");
        int i;
        for (i = 0; dz && detect_zeroes_names[i]; i++) {
            if (!strcmp(dz, detect_zeroes_names[i])) {
                break;
            }
        }
        if (!dz || !detect_zeroes_names[i]) {
            error_setg(errp, "invalid parameter value: %s", dz ? dz : "");
            return -EINVAL;
        }
        *detect_zeroes = i;
    }
    if (*detect_zeroes == BLOCKDEV_DETECT_ZEROES_OPTIONS_UNMAP &&
        !(*flags & BDRV_O_UNMAP)) {
        error_setg(errp, "setting detect-zeroes to unmap is not allowed "
                   "without setting discard operation to unmap");
        return -EINVAL;
    }
    if (qb_opt_has(opts, "force-share")) {
        *force_share = qb_opt_take_bool(opts, "force-share", false,
                                        &local_err);
        if (local_err) {
            error_propagate(errp, local_err);
            return -EINVAL;
        }
    }
    if (*force_share && (*flags & BDRV_O_RDWR)) {
        error_setg(errp, "force-share=on can only be used with read-only "
                   "images");
        return -EINVAL;
    }
    return 0;
}

static BlockDriverState *open_inherit(const char *filename,
                                      const char *reference, json_t *options,
                                      int flags, Error **errp);

/* Open (or look up) the child named child_name of parent; see
 * bdrv_open_child.  Returns a new reference or NULL. */
static BlockDriverState *open_child_bs(const char *filename,
                                       json_t *parent_options,
                                       const char *child_name,
                                       BlockDriverState *parent,
                                       int parent_flags, BdrvChildRole role,
                                       bool allow_none, Error **errp)
{
    json_t *val = parent_options ? json_object_get(parent_options, child_name)
                                 : NULL;
    g_autofree char *reference = NULL;
    json_t *child_opts = NULL;

    if (json_is_string(val)) {
        reference = g_strdup(json_string_value(val));
    } else if (json_is_object(val)) {
        child_opts = json_deep_copy(val);
    }
    if (val) {
        json_object_del(parent_options, child_name);
    }
    if (!filename && !reference && !child_opts) {
        if (!allow_none) {
            error_setg(errp, "A block device must be specified for \"%s\"",
                       child_name);
        }
        return NULL;
    }
    /* force-share is inherited like read-only (qemu-io -U on a format
     * must reach the protocol node, which holds the locks). */
    if (!reference && parent && parent->force_share &&
        !qb_opt_has(child_opts, "force-share")) {
        if (!child_opts) {
            child_opts = json_object();
        }
        json_object_set_new(child_opts, "force-share", json_true());
    }
    return open_inherit(filename, reference, child_opts,
                        bdrv_child_inherited_flags(parent, parent_flags, role,
                                                   child_opts),
                        errp);
}

BdrvChild *bdrv_open_child(const char *filename, json_t *parent_options,
                           const char *child_name, BlockDriverState *parent,
                           const BdrvChildClass *child_class,
                           BdrvChildRole child_role, bool allow_none,
                           Error **errp)
{
    Error *local_err = NULL;
    BlockDriverState *bs;

    bs = open_child_bs(filename, parent_options, child_name, parent,
                       parent->open_flags, child_role, allow_none, &local_err);
    if (!bs) {
        error_propagate(errp, local_err);
        return NULL;
    }
    return bdrv_attach_child(parent, bs, child_name,
                             child_class ? child_class : &child_of_bds,
                             child_role, errp);
}

/* Directory relative backing names are resolved against: that of the
 * primary (file) child, down to a protocol node's filename. */
static char *bdrv_dirname(BlockDriverState *bs, Error **errp)
{
    const char *slash;

    if (bs->file) {
        return bdrv_dirname(bs->file->bs, errp);
    }
    bdrv_refresh_filename(bs);
    if (!bs->exact_filename[0]) {
        error_setg(errp, "Cannot generate a base directory for %s nodes",
                   bs->drv ? bs->drv->format_name : "empty");
        return NULL;
    }
    slash = strrchr(bs->exact_filename, '/');
    if (!slash) {
        /* "proto:name" keeps its prefix; a bare name is cwd-relative. */
        const char *colon = bdrv_path_has_protocol(bs->exact_filename) ?
                            strchr(bs->exact_filename, ':') : NULL;
        return colon ? g_strndup(bs->exact_filename,
                                 colon - bs->exact_filename + 1)
                     : g_strdup("");
    }
    return g_strndup(bs->exact_filename, slash - bs->exact_filename + 1);
}

static char *full_backing_filename(BlockDriverState *bs, Error **errp)
{
    g_autofree char *dir = NULL;

    if (!bs->backing_file[0]) {
        return NULL;
    }
    if (bs->backing_file[0] == '/' ||
        bdrv_path_has_protocol(bs->backing_file)) {
        return g_strdup(bs->backing_file);
    }
    dir = bdrv_dirname(bs, errp);
    if (!dir) {
        return NULL;
    }
    return g_strconcat(dir, bs->backing_file, NULL);
}

int bdrv_open_backing_file(BlockDriverState *bs, json_t *parent_options,
                           const char *bdref_key, Error **errp)
{
    json_t *val = parent_options ? json_object_get(parent_options, bdref_key)
                                 : NULL;
    g_autofree char *reference = NULL;
    g_autofree char *backing_filename = NULL;
    json_t *opts = NULL;
    BlockDriverState *backing_hd;
    Error *local_err = NULL;
    int ret;

    if (bs->backing) {
        return 0;
    }
    bs->open_flags &= ~BDRV_O_NO_BACKING;
    if (!bs->auto_backing_file[0]) {
        /* Drivers record the name from the image in both fields. */
        g_strlcpy(bs->auto_backing_file, bs->backing_file,
                  sizeof(bs->auto_backing_file));
    }
    if (json_is_string(val)) {
        reference = g_strdup(json_string_value(val));
    } else if (json_is_object(val)) {
        opts = json_deep_copy(val);
    }
    if (json_is_null(val)) {
        json_object_del(parent_options, bdref_key);
        bs->open_flags |= BDRV_O_NO_BACKING;
        return 0;
    }
    if (val) {
        json_object_del(parent_options, bdref_key);   /* val is gone now */
        val = NULL;
    }
    if (!reference && !(opts && json_object_get(opts, "file") &&
                        json_is_object(json_object_get(opts, "file")) &&
                        qb_opt_has(json_object_get(opts, "file"),
                                   "filename"))) {
        if (!bs->backing_file[0] && (!opts || !json_object_size(opts))) {
            json_decref(opts);
            return 0;
        }
        backing_filename = full_backing_filename(bs, &local_err);
        if (local_err) {
            json_decref(opts);
            error_propagate(errp, local_err);
            return -EINVAL;
        }
    }
    if (!bs->drv || !bs->drv->supports_backing) {
        json_decref(opts);
        error_setg(errp, "Driver doesn't support backing files");
        return -EINVAL;
    }
    if (!reference && bs->backing_format[0]) {
        if (!opts) {
            opts = json_object();
        }
        if (!qb_opt_has(opts, "driver")) {
            json_object_set_new(opts, "driver",
                                json_string(bs->backing_format));
        }
    }
    if (reference && opts) {
        json_decref(opts);
        opts = NULL;
    }
    if (!reference && bs->force_share && !qb_opt_has(opts, "force-share")) {
        if (!opts) {
            opts = json_object();
        }
        json_object_set_new(opts, "force-share", json_true());
    }
    backing_hd = open_inherit(backing_filename, reference, opts,
                              bdrv_child_inherited_flags(bs, bs->open_flags,
                                                         bdrv_backing_role(bs),
                                                         opts),
                              &local_err);
    if (!backing_hd) {
        bs->open_flags |= BDRV_O_NO_BACKING;
        error_propagate_prepend(errp, local_err, "Could not open backing "
                                "file: ");
        return -EINVAL;
    }
    if (!reference && backing_filename &&
        !strcmp(bs->auto_backing_file, bs->backing_file)) {
        g_strlcpy(bs->auto_backing_file, backing_hd->filename,
                  sizeof(bs->auto_backing_file));
    }
    ret = bdrv_set_backing_hd(bs, backing_hd, errp);
    bdrv_unref(backing_hd);
    return ret;
}

/* Read up to 2 KiB of bs and ask every driver how much it looks like its
 * format; the best score wins, raw when nobody recognises the data. */
static const BdrvChildClass probe_child_class = {
    .stay_at_node = false,
};

static BlockDriver *probe_format(BlockDriverState *file_bs,
                                 const char *filename, Error **errp)
{
    uint8_t buf[2048];
    int64_t len = bdrv_getlength(file_bs);
    BlockDriver *best = NULL;
    int n = 0;

    memset(buf, 0, sizeof(buf));
    if (len < 0) {
        error_setg_errno(errp, -len, "Could not determine image format: "
                         "Could not get image size");
        return NULL;
    }
    if (len > 0) {
        BdrvChild *c;
        int ret;

        /* Reading a header takes no permission: nothing is promised
         * about consistency, so nobody can be in the way. */
        bdrv_ref(file_bs);
        c = bdrv_root_attach_child(file_bs, "probe", &probe_child_class, 0,
                                   0, BLK_PERM_ALL, NULL, errp);
        if (!c) {
            return NULL;
        }
        n = (int)MIN(len, (int64_t)sizeof(buf));
        ret = bdrv_pread(c, 0, n, buf, 0);
        bdrv_root_unref_child(c);
        if (ret < 0) {
            error_setg_errno(errp, -ret, "Could not read image for "
                             "determining its format");
            return NULL;
        }
        best = bdrv_probe_best(buf, n, filename);
    }
    if (!best) {
        best = bdrv_find_format("raw");
    }
    if (!best) {
        error_setg(errp, "Could not determine image format: No compatible "
                   "driver found");
    }
    return best;
}

/*
 * Filenames, as QEMU's bdrv_refresh_filename computes them: a node that
 * can be reopened from a plain filename (a protocol node, or a format
 * whose only non-default option is its protocol file) is named by that
 * filename; any other node by "json:" + the options that rebuild it
 * (driver, filename, the driver's strong runtime options, children),
 * printed in QEMU's member order.  A driver with a bdrv_refresh_filename
 * hook names its node itself (nbd: its URI from the server address and
 * export), or leaves the name empty for json.
 */
static bool backing_overridden(BlockDriverState *bs)
{
    if (bs->backing) {
        return strcmp(bs->auto_backing_file, bs->backing->bs->filename) != 0;
    }
    return bs->auto_backing_file[0] != '\0';
}

/* Copy v into d under key, flattened as QEMU's options are: members of
 * objects and elements of arrays become "key.member" / "key.N" keys (so
 * an nbd node shows "server.path", blkdebug "inject-error.0.event"). */
static void put_flattened(json_t *d, const char *key, json_t *v)
{
    json_t *wrapped = json_pack("{sO}", key, v);
    json_t *flat = qb_json_flatten(wrapped);

    json_object_update(d, flat);
    json_decref(flat);
    json_decref(wrapped);
}

/* The node's full open options; *strong: something beyond what its
 * filename implies was given. */
static json_t *gather_options(BlockDriverState *bs, bool *strong)
{
    static const char *const global[] = { "driver", "filename", NULL };
    const char *const *so = bs->drv ? bs->drv->strong_runtime_opts : NULL;
    bool bo = backing_overridden(bs);
    bool found = false;
    json_t *d = json_object();
    GList *l;

    if (bs->open_flags & BDRV_O_NO_IO) {
        /* Without I/O the backing file changes nothing. */
        bo = false;
    }
    for (int i = 0; global[i]; i++) {
        json_t *v = json_object_get(bs->options, global[i]);
        if (v) {
            json_object_set(d, global[i], v);
        }
    }
    for (int i = 0; so && so[i]; i++) {
        g_autofree char *key = g_strdup(so[i]);
        bool prefix = g_str_has_suffix(key, ".");
        json_t *v;
        if (prefix) {
            key[strlen(key) - 1] = '\0';  /* prefix of a nested option */
        }
        v = json_object_get(bs->options, key);
        if (v && prefix) {
            put_flattened(d, key, v);
            found = true;
        } else if (v) {
            json_object_set(d, key, v);
            found = true;
        }
    }
    if (!json_object_get(d, "driver") && bs->drv) {
        json_object_set_new(d, "driver", json_string(bs->drv->format_name));
    }
    for (l = bs->children; l; l = l->next) {
        BdrvChild *c = l->data;
        if (c == bs->backing && !bo) {
            continue;
        }
        json_object_set_new(d, c->name, gather_options(c->bs, NULL));
    }
    if (bo && !bs->backing) {
        json_object_set_new(d, "backing", json_null());
    }
    if (strong) {
        *strong = found || bo;
    }
    return d;
}

void bdrv_refresh_filename(BlockDriverState *bs)
{
    BlockDriverState *primary = bs->file ? bs->file->bs : NULL;
    bool strong;
    json_t *opts;

    if (!bs->drv) {
        return;
    }
    for (GList *l = bs->children; l; l = l->next) {
        BdrvChild *c = l->data;
        bdrv_refresh_filename(c->bs);
    }
    if (bs->implicit && primary) {
        g_strlcpy(bs->exact_filename, primary->exact_filename,
                  sizeof(bs->exact_filename));
        g_strlcpy(bs->filename, primary->filename, sizeof(bs->filename));
        return;
    }
    opts = gather_options(bs, &strong);
    if (bs->drv->bdrv_refresh_filename) {
        /* The driver knows an exact name even for strong options. */
        bs->exact_filename[0] = '\0';
        bs->drv->bdrv_refresh_filename(bs);
    } else if (!bs->children) {
        /* A leaf keeps the name it was opened with (or that its driver
         * gave it, "null-co://") unless strong options make it json. */
        const char *fn = qb_opt_get_str(bs->options, "filename");
        if (strong) {
            bs->exact_filename[0] = '\0';
        } else if (fn) {
            g_strlcpy(bs->exact_filename, fn, sizeof(bs->exact_filename));
        } else if (!bs->exact_filename[0]) {
            g_strlcpy(bs->exact_filename, bs->filename,
                      sizeof(bs->exact_filename));
        }
    } else {
        bs->exact_filename[0] = '\0';
        if (primary && primary->exact_filename[0] && primary->drv &&
            bdrv_drv_is_protocol(primary->drv) && !bs->drv->is_filter &&
            !strong) {
            g_strlcpy(bs->exact_filename, primary->exact_filename,
                      sizeof(bs->exact_filename));
        }
    }
    if (bs->exact_filename[0]) {
        g_strlcpy(bs->filename, bs->exact_filename, sizeof(bs->filename));
    } else {
        g_autofree char *json = qemu_json_to_compact(opts);
        if (snprintf(bs->filename, sizeof(bs->filename), "json:%s", json) >=
            (int)sizeof(bs->filename)) {
            strcpy(bs->filename + sizeof(bs->filename) - 4, "...");
        }
    }
    json_decref(opts);
}

/* Call the driver's open on a fresh node; on failure the node is left
 * without a driver and with no children. */
static int open_driver(BlockDriverState *bs, BlockDriver *drv,
                       json_t *options, int flags, Error **errp)
{
    Error *local_err = NULL;
    int ret;

    bs->drv = drv;
    bs->opaque = g_malloc0(drv->instance_size ? drv->instance_size : 1);
    bs->supported_write_flags = drv->supported_write_flags;
    bs->supported_zero_flags = drv->supported_zero_flags;
    bs->supported_truncate_flags = drv->supported_truncate_flags;
    ret = drv->bdrv_open ? drv->bdrv_open(bs, options, flags, &local_err) : 0;
    if (ret < 0) {
        if (local_err) {
            error_propagate(errp, local_err);
        } else if (bs->filename[0]) {
            error_setg_errno(errp, -ret, "Could not open '%s'", bs->filename);
        } else {
            error_setg_errno(errp, -ret, "Could not open image");
        }
        goto fail;
    }
    bdrv_refresh_limits(bs, NULL, &local_err);
    if (local_err) {
        error_propagate(errp, local_err);
        ret = -EINVAL;
        if (drv->bdrv_close) {
            drv->bdrv_close(bs);
        }
        goto fail;
    }
    if (drv->bdrv_getlength) {
        int64_t len = drv->bdrv_getlength(bs);
        if (len < 0) {
            error_setg_errno(errp, -len, "Could not refresh total sector "
                             "count");
            ret = (int)len;
            if (drv->bdrv_close) {
                drv->bdrv_close(bs);
            }
            goto fail;
        }
        bs->total_sectors = QB_DIV_ROUND_UP(len, BDRV_SECTOR_SIZE);
    }
    return 0;

fail:
    bdrv_release_all_dirty_bitmaps(bs);
    while (bs->children) {
        BdrvChild *c = bs->children->data;
        c->frozen = 0;
        bdrv_detach_and_unref_child(c);
    }
    g_free(bs->opaque);
    bs->opaque = NULL;
    bs->drv = NULL;
    return ret;
}

static BlockDriverState *open_inherit(const char *filename,
                                      const char *reference, json_t *options,
                                      int flags, Error **errp)
{
    Error *local_err = NULL;
    BlockDriverState *bs = NULL, *file_bs = NULL;
    BlockDriver *drv = NULL;
    g_autofree char *drvname = NULL;
    g_autofree char *node_name = NULL;
    BlockdevDetectZeroesOptions dz = BLOCKDEV_DETECT_ZEROES_OPTIONS_OFF;
    bool force_share = false;
    bool protocol, parse_filename = false;
    json_t *explicit;
    int ret;

    if (reference) {
        bool options_non_empty = options && json_object_size(options);
        json_decref(options);
        if (filename || options_non_empty) {
            error_setg(errp, "Cannot reference an existing block device with "
                       "additional options or a new filename");
            return NULL;
        }
        bs = bdrv_lookup_bs(reference, reference, errp);
        if (bs) {
            bdrv_ref(bs);
        }
        return bs;
    }

    if (!options) {
        options = json_object();
    }
    if (filename && g_str_has_prefix(filename, "json:")) {
        json_t *jopts = qb_parse_json_filename(filename, errp);
        json_t *flat, *flat_j, *merged;
        if (!jopts) {
            json_decref(options);
            return NULL;
        }
        /* Options given directly win over those in the filename. */
        flat = qb_json_flatten(options);
        flat_j = qb_json_flatten(jopts);
        qb_json_merge(flat, flat_j, false);
        merged = qb_json_crumple(flat, errp);
        json_decref(flat);
        json_decref(flat_j);
        json_decref(jopts);
        json_decref(options);
        if (!merged) {
            return NULL;
        }
        options = merged;
        filename = NULL;
    }
    explicit = json_deep_copy(options);

    /* "backing": null means "no backing file", for every driver. */
    if (json_is_null(json_object_get(options, "backing")) ||
        (qb_opt_get_str(options, "backing") &&
         !*qb_opt_get_str(options, "backing"))) {
        flags |= BDRV_O_NO_BACKING;
        json_object_del(options, "backing");
    }

    if (bdrv_take_generic_options(options, &flags, &dz, &force_share,
                                  errp) < 0) {
        goto fail_opts;
    }
    node_name = qb_opt_take_str(options, "node-name");

    drvname = qb_opt_take_str(options, "driver");
    if (drvname) {
        drv = bdrv_find_format(drvname);
        if (!drv) {
            error_setg(errp, "Unknown driver '%s'", drvname);
            goto fail_opts;
        }
        /* An explicit driver decides whether this is a protocol node. */
        if (bdrv_drv_is_protocol(drv)) {
            flags |= BDRV_O_PROTOCOL;
        } else {
            flags &= ~BDRV_O_PROTOCOL;
        }
    }
    protocol = flags & BDRV_O_PROTOCOL;

    if (protocol && filename) {
        if (!qb_opt_has(options, "filename")) {
            json_object_set_new(options, "filename", json_string(filename));
            parse_filename = true;
        } else {
            error_setg(errp, "Can't specify 'file' and 'filename' options at "
                       "the same time");
            goto fail_opts;
        }
    }
    if (protocol && !drv) {
        const char *fn = qb_opt_get_str(options, "filename");
        if (!fn) {
            error_setg(errp, "Must specify either driver or file");
            goto fail_opts;
        }
        drv = bdrv_find_protocol(fn, errp);
        if (!drv) {
            goto fail_opts;
        }
    }
    if (drv && protocol && parse_filename && drv->bdrv_parse_filename) {
        g_autofree char *fn = qb_opt_take_str(options, "filename");
        drv->bdrv_parse_filename(fn, options, &local_err);
        if (local_err) {
            error_propagate(errp, local_err);
            goto fail_opts;
        }
    }

    bs = bdrv_new_node();
    bs->open_flags = flags;
    bs->read_only = !(flags & BDRV_O_RDWR);
    bs->force_share = force_share;
    bs->detect_zeroes = dz;

    /* A format node: open its file first (for probing); the driver then
     * finds it again by node name. */
    if (!protocol) {
        file_bs = open_child_bs(filename, options, "file", bs, flags,
                                BDRV_CHILD_IMAGE, true, &local_err);
        if (local_err) {
            error_propagate(errp, local_err);
            goto fail_node;
        }
        if (file_bs) {
            json_object_set_new(options, "file",
                                json_string(file_bs->node_name));
        }
        if (!drv) {
            if (!file_bs) {
                error_setg(errp, "Must specify either driver or file");
                goto fail_node;
            }
            drv = probe_format(file_bs, filename, errp);
            if (!drv) {
                goto fail_node;
            }
            bs->probed = true;
        }
    }

    if (bdrv_assign_node_name(bs, node_name, errp) < 0) {
        goto fail_node;
    }
    if (protocol && qb_opt_get_str(options, "filename")) {
        g_strlcpy(bs->filename, qb_opt_get_str(options, "filename"),
                  sizeof(bs->filename));
    }
    bs->explicit_options = explicit;
    explicit = NULL;
    bs->options = json_deep_copy(options);
    json_object_set_new(bs->options, "driver", json_string(drv->format_name));
    json_object_set_new(bs->options, "node-name",
                        json_string(bs->node_name));

    ret = open_driver(bs, drv, options, flags, errp);
    if (ret < 0) {
        goto fail_node;
    }
    bdrv_unref(file_bs);
    file_bs = NULL;
    bdrv_refresh_filename(bs);

    if (!(bs->open_flags & BDRV_O_NO_BACKING)) {
        ret = bdrv_open_backing_file(bs, options, "backing", errp);
        if (ret < 0) {
            goto fail_node;
        }
    } else {
        json_object_del(options, "backing");
    }

    bdrv_refresh_filename(bs);
    if (json_object_size(options)) {
        json_t *flat = qb_json_flatten(options);
        g_autofree char *key =
            g_strdup(json_object_iter_key(json_object_iter(flat)));
        json_decref(flat);
        if (bdrv_drv_is_protocol(drv)) {
            error_setg(errp, "Block protocol '%s' doesn't support the option "
                       "'%s'", drv->format_name, key);
        } else {
            error_setg(errp, "Block format '%s' does not support the option "
                       "'%s'", drv->format_name, key);
        }
        goto fail_node;
    }
    json_decref(options);
    return bs;

fail_node:
    bdrv_unref(file_bs);
    bdrv_unref(bs);
fail_opts:
    json_decref(explicit);
    json_decref(options);
    return NULL;
}

BlockDriverState *bdrv_open(const char *filename, const char *reference,
                            json_t *options, int flags, Error **errp)
{
    return open_inherit(filename, reference, options, flags, errp);
}

int bdrv_apply_auto_read_only(BlockDriverState *bs, const char *errmsg,
                              Error **errp)
{
    if (!(bs->open_flags & BDRV_O_RDWR)) {
        return 0;
    }
    if (!(bs->open_flags & BDRV_O_AUTO_RDONLY) || bs->parents) {
        error_setg(errp, "%s", errmsg ? errmsg : "Image is read-only");
        return -EACCES;
    }
    bs->read_only = true;
    bs->open_flags &= ~BDRV_O_RDWR;
    return 0;
}

