/*
 * Transaction helper: see include/util/transaction.h for the protocol.
 * Actions are kept in a GQueue in the order they were added; commit walks it
 * head to tail, abort tail to head, clean head to tail after either.
 */
#include "util/transaction.h"

typedef struct TransactionAction {
    const TransactionActionDrv *drv;
    void *opaque;
} TransactionAction;

struct Transaction {
    GQueue actions;
};

Transaction *tran_new(void)
{
    Transaction *tran = g_new0(Transaction, 1);
    g_queue_init(&tran->actions);
    return tran;
}

void tran_add(Transaction *tran, const TransactionActionDrv *drv, void *opaque)
{
    TransactionAction *act = g_new(TransactionAction, 1);
    act->drv = drv;
    act->opaque = opaque;
    g_queue_push_tail(&tran->actions, act);
}

static void tran_clean_and_free(Transaction *tran)
{
    TransactionAction *act;

    while ((act = g_queue_pop_head(&tran->actions))) {
        if (act->drv->clean) {
            act->drv->clean(act->opaque);
        }
        g_free(act);
    }
    g_free(tran);
}

void tran_commit(Transaction *tran)
{
    for (GList *l = tran->actions.head; l; l = l->next) {
        TransactionAction *act = l->data;
        if (act->drv->commit) {
            act->drv->commit(act->opaque);
        }
    }
    tran_clean_and_free(tran);
}

void tran_abort(Transaction *tran)
{
    for (GList *l = tran->actions.tail; l; l = l->prev) {
        TransactionAction *act = l->data;
        if (act->drv->abort) {
            act->drv->abort(act->opaque);
        }
    }
    tran_clean_and_free(tran);
}

void tran_finalize(Transaction *tran, int ret)
{
    if (ret < 0) {
        tran_abort(tran);
    } else {
        tran_commit(tran);
    }
}
