/*
 * Helpers shared by the format-generic qblock-img subcommands (check, map,
 * compare, convert, resize, dd, commit, rebase, amend, measure, snapshot):
 * running a piece of work in a coroutine from the tool's main thread, the
 * block-status queries those commands make, qemu-img's progress line, the
 * --output argument, creating a target image and finding a backing image
 * by name.
 */
#ifndef TOOLS_IMG_UTIL_H
#define TOOLS_IMG_UTIL_H

#include "tools/qblock-img.h"
#include "block/block-int.h"

typedef enum ImgOutputFormat {
    IMG_OFORMAT_HUMAN,
    IMG_OFORMAT_JSON,
} ImgOutputFormat;

/* --output=human|json (NULL: human).  Prints qemu-img's error and returns
 * -1 for anything else. */
int img_parse_output_format(const char *output, ImgOutputFormat *fmt);

/* Run fn(opaque) in a new coroutine and poll the main AioContext until it
 * has returned. */
void img_run_in_coroutine(CoroutineEntry *fn, void *opaque);

/* The first node below bs that is not a filter (bs itself if it is none). */
BlockDriverState *img_skip_filters(BlockDriverState *bs);

/* Synchronous bdrv_co_block_status_above (may be called outside a
 * coroutine). */
int img_block_status_above(BlockDriverState *bs, BlockDriverState *base,
                           int64_t offset, int64_t bytes, int64_t *pnum,
                           int64_t *map, BlockDriverState **file, int *depth);

/*
 * qemu-img's progress meter: "    (NN.NN/100%)\r" on stdout, printed when
 * the value moved by more than min_skip percent (and at 0 and 100), and a
 * newline at the end.  Disabled meters print nothing.
 */
void img_progress_init(bool enabled, float min_skip);
/* Advance by delta percent of max percent (max 0: delta is absolute). */
void img_progress_print(float delta, int max);
void img_progress_end(void);

/* Whether the first 512-byte sector of a and b differs (1) or not (0);
 * *pnum is how many bytes from the start, in whole sectors (the last may
 * be partial), give the same answer. */
int img_compare_buffers(const uint8_t *a, const uint8_t *b, int64_t bytes,
                        int64_t *pnum);

/*
 * Image creation for subcommands that create a target (convert, dd):
 * parse and type-check a "-o" list against the format's (and the file
 * protocol's) creation options, as qemu-img create does, and run the
 * driver's creation.  Options come back as a flat object ready for
 * bdrv_co_create_opts (sizes as integers).
 */
json_t *img_util_create_opts(BlockDriver *drv, const char *options,
                             Error **errp);
/* The same against option lists of one's choice (e.g. amend_opts). */
json_t *img_util_parse_opts(const CreateOptDesc *const *lists, int nlists,
                            const char *options, Error **errp);
int img_util_create(BlockDriver *drv, const char *filename, json_t *opts,
                    Error **errp);
/* Whether drv can create images at all (raw creates through "file"). */
bool img_util_can_create(BlockDriver *drv);

/* The node below bs in its backing chain whose image is named base (as
 * the chain records the name, or the same file), or NULL. */
BlockDriverState *img_find_backing_image(BlockDriverState *bs,
                                         const char *base);

/*
 * -l snapshot_param of convert / measure: "snapshot.id=I,snapshot.name=N"
 * (returns 1) or a bare id-or-name (returns 0, in *name).  -1 after
 * printing qemu-img's "Failed in parsing snapshot param" error.
 */
int img_parse_snapshot_param(const char *param, char **id, char **name);
/* Make the read-only bs show an internal snapshot (-l of convert and
 * measure; by_opts and the names from img_parse_snapshot_param).  0, or
 * -errno after printing qemu-img's "Failed to load snapshot: ..." error. */
int img_load_snapshot(BlockDriverState *bs, bool by_opts, const char *id,
                      const char *name);

#endif
