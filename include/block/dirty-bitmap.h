/*
 * Dirty bitmaps on nodes (block/dirty-bitmap.c).
 *
 * A BdrvDirtyBitmap is an HBitmap plus the state QMP and jobs see: name,
 * enabled (recording), persistent, busy, readonly, inconsistent, skip-store,
 * and an optional successor.  Bitmaps of a node are kept newest first (the
 * order query-named-block-nodes shows).
 *
 * Invariants:
 *  1. Names are unique per node (anonymous bitmaps, name NULL, are internal).
 *  2. An inconsistent bitmap is disabled and records nothing.
 *  3. A bitmap with a successor is busy and disabled; the successor records
 *     in its place (recording == successor enabled).
 *  4. bdrv_set_dirty() marks every enabled bitmap of the node before the
 *     write it describes completes (io.c calls it).
 *  5. Lazy loading: a bitmap may carry a loader for its stored bits (a
 *     persistent bitmap whose data a driver has not read yet).  Its
 *     contents are then "stored bits OR the bits in RAM"; it records from
 *     the first moment.  Every function below that reads bits or clears
 *     any (count, get, iteration, sha256, merge, clear, reset, truncate,
 *     the HBitmap getter, abdicate) loads first; only setting bits
 *     (marking, reclaiming a successor's bits) skips it, since OR
 *     commutes.  So no caller can observe the difference -- except that a
 *     load that fails makes the bitmap inconsistent (see
 *     bdrv_dirty_bitmap_load).
 */
#ifndef BLOCK_DIRTY_BITMAP_H
#define BLOCK_DIRTY_BITMAP_H

#include "block/block.h"
#include "util/hbitmap.h"

/* Checks for bdrv_dirty_bitmap_check(). */
enum {
    BDRV_BITMAP_BUSY = 1,
    BDRV_BITMAP_RO = 2,
    BDRV_BITMAP_INCONSISTENT = 4,
    BDRV_BITMAP_DEFAULT = BDRV_BITMAP_BUSY | BDRV_BITMAP_RO |
                          BDRV_BITMAP_INCONSISTENT,
    BDRV_BITMAP_ALLOW_RO = BDRV_BITMAP_BUSY | BDRV_BITMAP_INCONSISTENT,
};

#define BDRV_BITMAP_MAX_NAME_SIZE 1023

BdrvDirtyBitmap *bdrv_create_dirty_bitmap(BlockDriverState *bs,
                                          uint32_t granularity,
                                          const char *name, Error **errp);
void bdrv_release_dirty_bitmap(BdrvDirtyBitmap *bitmap);
/* Release every bitmap of bs (at close). */
void bdrv_release_all_dirty_bitmaps(BlockDriverState *bs);
BdrvDirtyBitmap *bdrv_find_dirty_bitmap(BlockDriverState *bs,
                                        const char *name);
/* Iterate: first / next in newest-first order. */
BdrvDirtyBitmap *bdrv_dirty_bitmap_first(BlockDriverState *bs);
BdrvDirtyBitmap *bdrv_dirty_bitmap_next(BdrvDirtyBitmap *bitmap);
/* Default granularity: clamp(cluster size, 4 KiB, 64 KiB), else 64 KiB. */
uint32_t bdrv_get_default_bitmap_granularity(BlockDriverState *bs);

/*
 * Lazy loading (invariant 5).  load() fills hb (empty, the bitmap's size
 * and granularity) with the stored bits; 0 or -errno with errp set.  The
 * stored bits must stay readable until the loader is dropped: the driver
 * keeps what they live in (qcow2: the bitmap table and its clusters)
 * until then.  free() releases opaque.
 */
typedef struct BdrvDirtyBitmapLoader {
    int (*load)(void *opaque, HBitmap *hb, Error **errp);
    void (*free)(void *opaque);
} BdrvDirtyBitmapLoader;

/* Attach a loader (the bitmap must have none). */
void bdrv_dirty_bitmap_set_loader(BdrvDirtyBitmap *bitmap,
                                  const BdrvDirtyBitmapLoader *ops,
                                  void *opaque);
/* opaque of the pending loader if it is ops's, else NULL (loaded). */
void *bdrv_dirty_bitmap_pending_load(const BdrvDirtyBitmap *bitmap,
                                     const BdrvDirtyBitmapLoader *ops);
/* Stored bits still pending (whoever the loader is). */
bool bdrv_dirty_bitmap_has_pending_load(const BdrvDirtyBitmap *bitmap);
/* Stored bits pending and nothing set in RAM since: the contents are
 * exactly the stored bits (a driver may keep them where they are). */
bool bdrv_dirty_bitmap_stored_unchanged(const BdrvDirtyBitmap *bitmap);
/*
 * Load the stored bits now (a no-op when none are pending).  If they
 * cannot be read, the bitmap becomes inconsistent (invariant 2: disabled,
 * empty, refused by every user but remove, never stored, so the driver
 * keeps its in-use flag on disk), the loader is dropped, and -errno is
 * returned with errp set (the loader's text names the bitmap).  Functions
 * without errp that load report such a failure with error_report();
 * bdrv_dirty_bitmap_sha256() fails with it.
 */
int bdrv_dirty_bitmap_load(BdrvDirtyBitmap *bitmap, Error **errp);
/* Load every pending bitmap of bs; the first error is returned. */
int bdrv_dirty_bitmap_load_all(BlockDriverState *bs, Error **errp);

/* busy / readonly / inconsistent checks with QEMU's error texts. */
int bdrv_dirty_bitmap_check(const BdrvDirtyBitmap *bitmap, unsigned flags,
                            Error **errp);

BlockDriverState *bdrv_dirty_bitmap_bs(const BdrvDirtyBitmap *bitmap);
const char *bdrv_dirty_bitmap_name(const BdrvDirtyBitmap *bitmap);
uint32_t bdrv_dirty_bitmap_granularity(const BdrvDirtyBitmap *bitmap);
int64_t bdrv_dirty_bitmap_size(const BdrvDirtyBitmap *bitmap);
uint64_t bdrv_get_dirty_count(const BdrvDirtyBitmap *bitmap);
bool bdrv_dirty_bitmap_get(const BdrvDirtyBitmap *bitmap, int64_t offset);
HBitmap *bdrv_dirty_bitmap_hbitmap(BdrvDirtyBitmap *bitmap);

void bdrv_enable_dirty_bitmap(BdrvDirtyBitmap *bitmap);
void bdrv_disable_dirty_bitmap(BdrvDirtyBitmap *bitmap);
bool bdrv_dirty_bitmap_enabled(const BdrvDirtyBitmap *bitmap);
/* Records writes, itself or through its successor (QMP "recording"). */
bool bdrv_dirty_bitmap_recording(const BdrvDirtyBitmap *bitmap);

void bdrv_dirty_bitmap_set_persistent(BdrvDirtyBitmap *bitmap, bool persistent);
bool bdrv_dirty_bitmap_get_persistent(const BdrvDirtyBitmap *bitmap);
void bdrv_dirty_bitmap_set_busy(BdrvDirtyBitmap *bitmap, bool busy);
bool bdrv_dirty_bitmap_busy(const BdrvDirtyBitmap *bitmap);
void bdrv_dirty_bitmap_set_readonly(BdrvDirtyBitmap *bitmap, bool readonly);
bool bdrv_dirty_bitmap_readonly(const BdrvDirtyBitmap *bitmap);
/* Marks inconsistent: also disables it (invariant 2).  Irreversible except
 * through bdrv_dirty_bitmap_repair_inconsistent(). */
void bdrv_dirty_bitmap_set_inconsistent(BdrvDirtyBitmap *bitmap);
bool bdrv_dirty_bitmap_inconsistent(const BdrvDirtyBitmap *bitmap);
/* qblock extension: make an inconsistent bitmap usable again by marking it
 * entirely dirty (so the next incremental backup is a full one). */
void bdrv_dirty_bitmap_repair_inconsistent(BdrvDirtyBitmap *bitmap);
void bdrv_dirty_bitmap_skip_store(BdrvDirtyBitmap *bitmap, bool skip);
bool bdrv_dirty_bitmap_get_skip_store(const BdrvDirtyBitmap *bitmap);
/* Any bitmap of bs that is readonly?  Writes and discards then fail with
 * EPERM (io.c checks). */
bool bdrv_has_readonly_bitmaps(BlockDriverState *bs);
bool bdrv_has_persistent_bitmaps(BlockDriverState *bs);

/* Marking.  bdrv_set_dirty: every enabled bitmap of bs. */
void bdrv_set_dirty(BlockDriverState *bs, int64_t offset, int64_t bytes);
void bdrv_set_dirty_bitmap(BdrvDirtyBitmap *bitmap, int64_t offset,
                           int64_t bytes);
void bdrv_reset_dirty_bitmap(BdrvDirtyBitmap *bitmap, int64_t offset,
                             int64_t bytes);
/* Clear all bits; if backup is non-NULL it receives the old contents for
 * bdrv_restore_dirty_bitmap (transaction abort) or hbitmap_free (commit). */
void bdrv_clear_dirty_bitmap(BdrvDirtyBitmap *bitmap, HBitmap **backup);
void bdrv_restore_dirty_bitmap(BdrvDirtyBitmap *bitmap, HBitmap *backup);
/* dest |= src, sizes must match (QEMU's text otherwise).  backup as above. */
bool bdrv_merge_dirty_bitmap(BdrvDirtyBitmap *dest, const BdrvDirtyBitmap *src,
                             HBitmap **backup, Error **errp);
/* Resize every bitmap of bs (after the node was resized). */
void bdrv_dirty_bitmap_truncate(BlockDriverState *bs, int64_t bytes);

int64_t bdrv_dirty_bitmap_next_dirty(BdrvDirtyBitmap *bitmap, int64_t offset,
                                     int64_t bytes);
int64_t bdrv_dirty_bitmap_next_clean(BdrvDirtyBitmap *bitmap, int64_t offset,
                                     int64_t bytes);
bool bdrv_dirty_bitmap_next_dirty_area(BdrvDirtyBitmap *bitmap,
                                       int64_t start, int64_t end,
                                       int64_t max_dirty_count,
                                       int64_t *dirty_start,
                                       int64_t *dirty_count);
char *bdrv_dirty_bitmap_sha256(const BdrvDirtyBitmap *bitmap, Error **errp);

/*
 * Successors (for jobs): create_successor freezes the bitmap (busy,
 * disabled) and attaches an anonymous successor that records new writes in
 * its place.  When the job succeeds, abdicate: the successor takes the
 * bitmap's place and contents are dropped (bits already consumed; pending
 * stored bits are loaded first, and if that fails the successor is
 * inconsistent too).  When it
 * fails, reclaim: the successor's bits are merged back and the bitmap
 * records again.  Both return the bitmap now in place, NULL on error.
 */
int bdrv_dirty_bitmap_create_successor(BdrvDirtyBitmap *bitmap, Error **errp);
BdrvDirtyBitmap *bdrv_dirty_bitmap_abdicate(BdrvDirtyBitmap *bitmap,
                                            Error **errp);
BdrvDirtyBitmap *bdrv_reclaim_dirty_bitmap(BdrvDirtyBitmap *bitmap,
                                           Error **errp);
bool bdrv_dirty_bitmap_has_successor(const BdrvDirtyBitmap *bitmap);

/* query-named-block-nodes "dirty-bitmaps": array of BlockDirtyInfo objects
 * (member insertion order = schema order), newest first; NULL if none. */
json_t *bdrv_query_dirty_bitmaps(BlockDriverState *bs);

#endif
