/*
 * Unit tests for the NBD socket helpers the server's batched transmission
 * relies on: nbd_sock_writev_consume() with more iovecs than one
 * sendmsg() takes (IOV_MAX) and with a peer slower than the socket
 * buffer, and nbd_sock_recv_some() returning what is there (at least one
 * byte, at most what was asked) and -ECONNRESET at EOF.
 */
#include "nbd/nbd.h"

#include <limits.h>
#include <sys/socket.h>

static void pair(int sv[2])
{
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv),
                    ==, 0);
}

/* Byte i of the stream. */
static uint8_t pattern(size_t i)
{
    return (uint8_t)(i * 7 + i / 251);
}

/* More iovecs than IOV_MAX in one call: all bytes arrive, in order. */
static void test_many_iovecs(void)
{
    enum { N = 3 * IOV_MAX + 5, SEG = 5 };
    int sv[2];
    NBDSock s, r;
    g_autofree struct iovec *iov = g_new(struct iovec, N);
    g_autofree uint8_t *src = g_malloc(N * SEG);
    g_autofree uint8_t *dst = g_malloc0(N * SEG);
    size_t got = 0;

    pair(sv);
    nbd_sock_init(&s, sv[0], qb_get_aio_context());
    nbd_sock_init(&r, sv[1], qb_get_aio_context());
    for (size_t i = 0; i < (size_t)N * SEG; i++) {
        src[i] = pattern(i);
    }
    for (int i = 0; i < N; i++) {
        iov[i].iov_base = src + i * SEG;
        iov[i].iov_len = SEG;
    }
    /* A zero-length iovec in the middle is skipped, not the end. */
    iov[N / 2].iov_len = 0;
    g_assert_cmpint(nbd_sock_writev_consume(&s, iov, N), ==, 0);
    while (got < (size_t)(N - 1) * SEG) {
        ssize_t n = nbd_sock_recv_some(&r, dst + got, N * SEG - got);
        g_assert_cmpint(n, >, 0);
        got += n;
    }
    g_assert_cmpuint(got, ==, (size_t)(N - 1) * SEG);
    /* The empty segment contributed nothing: the stream skips it. */
    g_assert_cmpmem(dst, (N / 2) * SEG, src, (N / 2) * SEG);
    g_assert_cmpmem(dst + (N / 2) * SEG, (N - N / 2 - 1) * SEG,
                    src + (N / 2 + 1) * SEG, (N - N / 2 - 1) * SEG);
    nbd_sock_close(&s);
    nbd_sock_close(&r);
}

typedef struct Reader {
    int fd;
    size_t want;
    uint8_t *buf;
} Reader;

static gpointer slow_reader(gpointer opaque)
{
    Reader *rd = opaque;
    size_t got = 0;

    while (got < rd->want) {
        ssize_t n;
        g_usleep(200);             /* slower than the writer */
        n = recv(rd->fd, rd->buf + got, MIN(rd->want - got, 16384), 0);
        if (n <= 0) {
            break;
        }
        got += n;
    }
    rd->want = got;
    return NULL;
}

/* A write far larger than the socket buffer waits for the reader (the
 * blocking fallback outside coroutines) and loses nothing. */
static void test_partial_writes(void)
{
    enum { N = 600, SEG = 4096 + 3 };
    int sv[2];
    NBDSock s;
    g_autofree struct iovec *iov = g_new(struct iovec, N);
    g_autofree uint8_t *src = g_malloc(N * SEG);
    Reader rd;
    GThread *t;

    pair(sv);
    nbd_sock_init(&s, sv[0], qb_get_aio_context());
    for (size_t i = 0; i < (size_t)N * SEG; i++) {
        src[i] = pattern(i);
    }
    for (int i = 0; i < N; i++) {
        iov[i].iov_base = src + i * SEG;
        iov[i].iov_len = SEG;
    }
    rd = (Reader){ sv[1], (size_t)N * SEG, g_malloc0(N * SEG) };
    t = g_thread_new("reader", slow_reader, &rd);
    g_assert_cmpint(nbd_sock_writev_consume(&s, iov, N), ==, 0);
    g_thread_join(t);
    g_assert_cmpuint(rd.want, ==, (size_t)N * SEG);
    g_assert_cmpmem(rd.buf, N * SEG, src, N * SEG);
    g_free(rd.buf);
    nbd_sock_close(&s);
    close(sv[1]);
}

/* recv_some: what is buffered (not more than asked), then EOF. */
static void test_recv_some(void)
{
    int sv[2];
    NBDSock r;
    uint8_t buf[64];

    pair(sv);
    nbd_sock_init(&r, sv[1], qb_get_aio_context());
    g_assert_cmpint(write(sv[0], "abcdefgh", 8), ==, 8);
    g_assert_cmpint(nbd_sock_recv_some(&r, buf, 3), ==, 3);
    g_assert_cmpmem(buf, 3, "abc", 3);
    g_assert_cmpint(nbd_sock_recv_some(&r, buf, sizeof(buf)), ==, 5);
    g_assert_cmpmem(buf, 5, "defgh", 5);
    close(sv[0]);
    g_assert_cmpint(nbd_sock_recv_some(&r, buf, sizeof(buf)), ==,
                    -ECONNRESET);
    nbd_sock_close(&r);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/nbd/sock/many-iovecs", test_many_iovecs);
    g_test_add_func("/nbd/sock/partial-writes", test_partial_writes);
    g_test_add_func("/nbd/sock/recv-some", test_recv_some);
    return g_test_run();
}
