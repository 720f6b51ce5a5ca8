/*
 * Definitions every qblock source file needs: system headers, GLib, the
 * build configuration and a handful of small macros.  Every .c file includes
 * this first (directly or through its module header).
 */
#ifndef UTIL_COMMON_H
#define UTIL_COMMON_H

#include "config-host.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <glib.h>

/* Marks functions that may only be called from coroutine context. */
#define coroutine_fn

/* container_of: from a member pointer back to the containing struct. */
#ifndef container_of
#define container_of(ptr, type, member) \
    ((type *)((char *)(ptr) - offsetof(type, member)))
#endif

#define QB_IS_ALIGNED(n, m)     (((n) % (m)) == 0)
#define QB_ALIGN_DOWN(n, m)     ((n) / (m) * (m))
#define QB_ALIGN_UP(n, m)       QB_ALIGN_DOWN((n) + (m) - 1, (m))
#define QB_DIV_ROUND_UP(n, d)   (((n) + (d) - 1) / (d))
#define QB_IS_POWER_OF_2(n)     ((n) && !((n) & ((n) - 1)))
#define QB_ARRAY_SIZE(a)        (sizeof(a) / sizeof((a)[0]))

#define KiB (INT64_C(1) << 10)
#define MiB (INT64_C(1) << 20)
#define GiB (INT64_C(1) << 30)
#define TiB (INT64_C(1) << 40)

/* Alignment for buffers handed to O_DIRECT I/O. */
#define QB_MEM_ALIGN 4096

/* Aligned allocation for I/O buffers; abort on OOM like g_malloc. */
void *qb_memalign(size_t alignment, size_t size);
/* Like qb_memalign but returns NULL on failure (for guest-sized buffers). */
void *qb_try_memalign(size_t alignment, size_t size);
void qb_vfree(void *ptr);

/* Program name used as the prefix of error messages ("qblock-img"). */
void qb_set_progname(const char *argv0);
const char *qb_get_progname(void);

/* Monotonic and realtime clocks in nanoseconds. */
int64_t qb_clock_ns_monotonic(void);
int64_t qb_clock_ns_realtime(void);

/* Parse a size with an optional suffix (k, M, G, T, P, E; powers of 1024;
 * bare number = bytes).  Returns 0 or -EINVAL / -ERANGE. */
int qb_strtosz(const char *str, const char **end, uint64_t *result);

#endif
