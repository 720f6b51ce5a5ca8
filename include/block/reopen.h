/*
 * Reopen: change the options and flags of open nodes as one transaction
 * (block/reopen.c).  A queue holds (node, new options) entries; reopening the
 * queue prepares every entry, recomputes permissions under the new flags,
 * then commits all entries or aborts all of them.
 */
#ifndef BLOCK_REOPEN_H
#define BLOCK_REOPEN_H

#include "block/block-int.h"

typedef struct BlockReopenQueueEntry {
    BDRVReopenState state;        /* state.flags: the new flags (computed
                                   * when queued, so children can inherit) */
    bool keep_old_opts;
    int base_flags;               /* flags before this node's own options */
    bool backing_missing;         /* QMP reopen without a "backing" key */
    bool prepared;                /* driver prepare succeeded */
    bool new_force_share;
    json_t *new_options;          /* bs->options after commit */
} BlockReopenQueueEntry;

/* The queue: entries in the order they were added. */
struct BlockReopenQueue {
    GList *entries;               /* BlockReopenQueueEntry* */
};

/*
 * Add bs with new options (reference stolen; NULL = none) to queue (NULL
 * creates a queue, which is returned).  keep_old_opts: merge the node's
 * current explicit options under the new ones (internal reopens such as a
 * read-only toggle); false gives QMP blockdev-reopen semantics where omitted
 * options revert to their defaults.  Children whose options are not given
 * are queued too so inherited flags (read-only, cache) follow the parent.
 * Adding a node twice merges the options into the existing entry.
 */
BlockReopenQueue *bdrv_reopen_queue(BlockReopenQueue *queue,
                                    BlockDriverState *bs, json_t *options,
                                    bool keep_old_opts);
/* Reopen everything in the queue (consumed, also on error): 0 or -errno. */
int bdrv_reopen_multiple(BlockReopenQueue *queue, Error **errp);
/* Drop a queue without reopening. */
void bdrv_reopen_queue_free(BlockReopenQueue *queue);
/* Convenience: reopen bs (and its implicit children) read-only / read-write,
 * keeping its other options. */
int bdrv_reopen_set_read_only(BlockDriverState *bs, bool read_only,
                              Error **errp);
/* Reopen one node with options (QMP semantics when !keep_old_opts). */
int bdrv_reopen(BlockDriverState *bs, json_t *opts, bool keep_old_opts,
                Error **errp);

/* The entry for bs, or NULL (queue may be NULL). */
BDRVReopenState *bdrv_reopen_queue_find(BlockReopenQueue *queue,
                                        BlockDriverState *bs);
/* Open flags bs will have after the reopen in queue (queue may be NULL). */
int bdrv_reopen_get_flags(BlockReopenQueue *queue, BlockDriverState *bs);

#endif
