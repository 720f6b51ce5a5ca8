/*
 * Persistent dirty bitmaps of qcow2 images (bitmap.c): the interface the
 * rest of the qcow2 driver (open, close, reopen, truncate, check, info,
 * amend) and the unit tests use.  On-disk layout and behaviour follow
 * shared/docs/qcow2-bitmaps.md; docs/bitmaps.md describes them for users.
 */
#ifndef QCOW2_BITMAP_H
#define QCOW2_BITMAP_H

#include "qcow2.h"
#include "block/dirty-bitmap.h"

#define QCOW2_MAX_BITMAPS              65535
#define QCOW2_MAX_BITMAP_DIR_SIZE      (65535 * 1024)
#define QCOW2_BME_MAX_TABLE_SIZE       0x8000000
#define QCOW2_BME_MAX_PHYS_SIZE        0x20000000
#define QCOW2_BME_MIN_GRANULARITY_BITS 9
#define QCOW2_BME_MAX_GRANULARITY_BITS 31
#define QCOW2_BME_MAX_NAME_SIZE        1023
#define QCOW2_BME_FLAG_IN_USE          (1u << 0)
#define QCOW2_BME_FLAG_AUTO            (1u << 1)
#define QCOW2_BME_RESERVED_FLAGS       (~3u)
#define QCOW2_BME_TYPE_DIRTY_TRACKING  1
#define QCOW2_BME_HEADER_SIZE          24
#define QCOW2_BMT_OFFSET_MASK          UINT64_C(0x00fffffffffffe00)
#define QCOW2_BMT_RESERVED_MASK        UINT64_C(0xff000000000001fe)
#define QCOW2_BMT_ALL_ONES             UINT64_C(1)

/* One bitmap directory entry, host order. */
typedef struct Qcow2BitmapEntry {
    uint64_t table_offset;
    uint32_t table_size;
    uint32_t flags;
    uint8_t type;
    uint8_t granularity_bits;
    char *name;                    /* NUL-terminated copy of the name */
    /* Work fields of a store: the RAM bitmap written for this entry and
     * the table it replaces (freed once the new directory is on disk). */
    BdrvDirtyBitmap *bitmap;
    uint64_t old_table_offset;
    uint32_t old_table_size;
    bool keep_table;               /* RAM bits == stored bits: no rewrite */
} Qcow2BitmapEntry;

/*
 * Parse and validate a directory buffer of size bytes that the header says
 * holds nb entries, for an image with the given cluster size and virtual
 * size.  Returns an array of Qcow2BitmapEntry* (owning) or NULL with
 * QEMU's error text.  Pure: used by open, check, info and the unit tests.
 */
GPtrArray *qcow2_bitmap_dir_parse(const uint8_t *buf, uint64_t size,
                                  uint32_t nb, int cluster_bits,
                                  uint64_t virtual_size, Error **errp);
/* Serialise entries to a directory buffer (zero padded); *size gets its
 * length. */
uint8_t *qcow2_bitmap_dir_build(GPtrArray *entries, uint64_t *size);
/* Bytes one directory entry takes. */
uint64_t qcow2_bitmap_dir_entry_size(size_t name_len);
/* Does the entry satisfy QEMU's constraints (qcow2-bitmaps.md §2.3)? */
bool qcow2_bitmap_entry_valid(const Qcow2BitmapEntry *e, int cluster_bits,
                              uint64_t virtual_size);
/* Is a bitmap table entry well formed (§3)? */
bool qcow2_bitmap_table_entry_valid(uint64_t entry, int cluster_size);
/* Table entries a bitmap of this size and granularity needs (§4). */
uint64_t qcow2_bitmap_table_size_for(uint64_t virtual_size,
                                     uint64_t granularity, int cluster_size);

/* Open: warn about / drop a stale extension, load every bitmap and set
 * in_use on disk when writable (§5.1).  0 or -errno with errp set. */
int qcow2_load_dirty_bitmaps(BlockDriverState *bs, bool writable,
                             Error **errp);
/* Close / inactivation: store, then (release) drop persistent bitmaps
 * from RAM, or (!release) mark them readonly (inactivation, reopen ro). */
int qcow2_store_persistent_dirty_bitmaps(BlockDriverState *bs, bool release,
                                         Error **errp);
/* Read the data of every bitmap still pending (rule 3: inactivation of
 * a read-only node; any reopen); failures make bitmaps inconsistent,
 * reported. */
void qcow2_load_pending_bitmaps(BlockDriverState *bs);
/* Reopen rw -> ro, prepare stage: store and mark readonly (§5.4). */
int qcow2_reopen_bitmaps_ro(BlockDriverState *bs, Error **errp);
/* Reopen ro -> rw (and activation), after commit: in_use on disk, bitmaps
 * writable again (§5.5). */
int qcow2_reopen_bitmaps_rw(BlockDriverState *bs, Error **errp);
/* bitmap-resync.c: store all bitmaps now, keep them in use (H23). */
int coroutine_fn qcow2_co_resync_persistent_dirty_bitmaps(BlockDriverState *bs,
                                                          Error **errp);
/* May the image be resized?  (§5.6) */
int qcow2_truncate_bitmaps_check(BlockDriverState *bs, Error **errp);
/* Driver hooks for block-dirty-bitmap-add persistent=true / -remove. */
bool qcow2_co_can_store_new_dirty_bitmap(BlockDriverState *bs,
                                         const char *name,
                                         uint32_t granularity, Error **errp);
int qcow2_co_remove_persistent_dirty_bitmap(BlockDriverState *bs,
                                            const char *name, Error **errp);
/* qemu-img info's "bitmaps" list from the on-disk directory (§8), NULL if
 * the image has none. */
json_t *qcow2_get_bitmap_info_list(BlockDriverState *bs, Error **errp);
/* Does the image hold persistent bitmaps (on disk or waiting in RAM)?
 * amend uses it to refuse compat=0.10. */
bool qcow2_has_bitmaps(BlockDriverState *bs);

#endif
