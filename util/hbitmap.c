/*
 * HBitmap: the dirty bitmap data structure (see include/util/hbitmap.h for
 * the representation and its invariants).
 *
 * Everything below works on bit indexes; the public functions convert byte
 * ranges to inclusive bit ranges [first, last] and clip them to nbits.
 */
#include "util/hbitmap.h"

#define CHUNK_WORDS  512u                    /* 4 KiB of words */
#define CHUNK_BITS   ((uint64_t)CHUNK_WORDS * 64)

struct HBitmap {
    uint64_t size;           /* bytes covered */
    uint64_t granularity;    /* bytes per bit */
    int shift;               /* log2(granularity) */
    uint64_t nbits;
    uint64_t nchunks;
    uint64_t **chunks;       /* NULL, FULL_CHUNK or CHUNK_WORDS words */
    uint32_t *chunk_count;   /* set bits per chunk */
    uint64_t count;          /* set bits in total */
    uint64_t materialized;   /* chunks holding a word array */
};

/*
 * Population counts.  The build targets plain x86-64 (no -mpopcnt: CI
 * machines are not ours to assume), where __builtin_popcountll is a libgcc
 * call.  Single words use a table-free SWAR count inline; whole arrays go
 * through a function chosen once at run time, with the POPCNT instruction
 * when the CPU has it.
 */
static inline unsigned popcount_swar(uint64_t x)
{
    x = x - ((x >> 1) & UINT64_C(0x5555555555555555));
    x = (x & UINT64_C(0x3333333333333333)) +
        ((x >> 2) & UINT64_C(0x3333333333333333));
    x = (x + (x >> 4)) & UINT64_C(0x0f0f0f0f0f0f0f0f);
    return (x * UINT64_C(0x0101010101010101)) >> 56;
}

static uint64_t count_words_swar(const uint64_t *p, size_t n)
{
    uint64_t c = 0;
    for (size_t i = 0; i < n; i++) {
        c += popcount_swar(p[i]);
    }
    return c;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("popcnt")))
static uint64_t count_words_popcnt(const uint64_t *p, size_t n)
{
    uint64_t c = 0;
    for (size_t i = 0; i < n; i++) {
        c += __builtin_popcountll(p[i]);
    }
    return c;
}
#endif

static uint64_t (*count_words_impl)(const uint64_t *, size_t);

/* Set bits in p[0..n). */
static uint64_t count_words(const uint64_t *p, size_t n)
{
    if (G_UNLIKELY(!count_words_impl)) {
        /* Idempotent, so a race between threads only repeats the choice. */
#if defined(__x86_64__) && defined(__GNUC__)
        __builtin_cpu_init();
        count_words_impl = __builtin_cpu_supports("popcnt") ?
                           count_words_popcnt : count_words_swar;
#else
        count_words_impl = count_words_swar;
#endif
    }
    return count_words_impl(p, n);
}

/* Marker for a chunk whose bits are all set; never dereferenced. */
static uint64_t full_chunk_marker;
#define FULL_CHUNK (&full_chunk_marker)

static inline uint64_t chunk_bits(const HBitmap *hb, uint64_t c)
{
    return MIN(CHUNK_BITS, hb->nbits - c * CHUNK_BITS);
}

/* Mask of the bits of word w (global word index) that lie below nbits. */
static inline uint64_t valid_mask(const HBitmap *hb, uint64_t w)
{
    uint64_t valid = hb->nbits - w * 64;
    return valid >= 64 ? ~UINT64_C(0) : (UINT64_C(1) << valid) - 1;
}

static inline uint64_t get_word(const HBitmap *hb, uint64_t w)
{
    const uint64_t *p = hb->chunks[w / CHUNK_WORDS];

    if (!p) {
        return 0;
    }
    if (p == FULL_CHUNK) {
        return valid_mask(hb, w);
    }
    return p[w % CHUNK_WORDS];
}

static uint64_t *materialize(HBitmap *hb, uint64_t c)
{
    uint64_t *p = hb->chunks[c];

    if (p && p != FULL_CHUNK) {
        return p;
    }
    p = g_new0(uint64_t, CHUNK_WORDS);
    if (hb->chunks[c] == FULL_CHUNK) {
        uint64_t words = QB_DIV_ROUND_UP(chunk_bits(hb, c), 64);
        for (uint64_t i = 0; i < words; i++) {
            p[i] = valid_mask(hb, c * CHUNK_WORDS + i);
        }
    }
    hb->chunks[c] = p;
    hb->materialized++;
    return p;
}

static void drop_storage(HBitmap *hb, uint64_t c)
{
    if (hb->chunks[c] && hb->chunks[c] != FULL_CHUNK) {
        g_free(hb->chunks[c]);
        hb->materialized--;
    }
    hb->chunks[c] = NULL;
}

/* Restore invariant 2 for chunk c after its count changed. */
static void normalize(HBitmap *hb, uint64_t c)
{
    if (hb->chunk_count[c] == 0) {
        drop_storage(hb, c);
    } else if (hb->chunk_count[c] == chunk_bits(hb, c)) {
        drop_storage(hb, c);
        hb->chunks[c] = FULL_CHUNK;
    }
}

static void set_chunk_uniform(HBitmap *hb, uint64_t c, bool set)
{
    uint64_t bits = chunk_bits(hb, c);

    hb->count -= hb->chunk_count[c];
    drop_storage(hb, c);
    if (set) {
        hb->chunks[c] = FULL_CHUNK;
        hb->chunk_count[c] = bits;
        hb->count += bits;
    } else {
        hb->chunk_count[c] = 0;
    }
}

/* Account n bits of chunk c that just flipped to set (or to clear). */
static inline void count_flipped(HBitmap *hb, uint64_t c, unsigned n,
                                 bool set)
{
    int64_t d = set ? (int64_t)n : -(int64_t)n;

    hb->chunk_count[c] += d;
    hb->count += d;
}

/* Set or clear bits [first, last]; both < nbits. */
static void update_bits(HBitmap *hb, uint64_t first, uint64_t last, bool set)
{
    for (uint64_t c = first / CHUNK_BITS; c <= last / CHUNK_BITS; c++) {
        uint64_t c0 = c * CHUNK_BITS;
        uint64_t c1 = c0 + chunk_bits(hb, c) - 1;
        uint64_t lo = MAX(first, c0), hi = MIN(last, c1);
        uint64_t *p;

        if (lo == c0 && hi == c1) {
            set_chunk_uniform(hb, c, set);
            continue;
        }
        if (hb->chunks[c] == (set ? FULL_CHUNK : NULL)) {
            continue;   /* already in the wanted state */
        }
        if (lo / 64 == hi / 64 && hb->chunks[c] &&
            hb->chunks[c] != FULL_CHUNK) {
            /* The write path's common case: a range inside one word of a
             * materialized chunk that is usually already in the wanted
             * state (rewrites of dirty areas); no allocation, no
             * normalization unless the count really changed. */
            uint64_t mask = (~UINT64_C(0) >> (63 - hi % 64)) &
                            (~UINT64_C(0) << (lo % 64));
            uint64_t *word = &hb->chunks[c][(lo % CHUNK_BITS) / 64];
            uint64_t flip = set ? (mask & ~*word) : (mask & *word);

            if (flip) {
                *word ^= flip;
                count_flipped(hb, c, popcount_swar(flip), set);
                normalize(hb, c);
            }
            continue;
        }
        p = materialize(hb, c);
        for (uint64_t w = lo / 64; w <= hi / 64; w++) {
            uint64_t wlo = MAX(lo, w * 64) % 64, whi = MIN(hi, w * 64 + 63) % 64;
            uint64_t mask = (~UINT64_C(0) >> (63 - whi)) & (~UINT64_C(0) << wlo);
            uint64_t *word = &p[w % CHUNK_WORDS];
            uint64_t flip = set ? (mask & ~*word) : (mask & *word);

            *word ^= flip;
            count_flipped(hb, c, popcount_swar(flip), set);
        }
        normalize(hb, c);
    }
}

/* Convert a byte range to bits; false if it is empty after clipping. */
static bool byte_range_to_bits(const HBitmap *hb, uint64_t offset,
                               uint64_t bytes, uint64_t *first, uint64_t *last)
{
    if (bytes == 0 || offset >= hb->size) {
        return false;
    }
    if (bytes > hb->size - offset) {
        bytes = hb->size - offset;
    }
    *first = offset >> hb->shift;
    *last = (offset + bytes - 1) >> hb->shift;
    return true;
}

/* First bit in [from, to] that is set (want_set) or clear, or -1. */
static int64_t find_bit(const HBitmap *hb, uint64_t from, uint64_t to,
                        bool want_set)
{
    uint64_t bit = from;

    while (bit <= to) {
        uint64_t c = bit / CHUNK_BITS;
        const uint64_t *p = hb->chunks[c];
        uint64_t chunk_end = c * CHUNK_BITS + chunk_bits(hb, c);

        if (p == (want_set ? NULL : FULL_CHUNK)) {
            bit = chunk_end;            /* nothing of interest here */
            continue;
        }
        if (p == (want_set ? FULL_CHUNK : NULL)) {
            return bit;                 /* every bit matches */
        }
        while (bit < chunk_end && bit <= to) {
            uint64_t w = p[(bit % CHUNK_BITS) / 64];
            if (!want_set) {
                w = ~w;
            }
            w &= ~UINT64_C(0) << (bit % 64);
            if (w) {
                uint64_t found = (bit & ~UINT64_C(63)) + __builtin_ctzll(w);
                return found <= to && found < chunk_end ? (int64_t)found : -1;
            }
            bit = (bit & ~UINT64_C(63)) + 64;
        }
    }
    return -1;
}

HBitmap *hbitmap_alloc(uint64_t size, uint64_t granularity)
{
    HBitmap *hb = g_new0(HBitmap, 1);

    assert(QB_IS_POWER_OF_2(granularity));
    hb->size = size;
    hb->granularity = granularity;
    hb->shift = __builtin_ctzll(granularity);
    hb->nbits = size ? ((size - 1) >> hb->shift) + 1 : 0;
    hb->nchunks = QB_DIV_ROUND_UP(hb->nbits, CHUNK_BITS);
    hb->chunks = g_new0(uint64_t *, hb->nchunks);
    hb->chunk_count = g_new0(uint32_t, hb->nchunks);
    return hb;
}

void hbitmap_free(HBitmap *hb)
{
    if (!hb) {
        return;
    }
    for (uint64_t c = 0; c < hb->nchunks; c++) {
        drop_storage(hb, c);
    }
    g_free(hb->chunks);
    g_free(hb->chunk_count);
    g_free(hb);
}

HBitmap *hbitmap_copy(const HBitmap *hb)
{
    HBitmap *copy = hbitmap_alloc(hb->size, hb->granularity);

    for (uint64_t c = 0; c < hb->nchunks; c++) {
        const uint64_t *p = hb->chunks[c];
        if (p && p != FULL_CHUNK) {
            copy->chunks[c] = g_memdup2(p, CHUNK_WORDS * sizeof(uint64_t));
            copy->materialized++;
        } else {
            copy->chunks[c] = (uint64_t *)p;
        }
        copy->chunk_count[c] = hb->chunk_count[c];
    }
    copy->count = hb->count;
    return copy;
}

uint64_t hbitmap_size(const HBitmap *hb) { return hb->size; }
uint64_t hbitmap_granularity(const HBitmap *hb) { return hb->granularity; }
uint64_t hbitmap_nbits(const HBitmap *hb) { return hb->nbits; }
uint64_t hbitmap_count(const HBitmap *hb) { return hb->count << hb->shift; }
bool hbitmap_is_empty(const HBitmap *hb) { return hb->count == 0; }

size_t hbitmap_memory_usage(const HBitmap *hb)
{
    return sizeof(*hb) + hb->nchunks * (sizeof(uint64_t *) + sizeof(uint32_t)) +
           hb->materialized * CHUNK_WORDS * sizeof(uint64_t);
}

void hbitmap_set(HBitmap *hb, uint64_t offset, uint64_t bytes)
{
    uint64_t first, last;
    if (byte_range_to_bits(hb, offset, bytes, &first, &last)) {
        update_bits(hb, first, last, true);
    }
}

void hbitmap_reset(HBitmap *hb, uint64_t offset, uint64_t bytes)
{
    uint64_t first, last;
    if (byte_range_to_bits(hb, offset, bytes, &first, &last)) {
        update_bits(hb, first, last, false);
    }
}

void hbitmap_set_all(HBitmap *hb)
{
    hbitmap_set(hb, 0, hb->size);
}

void hbitmap_reset_all(HBitmap *hb)
{
    hbitmap_reset(hb, 0, hb->size);
}

bool hbitmap_get(const HBitmap *hb, uint64_t offset)
{
    uint64_t bit;

    if (offset >= hb->size) {
        return false;
    }
    bit = offset >> hb->shift;
    return (get_word(hb, bit / 64) >> (bit % 64)) & 1;
}

static int64_t next_matching(const HBitmap *hb, uint64_t offset,
                             uint64_t bytes, bool want_set)
{
    uint64_t first, last;
    int64_t bit;

    if (!byte_range_to_bits(hb, offset, bytes, &first, &last)) {
        return -1;
    }
    bit = find_bit(hb, first, last, want_set);
    if (bit < 0) {
        return -1;
    }
    return MAX((uint64_t)bit << hb->shift, offset);
}

int64_t hbitmap_next_dirty(const HBitmap *hb, uint64_t offset, uint64_t bytes)
{
    return next_matching(hb, offset, bytes, true);
}

int64_t hbitmap_next_clean(const HBitmap *hb, uint64_t offset, uint64_t bytes)
{
    return next_matching(hb, offset, bytes, false);
}

bool hbitmap_next_dirty_area(const HBitmap *hb, uint64_t offset, uint64_t end,
                             uint64_t max_len, uint64_t *area_start,
                             uint64_t *area_len)
{
    int64_t start, clean;
    uint64_t limit;

    end = MIN(end, hb->size);
    if (offset >= end) {
        return false;
    }
    start = hbitmap_next_dirty(hb, offset, end - offset);
    if (start < 0) {
        return false;
    }
    limit = end;
    if (max_len && max_len < limit - start) {
        limit = start + max_len;
    }
    clean = hbitmap_next_clean(hb, start, limit - start);
    *area_start = start;
    *area_len = (clean < 0 ? limit : (uint64_t)clean) - start;
    return true;
}

bool hbitmap_merge_into(HBitmap *dst, const HBitmap *src)
{
    if (dst->size != src->size) {
        return false;
    }
    if (dst == src) {
        return true;
    }
    if (dst->granularity != src->granularity) {
        uint64_t start = 0, len;
        while (hbitmap_next_dirty_area(src, start, src->size, 0, &start, &len)) {
            hbitmap_set(dst, start, len);
            start += len;
        }
        return true;
    }
    for (uint64_t c = 0; c < src->nchunks; c++) {
        const uint64_t *s = src->chunks[c];
        uint64_t *d;
        uint32_t n;

        if (!s || dst->chunks[c] == FULL_CHUNK) {
            continue;
        }
        if (s == FULL_CHUNK) {
            set_chunk_uniform(dst, c, true);
            continue;
        }
        d = materialize(dst, c);
        for (unsigned i = 0; i < CHUNK_WORDS; i++) {
            d[i] |= s[i];
        }
        n = count_words(d, CHUNK_WORDS);
        dst->count += n - dst->chunk_count[c];
        dst->chunk_count[c] = n;
        normalize(dst, c);
    }
    return true;
}

void hbitmap_restore(HBitmap *dst, const HBitmap *src)
{
    assert(dst->size == src->size && dst->granularity == src->granularity);
    hbitmap_reset_all(dst);
    hbitmap_merge_into(dst, src);
}

void hbitmap_truncate(HBitmap *hb, uint64_t new_size)
{
    uint64_t new_nbits = new_size ? ((new_size - 1) >> hb->shift) + 1 : 0;
    uint64_t new_nchunks = QB_DIV_ROUND_UP(new_nbits, CHUNK_BITS);

    if (new_nbits < hb->nbits) {
        update_bits(hb, new_nbits, hb->nbits - 1, false);
        for (uint64_t c = new_nchunks; c < hb->nchunks; c++) {
            assert(hb->chunk_count[c] == 0);
            drop_storage(hb, c);
        }
    } else if (new_nbits > hb->nbits && hb->nbits % CHUNK_BITS &&
               hb->chunks[hb->nchunks - 1] == FULL_CHUNK) {
        /* The partial last chunk grows: FULL would claim the new bits. */
        materialize(hb, hb->nchunks - 1);
    }
    hb->chunks = g_renew(uint64_t *, hb->chunks, new_nchunks);
    hb->chunk_count = g_renew(uint32_t, hb->chunk_count, new_nchunks);
    for (uint64_t c = hb->nchunks; c < new_nchunks; c++) {
        hb->chunks[c] = NULL;
        hb->chunk_count[c] = 0;
    }
    hb->size = new_size;
    hb->nbits = new_nbits;
    hb->nchunks = new_nchunks;
    if (new_nchunks) {
        normalize(hb, new_nchunks - 1);
    }
}

uint64_t hbitmap_serialization_align(const HBitmap *hb)
{
    return hb->granularity * 64;
}

/* Word range [*w0, *w1] for a serialization byte range. */
static bool serial_words(const HBitmap *hb, uint64_t offset, uint64_t bytes,
                         uint64_t *w0, uint64_t *w1)
{
    uint64_t first, last;

    assert(offset % hbitmap_serialization_align(hb) == 0);
    if (!byte_range_to_bits(hb, offset, bytes, &first, &last)) {
        return false;
    }
    assert(offset + bytes >= hb->size ||
           (offset + bytes) % hbitmap_serialization_align(hb) == 0);
    *w0 = first / 64;
    *w1 = last / 64;
    return true;
}

uint64_t hbitmap_serialization_size(const HBitmap *hb, uint64_t offset,
                                    uint64_t bytes)
{
    uint64_t w0, w1;
    return serial_words(hb, offset, bytes, &w0, &w1) ? (w1 - w0 + 1) * 8 : 0;
}

void hbitmap_serialize_part(const HBitmap *hb, uint8_t *buf, uint64_t offset,
                            uint64_t bytes)
{
    uint64_t w0, w1;

    if (!serial_words(hb, offset, bytes, &w0, &w1)) {
        return;
    }
    for (uint64_t w = w0; w <= w1; w++) {
        uint64_t c = w / CHUNK_WORDS;
        if (!hb->chunks[c]) {
            /* Fast path: a clean chunk serializes to zeroes. */
            uint64_t end = MIN(w1, (c + 1) * CHUNK_WORDS - 1);
            memset(buf + (w - w0) * 8, 0, (end - w + 1) * 8);
            w = end;
            continue;
        }
        uint64_t le = GUINT64_TO_LE(get_word(hb, w));
        memcpy(buf + (w - w0) * 8, &le, 8);
    }
}

void hbitmap_deserialize_part(HBitmap *hb, const uint8_t *buf,
                              uint64_t offset, uint64_t bytes)
{
    uint64_t w0, w1;

    if (!serial_words(hb, offset, bytes, &w0, &w1)) {
        return;
    }
    for (uint64_t c = w0 / CHUNK_WORDS; c <= w1 / CHUNK_WORDS; c++) {
        uint64_t cw0 = MAX(w0, c * CHUNK_WORDS);
        uint64_t cw1 = MIN(w1, (c + 1) * CHUNK_WORDS - 1);
        uint64_t *p = materialize(hb, c);
        uint32_t n;

        for (uint64_t w = cw0; w <= cw1; w++) {
            uint64_t v;
            memcpy(&v, buf + (w - w0) * 8, 8);
            p[w % CHUNK_WORDS] = GUINT64_FROM_LE(v) & valid_mask(hb, w);
        }
        n = count_words(p, CHUNK_WORDS);
        hb->count += (int64_t)n - hb->chunk_count[c];
        hb->chunk_count[c] = n;
        normalize(hb, c);
    }
}

void hbitmap_deserialize_zeroes(HBitmap *hb, uint64_t offset, uint64_t bytes)
{
    hbitmap_reset(hb, offset, bytes);
}

void hbitmap_deserialize_ones(HBitmap *hb, uint64_t offset, uint64_t bytes)
{
    hbitmap_set(hb, offset, bytes);
}

bool hbitmap_range_is_zero(const HBitmap *hb, uint64_t offset, uint64_t bytes)
{
    return hbitmap_next_dirty(hb, offset, bytes) < 0;
}

bool hbitmap_range_is_full(const HBitmap *hb, uint64_t offset, uint64_t bytes)
{
    return hbitmap_next_clean(hb, offset, bytes) < 0;
}

char *hbitmap_sha256(const HBitmap *hb)
{
    g_autoptr(GChecksum) sum = g_checksum_new(G_CHECKSUM_SHA256);
    uint64_t nwords = QB_DIV_ROUND_UP(hb->nbits, 64);
    uint8_t *buf = g_malloc(CHUNK_WORDS * 8);

    for (uint64_t w = 0; w < nwords; w += CHUNK_WORDS) {
        uint64_t n = MIN(CHUNK_WORDS, nwords - w);
        uint64_t bytes = MIN(n * 64 * hb->granularity, hb->size - w * 64 * hb->granularity);
        hbitmap_serialize_part(hb, buf, w * 64 * hb->granularity, bytes);
        g_checksum_update(sum, buf, n * 8);
    }
    g_free(buf);
    return g_strdup(g_checksum_get_string(sum));
}
