/*
 * HBitmap micro-benchmark: how fast the dirty-bitmap structure sets bits
 * and iterates dirty areas over a 1 TiB range at 64 KiB granularity (2^24
 * bits, the shape of a persistent bitmap on a 1 TiB qcow2 image), for a
 * sparse, a striped and a dense pattern.  Iteration is what backup,
 * mirror, NBD block status and bitmap storing do with a bitmap, so its
 * cost per dirty area is the number to watch.
 * Usage: bench-hbitmap [rounds]   (default 5; each figure is the best round)
 */
#include "util/hbitmap.h"

#define SIZE (UINT64_C(1) << 40)
#define GRAN (UINT64_C(1) << 16)
#define NBITS (SIZE / GRAN)

/* Walk every dirty area once; returns how many there were (so the loop
 * cannot be optimised away and the caller can check it). */
static uint64_t walk(const HBitmap *hb)
{
    uint64_t off = 0, start, len, n = 0;

    while (off < SIZE &&
           hbitmap_next_dirty_area(hb, off, SIZE, 0, &start, &len)) {
        n++;
        off = start + len;
    }
    return n;
}

static void pattern(HBitmap *hb, uint64_t every, uint64_t run)
{
    for (uint64_t bit = 0; bit < NBITS; bit += every) {
        hbitmap_set(hb, bit * GRAN, run * GRAN);
    }
}

static void bench(const char *name, uint64_t every, uint64_t run, int rounds)
{
    double best_set = 1e30, best_walk = 1e30;
    uint64_t areas = 0, expect = NBITS / every;
    size_t mem = 0;

    for (int r = 0; r < rounds; r++) {
        g_autoptr(HBitmap) hb = hbitmap_alloc(SIZE, GRAN);
        int64_t t0 = qb_clock_ns_monotonic();
        pattern(hb, every, run);
        int64_t t1 = qb_clock_ns_monotonic();
        areas = walk(hb);
        int64_t t2 = qb_clock_ns_monotonic();
        mem = hbitmap_memory_usage(hb);
        best_set = MIN(best_set, (double)(t1 - t0));
        best_walk = MIN(best_walk, (double)(t2 - t1));
    }
    if (areas != expect) {
        fprintf(stderr, "%s: found %" PRIu64 " areas, expected %" PRIu64 "\n",
                name, areas, expect);
        exit(1);
    }
    printf("%s: %" PRIu64 " dirty areas, set %.1f ns/area, iterate %.1f "
           "ns/area (%.2f ms for the whole 1 TiB), bit storage %zu KiB\n",
           name, areas, best_set / areas, best_walk / areas, best_walk / 1e6,
           mem / 1024);
}

int main(int argc, char **argv)
{
    int rounds = argc > 1 ? atoi(argv[1]) : 5;

    if (rounds < 1) {
        rounds = 1;
    }
    bench("sparse (1 bit in 4096)", 4096, 1, rounds);
    bench("striped (16 bits in 64)", 64, 16, rounds);
    bench("dense (1 bit in 2)", 2, 1, rounds);
    return 0;
}
