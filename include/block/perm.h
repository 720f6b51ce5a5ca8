/*
 * Internal interface of the permission engine (block/perm.c) for the other
 * block core files (graph.c, reopen.c).  Users outside the core use
 * bdrv_child_try_set_perm / bdrv_refresh_perms from block/block.h.
 */
#ifndef BLOCK_PERM_H
#define BLOCK_PERM_H

#include "block/block-int.h"
#include "util/transaction.h"

/*
 * Recompute permissions for every node in roots and everything below them,
 * parents before children, using the flags the nodes will have after the
 * reopen in q (q may be NULL).  Every change (edge perms, driver lock state)
 * is recorded in tran; the caller commits or aborts it.  Returns 0 or
 * -errno with *errp set (the caller must then abort tran).
 */
int bdrv_list_refresh_perms(GSList *roots, BlockReopenQueue *q,
                            Transaction *tran, Error **errp);
/* Set an edge's perm/shared now; aborting tran restores the old values. */
void bdrv_child_set_perm_tran(BdrvChild *c, uint64_t perm, uint64_t shared,
                              Transaction *tran);
/* What bs takes / shares on child c given its cumulative perms (driver's
 * bdrv_child_perm, then force-share of the child node). */
void bdrv_child_perm(BlockDriverState *bs, BlockDriverState *child_bs,
                     BdrvChild *c, BdrvChildRole role, BlockReopenQueue *q,
                     uint64_t parent_perm, uint64_t parent_shared,
                     uint64_t *nperm, uint64_t *nshared);
/* "node 'NAME'" / "block device 'NAME'" for error texts (g_free). */
char *bdrv_child_user_desc(BdrvChild *c);

#endif
