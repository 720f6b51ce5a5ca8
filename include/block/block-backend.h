/*
 * BlockBackend: the handle a user of the block layer (a tool, an export, a
 * job, an embedder) holds on the root of a node graph.  It owns a "root"
 * edge with its own permissions, and offers synchronous and asynchronous
 * I/O in guest terms (byte offsets, any alignment; io.c handles RMW).
 */
#ifndef BLOCK_BLOCK_BACKEND_H
#define BLOCK_BLOCK_BACKEND_H

#include "block/block.h"

/* Create a backend with the given root-edge permissions. */
BlockBackend *blk_new(AioContext *ctx, uint64_t perm, uint64_t shared_perm);
/*
 * Open filename/options (see bdrv_open) and attach as root.  perms derive
 * from flags as QEMU 7.2: unless BDRV_O_NO_IO, CONSISTENT_READ and (with
 * BDRV_O_RDWR) WRITE; RESIZE with BDRV_O_RESIZE.  Shared is ALL (tools keep
 * the node private; format drivers unshare what they must, e.g. qcow2 on
 * its file), or CONSISTENT_READ|WRITE_UNCHANGED with BDRV_O_NO_SHARE.
 */
BlockBackend *blk_new_open(const char *filename, const char *reference,
                           json_t *options, int flags, Error **errp);
int blk_insert_bs(BlockBackend *blk, BlockDriverState *bs, Error **errp);
void blk_remove_bs(BlockBackend *blk);
void blk_ref(BlockBackend *blk);
void blk_unref(BlockBackend *blk);

BlockDriverState *blk_bs(BlockBackend *blk);
BdrvChild *blk_root(BlockBackend *blk);
/* Name shown in error messages ("block device 'NAME'"); "" = unnamed. */
bool blk_set_name(BlockBackend *blk, const char *name, Error **errp);
const char *blk_name(const BlockBackend *blk);
BlockBackend *blk_by_name(const char *name);
BlockBackend *blk_next(BlockBackend *blk);   /* iterate all backends */

int blk_set_perm(BlockBackend *blk, uint64_t perm, uint64_t shared_perm,
                 Error **errp);
void blk_get_perm(BlockBackend *blk, uint64_t *perm, uint64_t *shared_perm);
/* Allow I/O beyond EOF? (qemu-io does not; internal users may.) */
void blk_set_allow_write_beyond_eof(BlockBackend *blk, bool allow);
void blk_set_enable_write_cache(BlockBackend *blk, bool wce);
bool blk_enable_write_cache(BlockBackend *blk);
AioContext *blk_get_aio_context(BlockBackend *blk);

int64_t blk_getlength(BlockBackend *blk);
bool blk_is_read_only(BlockBackend *blk);
bool blk_is_writable(BlockBackend *blk);
bool blk_is_inserted(BlockBackend *blk);
uint32_t blk_get_request_alignment(BlockBackend *blk);

/* Coroutine I/O. */
int coroutine_fn blk_co_preadv(BlockBackend *blk, int64_t offset,
                               int64_t bytes, IOVector *qiov,
                               BdrvRequestFlags flags);
int coroutine_fn blk_co_pwritev(BlockBackend *blk, int64_t offset,
                                int64_t bytes, IOVector *qiov,
                                BdrvRequestFlags flags);
int coroutine_fn blk_co_pwrite_zeroes(BlockBackend *blk, int64_t offset,
                                      int64_t bytes, BdrvRequestFlags flags);
int coroutine_fn blk_co_pdiscard(BlockBackend *blk, int64_t offset,
                                 int64_t bytes);
int coroutine_fn blk_co_flush(BlockBackend *blk);
int coroutine_fn blk_co_truncate(BlockBackend *blk, int64_t offset, bool exact,
                                 PreallocMode prealloc, BdrvRequestFlags flags,
                                 Error **errp);
int coroutine_fn blk_co_block_status(BlockBackend *blk, int64_t offset,
                                     int64_t bytes, int64_t *pnum,
                                     int64_t *map, BlockDriverState **file);

/* Synchronous I/O (polls the AioContext; not from coroutines' hot paths). */
int blk_pread(BlockBackend *blk, int64_t offset, int64_t bytes, void *buf,
              BdrvRequestFlags flags);
int blk_pwrite(BlockBackend *blk, int64_t offset, int64_t bytes,
               const void *buf, BdrvRequestFlags flags);
int blk_preadv(BlockBackend *blk, int64_t offset, int64_t bytes,
               IOVector *qiov, BdrvRequestFlags flags);
int blk_pwritev(BlockBackend *blk, int64_t offset, int64_t bytes,
                IOVector *qiov, BdrvRequestFlags flags);
int blk_pwrite_zeroes(BlockBackend *blk, int64_t offset, int64_t bytes,
                      BdrvRequestFlags flags);
int blk_pwrite_compressed(BlockBackend *blk, int64_t offset, int64_t bytes,
                          const void *buf);
int blk_pdiscard(BlockBackend *blk, int64_t offset, int64_t bytes);
int blk_flush(BlockBackend *blk);
int blk_truncate(BlockBackend *blk, int64_t offset, bool exact,
                 PreallocMode prealloc, BdrvRequestFlags flags, Error **errp);
int blk_block_status(BlockBackend *blk, int64_t offset, int64_t bytes,
                     int64_t *pnum, int64_t *map, BlockDriverState **file);

/* Asynchronous I/O with a completion callback, run in the backend's
 * AioContext (never before the submitting call returns). */
typedef void BlockCompletionFunc(void *opaque, int ret);
typedef struct BlockAIOCB BlockAIOCB;
BlockAIOCB *blk_aio_preadv(BlockBackend *blk, int64_t offset, IOVector *qiov,
                           BdrvRequestFlags flags, BlockCompletionFunc *cb,
                           void *opaque);
BlockAIOCB *blk_aio_pwritev(BlockBackend *blk, int64_t offset, IOVector *qiov,
                            BdrvRequestFlags flags, BlockCompletionFunc *cb,
                            void *opaque);
BlockAIOCB *blk_aio_pwrite_zeroes(BlockBackend *blk, int64_t offset,
                                  int64_t bytes, BdrvRequestFlags flags,
                                  BlockCompletionFunc *cb, void *opaque);
BlockAIOCB *blk_aio_pdiscard(BlockBackend *blk, int64_t offset, int64_t bytes,
                             BlockCompletionFunc *cb, void *opaque);
BlockAIOCB *blk_aio_flush(BlockBackend *blk, BlockCompletionFunc *cb,
                          void *opaque);
/* Opt in to QEMU's completion style: a blk_aio_* callback of a request
 * that completes after the submitting call returned runs directly from the
 * request's coroutine (default: from a BH).  Saves an event-loop round per
 * request, so a callback that issues the next request batches it with the
 * others; only for callbacks that never wait (no synchronous I/O, drain,
 * aio_poll or close).  Used by qblock-img bench. */
void blk_set_aio_direct_completion(BlockBackend *blk, bool on);
/* Wait until every request of blk has completed. */
void blk_drain(BlockBackend *blk);
void blk_drain_all(void);

/* Allocate a buffer suitable for I/O on blk (aligned for O_DIRECT). */
void *blk_blockalign(BlockBackend *blk, size_t size);

#endif
