/*
 * The list of built-in drivers.  Kept in the driver layer so the core never
 * references a driver by name (layers depend only downward).
 */
#include "block/block-int.h"

extern BlockDriver bdrv_file;
extern BlockDriver bdrv_raw;
extern BlockDriver bdrv_null_co;
extern BlockDriver bdrv_null_aio;
extern BlockDriver bdrv_blkdebug;
extern BlockDriver bdrv_qcow2;
extern BlockDriver bdrv_nbd, bdrv_nbd_tcp, bdrv_nbd_unix;

void bdrv_register_builtin_drivers(void)
{
    static bool done;
    if (done) {
        return;
    }
    done = true;
    /* Added as each driver lands. */
    bdrv_register(&bdrv_raw);
    bdrv_register(&bdrv_null_co);
    bdrv_register(&bdrv_null_aio);
    bdrv_register(&bdrv_blkdebug);
    bdrv_register(&bdrv_file);
    bdrv_register(&bdrv_qcow2);
    bdrv_register(&bdrv_nbd);
    bdrv_register(&bdrv_nbd_tcp);
    bdrv_register(&bdrv_nbd_unix);
}
