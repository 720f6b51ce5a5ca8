/*
 * Transaction: an ordered list of (driver, opaque) actions that is committed
 * or aborted as a unit.
 *
 * Protocol: the caller does each step's "prepare" work itself and, when it
 * succeeds, records an action with tran_add().  At the end it calls
 * tran_commit() (every action's commit, in order) or tran_abort() (every
 * action's abort, in reverse order).  Either way every action's clean runs
 * afterwards, in order, and the transaction is freed.
 * Graph changes, permission updates, reopen and QMP 'transaction' use it.
 */
#ifndef UTIL_TRANSACTION_H
#define UTIL_TRANSACTION_H

#include "util/common.h"

typedef struct TransactionActionDrv {
    void (*commit)(void *opaque);
    void (*abort)(void *opaque);
    void (*clean)(void *opaque);
} TransactionActionDrv;

typedef struct Transaction Transaction;

Transaction *tran_new(void);
void tran_add(Transaction *tran, const TransactionActionDrv *drv, void *opaque);
void tran_commit(Transaction *tran);
void tran_abort(Transaction *tran);
/* ret < 0: abort, else commit. */
void tran_finalize(Transaction *tran, int ret);

#endif
