/*
 * Embedding qblock: a complete program using only <qblock/qblock.h>.
 *
 * It creates a raw image, writes a pattern synchronously, reads it back
 * asynchronously (completions driven by poll(2) on qblock_get_fd() and by
 * qblock_poll()), zeroes a range, checks block status and prints what it
 * did.  Usage: embed [IMAGE]   (default: embed-example.raw, removed at end)
 * Exit status 0 when every check passed.
 */
#include <qblock/qblock.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define IMAGE_SIZE (4 * 1024 * 1024)
#define CHUNK      (64 * 1024)
#define NCHUNKS    8

static int failures;

static void check(int cond, const char *what)
{
    printf("%s: %s\n", cond ? "ok" : "FAILED", what);
    failures += !cond;
}

struct read_req {
    int done;
    int ret;
};

static void read_done(void *opaque, int ret)
{
    struct read_req *r = opaque;
    r->done = 1;
    r->ret = ret;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "embed-example.raw";
    QBlockError *err = NULL;
    static unsigned char wbuf[NCHUNKS][CHUNK], rbuf[NCHUNKS][CHUNK];
    struct read_req reqs[NCHUNKS] = { { 0 } };
    uint64_t pnum = 0;
    QBlock *qb;
    int fd, ret, pending, loops = 0;

    if (qblock_init(&err) < 0) {
        fprintf(stderr, "init: %s\n", qblock_error_message(err));
        return 1;
    }
    printf("libqblock %s\n", qblock_version());

    if (qblock_create(path, "raw", IMAGE_SIZE, NULL, &err) < 0) {
        fprintf(stderr, "create: %s\n", qblock_error_message(err));
        qblock_error_free(err);
        return 1;
    }
    printf("created %s (%d bytes)\n", path, IMAGE_SIZE);

    qb = qblock_open_image(path, "raw", QBLOCK_OPEN_RDWR, &err);
    if (!qb) {
        fprintf(stderr, "open: %s\n", qblock_error_message(err));
        qblock_error_free(err);
        return 1;
    }
    check(qblock_get_length(qb) == IMAGE_SIZE, "length is 4 MiB");

    /* Synchronous writes: chunk i filled with byte i + 1, every other
     * 64 KiB of the first MiB. */
    for (int i = 0; i < NCHUNKS; i++) {
        memset(wbuf[i], i + 1, CHUNK);
        ret = qblock_pwrite(qb, (uint64_t)i * 2 * CHUNK, wbuf[i], CHUNK, 0);
        if (ret < 0) {
            fprintf(stderr, "write: %s\n", qblock_strerror(ret));
            return 1;
        }
    }
    check(qblock_flush(qb) == 0, "flush");

    /* Asynchronous reads, all in flight at once. */
    for (int i = 0; i < NCHUNKS; i++) {
        ret = qblock_aio_pread(qb, (uint64_t)i * 2 * CHUNK, rbuf[i], CHUNK,
                               read_done, &reqs[i]);
        check(ret == 0, "read submitted");
    }
    fd = qblock_get_fd();
    while (qblock_aio_in_flight(qb) > 0 && loops++ < 100000) {
        if (fd >= 0) {
            struct pollfd pfd = { .fd = fd, .events = POLLIN };
            int timeout = qblock_prepare_wait();
            /* Bounded so that a lost wakeup shows up as slowness, not a
             * hang; the test checks the run time. */
            poll(&pfd, 1, timeout < 0 || timeout > 1000 ? 1000 : timeout);
            qblock_poll(0);
        } else {
            qblock_poll(1);
        }
    }
    pending = 0;
    for (int i = 0; i < NCHUNKS; i++) {
        pending += !reqs[i].done;
        if (reqs[i].done && (reqs[i].ret < 0 ||
                             memcmp(rbuf[i], wbuf[i], CHUNK))) {
            failures++;
            printf("FAILED: chunk %d differs (ret %d)\n", i, reqs[i].ret);
        }
    }
    check(pending == 0, "all async reads completed");
    printf("read back %d chunks of %d bytes (%s)\n", NCHUNKS, CHUNK,
           fd >= 0 ? "driven by poll on qblock_get_fd" : "qblock_poll");

    /* A hole between two chunks reads as zeroes. */
    memset(rbuf[0], 0xff, CHUNK);
    ret = qblock_pread(qb, CHUNK, rbuf[0], CHUNK);
    check(ret == 0 && rbuf[0][0] == 0 && !memcmp(rbuf[0], rbuf[0] + 1,
                                                   CHUNK - 1),
          "gap reads as zeroes");

    /* Zero the first chunk, then look at its status. */
    check(qblock_pwrite_zeroes(qb, 0, CHUNK, 0) == 0, "write_zeroes");
    ret = qblock_pread(qb, 0, rbuf[0], CHUNK);
    check(ret == 0 && rbuf[0][0] == 0 && rbuf[0][CHUNK - 1] == 0,
          "zeroed chunk reads as zeroes");
    ret = qblock_block_status(qb, 2 * CHUNK, CHUNK, &pnum);
    check(ret >= 0 && (ret & QBLOCK_STATUS_DATA) && pnum > 0,
          "written chunk has data");

    /* Out of range: an I/O error, not a crash. */
    ret = qblock_pread(qb, IMAGE_SIZE, rbuf[0], 512);
    printf("read past the end: %s\n", qblock_strerror(ret));
    check(ret < 0, "read past the end fails");

    qblock_close(qb);

    /* Errors from control functions carry QEMU's message text. */
    qb = qblock_open_image("does-not-exist.raw", "raw", 0, &err);
    check(!qb && err, "opening a missing file fails");
    if (err) {
        printf("error: %s\n", qblock_error_message(err));
        qblock_error_free(err);
    }

    if (argc <= 1) {
        unlink(path);
    }
    printf("%s\n", failures ? "FAILED" : "all checks passed");
    return failures ? 1 : 0;
}
