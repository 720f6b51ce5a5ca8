/*
 * Helpers shared by the QMP command files in block/qmp/: converting
 * between generated QAPI C types and JSON (so handlers can build replies as
 * JSON in QEMU's member order and still return the generated types), node
 * lookup with QEMU's texts, and the bitmap actions transaction.c drives.
 */
#ifndef BLOCK_QMP_INTERNAL_H
#define BLOCK_QMP_INTERNAL_H

#include "block/block-int.h"
#include "block/dirty-bitmap.h"

#include "qapi/qapi-commands.h"
#include "qapi/qapi-visit.h"
#include "qapi/json-input-visitor.h"
#include "qapi/json-output-visitor.h"
#include "util/transaction.h"

/* C value -> JSON through the output visitor (never fails for valid C). */
#define QMP_TO_JSON(type, ptr) ({                                       \
        Visitor *ov_ = json_output_visitor_new();                      \
        json_t *res_ = NULL;                                           \
        type *p_ = (ptr);                                              \
        if (visit_type_##type(ov_, NULL, &p_, &error_abort)) {         \
            visit_complete(ov_, &res_);                                \
        }                                                              \
        visit_free(ov_);                                               \
        res_;                                                          \
    })

/* JSON -> C value through the input visitor; NULL with errp on mismatch. */
#define QMP_FROM_JSON(type, json, errp) ({                              \
        Visitor *iv_ = json_input_visitor_new(json);                   \
        type *res_ = NULL;                                             \
        visit_type_##type(iv_, NULL, &res_, errp);                     \
        visit_free(iv_);                                               \
        res_;                                                          \
    })

/* Bitmap lookup: node by node-name (or device), then the bitmap by name,
 * with QEMU's texts.  *pbs receives the node when pbs is not NULL. */
BdrvDirtyBitmap *qmp_lookup_bitmap(const char *node, const char *name,
                                   BlockDriverState **pbs, Error **errp);

/*
 * Bitmap actions for `transaction` (bitmaps.c): each does its prepare
 * work now and, on success, records its commit/abort/clean in tran.  The
 * plain QMP commands are the same functions run in a transaction of one.
 */
bool qmp_bitmap_add_action(BlockDirtyBitmapAdd *a, Transaction *tran,
                           Error **errp);
bool qmp_bitmap_remove_action(BlockDirtyBitmap *a, Transaction *tran,
                              Error **errp);
bool qmp_bitmap_clear_action(BlockDirtyBitmap *a, Transaction *tran,
                             Error **errp);
bool qmp_bitmap_enable_action(BlockDirtyBitmap *a, bool enable,
                              Transaction *tran, Error **errp);
bool qmp_bitmap_merge_action(BlockDirtyBitmapMerge *a, Transaction *tran,
                             Error **errp);

/* blockdev-snapshot-internal-sync as a transaction action (snapshot.c). */
bool qmp_snapshot_internal_action(BlockdevSnapshotInternal *a,
                                  Transaction *tran, Error **errp);

/* Remove every block export and stop the NBD server (daemon exit). */
void qmp_block_exports_close_all(void);

#endif
