/*
 * Small process-wide helpers: aligned buffers, the program name used in
 * messages, clocks and size parsing.
 */
#include "util/common.h"

#include <time.h>

static char *progname;

void *qb_try_memalign(size_t alignment, size_t size)
{
    void *p = NULL;

    if (size == 0) {
        size = alignment;  /* never hand out NULL for a zero-size buffer */
    }
    if (posix_memalign(&p, alignment, size)) {
        return NULL;
    }
    return p;
}

void *qb_memalign(size_t alignment, size_t size)
{
    void *p = qb_try_memalign(alignment, size);
    if (!p) {
        g_error("failed to allocate %zu bytes", size);
    }
    return p;
}

void qb_vfree(void *ptr)
{
    free(ptr);
}

void qb_set_progname(const char *argv0)
{
    g_free(progname);
    progname = g_path_get_basename(argv0);
}

const char *qb_get_progname(void)
{
    return progname ? progname : "qblock";
}

static int64_t clock_ns(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec * INT64_C(1000000000) + ts.tv_nsec;
}

int64_t qb_clock_ns_monotonic(void)
{
    return clock_ns(CLOCK_MONOTONIC);
}

int64_t qb_clock_ns_realtime(void)
{
    return clock_ns(CLOCK_REALTIME);
}

int qb_strtosz(const char *str, const char **end, uint64_t *result)
{
    static const char suffixes[] = "bkmgtpe";
    const char *p = str;
    char *endp;
    double val;
    uint64_t mul = 1, ival;
    const char *s;

    while (g_ascii_isspace(*p)) {
        p++;
    }
    if (*p == '-' || !*p) {
        return -EINVAL;
    }
    errno = 0;
    /* Integers are parsed exactly; a fraction is allowed only with a suffix. */
    ival = g_ascii_strtoull(p, &endp, 0);
    if (errno == ERANGE) {
        return -ERANGE;
    }
    if (endp == p) {
        return -EINVAL;
    }
    val = (double)ival;
    if (*endp == '.') {
        val = g_ascii_strtod(p, &endp);
    }
    if (*endp && (s = strchr(suffixes, g_ascii_tolower(*endp)))) {
        mul = UINT64_C(1) << (10 * (s - suffixes));
        endp++;
    } else if (val != (double)ival) {
        return -EINVAL;
    }
    if (end) {
        *end = endp;
    } else if (*endp) {
        return -EINVAL;
    }
    if (val * mul >= 18446744073709551616.0) {
        return -ERANGE;
    }
    *result = (val == (double)ival) ? ival * mul : (uint64_t)(val * mul);
    if (val == (double)ival && mul > 1 && ival > UINT64_MAX / mul) {
        return -ERANGE;
    }
    return 0;
}
