/*
 * Internal interface of block/graph.c and block/open.c for the rest of the
 * block core and for drivers: graph primitives open.c builds on, generic
 * option parsing shared by open and reopen, and the auto-read-only fallback
 * protocol drivers apply when a read-write open is refused.
 */
#ifndef BLOCK_GRAPH_H
#define BLOCK_GRAPH_H

#include "block/block-int.h"
#include "util/transaction.h"

/* --- graph.c --- */
/* A new, empty node (refcnt 1, in the node list, no name yet). */
BlockDriverState *bdrv_new_node(void);
/* Validate and set a user node name, or generate "#blockNNNNN" (NULL). */
int bdrv_assign_node_name(BlockDriverState *bs, const char *node_name,
                          Error **errp);
/* "proto:..." (a colon before any slash)? */
bool bdrv_path_has_protocol(const char *path);
/* The protocol driver for filename ("file" for plain paths). */
BlockDriver *bdrv_find_protocol(const char *filename, Error **errp);
bool bdrv_drv_is_protocol(BlockDriver *drv);
/* Highest bdrv_probe score over all drivers, NULL if nobody scores > 0. */
BlockDriver *bdrv_probe_best(const uint8_t *buf, int buf_size,
                             const char *filename);
/* Unlink c, loosen its old child's permissions, free c, drop its ref. */
void bdrv_detach_and_unref_child(BdrvChild *c);
/* Role of a backing child under bs (COW, or FILTERED|PRIMARY for filters). */
BdrvChildRole bdrv_backing_role(BlockDriverState *bs);

/* --- open.c --- */
/*
 * Consume the options every node understands (read-only, auto-read-only,
 * cache.direct, cache.no-flush, discard, detect-zeroes, force-share) from
 * opts and fold them into *flags / *detect_zeroes / *force_share, which
 * hold the defaults on entry.  0 or -EINVAL with QEMU's error texts.
 */
int bdrv_take_generic_options(json_t *opts, int *flags,
                              BlockdevDetectZeroesOptions *detect_zeroes,
                              bool *force_share, Error **errp);

/*
 * For a protocol driver whose read-write open failed: with auto-read-only
 * the node silently becomes read-only (returns 0); otherwise sets errmsg
 * (or "Image is read-only") and returns -EACCES.
 */
int bdrv_apply_auto_read_only(BlockDriverState *bs, const char *errmsg,
                              Error **errp);

/* The flags a child with role inherits from a parent with parent_flags
 * (child_opts: the child's own options, which may override). */
int bdrv_child_inherited_flags(BlockDriverState *parent, int parent_flags,
                               BdrvChildRole role, json_t *child_opts);

/*
 * Reopen's graph change: point parent's file or backing edge at new_bs
 * (NULL: detach the backing edge) without touching permissions; checks
 * frozen edges and cycles.  Recorded in tran (abort restores the edge,
 * references move when tran is cleaned).
 */
int bdrv_set_file_or_backing_noperm(BlockDriverState *parent,
                                    BlockDriverState *new_bs,
                                    bool is_backing, Transaction *tran,
                                    Error **errp);

#endif
