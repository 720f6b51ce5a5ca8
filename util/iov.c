/*
 * Scatter/gather helpers: IOVector construction (owned or borrowed iovec
 * arrays), slicing, and copying/comparing/zero-testing data held in an
 * iovec list.  Every walk over an iovec list goes through iov_locate() so the
 * "skip offset bytes, then work element by element" logic lives once.
 *
 * Invariant kept by every function here: qiov->size equals the sum of the
 * iov_len of its niov elements.
 */
#include "util/iov.h"

size_t iov_size(const struct iovec *iov, unsigned niov)
{
    size_t total = 0;

    for (unsigned i = 0; i < niov; i++) {
        total += iov[i].iov_len;
    }
    return total;
}

/*
 * Find the element holding byte 'offset' of the list; returns its index and
 * stores the offset inside that element in *skip.  Returns niov when offset
 * is at or beyond the end.
 */
static int iov_locate(const struct iovec *iov, int niov, size_t offset,
                      size_t *skip)
{
    int i;

    for (i = 0; i < niov; i++) {
        if (offset < iov[i].iov_len) {
            break;
        }
        offset -= iov[i].iov_len;
    }
    *skip = offset;
    return i;
}

void qiov_init(IOVector *qiov, int alloc_hint)
{
    if (alloc_hint < 1) {
        alloc_hint = 1;
    }
    memset(qiov, 0, sizeof(*qiov));
    qiov->iov = g_new(struct iovec, alloc_hint);
    qiov->nalloc = alloc_hint;
}

void qiov_init_external(IOVector *qiov, struct iovec *iov, int niov)
{
    memset(qiov, 0, sizeof(*qiov));
    qiov->iov = iov;
    qiov->niov = niov;
    qiov->nalloc = -1;
    qiov->size = iov_size(iov, niov);
}

void qiov_init_buf(IOVector *qiov, void *buf, size_t len)
{
    memset(qiov, 0, sizeof(*qiov));
    qiov->local_iov.iov_base = buf;
    qiov->local_iov.iov_len = len;
    qiov->iov = &qiov->local_iov;
    qiov->niov = 1;
    qiov->nalloc = -1;
    qiov->size = len;
}

void qiov_add(IOVector *qiov, void *base, size_t len)
{
    assert(qiov->nalloc != -1);
    if (len == 0) {
        return;
    }
    if (qiov->niov == qiov->nalloc) {
        qiov->nalloc = 2 * qiov->nalloc + 1;
        qiov->iov = g_renew(struct iovec, qiov->iov, qiov->nalloc);
    }
    qiov->iov[qiov->niov].iov_base = base;
    qiov->iov[qiov->niov].iov_len = len;
    qiov->niov++;
    qiov->size += len;
}

void qiov_concat(IOVector *dst, IOVector *src, size_t offset, size_t len)
{
    size_t skip;
    int i;

    assert(offset <= src->size && len <= src->size - offset);
    for (i = iov_locate(src->iov, src->niov, offset, &skip);
         i < src->niov && len > 0; i++) {
        size_t n = MIN(len, src->iov[i].iov_len - skip);
        qiov_add(dst, (char *)src->iov[i].iov_base + skip, n);
        len -= n;
        skip = 0;
    }
    assert(len == 0);
}

void qiov_init_slice(IOVector *dst, IOVector *src, size_t offset, size_t len)
{
    qiov_init(dst, MAX(src->niov, 1));
    qiov_concat(dst, src, offset, len);
}

void qiov_reset(IOVector *qiov)
{
    assert(qiov->nalloc != -1);
    qiov->niov = 0;
    qiov->size = 0;
}

void qiov_destroy(IOVector *qiov)
{
    if (qiov->nalloc != -1) {
        g_free(qiov->iov);
    }
    memset(qiov, 0, sizeof(*qiov));
}

size_t qiov_to_buf(const IOVector *qiov, size_t offset, void *buf,
                   size_t bytes)
{
    size_t skip, done = 0;

    for (int i = iov_locate(qiov->iov, qiov->niov, offset, &skip);
         i < qiov->niov && done < bytes; i++) {
        size_t n = MIN(bytes - done, qiov->iov[i].iov_len - skip);
        memcpy((char *)buf + done, (char *)qiov->iov[i].iov_base + skip, n);
        done += n;
        skip = 0;
    }
    return done;
}

size_t qiov_from_buf(IOVector *qiov, size_t offset, const void *buf,
                     size_t bytes)
{
    size_t skip, done = 0;

    for (int i = iov_locate(qiov->iov, qiov->niov, offset, &skip);
         i < qiov->niov && done < bytes; i++) {
        size_t n = MIN(bytes - done, qiov->iov[i].iov_len - skip);
        memcpy((char *)qiov->iov[i].iov_base + skip, (const char *)buf + done,
               n);
        done += n;
        skip = 0;
    }
    return done;
}

size_t qiov_memset(IOVector *qiov, size_t offset, int c, size_t bytes)
{
    size_t skip, done = 0;

    for (int i = iov_locate(qiov->iov, qiov->niov, offset, &skip);
         i < qiov->niov && done < bytes; i++) {
        size_t n = MIN(bytes - done, qiov->iov[i].iov_len - skip);
        memset((char *)qiov->iov[i].iov_base + skip, c, n);
        done += n;
        skip = 0;
    }
    return done;
}

bool buffer_is_zero(const void *buf, size_t len)
{
    const unsigned char *p = buf;

    /* Check the first bytes directly (most non-zero buffers fail here),
     * then compare the buffer against itself shifted by 16 bytes: if the
     * first 16 are zero and buf[i] == buf[i + 16] everywhere, all are. */
    if (len <= 64) {
        for (size_t i = 0; i < len; i++) {
            if (p[i]) {
                return false;
            }
        }
        return true;
    }
    for (size_t i = 0; i < 16; i++) {
        if (p[i]) {
            return false;
        }
    }
    return memcmp(p, p + 16, len - 16) == 0;
}

bool qiov_is_zero(const IOVector *qiov, size_t offset, size_t bytes)
{
    size_t skip;

    for (int i = iov_locate(qiov->iov, qiov->niov, offset, &skip);
         i < qiov->niov && bytes > 0; i++) {
        size_t n = MIN(bytes, qiov->iov[i].iov_len - skip);
        if (!buffer_is_zero((char *)qiov->iov[i].iov_base + skip, n)) {
            return false;
        }
        bytes -= n;
        skip = 0;
    }
    return true;
}

bool qiov_is_aligned(const IOVector *qiov, size_t align)
{
    for (int i = 0; i < qiov->niov; i++) {
        if ((uintptr_t)qiov->iov[i].iov_base % align ||
            qiov->iov[i].iov_len % align) {
            return false;
        }
    }
    return true;
}

ssize_t qiov_compare(const IOVector *a, const IOVector *b)
{
    int ia = 0, ib = 0;
    size_t oa = 0, ob = 0;   /* offsets inside the current elements */
    size_t pos = 0;

    assert(a->size == b->size);
    while (pos < a->size) {
        /* Skip empty elements (borrowed arrays may contain them). */
        while (a->iov[ia].iov_len == oa) {
            ia++;
            oa = 0;
        }
        while (b->iov[ib].iov_len == ob) {
            ib++;
            ob = 0;
        }
        size_t n = MIN(a->iov[ia].iov_len - oa, b->iov[ib].iov_len - ob);
        const unsigned char *pa = (unsigned char *)a->iov[ia].iov_base + oa;
        const unsigned char *pb = (unsigned char *)b->iov[ib].iov_base + ob;
        if (memcmp(pa, pb, n) != 0) {
            for (size_t k = 0; k < n; k++) {
                if (pa[k] != pb[k]) {
                    return pos + k;
                }
            }
        }
        pos += n;
        oa += n;
        ob += n;
    }
    return -1;
}
