/*
 * libFuzzer target: the qcow2 bitmap directory parser
 * (qcow2_bitmap_dir_parse in block/drivers/qcow2/bitmap.c) on arbitrary
 * bytes.  The first 8 input bytes choose the parser's context (entry count,
 * cluster bits, virtual size); the rest is the directory.
 * Properties: success and error are exclusive; every parsed entry passes
 * qcow2_bitmap_entry_valid (the parser must not hand out invalid entries);
 * a parsed directory serialises (qcow2_bitmap_dir_build) and parses again
 * to the same names.
 */
#include "block/drivers/qcow2/qcow2.h"
#include "block/drivers/qcow2/bitmap.h"

#include <assert.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Error *err = NULL;
    GPtrArray *entries, *again;
    uint32_t nb;
    int cluster_bits;
    uint64_t vsize, dsize;
    uint8_t *dir;

    if (size < 8) {
        return 0;
    }
    nb = data[0] | (data[1] << 8);          /* up to 65535 entries */
    cluster_bits = 9 + data[2] % 13;         /* 9..21 */
    vsize = ((uint64_t)data[3] << 32 | (uint64_t)data[4] << 24 |
             (uint64_t)data[5] << 16 | (uint64_t)data[6] << 8 | data[7]) << 9;
    data += 8;
    size -= 8;

    entries = qcow2_bitmap_dir_parse(data, size, nb, cluster_bits, vsize,
                                     &err);
    assert((entries == NULL) == (err != NULL));
    if (!entries) {
        error_free(err);
        return 0;
    }
    assert(entries->len == nb);
    for (guint i = 0; i < entries->len; i++) {
        assert(qcow2_bitmap_entry_valid(g_ptr_array_index(entries, i),
                                        cluster_bits, vsize));
    }
    dir = qcow2_bitmap_dir_build(entries, &dsize);
    again = qcow2_bitmap_dir_parse(dir, dsize, nb, cluster_bits, vsize,
                                   &err);
    assert(again && !err);
    for (guint i = 0; i < entries->len; i++) {
        Qcow2BitmapEntry *a = g_ptr_array_index(entries, i);
        Qcow2BitmapEntry *b = g_ptr_array_index(again, i);
        assert(strcmp(a->name, b->name) == 0);
        assert(a->table_offset == b->table_offset);
    }
    g_free(dir);
    g_ptr_array_unref(again);
    g_ptr_array_unref(entries);
    return 0;
}
