/*
 * Unit tests for util/io-uring.c: the same checks as test-linux-aio (O_DIRECT
 * reads and writes, batching, short reads, flush, errors) through io_uring.
 * Skipped when io_uring is unavailable or O_DIRECT is refused.
 */
#include "util/raw-aio.h"

#define ENGINE_NAME       "io-uring"
#define ENGINE_STATE      LuringState
#define ENGINE_GET(c, e)  aio_get_linux_io_uring((c), (e))
#define ENGINE_SUBMIT     luring_co_submit
#define ENGINE_AVAILABLE() luring_available()
#include "raw-aio-test.h"
