/*
 * Result of an image consistency check (qemu-img check), filled by a
 * driver's bdrv_co_check.  Counts follow QEMU's BdrvCheckResult so the tool
 * can print the same report and exit codes.
 */
#ifndef BLOCK_CHECK_H
#define BLOCK_CHECK_H

#include "util/common.h"

/* The fix argument of bdrv_co_check: a mask of these. */
typedef enum BdrvCheckMode {
    BDRV_FIX_LEAKS  = 1,
    BDRV_FIX_ERRORS = 2,
} BdrvCheckMode;

typedef struct BlockFragInfo {
    uint64_t allocated_clusters;
    uint64_t total_clusters;
    uint64_t fragmented_clusters;
    uint64_t compressed_clusters;
} BlockFragInfo;

struct BdrvCheckResult {
    int corruptions;          /* errors left after the check (and repair) */
    int leaks;                /* leaked clusters left */
    int check_errors;         /* the check itself failed (I/O, ENOMEM) */
    int corruptions_fixed;
    int leaks_fixed;
    int64_t image_end_offset; /* first byte after the last used cluster */
    BlockFragInfo bfi;
};

#endif
