/*
 * The `transaction` command: run a list of actions as one unit.
 *
 * Algorithm (QEMU's): drain all I/O; prepare each action in order, stopping
 * at the first failure; if every prepare succeeded, commit all in order,
 * otherwise abort every prepared action in reverse order; then clean all.
 * The reply is the failing prepare's error.  Each action's prepare records
 * its own commit/abort/clean in the util/transaction.h list (bitmaps.c), and
 * a failing prepare changes nothing, so after a failure the state is what
 * it was before the command.
 *
 * The table below says which action kinds exist here and whether they
 * accept completion-mode=grouped (none of the bitmap actions do).
 */
#include "block/qmp/qmp-internal.h"

typedef bool ActionPrepare(TransactionAction *act, Transaction *tran,
                           Error **errp);

static bool prepare_abort(TransactionAction *act, Transaction *tran,
                          Error **errp)
{
    error_setg(errp, "Transaction aborted using Abort action");
    return false;
}

static bool prepare_bitmap_add(TransactionAction *act, Transaction *tran,
                               Error **errp)
{
    return qmp_bitmap_add_action(act->u.block_dirty_bitmap_add.data, tran,
                                 errp);
}

static bool prepare_bitmap_remove(TransactionAction *act, Transaction *tran,
                                  Error **errp)
{
    return qmp_bitmap_remove_action(act->u.block_dirty_bitmap_remove.data,
                                    tran, errp);
}

static bool prepare_bitmap_clear(TransactionAction *act, Transaction *tran,
                                 Error **errp)
{
    return qmp_bitmap_clear_action(act->u.block_dirty_bitmap_clear.data,
                                   tran, errp);
}

static bool prepare_bitmap_enable(TransactionAction *act, Transaction *tran,
                                  Error **errp)
{
    return qmp_bitmap_enable_action(act->u.block_dirty_bitmap_enable.data,
                                    true, tran, errp);
}

static bool prepare_bitmap_disable(TransactionAction *act, Transaction *tran,
                                   Error **errp)
{
    return qmp_bitmap_enable_action(act->u.block_dirty_bitmap_disable.data,
                                    false, tran, errp);
}

static bool prepare_bitmap_merge(TransactionAction *act, Transaction *tran,
                                 Error **errp)
{
    return qmp_bitmap_merge_action(act->u.block_dirty_bitmap_merge.data,
                                   tran, errp);
}

static bool prepare_snapshot_internal(TransactionAction *act,
                                      Transaction *tran, Error **errp)
{
    return qmp_snapshot_internal_action(
        act->u.blockdev_snapshot_internal_sync.data, tran, errp);
}

typedef struct ActionInfo {
    TransactionActionKind kind;
    ActionPrepare *prepare;
    bool grouped_ok;           /* accepts completion-mode=grouped */
} ActionInfo;

static const ActionInfo actions[] = {
    { TRANSACTION_ACTION_KIND_ABORT, prepare_abort, true },
    { TRANSACTION_ACTION_KIND_BLOCK_DIRTY_BITMAP_ADD, prepare_bitmap_add },
    { TRANSACTION_ACTION_KIND_BLOCK_DIRTY_BITMAP_REMOVE,
      prepare_bitmap_remove },
    { TRANSACTION_ACTION_KIND_BLOCK_DIRTY_BITMAP_CLEAR, prepare_bitmap_clear },
    { TRANSACTION_ACTION_KIND_BLOCK_DIRTY_BITMAP_ENABLE,
      prepare_bitmap_enable },
    { TRANSACTION_ACTION_KIND_BLOCK_DIRTY_BITMAP_DISABLE,
      prepare_bitmap_disable },
    { TRANSACTION_ACTION_KIND_BLOCK_DIRTY_BITMAP_MERGE, prepare_bitmap_merge },
    { TRANSACTION_ACTION_KIND_BLOCKDEV_SNAPSHOT_INTERNAL_SYNC,
      prepare_snapshot_internal },
};

static const ActionInfo *find_action(TransactionActionKind kind)
{
    for (size_t i = 0; i < G_N_ELEMENTS(actions); i++) {
        if (actions[i].kind == kind) {
            return &actions[i];
        }
    }
    return NULL;
}

void qmp_transaction(TransactionActionList *list, bool has_properties,
                     TransactionProperties *props, Error **errp)
{
    bool grouped = has_properties && props->has_completion_mode &&
                   props->completion_mode == ACTION_COMPLETION_MODE_GROUPED;
    Transaction *tran = tran_new();
    bool ok = true;

    /* No request may run while the actions look at and change state. */
    bdrv_drain_all_begin();
    for (TransactionActionList *l = list; l && ok; l = l->next) {
        TransactionAction *act = l->value;
        const ActionInfo *info = find_action(act->type);
        const char *name = TransactionActionKind_str(act->type);

        if (!info) {
            error_setg(errp, "Action '%s' is not supported by this daemon",
                       name);
            ok = false;
        } else if (grouped && !info->grouped_ok) {
            error_setg(errp, "Action '%s' does not support Transaction "
                       "property completion-mode = %s", name,
                       ActionCompletionMode_str(props->completion_mode));
            ok = false;
        } else {
            ok = info->prepare(act, tran, errp);
        }
    }
    if (ok) {
        tran_commit(tran);
    } else {
        tran_abort(tran);
    }
    bdrv_drain_all_end();
}
