/*
 * Thread pool micro-benchmark: submissions per second of a trivial job, with
 * up to 'depth' jobs outstanding, completions collected by aio_poll.
 * Usage: bench-thread-pool [jobs] [depth]   (default 200000, 64)
 */
#include "util/thread-pool.h"

static long done;

static int job(void *opaque)
{
    return 0;
}

static void job_done(void *opaque, int ret)
{
    done++;
}

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 200000;
    long depth = argc > 2 ? atol(argv[2]) : 64;
    AioContext *ctx = qb_get_aio_context();
    ThreadPool *pool = aio_get_thread_pool(ctx);
    long submitted = 0;
    int64_t t0 = qb_clock_ns_monotonic();

    while (done < n) {
        while (submitted < n && submitted - done < depth) {
            thread_pool_submit_aio(pool, job, NULL, job_done, NULL);
            submitted++;
        }
        aio_poll(ctx, true);
    }
    int64_t t1 = qb_clock_ns_monotonic();
    printf("thread pool submissions per second: %.0f\n", n / ((t1 - t0) / 1e9));
    return 0;
}
