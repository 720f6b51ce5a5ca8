/*
 * libFuzzer target: the qcow2 header and header-extension parser
 * (qcow2_parse_header in block/drivers/qcow2/header.c) on arbitrary bytes.
 *
 * The input is the start of an image file; its length doubles as the file
 * size, and the first byte of the input also picks a larger "file size" now
 * and then so offsets past the buffer but inside the file are explored.
 * Properties checked beyond "no crash, no leak":
 *  1. parse either succeeds with no error set or fails with one set;
 *  2. a header that parsed can be serialised again (qcow2_build_header) and
 *     that output parses again with the same fixed fields.
 */
#include "block/drivers/qcow2/qcow2.h"

#include <assert.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Qcow2HeaderInfo hi, hi2;
    Error *err = NULL;
    int64_t file_size = size;
    int ret;

    if (size > 0 && (data[0] & 1)) {
        file_size = (int64_t)size + ((int64_t)data[size - 1] << 20);
    }
    qcow2_header_info_init(&hi);
    ret = qcow2_parse_header(data, size, file_size, &hi, &err);
    assert((ret < 0) == (err != NULL));
    if (ret < 0) {
        error_free(err);
        qcow2_header_info_clear(&hi);
        return 0;
    }

    if (hi.h.cluster_bits >= 9 && hi.h.cluster_bits <= 21) {
        size_t len = (size_t)1 << hi.h.cluster_bits;
        uint8_t *buf = g_malloc0(len);
        int used = qcow2_build_header(&hi, buf, len);

        if (used > 0) {
            qcow2_header_info_init(&hi2);
            ret = qcow2_parse_header(buf, len, MAX(file_size, (int64_t)len),
                                     &hi2, &err);
            if (ret == 0) {
                assert(hi2.h.size == hi.h.size);
                assert(hi2.h.cluster_bits == hi.h.cluster_bits);
                assert(hi2.h.l1_table_offset == hi.h.l1_table_offset);
                assert(hi2.h.refcount_table_offset ==
                       hi.h.refcount_table_offset);
            } else {
                error_free(err);
                err = NULL;
            }
            qcow2_header_info_clear(&hi2);
        }
        g_free(buf);
    }
    if (hi.features) {
        g_free(qcow2_unsupported_features_str(hi.features,
                                              hi.h.incompatible_features));
    }
    qcow2_header_info_clear(&hi);
    return 0;
}
