/*
 * libFuzzer target: the NBD server's option negotiation and request parser.
 * The input is everything a client sends after the server's greeting
 * (client flags, options, then requests with compact or extended headers
 * and their payloads); it is fed through one end of a socketpair to a real
 * server client (nbd_server_serve_fd) exporting an 8 GiB writable
 * null-co node with base:allocation and qemu:allocation-depth, while the
 * replies are read and dropped.  The run ends when the server closes the
 * connection or after a bounded number of idle event-loop iterations once
 * the input is sent (so requests in flight get to reply), then our end
 * closes (a server waiting for more bytes is fine; a crash, an
 * assertion, a hang or unbounded memory is not: -timeout and
 * -rss_limit_mb / -malloc_limit_mb catch the last two).
 * Seeds in tests/fuzz/corpus/fuzz-nbd-server reach the transmission phase
 * with and without NBD_OPT_EXTENDED_HEADERS; fuzz-nbd-server.dict holds
 * the magic numbers.  QBLOCK_FUZZ_VERBOSE=1 prints the bytes sent and
 * received per input.
 */
#include "block/block.h"
#include "block/block-backend.h"
#include "block/block-int.h"
#include "nbd/nbd.h"
#include "util/aio.h"

#include <assert.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Event-loop iterations allowed after the input is sent and nothing
 * moves: the server is then waiting for bytes that never come. */
#define IDLE_ROUNDS 50

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static BlockBackend *blk;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    Error *err = NULL;
    NBDExportOptions o = { .name = "exp", .writable = true,
                           .allocation_depth = true, .multi_conn = 0 };

    bdrv_register_builtin_drivers();
    blk = blk_new_open("null-co://", NULL,
                       json_pack("{s:s, s:I}", "driver", "null-co",
                                 "size", (json_int_t)8 << 30),
                       BDRV_O_RDWR, &err);
    assert(blk);
    assert(nbd_export_new(blk, &o, NULL, NULL, &err));
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int sv[2];
    size_t sent = 0;
    int idle = 0;
    size_t got = 0;
    char buf[65536];

    assert(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0);
    fcntl(sv[0], F_SETFL, O_NONBLOCK);
    nbd_server_serve_fd(sv[1]);

    while (nbd_server_client_count() > 0 && idle < IDLE_ROUNDS) {
        bool progress = false;
        ssize_t n;

        if (sent < size) {
            n = write(sv[0], data + sent, size - sent);
            if (n > 0) {
                sent += n;
                progress = true;
            } else if (n < 0 && errno != EAGAIN) {
                sent = size;          /* the server closed its end */
            }
        }
        while ((n = read(sv[0], buf, sizeof(buf))) > 0) {
            got += n;
            progress = true;
        }
        progress |= aio_poll(qb_get_aio_context(), false);
        idle = progress || sent < size ? 0 : idle + 1;
    }
    /* What the server said last (it may have closed in one poll). */
    for (ssize_t n; (n = read(sv[0], buf, sizeof(buf))) > 0; ) {
        got += n;
    }
    /* Our end goes: a server still waiting sees EOF and lets go. */
    close(sv[0]);
    for (int i = 0; i < 10000 && nbd_server_client_count() > 0; i++) {
        aio_poll(qb_get_aio_context(), true);
    }
    assert(nbd_server_client_count() == 0);
    if (getenv("QBLOCK_FUZZ_VERBOSE")) {
        fprintf(stderr, "sent %zu of %zu bytes, got %zu\n", sent, size, got);
    }
    return 0;
}
