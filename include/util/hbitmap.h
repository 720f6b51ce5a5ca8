/*
 * HBitmap: the dirty bitmap data structure.
 *
 * A bitmap over a byte range [0, size) with a granularity (bytes per bit, a
 * power of two): bit k covers bytes [k*g, (k+1)*g).  Operations take byte
 * offsets and act on every bit a byte range touches.
 *
 * Representation (two levels): the bits are split into fixed-size chunks;
 * a directory holds, per chunk, either nothing (all bits clear: no memory),
 * a shared all-ones marker (all bits set: no memory), or an array of 64-bit
 * words plus its population count.  So memory follows the dirty areas that
 * are neither empty nor full, searches skip whole chunks, and counting is
 * O(1).
 *
 * Invariants:
 *  1. count == sum of set bits over all chunks; bits at or beyond nbits are
 *     never set (including in the last chunk's words).
 *  2. A materialized chunk has 0 < popcount < bits-in-chunk; an empty chunk
 *     is always the NULL directory entry, a full one the all-ones marker.
 *
 * Serialized form (qcow2 bitmap data, x-debug-block-dirty-bitmap-sha256):
 * bit k is bit (k % 8) of byte (k / 8), i.e. little-endian 64-bit words;
 * the whole bitmap serializes to 8 * ceil(nbits / 64) bytes.
 */
#ifndef UTIL_HBITMAP_H
#define UTIL_HBITMAP_H

#include "util/common.h"

typedef struct HBitmap HBitmap;

/* granularity: bytes per bit, a power of two >= 1. */
HBitmap *hbitmap_alloc(uint64_t size, uint64_t granularity);
void hbitmap_free(HBitmap *hb);
HBitmap *hbitmap_copy(const HBitmap *hb);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(HBitmap, hbitmap_free)

uint64_t hbitmap_size(const HBitmap *hb);
uint64_t hbitmap_granularity(const HBitmap *hb);
uint64_t hbitmap_nbits(const HBitmap *hb);
/* Set bits times the granularity (not clipped to size). */
uint64_t hbitmap_count(const HBitmap *hb);
bool hbitmap_is_empty(const HBitmap *hb);
/* Bytes of memory used by the bit storage (for tests and benchmarks). */
size_t hbitmap_memory_usage(const HBitmap *hb);

/* Set / clear every bit that [offset, offset+bytes) touches (clipped to
 * size).  Callers that must not clear partially covered bits align first. */
void hbitmap_set(HBitmap *hb, uint64_t offset, uint64_t bytes);
void hbitmap_reset(HBitmap *hb, uint64_t offset, uint64_t bytes);
void hbitmap_set_all(HBitmap *hb);
void hbitmap_reset_all(HBitmap *hb);
bool hbitmap_get(const HBitmap *hb, uint64_t offset);

/*
 * First dirty (clean) byte offset in [offset, offset+bytes), at a bit
 * boundary or offset itself, or -1 if none.  bytes == UINT64_MAX means "to
 * the end".
 */
int64_t hbitmap_next_dirty(const HBitmap *hb, uint64_t offset, uint64_t bytes);
int64_t hbitmap_next_clean(const HBitmap *hb, uint64_t offset, uint64_t bytes);
/*
 * Find the first dirty area starting at or after offset and before end: set
 * *area_start and *area_len (clipped to end, to the size and to max_len if
 * max_len > 0) and return true; false if there is none.
 */
bool hbitmap_next_dirty_area(const HBitmap *hb, uint64_t offset, uint64_t end,
                             uint64_t max_len, uint64_t *area_start,
                             uint64_t *area_len);

/* dst |= src.  Sizes must match; granularities may differ (a src bit marks
 * every dst bit its byte range touches).  Returns false if sizes differ. */
bool hbitmap_merge_into(HBitmap *dst, const HBitmap *src);
/* Replace dst's contents with src's (same size and granularity). */
void hbitmap_restore(HBitmap *dst, const HBitmap *src);

/* Change the covered size: new bits are clean, dropped bits are gone. */
void hbitmap_truncate(HBitmap *hb, uint64_t new_size);

/* Serialization.  Ranges are in guest bytes and must start at a multiple of
 * hbitmap_serialization_align() and end there or at size. */
uint64_t hbitmap_serialization_align(const HBitmap *hb);
uint64_t hbitmap_serialization_size(const HBitmap *hb, uint64_t offset,
                                    uint64_t bytes);
void hbitmap_serialize_part(const HBitmap *hb, uint8_t *buf, uint64_t offset,
                            uint64_t bytes);
/* Overwrites the bits of the range with buf's contents. */
void hbitmap_deserialize_part(HBitmap *hb, const uint8_t *buf,
                              uint64_t offset, uint64_t bytes);
void hbitmap_deserialize_zeroes(HBitmap *hb, uint64_t offset, uint64_t bytes);
void hbitmap_deserialize_ones(HBitmap *hb, uint64_t offset, uint64_t bytes);
/* True if the range's serialized bits are all zero (all one). */
bool hbitmap_range_is_zero(const HBitmap *hb, uint64_t offset, uint64_t bytes);
bool hbitmap_range_is_full(const HBitmap *hb, uint64_t offset, uint64_t bytes);

/* Lowercase hex SHA-256 of the whole serialized bitmap (g_free it). */
char *hbitmap_sha256(const HBitmap *hb);

#endif
