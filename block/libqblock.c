/*
 * libqblock: the public embedding API (include/qblock/qblock.h) on top of
 * the block core, the drivers and the QMP dispatcher.
 */
#include "block/block-int.h"

void qblock_init_placeholder(void);
void qblock_init_placeholder(void)
{
    bdrv_register_builtin_drivers();
}
