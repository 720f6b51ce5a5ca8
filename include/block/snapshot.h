/*
 * Internal (in-image) snapshots, format independent: the description of
 * one snapshot as qemu-img and QMP show it, and the generic entry points
 * that forward to the format driver's snapshot hooks (block/snapshot.c).
 * The wrappers run the driver hook in a coroutine (polling the main
 * AioContext when called from outside one), so tools can call them
 * directly.
 */
#ifndef BLOCK_SNAPSHOT_H
#define BLOCK_SNAPSHOT_H

#include "block/block-int.h"

/* Same limits as QEMU's QEMUSnapshotInfo (longer strings are cut). */
#define QB_SNAPSHOT_ID_LEN   128
#define QB_SNAPSHOT_NAME_LEN 256

typedef struct QBSnapshotInfo {
    char id_str[QB_SNAPSHOT_ID_LEN];
    char name[QB_SNAPSHOT_NAME_LEN];
    uint64_t vm_state_size;
    uint32_t date_sec;
    uint32_t date_nsec;
    uint64_t vm_clock_nsec;
    uint64_t icount;              /* UINT64_MAX: not recorded */
} QBSnapshotInfo;

/* Does the node's driver (or the first node down its file chain) keep
 * internal snapshots? */
bool bdrv_can_snapshot(BlockDriverState *bs);

/*
 * Create a snapshot described by sn (id_str empty: the driver picks the
 * next free numeric id).  Returns 0 or -errno (-ENOTSUP when the format has
 * no internal snapshots); qemu-img reports "Could not create snapshot 'N':
 * <ret> (<strerror>)".
 */
int bdrv_snapshot_create(BlockDriverState *bs, QBSnapshotInfo *sn);
/* Revert the image to the snapshot whose id (else name) is id_or_name. */
int bdrv_snapshot_goto(BlockDriverState *bs, const char *id_or_name,
                       Error **errp);
/* Delete the snapshot matching id and/or name (NULL: don't care). */
int bdrv_snapshot_delete(BlockDriverState *bs, const char *id,
                         const char *name, Error **errp);
/*
 * qemu-img convert/measure -l: make the read-only node bs show the
 * snapshot matching id and/or name (NULL: don't care) instead of its
 * current state until it is closed.  0, or -errno with QEMU's texts:
 * "Device is not readonly" (-EINVAL), "Can't find snapshot" (-ENOENT),
 * "Block format '%s' used by device '' does not support temporarily
 * loading internal snapshots" (-ENOTSUP).
 */
int bdrv_snapshot_load_tmp(BlockDriverState *bs, const char *id,
                           const char *name, Error **errp);
/* The same with one argument that is an id, else a name. */
int bdrv_snapshot_load_tmp_by_id_or_name(BlockDriverState *bs,
                                         const char *id_or_name,
                                         Error **errp);
/* All snapshots in table order; returns their count (g_free *psn) or
 * -errno.  Formats without snapshots have none (0). */
int bdrv_snapshot_list(BlockDriverState *bs, QBSnapshotInfo **psn);

/* The SnapshotInfo object of query-block / qemu-img info (QEMU's member
 * insertion order). */
json_t *bdrv_snapshot_info_json(const QBSnapshotInfo *sn);

#endif
