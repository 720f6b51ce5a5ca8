/*
 * Unit tests for util/linux-aio.c: O_DIRECT writes and reads of a file in
 * the build directory through libaio, many requests in flight at once (so
 * they are batched), short reads at end of file, flush and errors.
 * Skipped when the build directory's filesystem refuses O_DIRECT.
 */
#include "util/raw-aio.h"

#define ENGINE_NAME       "linux-aio"
#define ENGINE_STATE      LinuxAioState
#define ENGINE_GET(c, e)  aio_get_linux_aio((c), (e))
#define ENGINE_SUBMIT     laio_co_submit
#define ENGINE_AVAILABLE() true
#include "raw-aio-test.h"
