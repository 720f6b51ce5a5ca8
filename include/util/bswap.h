/*
 * Big-endian loads and stores at any alignment, for on-disk (qcow2) and
 * on-wire (NBD) structures.  memcpy keeps them free of alignment and
 * aliasing traps; compilers turn each into one load/store plus a bswap.
 */
#ifndef UTIL_BSWAP_H
#define UTIL_BSWAP_H

#include "util/common.h"

static inline uint16_t ld16_be(const void *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return GUINT16_FROM_BE(v);
}

static inline uint32_t ld32_be(const void *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return GUINT32_FROM_BE(v);
}

static inline uint64_t ld64_be(const void *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return GUINT64_FROM_BE(v);
}

static inline void st16_be(void *p, uint16_t v)
{
    v = GUINT16_TO_BE(v);
    memcpy(p, &v, 2);
}

static inline void st32_be(void *p, uint32_t v)
{
    v = GUINT32_TO_BE(v);
    memcpy(p, &v, 4);
}

static inline void st64_be(void *p, uint64_t v)
{
    v = GUINT64_TO_BE(v);
    memcpy(p, &v, 8);
}

#endif
