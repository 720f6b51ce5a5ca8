/*
 * The block core's API for its users (BlockBackend, tools, QMP handlers,
 * jobs): opening and closing node graphs, node lookup, permissions, I/O
 * entry points, drain.  Driver-facing definitions are in block/block-int.h.
 *
 * Options: a node is opened from a jansson object (json_t) in blockdev-add
 * form: {"driver": "qcow2", "node-name": "q0", "file": {...} | "nodename"}.
 * Values may be typed (from QMP / JSON) or strings (from dotted keys on a
 * command line); block/options.c reads both (see block/options.h).
 */
#ifndef BLOCK_BLOCK_H
#define BLOCK_BLOCK_H

#include "util/common.h"
#include "util/error.h"
#include "util/iov.h"
#include "util/aio.h"
#include <jansson.h>
#include "qapi/qapi-types.h"

typedef struct BlockDriver BlockDriver;
typedef struct BlockDriverState BlockDriverState;
typedef struct BdrvChild BdrvChild;
typedef struct BdrvChildClass BdrvChildClass;
typedef struct BlockBackend BlockBackend;
typedef struct BlockReopenQueue BlockReopenQueue;
typedef struct BdrvDirtyBitmap BdrvDirtyBitmap;
typedef struct Transaction Transaction;

#define BDRV_SECTOR_BITS 9
#define BDRV_SECTOR_SIZE (1ULL << BDRV_SECTOR_BITS)
/* Largest request the core accepts (as QEMU: INT64_MAX rounded to 2^30... we
 * keep it simple: requests are limited to this many bytes). */
#define BDRV_REQUEST_MAX_BYTES  (INT32_MAX & ~(int64_t)(BDRV_SECTOR_SIZE - 1))
#define BDRV_MAX_LENGTH         (INT64_MAX & ~(int64_t)(BDRV_SECTOR_SIZE - 1))

/* Open flags (bs->open_flags). */
enum {
    BDRV_O_NO_SHARE    = 0x0001, /* blk_new_open: share only CR|WRITE_UNCHANGED */
    BDRV_O_RDWR        = 0x0002,
    BDRV_O_RESIZE      = 0x0004, /* caller wants to resize (qemu-img resize) */
    BDRV_O_SNAPSHOT    = 0x0008,
    BDRV_O_TEMPORARY   = 0x0010,
    BDRV_O_NOCACHE     = 0x0020, /* O_DIRECT (cache.direct=on) */
    BDRV_O_NATIVE_AIO  = 0x0080, /* aio=native */
    BDRV_O_NO_BACKING  = 0x0100,
    BDRV_O_NO_FLUSH    = 0x0200, /* cache.no-flush=on */
    BDRV_O_COPY_ON_READ= 0x0400,
    BDRV_O_INACTIVE    = 0x0800,
    BDRV_O_CHECK       = 0x1000, /* opened for qemu-img check */
    BDRV_O_PROTOCOL    = 0x8000, /* filename names a protocol node directly */
    BDRV_O_NO_IO       = 0x10000,/* no I/O will be done (e.g. qemu-img info) */
    BDRV_O_AUTO_RDONLY = 0x20000,
    BDRV_O_IO_URING    = 0x40000,/* aio=io_uring */
    BDRV_O_UNMAP       = 0x4000, /* discard=unmap */
    BDRV_O_CACHE_MASK  = BDRV_O_NOCACHE | BDRV_O_NO_FLUSH,
};

/* Request flags. */
typedef enum {
    BDRV_REQ_COPY_ON_READ   = 0x1,
    BDRV_REQ_ZERO_WRITE     = 0x2,
    BDRV_REQ_MAY_UNMAP      = 0x4,  /* write-zeroes may punch holes */
    BDRV_REQ_FUA            = 0x10, /* force unit access */
    BDRV_REQ_WRITE_COMPRESSED = 0x20,
    BDRV_REQ_WRITE_UNCHANGED= 0x40, /* write does not change visible data */
    BDRV_REQ_SERIALISING    = 0x80,
    BDRV_REQ_NO_FALLBACK    = 0x100,/* write-zeroes must be fast or -ENOTSUP */
    BDRV_REQ_PREFETCH       = 0x200,
    BDRV_REQ_NO_WAIT        = 0x400,
    BDRV_REQ_MASK           = 0x7ff,
} BdrvRequestFlags;

/* Permissions: the value is also the lock byte offset from 100 / 200. */
enum {
    BLK_PERM_CONSISTENT_READ = 0x01,
    BLK_PERM_WRITE           = 0x02,
    BLK_PERM_WRITE_UNCHANGED = 0x04,
    BLK_PERM_RESIZE          = 0x08,
    BLK_PERM_ALL             = 0x0f,
    DEFAULT_PERM_PASSTHROUGH = BLK_PERM_CONSISTENT_READ | BLK_PERM_WRITE |
                               BLK_PERM_WRITE_UNCHANGED | BLK_PERM_RESIZE,
    DEFAULT_PERM_UNCHANGED   = BLK_PERM_ALL & ~DEFAULT_PERM_PASSTHROUGH,
};
#define BLK_PERM_COUNT 4

/* Child roles (bit values as QEMU's BdrvChildRole). */
typedef enum BdrvChildRole {
    BDRV_CHILD_DATA     = 0x01,
    BDRV_CHILD_METADATA = 0x02,
    BDRV_CHILD_FILTERED = 0x04,
    BDRV_CHILD_COW      = 0x08,
    BDRV_CHILD_PRIMARY  = 0x10,
    BDRV_CHILD_IMAGE    = BDRV_CHILD_DATA | BDRV_CHILD_METADATA |
                          BDRV_CHILD_PRIMARY,
} BdrvChildRole;

/* Block status bits (returned by bdrv_co_block_status). */
enum {
    BDRV_BLOCK_DATA          = 0x01, /* data is read from this layer's file */
    BDRV_BLOCK_ZERO          = 0x02, /* reads as zero */
    BDRV_BLOCK_OFFSET_VALID  = 0x04, /* *map is valid */
    BDRV_BLOCK_RAW           = 0x08, /* (driver-internal) ask *file */
    BDRV_BLOCK_ALLOCATED     = 0x10, /* allocated in this layer */
    BDRV_BLOCK_EOF           = 0x20, /* range ends at end of file */
    BDRV_BLOCK_RECURSE       = 0x40, /* (driver-internal) ask *file for zero */
    BDRV_BLOCK_COMPRESSED    = 0x80,
};

/* PreallocMode and BlockdevDetectZeroesOptions come from the QAPI schema
 * (qapi/block-core.json) so the core and QMP share one definition. */

/* --- life cycle (block/graph.c) --- */

/* Register a driver (drivers call this from bdrv_register_builtin_drivers). */
void bdrv_register(BlockDriver *drv);
BlockDriver *bdrv_find_format(const char *format_name);
/* Iterate over registered drivers. */
void bdrv_iterate_format(void (*fn)(void *opaque, const char *name),
                         void *opaque, bool read_only);

/*
 * Open a node graph.  options is consumed (reference stolen).  flags are
 * BDRV_O_*; options override them (read-only, cache.*, discard, ...).
 * filename may be NULL; if given, it is either a "json:{...}" string, a
 * protocol URL, or a plain path whose format is probed unless "driver" is set
 * in options (qemu-img style).  Returns a node with one reference owned by
 * the caller, or NULL with *errp set.
 */
BlockDriverState *bdrv_open(const char *filename, const char *reference,
                            json_t *options, int flags, Error **errp);
void bdrv_ref(BlockDriverState *bs);
/* Drop a reference; the last one closes the node (and its children edges). */
void bdrv_unref(BlockDriverState *bs);
/* Close every node (at exit): bitmaps are stored, caches flushed. */
void bdrv_close_all(void);

/* Lookup. */
BlockDriverState *bdrv_find_node(const char *node_name);
/* Node by node-name or by the name of a BlockBackend above it. */
BlockDriverState *bdrv_lookup_bs(const char *device, const char *node_name,
                                 Error **errp);
/* All named nodes, newest first (for query-named-block-nodes). */
GList *bdrv_named_nodes_list(void);
/* Next node in the list of all nodes (NULL starts). */
BlockDriverState *bdrv_next_all_nodes(BlockDriverState *bs);
bool bdrv_node_name_is_valid(const char *name);

const char *bdrv_get_node_name(const BlockDriverState *bs);
const char *bdrv_get_format_name(const BlockDriverState *bs);
bool bdrv_is_read_only(const BlockDriverState *bs);
bool bdrv_is_writable(const BlockDriverState *bs);
bool bdrv_is_inactive(const BlockDriverState *bs);
/* Size in bytes, or -errno. */
int64_t bdrv_getlength(BlockDriverState *bs);
int64_t bdrv_get_allocated_file_size(BlockDriverState *bs);

/* --- edges (block/graph.c) --- */
/* Attach child_bs under parent_bs.  Consumes the caller's reference to
 * child_bs, also on failure (as QEMU).  Permissions are computed from the
 * parent's driver and checked in one transaction; failure changes nothing. */
BdrvChild *bdrv_attach_child(BlockDriverState *parent_bs,
                             BlockDriverState *child_bs,
                             const char *child_name,
                             const BdrvChildClass *child_class,
                             BdrvChildRole child_role, Error **errp);
/* Detach and drop the child reference. */
void bdrv_unref_child(BlockDriverState *parent, BdrvChild *child);
/* Point child at new_bs (permission-checked, refuses frozen edges). */
int bdrv_replace_child(BdrvChild *child, BlockDriverState *new_bs,
                       Error **errp);
int bdrv_set_backing_hd(BlockDriverState *bs, BlockDriverState *backing_hd,
                        Error **errp);
/* Frozen edges: while frozen > 0 the edge can't be detached or replaced. */
int bdrv_freeze_child(BdrvChild *child, Error **errp);
void bdrv_unfreeze_child(BdrvChild *child);
BlockDriverState *bdrv_filter_or_cow_bs(BlockDriverState *bs);
BlockDriverState *bdrv_backing_chain_next(BlockDriverState *bs);

/* --- permissions (block/perm.c) --- */
/* Names: "consistent read" etc. for error texts; QAPI names with dashes. */
char *bdrv_perm_names(uint64_t perm);
const char *bdrv_perm_qapi_name(int bit_index);
void bdrv_get_cumulative_perm(BlockDriverState *bs, uint64_t *perm,
                              uint64_t *shared);
/* Change one edge's perms, recomputing the subtree transactionally. */
int bdrv_child_try_set_perm(BdrvChild *c, uint64_t perm, uint64_t shared,
                            Error **errp);
/* Recompute perms of bs and its subtree (after flag changes). */
int bdrv_refresh_perms(BlockDriverState *bs, Transaction *tran, Error **errp);

/* --- I/O (block/io.c); all coroutine_fn, return 0 or -errno --- */
int coroutine_fn bdrv_co_preadv(BdrvChild *child, int64_t offset,
                                int64_t bytes, IOVector *qiov,
                                BdrvRequestFlags flags);
int coroutine_fn bdrv_co_pwritev(BdrvChild *child, int64_t offset,
                                 int64_t bytes, IOVector *qiov,
                                 BdrvRequestFlags flags);
int coroutine_fn bdrv_co_pread(BdrvChild *child, int64_t offset,
                               int64_t bytes, void *buf,
                               BdrvRequestFlags flags);
int coroutine_fn bdrv_co_pwrite(BdrvChild *child, int64_t offset,
                                int64_t bytes, const void *buf,
                                BdrvRequestFlags flags);
int coroutine_fn bdrv_co_pwrite_sync(BdrvChild *child, int64_t offset,
                                     int64_t bytes, const void *buf,
                                     BdrvRequestFlags flags);
int coroutine_fn bdrv_co_pwrite_zeroes(BdrvChild *child, int64_t offset,
                                       int64_t bytes, BdrvRequestFlags flags);
int coroutine_fn bdrv_co_pdiscard(BdrvChild *child, int64_t offset,
                                  int64_t bytes);
int coroutine_fn bdrv_co_flush(BlockDriverState *bs);
int coroutine_fn bdrv_co_truncate(BdrvChild *child, int64_t offset,
                                  bool exact, PreallocMode prealloc,
                                  BdrvRequestFlags flags, Error **errp);
/*
 * Status of [offset, offset+bytes): returns BDRV_BLOCK_* bits or -errno; *pnum
 * is the length of the run with the same status (>0 unless offset == EOF).
 * *map / *file describe where the data is when OFFSET_VALID.
 */
int coroutine_fn bdrv_co_block_status(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, int64_t *pnum,
                                      int64_t *map, BlockDriverState **file);
/* Same, down the backing chain until base (exclusive); *depth is the number
 * of layers walked to find allocation (1 = bs itself, 0 = unallocated). */
int coroutine_fn bdrv_co_block_status_above(BlockDriverState *bs,
                                            BlockDriverState *base,
                                            int64_t offset, int64_t bytes,
                                            int64_t *pnum, int64_t *map,
                                            BlockDriverState **file,
                                            int *depth);
int coroutine_fn bdrv_co_is_allocated(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, int64_t *pnum);

/* Synchronous wrappers (usable outside coroutine context). */
int bdrv_pread(BdrvChild *child, int64_t offset, int64_t bytes, void *buf,
               BdrvRequestFlags flags);
int bdrv_pwrite(BdrvChild *child, int64_t offset, int64_t bytes,
                const void *buf, BdrvRequestFlags flags);
int bdrv_pwrite_sync(BdrvChild *child, int64_t offset, int64_t bytes,
                     const void *buf, BdrvRequestFlags flags);
int bdrv_flush(BlockDriverState *bs);
int bdrv_truncate(BdrvChild *child, int64_t offset, bool exact,
                  PreallocMode prealloc, BdrvRequestFlags flags, Error **errp);
int bdrv_block_status(BlockDriverState *bs, int64_t offset, int64_t bytes,
                      int64_t *pnum, int64_t *map, BlockDriverState **file);

/* Drain: stop new requests from parents and wait for in-flight ones. */
void bdrv_drained_begin(BlockDriverState *bs);
void bdrv_drained_end(BlockDriverState *bs);
void bdrv_drain_all_begin(void);
void bdrv_drain_all_end(void);
void bdrv_drain_all(void);
/* Flush every node (at exit). */
int bdrv_flush_all(void);

/* qemu-io's break / remove_break / resume / wait_break: forwarded down the
 * file/filtered children to the first driver implementing them (blkdebug).
 * Return 0 or -errno (-ENOTSUP when no node below handles them). */
int bdrv_debug_breakpoint(BlockDriverState *bs, const char *event,
                          const char *tag);
int bdrv_debug_remove_breakpoint(BlockDriverState *bs, const char *tag);
int bdrv_debug_resume(BlockDriverState *bs, const char *tag);
bool bdrv_debug_is_suspended(BlockDriverState *bs, const char *tag);

/* --- misc --- */
typedef struct BlockDriverInfo {
    int cluster_size;       /* 0 if no clusters */
    int64_t vm_state_offset;
    bool is_dirty;
} BlockDriverInfo;
int bdrv_get_info(BlockDriverState *bs, BlockDriverInfo *bdi);
/* Format-specific info for qemu-img info / query: {"type":..,"data":..} or NULL. */
json_t *bdrv_get_specific_info(BlockDriverState *bs, Error **errp);
void bdrv_refresh_filename(BlockDriverState *bs);
/* Make bs inactive / active (migration-like; bitmaps stored/loaded). */
int bdrv_inactivate(BlockDriverState *bs, Error **errp);
int bdrv_activate(BlockDriverState *bs, Error **errp);

#endif
