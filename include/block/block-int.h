/*
 * Driver-facing block core definitions: the node (BlockDriverState), the
 * edge (BdrvChild), the driver vtable (BlockDriver), request limits and the
 * reopen state.  Only the block core and drivers include this.
 *
 * Invariants (see docs/design/graph-and-perms.md):
 *  1. Every BdrvChild is in exactly one parent's list (bs->children if the
 *     parent is a node) and in its child's bs->parents list.
 *  2. A node's refcnt counts its parent edges plus explicit bdrv_ref()s
 *     (monitor ownership, tool handles).  A node with refcnt 0 is closed.
 *  3. For every pair of distinct edges A, B into one node:
 *     B->perm is a subset of A->shared_perm.
 *  4. A frozen edge (frozen > 0) is never detached or re-pointed.
 *  5. Drivers see only requests that io.c has checked: in range, aligned to
 *     bs->bl.request_alignment, at most bl.max_transfer long, and permitted
 *     by the edge they arrived on.
 */
#ifndef BLOCK_BLOCK_INT_H
#define BLOCK_BLOCK_INT_H

#include "block/block.h"
#include "util/coroutine.h"

typedef struct BdrvCheckResult BdrvCheckResult;  /* defined by check code */
struct QBSnapshotInfo;                           /* block/snapshot.h */

/* Result of BlockDriver.bdrv_measure (QAPI BlockMeasureInfo). */
typedef struct BlockMeasureInfo {
    uint64_t required;         /* bytes needed for the data given */
    uint64_t fully_allocated;  /* bytes if every cluster were allocated */
    bool has_bitmaps;          /* format can store persistent bitmaps */
    uint64_t bitmaps;          /* bytes for the input's persistent bitmaps */
} BlockMeasureInfo;

/*
 * One "-o" creation option of a driver (qemu-img create / amend): its name,
 * type (validated by the tool before the driver sees it, with QEMU's
 * texts), help line for "-o help", and default printed on the
 * "Formatting ..." line (NULL: printed only when given).  Arrays end with a
 * {NULL} entry; the order is the order of the "Formatting" line.
 */
typedef enum CreateOptType {
    CREATE_OPT_STRING,
    CREATE_OPT_BOOL,
    CREATE_OPT_NUMBER,
    CREATE_OPT_SIZE,
} CreateOptType;
typedef struct CreateOptDesc {
    const char *name;
    CreateOptType type;
    const char *help;
    const char *def_value_str;
} CreateOptDesc;

typedef struct BlockLimits {
    /* All in bytes; 0 means "no limit / no preference". */
    uint32_t request_alignment;   /* >= 1; power of two */
    int64_t max_transfer;         /* multiple of request_alignment */
    int64_t opt_transfer;
    int64_t pdiscard_alignment;
    int64_t max_pdiscard;
    int64_t pwrite_zeroes_alignment;
    int64_t max_pwrite_zeroes;
    size_t min_mem_alignment;     /* buffer alignment required (O_DIRECT) */
    size_t opt_mem_alignment;
    int max_iov;
} BlockLimits;

/* A request in flight on a node, for serialisation and drain. */
typedef struct BdrvTrackedRequest {
    BlockDriverState *bs;
    int64_t offset, bytes;
    int type;                     /* BDRV_TRACKED_* */
    bool serialising;
    int64_t overlap_offset, overlap_bytes;
    Coroutine *co;
    CoQueue wait_queue;           /* requests waiting on this one */
    struct BdrvTrackedRequest *waiting_for;
    GList link;                   /* node in bs->tracked_requests (io.c) */
} BdrvTrackedRequest;
enum { BDRV_TRACKED_READ, BDRV_TRACKED_WRITE, BDRV_TRACKED_DISCARD,
       BDRV_TRACKED_TRUNCATE };

/* What a parent must provide for an edge it owns. */
struct BdrvChildClass {
    /* true for BlockBackend roots: the parent follows its child when the
     * child is replaced in the graph (bdrv_replace_node). */
    bool stay_at_node;
    bool parent_is_bds;
    /* "node 'NAME'", "block device 'NAME'" or "an unnamed block device". */
    char *(*get_parent_desc)(BdrvChild *c);
    /* Name used as parent id in x-debug-query-block-graph (may be NULL). */
    const char *(*get_name)(BdrvChild *c);
    void (*drained_begin)(BdrvChild *c);
    void (*drained_end)(BdrvChild *c);
    /* While drained: true if the parent still has requests in flight on
     * this edge (drain polls until every parent returns false). */
    bool (*drained_poll)(BdrvChild *c);
    /* Child's size changed. */
    void (*resize)(BdrvChild *c);
    void (*attach)(BdrvChild *c);
    void (*detach)(BdrvChild *c);
    /* May the child's AioContext change? (unused while single-context) */
    AioContext *(*get_parent_aio_context)(BdrvChild *c);
};
extern const BdrvChildClass child_of_bds;

struct BdrvChild {
    BlockDriverState *bs;         /* the child node */
    char *name;                   /* "file", "backing", "root", ... */
    const BdrvChildClass *klass;
    BdrvChildRole role;
    void *opaque;                 /* the parent: BlockDriverState* or other */
    uint64_t perm;                /* permissions the parent takes */
    uint64_t shared_perm;         /* permissions it lets others take */
    int frozen;                   /* > 0: edge may not change */
    bool quiesced_parent;
};

/* Reopen state for one node (block/reopen.c). */
typedef struct BDRVReopenState {
    BlockDriverState *bs;
    int flags;                    /* new open flags */
    bool read_only;               /* new read-only */
    BlockdevDetectZeroesOptions detect_zeroes;
    json_t *options;              /* remaining (driver) options; driver
                                   * deletes the keys it handles */
    json_t *explicit_options;
    BlockDriverState *new_file_bs, *new_backing_bs;
    bool replace_file, replace_backing;
    uint64_t perm, shared_perm;
    void *opaque;                 /* driver's private reopen state */
} BDRVReopenState;

/*
 * Debug events (names and order as QEMU's BlkdebugEvent), raised by format
 * drivers on a child with BLKDBG_EVENT(child, BLKDBG_EV_L2_LOAD); a blkdebug
 * node anywhere below turns them into rule triggers (block/drivers/blkdebug.c).
 */
typedef enum BlkdbgEvent {
    BLKDBG_EV_L1_UPDATE, BLKDBG_EV_L1_GROW_ALLOC_TABLE,
    BLKDBG_EV_L1_GROW_WRITE_TABLE, BLKDBG_EV_L1_GROW_ACTIVATE_TABLE,
    BLKDBG_EV_L2_LOAD, BLKDBG_EV_L2_UPDATE, BLKDBG_EV_L2_UPDATE_COMPRESSED,
    BLKDBG_EV_L2_ALLOC_COW_READ, BLKDBG_EV_L2_ALLOC_WRITE,
    BLKDBG_EV_READ_AIO, BLKDBG_EV_READ_BACKING_AIO, BLKDBG_EV_READ_COMPRESSED,
    BLKDBG_EV_WRITE_AIO, BLKDBG_EV_WRITE_COMPRESSED,
    BLKDBG_EV_VMSTATE_LOAD, BLKDBG_EV_VMSTATE_SAVE,
    BLKDBG_EV_COW_READ, BLKDBG_EV_COW_WRITE,
    BLKDBG_EV_REFTABLE_LOAD, BLKDBG_EV_REFTABLE_GROW, BLKDBG_EV_REFTABLE_UPDATE,
    BLKDBG_EV_REFBLOCK_LOAD, BLKDBG_EV_REFBLOCK_UPDATE,
    BLKDBG_EV_REFBLOCK_UPDATE_PART, BLKDBG_EV_REFBLOCK_ALLOC,
    BLKDBG_EV_REFBLOCK_ALLOC_HOOKUP, BLKDBG_EV_REFBLOCK_ALLOC_WRITE,
    BLKDBG_EV_REFBLOCK_ALLOC_WRITE_BLOCKS, BLKDBG_EV_REFBLOCK_ALLOC_WRITE_TABLE,
    BLKDBG_EV_REFBLOCK_ALLOC_SWITCH_TABLE,
    BLKDBG_EV_CLUSTER_ALLOC, BLKDBG_EV_CLUSTER_ALLOC_BYTES,
    BLKDBG_EV_CLUSTER_FREE, BLKDBG_EV_FLUSH_TO_OS, BLKDBG_EV_FLUSH_TO_DISK,
    BLKDBG_EV_PWRITEV_RMW_HEAD, BLKDBG_EV_PWRITEV_RMW_AFTER_HEAD,
    BLKDBG_EV_PWRITEV_RMW_TAIL, BLKDBG_EV_PWRITEV_RMW_AFTER_TAIL,
    BLKDBG_EV_PWRITEV, BLKDBG_EV_PWRITEV_ZERO, BLKDBG_EV_PWRITEV_DONE,
    BLKDBG_EV_EMPTY_IMAGE_PREPARE, BLKDBG_EV_L1_SHRINK_WRITE_TABLE,
    BLKDBG_EV_L1_SHRINK_FREE_L2_CLUSTERS, BLKDBG_EV_COR_WRITE,
    BLKDBG_EV_CLUSTER_ALLOC_SPACE, BLKDBG_EV_NONE,
    BLKDBG_EV__MAX,
} BlkdbgEvent;
/* Event names ("l1_update", ...), indexed by BlkdbgEvent (block/io.c). */
extern const char *const bdrv_debug_event_names[BLKDBG_EV__MAX];
/* Deliver event to bs's driver if it handles events (no-op otherwise). */
void bdrv_debug_event(BlockDriverState *bs, BlkdbgEvent event);
#define BLKDBG_EVENT(child, evt) do {                 \
        if ((child) && (child)->bs) {                 \
            bdrv_debug_event((child)->bs, (evt));     \
        }                                             \
    } while (0)

struct BlockDriver {
    const char *format_name;
    size_t instance_size;          /* size of bs->opaque */
    bool is_format;                /* sits on a protocol child */
    bool is_filter;                /* presents exactly its child's data */
    bool supports_backing;
    const char *protocol_name;     /* "file", "nbd", ...: opens URLs/paths */

    /* Probe: score 0..100 that buf (first 2 KiB of the file) is this format. */
    int (*bdrv_probe)(const uint8_t *buf, int buf_size, const char *filename);
    /* Turn a filename (path or URL) into options for a protocol driver. */
    void (*bdrv_parse_filename)(const char *filename, json_t *options,
                                Error **errp);

    /*
     * Open.  options holds this node's driver options; the driver deletes
     * every key it consumes (leftovers are reported as unsupported by the
     * core).  Children are opened with bdrv_open_child() from within.
     */
    int (*bdrv_open)(BlockDriverState *bs, json_t *options, int flags,
                     Error **errp);
    void (*bdrv_close)(BlockDriverState *bs);

    int (*bdrv_reopen_prepare)(BDRVReopenState *state,
                               BlockReopenQueue *queue, Error **errp);
    void (*bdrv_reopen_commit)(BDRVReopenState *state);
    void (*bdrv_reopen_commit_post)(BDRVReopenState *state);
    void (*bdrv_reopen_abort)(BDRVReopenState *state);

    /* Data path: called only by block/io.c with checked arguments. */
    int coroutine_fn (*bdrv_co_preadv)(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, IOVector *qiov,
                                       BdrvRequestFlags flags);
    int coroutine_fn (*bdrv_co_pwritev)(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes, IOVector *qiov,
                                        BdrvRequestFlags flags);
    int coroutine_fn (*bdrv_co_pwritev_compressed)(BlockDriverState *bs,
                                                   int64_t offset,
                                                   int64_t bytes,
                                                   IOVector *qiov);
    /* Return -ENOTSUP to make io.c fall back to writing a zero buffer. */
    int coroutine_fn (*bdrv_co_pwrite_zeroes)(BlockDriverState *bs,
                                              int64_t offset, int64_t bytes,
                                              BdrvRequestFlags flags);
    int coroutine_fn (*bdrv_co_pdiscard)(BlockDriverState *bs, int64_t offset,
                                         int64_t bytes);
    /* Flush driver caches down to the OS / the OS cache to stable storage. */
    int coroutine_fn (*bdrv_co_flush_to_os)(BlockDriverState *bs);
    int coroutine_fn (*bdrv_co_flush_to_disk)(BlockDriverState *bs);
    /* Whole flush for filters/protocols that do not split it. */
    int coroutine_fn (*bdrv_co_flush)(BlockDriverState *bs);
    /*
     * Block status of [offset, offset+bytes), aligned.  Return BDRV_BLOCK_*
     * bits; set *pnum (> 0); set *map and *file with OFFSET_VALID.  want_zero
     * false means the caller only needs allocation, not precise zero info.
     */
    int coroutine_fn (*bdrv_co_block_status)(BlockDriverState *bs,
                                             bool want_zero, int64_t offset,
                                             int64_t bytes, int64_t *pnum,
                                             int64_t *map,
                                             BlockDriverState **file);
    int coroutine_fn (*bdrv_co_truncate)(BlockDriverState *bs, int64_t offset,
                                         bool exact, PreallocMode prealloc,
                                         BdrvRequestFlags flags, Error **errp);
    int64_t (*bdrv_getlength)(BlockDriverState *bs);
    int64_t (*bdrv_get_allocated_file_size)(BlockDriverState *bs);
    int (*bdrv_get_info)(BlockDriverState *bs, BlockDriverInfo *bdi);
    json_t *(*bdrv_get_specific_info)(BlockDriverState *bs, Error **errp);
    /* Fill bs->bl (called after open and after child changes). */
    void (*bdrv_refresh_limits)(BlockDriverState *bs, Error **errp);

    /*
     * Permissions.  bdrv_child_perm: what this node takes on child c (role)
     * given its own cumulative parent perm/shared.  The check/set/abort
     * triple lets a protocol driver mirror permissions into file locks:
     * check may fail (prepare), set commits, abort rolls back.
     */
    void (*bdrv_child_perm)(BlockDriverState *bs, BdrvChild *c,
                            BdrvChildRole role, BlockReopenQueue *reopen_queue,
                            uint64_t parent_perm, uint64_t parent_shared,
                            uint64_t *nperm, uint64_t *nshared);
    int (*bdrv_check_perm)(BlockDriverState *bs, uint64_t perm,
                           uint64_t shared, Error **errp);
    void (*bdrv_set_perm)(BlockDriverState *bs, uint64_t perm, uint64_t shared);
    void (*bdrv_abort_perm_update)(BlockDriverState *bs);

    /* Image creation: options in blockdev-create form for this driver
     * (e.g. {"driver":"qcow2","file":<node>,"size":N,...}). */
    int coroutine_fn (*bdrv_co_create)(json_t *create_options, Error **errp);
    /* qemu-img create: filename + -o options (flat {"size":..,"cluster_size":..}). */
    int coroutine_fn (*bdrv_co_create_opts)(BlockDriver *drv,
                                            const char *filename,
                                            json_t *opts, Error **errp);
    /* Names and help of -o options, NULL-terminated (for -o help). */
    const struct CreateOptDesc *create_opts;

    /* Inactivation (bitmaps stored, caches flushed) / activation. */
    int (*bdrv_inactivate)(BlockDriverState *bs);
    int coroutine_fn (*bdrv_co_invalidate_cache)(BlockDriverState *bs,
                                                 Error **errp);

    /* Check/repair (qemu-img check); struct defined by the qcow2 work. */
    int coroutine_fn (*bdrv_co_check)(BlockDriverState *bs,
                                      BdrvCheckResult *result,
                                      int fix);

    /*
     * qemu-img measure: the host size an image of this format would need,
     * made either from opts (flat create options as for
     * bdrv_co_create_opts, "size" an integer) when in_bs is NULL, or from
     * the data of in_bs (opts still give cluster_size etc.).  0 or -errno
     * with errp set.  Drivers without it: "does not support size
     * measurement" (qblock-img computes raw's itself).
     */
    int (*bdrv_measure)(json_t *opts, BlockDriverState *in_bs,
                        struct BlockMeasureInfo *info, Error **errp);
    /* qemu-img commit: drop every allocation of this layer so that it
     * reads through to its backing file again (qcow2: full discard of all
     * clusters).  -ENOTSUP if not possible (then the data stays). */
    int (*bdrv_make_empty)(BlockDriverState *bs);
    /* qemu-img rebase / amend: record a new backing file name and format
     * in the image header (NULLs: no backing file).  Only the header
     * changes; the caller keeps bs->backing_file/backing_format in sync. */
    int (*bdrv_change_backing_file)(BlockDriverState *bs,
                                    const char *backing_file,
                                    const char *backing_fmt);
    /* qemu-img convert/measure -l: make a read-only node show the snapshot
     * matching id and/or name (NULL: don't care) instead of the current
     * state, until it is closed.  0, or -errno with errp set (-ENOENT and
     * "Can't find snapshot" when there is none). */
    int (*bdrv_snapshot_load_tmp)(BlockDriverState *bs, const char *id,
                                  const char *name, Error **errp);
    /* Options accepted by bdrv_amend_options (below), NULL-terminated:
     * qemu-img amend checks -o against them and lists them for -o help. */
    const struct CreateOptDesc *amend_opts;

    /* Internal snapshots, amend, measure, dirty bitmap persistence:
     * added by the modules that need them. */
    /* Internal snapshots (block/snapshot.h wraps them; called in a
     * coroutine).  create: 0 or -errno.  goto/delete set errp on failure. */
    int (*bdrv_snapshot_create)(BlockDriverState *bs,
                                struct QBSnapshotInfo *sn_info);
    int (*bdrv_snapshot_goto)(BlockDriverState *bs, const char *id_or_name,
                              Error **errp);
    int (*bdrv_snapshot_delete)(BlockDriverState *bs, const char *id,
                                const char *name, Error **errp);
    /* Returns the number of snapshots (*psn g_new'd) or -errno. */
    int (*bdrv_snapshot_list)(BlockDriverState *bs,
                              struct QBSnapshotInfo **psn);
    /*
     * qemu-img amend: change creation options (flat object of strings as
     * parsed from -o) of an open image.  status_cb (may be NULL) reports
     * progress.  0 or -errno with errp set.
     */
    int (*bdrv_amend_options)(BlockDriverState *bs, json_t *opts,
                              void (*status_cb)(BlockDriverState *bs,
                                                int64_t done, int64_t total,
                                                void *opaque),
                              void *cb_opaque, bool force, Error **errp);

    /* Persistent dirty bitmaps (qcow2). */
    bool (*bdrv_co_can_store_new_dirty_bitmap)(BlockDriverState *bs,
                                               const char *name,
                                               uint32_t granularity,
                                               Error **errp);
    int (*bdrv_co_remove_persistent_dirty_bitmap)(BlockDriverState *bs,
                                                  const char *name,
                                                  Error **errp);
    /* Write every storable persistent bitmap to the image now and keep
     * them loaded, writable and marked in use on disk (used when an
     * aborted transaction gives back a removed bitmap).  0 or -errno. */
    int (*bdrv_co_resync_persistent_dirty_bitmaps)(BlockDriverState *bs,
                                                   Error **errp);

    /* Options accepted at runtime, for reopen: options not listed here
     * cannot change ("Cannot change the option 'X'"). */
    const char *const *mutable_opts;
    /* Options that make a node's identity (kept in its filename json). */
    const char *const *strong_runtime_opts;
    /* Optional: name the node from its state.  Called by
     * bdrv_refresh_filename() after the children were refreshed, with
     * bs->exact_filename cleared; the driver writes a plain filename that
     * reopens the node (nbd: its URI) or leaves it empty, and the core
     * then names the node "json:{...}".  Without it the core derives the
     * name (a leaf keeps its filename unless strong options were given;
     * a format node takes its protocol child's). */
    void (*bdrv_refresh_filename)(BlockDriverState *bs);

    uint64_t supported_write_flags;   /* BDRV_REQ_FUA, ... */
    uint64_t supported_zero_flags;    /* BDRV_REQ_MAY_UNMAP, NO_FALLBACK, FUA */
    uint64_t supported_truncate_flags;

    /* Debugging (blkdebug): events and qemu-io's break/resume commands. */
    void (*bdrv_debug_event)(BlockDriverState *bs, BlkdbgEvent event);
    int (*bdrv_debug_breakpoint)(BlockDriverState *bs, const char *event,
                                 const char *tag);
    int (*bdrv_debug_remove_breakpoint)(BlockDriverState *bs,
                                        const char *tag);
    int (*bdrv_debug_resume)(BlockDriverState *bs, const char *tag);
    bool (*bdrv_debug_is_suspended)(BlockDriverState *bs, const char *tag);
};

struct BlockDriverState {
    BlockDriver *drv;
    void *opaque;                 /* driver state, instance_size bytes */

    char node_name[32];           /* user-given or auto "#blockN" */
    bool auto_node_name;          /* node_name was generated */
    char filename[4096];          /* what the node opens (may be json:{}) */
    char exact_filename[4096];
    char backing_file[4096];      /* as recorded in the image */
    char backing_format[16];
    char auto_backing_file[4096];

    json_t *options;              /* full options the node was opened with */
    json_t *explicit_options;     /* options the user gave explicitly */
    int open_flags;               /* BDRV_O_* */
    bool read_only;
    bool force_share;
    bool monitor_owned;           /* added by blockdev-add */
    bool implicit;                /* created by the core (not user-visible) */
    bool probed;                  /* format was probed, not given (raw warns
                                   * and guards block 0, as QEMU) */
    BlockdevDetectZeroesOptions detect_zeroes;
    bool encrypted;

    int64_t total_sectors;        /* cached size, in sectors (may be stale
                                   * for protocol nodes; use getlength) */
    BlockLimits bl;
    uint64_t supported_write_flags;
    uint64_t supported_zero_flags;
    uint64_t supported_truncate_flags;

    GList *children;              /* BdrvChild* of which we are the parent */
    GList *parents;               /* BdrvChild* pointing at us */
    BdrvChild *file;              /* primary child, if any */
    BdrvChild *backing;           /* COW child, if any */
    int refcnt;

    AioContext *aio_context;

    /* Request tracking (block/io.c). */
    CoMutex reqs_lock;
    GList *tracked_requests;      /* BdrvTrackedRequest* */
    unsigned int in_flight;       /* requests + pending completions */
    int quiesce_counter;          /* > 0 while drained */
    unsigned int serialising_in_flight;
    uint64_t write_gen, flushed_gen;
    CoMutex flush_lock;

    /* Dirty bitmaps (block/dirty-bitmap.c): newest first. */
    GList *dirty_bitmaps;         /* BdrvDirtyBitmap* */

    /* Write-threshold / notifiers for jobs: later. */
    int64_t write_threshold_offset;

    /* Set when the node id is in the all-nodes list. */
    bool in_graph;
};

/* Open a child from the options object parent_options[child_name]: either a
 * reference string (node-name) or an options object.  Removes the key.
 * Returns NULL (without error) when the key is absent and allow_none. */
BdrvChild *bdrv_open_child(const char *filename, json_t *parent_options,
                           const char *child_name, BlockDriverState *parent,
                           const BdrvChildClass *child_class,
                           BdrvChildRole child_role, bool allow_none,
                           Error **errp);
/* Open the backing file named in bs->backing_file (or options "backing"). */
int bdrv_open_backing_file(BlockDriverState *bs, json_t *parent_options,
                           const char *bdref_key, Error **errp);

/*
 * Attach child_bs under a parent that is not a node (a BlockBackend, a job):
 * opaque is the parent, perm/shared_perm are the edge's permissions.
 * Consumes the caller's reference to child_bs (also on failure).  The new
 * edge's permissions are checked against the other parents of child_bs and
 * the subtree is updated in one transaction; on failure nothing changes.
 */
BdrvChild *bdrv_root_attach_child(BlockDriverState *child_bs,
                                  const char *child_name,
                                  const BdrvChildClass *child_class,
                                  BdrvChildRole child_role,
                                  uint64_t perm, uint64_t shared_perm,
                                  void *opaque, Error **errp);
/* Detach a root edge and drop its reference to the child. */
void bdrv_root_unref_child(BdrvChild *child);
/* Move every parent edge of from to to (as QEMU's bdrv_replace_node):
 * refused if an edge is frozen or would create a cycle; permission-checked
 * in one transaction. */
int bdrv_replace_node(BlockDriverState *from, BlockDriverState *to,
                      Error **errp);

/* Default child-permission rules (block/perm.c), usable as bdrv_child_perm. */
void bdrv_default_perms(BlockDriverState *bs, BdrvChild *c, BdrvChildRole role,
                        BlockReopenQueue *reopen_queue,
                        uint64_t perm, uint64_t shared,
                        uint64_t *nperm, uint64_t *nshared);
void bdrv_filter_default_perms(BlockDriverState *bs, BdrvChild *c,
                               BdrvChildRole role,
                               BlockReopenQueue *reopen_queue,
                               uint64_t perm, uint64_t shared,
                               uint64_t *nperm, uint64_t *nshared);

/* In-flight accounting for work that is not a tracked request. */
void bdrv_inc_in_flight(BlockDriverState *bs);
void bdrv_dec_in_flight(BlockDriverState *bs);
/* Re-read limits after open/graph change. */
void bdrv_refresh_limits(BlockDriverState *bs, Transaction *tran, Error **errp);
/* Whether bs is being reopened read-only in reopen_queue (or is read-only). */
bool bdrv_is_writable_after_reopen(BlockDriverState *bs,
                                   BlockReopenQueue *reopen_queue);
/* Change bs->total_sectors and notify parents (resize callbacks). */
void bdrv_set_size(BlockDriverState *bs, int64_t bytes);

/* Called once by libqblock / tools / tests: registers file, raw, null-co,
 * null-aio, blkdebug, qcow2, ... (block/drivers/register.c). */
void bdrv_register_builtin_drivers(void);

#endif
