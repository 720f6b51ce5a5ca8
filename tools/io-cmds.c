/*
 * qblock-io's command interpreter: the command table, line splitting,
 * argument checks, and the commands that do I/O on the open BlockBackend
 * (read, write, readv, writev, aio_*, discard, flush, truncate, length,
 * info, map, alloc, sleep, help, ...).
 *
 * Everything a command prints is part of the interface: iotests compare it
 * byte for byte with qemu-io 7.2's output.  Invariants kept for that:
 *  1. Results and I/O errors go to stdout; argument-count errors, unknown
 *     commands, getopt complaints and "no file open" go to stderr.
 *  2. A command returns 0 or a negative errno; any failure makes the program
 *     exit with status 1 (the aio commands count as successful once
 *     submitted, whatever their completion says).
 *  3. Read buffers are pre-filled with 0xab so that a driver that leaves
 *     data untouched (null-co without read-zeroes) is visible.
 *  4. Asynchronous requests print their result when they complete, i.e.
 *     during whatever later command polls the event loop (aio_flush, a
 *     synchronous request, sleep, or the final drain at exit).
 */
#include "tools/io-cmds.h"
#include "block/block-int.h"

#include <getopt.h>
#include <signal.h>

bool qbio_quit_requested;
bool qbio_misalign;

static GPtrArray *cmdtab;   /* QbioCmd *, sorted by name */

/* ---------------------------------------------------------------------- */
/* Formatting helpers                                                      */

int64_t qbio_cvtnum(const char *s)
{
    static const char suffixes[] = "bkmgtpe";
    const char *p = s;
    char *end;
    uint64_t ival;
    double val, mul = 1;
    const char *sfx;

    /* No sign, no blanks: "-1" and " 1" are not sizes. */
    if (!g_ascii_isdigit(*p)) {
        return -EINVAL;
    }
    errno = 0;
    ival = g_ascii_strtoull(p, &end, 0);
    if (errno == ERANGE) {
        return -ERANGE;
    }
    val = (double)ival;
    if (*end == '.') {
        /* A fraction is only meaningful with a unit suffix ("1.5k"); hex
         * numbers cannot have one. */
        if (g_str_has_prefix(p, "0x") || g_str_has_prefix(p, "0X")) {
            return -EINVAL;
        }
        val = g_ascii_strtod(p, &end);
    }
    if (*end) {
        sfx = strchr(suffixes, g_ascii_tolower(*end));
        if (!sfx) {
            return -EINVAL;
        }
        mul = (double)(UINT64_C(1) << (10 * (sfx - suffixes)));
        end++;
        if (*end) {
            return -EINVAL;
        }
    } else if (val != (double)ival) {
        return -EINVAL;
    }
    if (mul == 1) {
        /* Plain integers are exact; no detour through double. */
        return ival > INT64_MAX ? -ERANGE : (int64_t)ival;
    }
    val *= mul;
    /* 2^63 and above do not fit the signed result. */
    if (val >= 9223372036854775808.0) {
        return -ERANGE;
    }
    if (val != (double)(int64_t)val) {
        return -EINVAL;   /* "1.0001k" is not a whole number of bytes */
    }
    return (int64_t)val;
}

void qbio_print_cvtnum_err(int64_t rc, const char *arg)
{
    switch (rc) {
    case -EINVAL:
        printf("Parsing error: non-numeric argument,"
               " or extraneous/unrecognized suffix -- %s\n", arg);
        break;
    case -ERANGE:
        printf("Parsing error: argument too large -- %s\n", arg);
        break;
    default:
        printf("Parsing error: %s\n", arg);
    }
}

void qbio_cvtstr(double value, char *str, size_t size)
{
    static const char *const units[] = {
        " EiB", " PiB", " TiB", " GiB", " MiB", " KiB",
    };
    const char *suffix = " bytes";
    char num[64];
    char *trim;
    int i;

    snprintf(num, sizeof(num), "%f", value);
    for (i = 0; i < 6; i++) {
        double unit = (double)(UINT64_C(1) << (10 * (6 - i)));
        if (value >= unit) {
            snprintf(num, sizeof(num), "%.3f", value / unit);
            suffix = units[i];
            break;
        }
    }
    /* qemu-io drops a ".000" fraction (and whatever follows it). */
    trim = strstr(num, ".000");
    if (trim) {
        *trim = '\0';
    }
    snprintf(str, size, "%s%s", num, suffix);
}

void qbio_timestr(double secs, char *str, size_t size, bool fixed)
{
    uint64_t cs = (uint64_t)(secs * 100.0);
    unsigned hours = cs / 360000, mins = (cs / 6000) % 60;
    unsigned s = (cs / 100) % 60, frac = cs % 100;

    if (fixed || hours || mins) {
        snprintf(str, size, "%u:%02u:%02u.%02u", hours, mins, s, frac);
    } else {
        snprintf(str, size, "%02u.%02u sec", s, frac);
    }
}

void qbio_dump_buffer(FILE *f, const void *buf, int64_t offset, int64_t len)
{
    const uint8_t *p = buf;
    int64_t i, j;

    for (i = 0; i < len; i += 16) {
        int64_t n = MIN(16, len - i);
        fprintf(f, "%08" PRIx64 ":  ", (uint64_t)(offset + i));
        for (j = 0; j < n; j++) {
            fprintf(f, "%02x ", p[i + j]);
        }
        fputc(' ', f);
        for (j = 0; j < n; j++) {
            uint8_t c = p[i + j];
            fputc(g_ascii_isalnum(c) ? c : '.', f);
        }
        fputc('\n', f);
    }
}

char **qbio_breakline(const char *input, int *count)
{
    GPtrArray *words = g_ptr_array_new();
    const char *p = input;

    while (*p) {
        const char *start;
        while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r') {
            p++;
        }
        if (!*p) {
            break;
        }
        start = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            p++;
        }
        g_ptr_array_add(words, g_strndup(start, p - start));
    }
    *count = words->len;
    g_ptr_array_add(words, NULL);
    return (char **)g_ptr_array_free(words, FALSE);
}

void qbio_print_report(FILE *f, const char *op, double secs, int64_t offset,
                       int64_t count, int64_t total, int cnt, bool cflag)
{
    char ts[64], s1[64], s2[64];

    /* A zero-length interval would print "inf"; a nanosecond is honest. */
    if (secs <= 0) {
        secs = 1e-9;
    }
    if (!cflag) {
        fprintf(f, "%s %" PRId64 "/%" PRId64 " bytes at offset %" PRId64 "\n",
                op, total, count, offset);
        qbio_cvtstr((double)total, s1, sizeof(s1));
        qbio_timestr(secs, ts, sizeof(ts), false);
        qbio_cvtstr((double)total / secs, s2, sizeof(s2));
        fprintf(f, "%s, %d ops; %s (%s/sec and %.4f ops/sec)\n",
                s1, cnt, ts, s2, cnt / secs);
    } else {
        qbio_timestr(secs, ts, sizeof(ts), true);
        fprintf(f, "%" PRId64 ",%d,%s,%.3f,%.3f\n",
                total, cnt, ts, total / secs, cnt / secs);
    }
}

/* ---------------------------------------------------------------------- */
/* Command table and dispatch                                              */

static gint cmd_compare(gconstpointer a, gconstpointer b)
{
    const QbioCmd *ca = *(const QbioCmd *const *)a;
    const QbioCmd *cb = *(const QbioCmd *const *)b;
    return strcmp(ca->name, cb->name);
}

void qbio_add_command(const QbioCmd *cmd)
{
    if (!cmdtab) {
        cmdtab = g_ptr_array_new();
    }
    g_ptr_array_add(cmdtab, (gpointer)cmd);
    g_ptr_array_sort(cmdtab, cmd_compare);
}

static const QbioCmd *find_command(const char *name)
{
    guint i;

    for (i = 0; cmdtab && i < cmdtab->len; i++) {
        const QbioCmd *ct = g_ptr_array_index(cmdtab, i);
        if (!strcmp(ct->name, name) ||
            (ct->altname && !strcmp(ct->altname, name))) {
            return ct;
        }
    }
    return NULL;
}

/* "NAME ARGS -- ONELINE"; NAME is what the user typed for "help ALIAS". */
static void help_oneline(const char *name, const QbioCmd *ct)
{
    if (ct->args) {
        printf("%s %s -- %s\n", name, ct->args, ct->oneline);
    } else {
        printf("%s -- %s\n", name, ct->oneline);
    }
}

void qbio_command_usage(const QbioCmd *ct)
{
    help_oneline(ct->name, ct);
}

/* getopt over a command's arguments; argv[0] names it in complaints. */
static int cmd_getopt(int argc, char **argv, const char *optstr)
{
    return getopt(argc, argv, optstr);
}

static void cmd_getopt_reset(void)
{
    optind = 0;   /* glibc: full re-initialisation */
}

static bool check_argc(const QbioCmd *ct, const char *typed, int argc)
{
    int n = argc - 1;

    if (ct->argmin < 0) {
        return true;
    }
    if (n >= ct->argmin && (ct->argmax < 0 || n <= ct->argmax)) {
        return true;
    }
    if (ct->argmax == -1) {
        fprintf(stderr, "bad argument count %d to %s, expected at least %d "
                "arguments\n", n, typed, ct->argmin);
    } else if (ct->argmin == ct->argmax) {
        fprintf(stderr, "bad argument count %d to %s, expected %d "
                "arguments\n", n, typed, ct->argmin);
    } else {
        fprintf(stderr, "bad argument count %d to %s, expected between %d "
                "and %d arguments\n", n, typed, ct->argmin, ct->argmax);
    }
    return false;
}

int qbio_command(BlockBackend *blk, const char *line)
{
    g_auto(GStrv) argv = NULL;
    const QbioCmd *ct;
    int argc;

    argv = qbio_breakline(line, &argc);
    if (argc == 0) {
        return 0;
    }
    ct = find_command(argv[0]);
    if (!ct) {
        fprintf(stderr, "command \"%s\" not found\n", argv[0]);
        return -EINVAL;
    }
    if (!blk && !(ct->flags & QBIO_CMD_NOFILE_OK)) {
        fprintf(stderr, "no file open, try 'help open'\n");
        return -EINVAL;
    }
    if (!check_argc(ct, argv[0], argc)) {
        return -EINVAL;
    }
    /* A command that writes takes the permission it needs first, so a
     * read-only image refuses it with the block layer's own message. */
    if (blk && ct->perm && blk_is_inserted(blk)) {
        uint64_t perm, shared;
        blk_get_perm(blk, &perm, &shared);
        if ((perm & ct->perm) != ct->perm) {
            Error *err = NULL;
            if (blk_set_perm(blk, perm | ct->perm, shared, &err) < 0) {
                error_report_err(err);
                return -EPERM;
            }
        }
    }
    cmd_getopt_reset();
    return ct->cfunc(blk, argc, argv);
}

/* ---------------------------------------------------------------------- */
/* Shared pieces of the I/O commands                                       */

static double now_secs(void)
{
    return qb_clock_ns_monotonic() / 1e9;
}

/* Buffer for I/O of len bytes filled with pattern; misaligned with -m. */
static void *io_alloc(BlockBackend *blk, size_t len, int pattern)
{
    size_t extra = qbio_misalign ? 512 : 0;
    uint8_t *buf = blk_blockalign(blk, len + extra);
    memset(buf, pattern, len + extra);
    return buf + extra;
}

static void io_free(void *p)
{
    if (p) {
        qb_vfree((uint8_t *)p - (qbio_misalign ? 512 : 0));
    }
}

/* Buffer filled with the contents of file, repeated to len bytes. */
static void *io_alloc_from_file(BlockBackend *blk, size_t len,
                                const char *file)
{
    g_autofree char *data = NULL;
    uint8_t *buf;
    gsize flen = 0;
    FILE *f;
    size_t done;

    f = fopen(file, "r");
    if (!f) {
        perror(file);
        return NULL;
    }
    data = g_malloc(len ? len : 1);
    flen = fread(data, 1, len, f);
    if (ferror(f)) {
        perror(file);
        fclose(f);
        return NULL;
    }
    fclose(f);
    if (flen == 0 && len) {
        fprintf(stderr, "%s: file is empty\n", file);
        return NULL;
    }
    buf = io_alloc(blk, len, 0);
    for (done = 0; done < len; done += flen) {
        memcpy(buf + done, data, MIN(flen, len - done));
    }
    return buf;
}

static int parse_pattern(const char *arg)
{
    char *end;
    long v = strtol(arg, &end, 0);

    if (*end || end == arg || v < 0 || v > 0xff) {
        printf("%s is not a valid pattern byte\n", arg);
        return -1;
    }
    return (int)v;
}

/*
 * Build an IOVector of the lengths in argv[0..nr-1], each buffer filled with
 * pattern.  Returns the flat list of buffers (to free) or NULL after
 * printing why.
 */
static GPtrArray *create_iovec(BlockBackend *blk, IOVector *qiov, char **argv,
                               int nr, int pattern)
{
    GPtrArray *bufs = g_ptr_array_new_with_free_func(io_free);
    uint64_t total = 0;
    int i;

    for (i = 0; i < nr; i++) {
        int64_t len = qbio_cvtnum(argv[i]);
        if (len < 0) {
            qbio_print_cvtnum_err(len, argv[i]);
            goto fail;
        }
        if (len > BDRV_REQUEST_MAX_BYTES) {
            printf("Argument '%s' exceeds maximum size %" PRIu64 "\n",
                   argv[i], (uint64_t)BDRV_REQUEST_MAX_BYTES);
            goto fail;
        }
        total += len;
        if (total > BDRV_REQUEST_MAX_BYTES) {
            printf("The total number of bytes exceed the maximum size %"
                   PRIu64 "\n", (uint64_t)BDRV_REQUEST_MAX_BYTES);
            goto fail;
        }
    }
    qiov_init(qiov, nr);
    for (i = 0; i < nr; i++) {
        int64_t len = qbio_cvtnum(argv[i]);
        void *b = io_alloc(blk, len, pattern);
        g_ptr_array_add(bufs, b);
        qiov_add(qiov, b, len);
    }
    return bufs;

fail:
    g_ptr_array_free(bufs, TRUE);
    return NULL;
}

/* Parse offset and length arguments of a request; prints on failure. */
static bool parse_offset_len(const char *offarg, const char *lenarg,
                             int64_t *offset, int64_t *count)
{
    *offset = qbio_cvtnum(offarg);
    if (*offset < 0) {
        qbio_print_cvtnum_err(*offset, offarg);
        return false;
    }
    *count = qbio_cvtnum(lenarg);
    if (*count < 0) {
        qbio_print_cvtnum_err(*count, lenarg);
        return false;
    }
    if (*count > BDRV_REQUEST_MAX_BYTES) {
        printf("length cannot exceed %" PRIu64 ", given %s\n",
               (uint64_t)BDRV_REQUEST_MAX_BYTES, lenarg);
        return false;
    }
    return true;
}

/* ---------------------------------------------------------------------- */
/* read / readv                                                            */

static void read_help(void)
{
    printf(
"\n"
" reads a range of bytes from the given offset\n"
"\n"
" Example:\n"
" 'read -v 512 1k' - dumps 1 kilobyte read from 512 bytes into the file\n"
"\n"
" Reads a segment of the currently open file, optionally dumping it to the\n"
" standard output stream (with -v option) for subsequent inspection.\n"
" -b, -- read from the VM state rather than the virtual disk\n"
" -C, -- report statistics in a machine parsable format\n"
" -l, -- length for pattern verification (only with -P)\n"
" -p, -- ignored for backwards compatibility\n"
" -P, -- use a pattern to verify read data\n"
" -q, -- quiet mode, do not show I/O statistics\n"
" -s, -- start offset for pattern verification (only with -P)\n"
" -v, -- dump buffer to standard output\n"
"\n");
}

static int read_f(BlockBackend *blk, int argc, char **argv);
static const QbioCmd read_cmd = {
    .name = "read", .altname = "r", .cfunc = read_f,
    .argmin = 2, .argmax = -1,
    .args = "[-abCqv] [-P pattern [-s off] [-l len]] off len",
    .oneline = "reads a number of bytes at a specified offset",
    .help = read_help,
};

/* Report a mismatch against pattern; true if the data matched. */
static bool verify_pattern(const uint8_t *buf, int64_t len, int pattern,
                           int64_t report_offset)
{
    int64_t i;

    for (i = 0; i < len; i++) {
        if (buf[i] != pattern) {
            printf("Pattern verification failed at offset %" PRId64 ", %"
                   PRId64 " bytes\n", report_offset, len);
            return false;
        }
    }
    return true;
}

static int read_f(BlockBackend *blk, int argc, char **argv)
{
    bool cflag = false, qflag = false, vflag = false, bflag = false;
    bool pflag = false, sflag = false, lflag = false;
    int pattern = 0, c, ret;
    int64_t offset, count, pattern_offset = 0, pattern_count = 0;
    double t1;
    uint8_t *buf;

    while ((c = cmd_getopt(argc, argv, "bCl:pP:qs:v")) != -1) {
        switch (c) {
        case 'b': bflag = true; break;
        case 'C': cflag = true; break;
        case 'l':
            lflag = true;
            pattern_count = qbio_cvtnum(optarg);
            if (pattern_count < 0) {
                qbio_print_cvtnum_err(pattern_count, optarg);
                return pattern_count;
            }
            break;
        case 'p': break;
        case 'P':
            pflag = true;
            pattern = parse_pattern(optarg);
            if (pattern < 0) {
                return -EINVAL;
            }
            break;
        case 'q': qflag = true; break;
        case 's':
            sflag = true;
            pattern_offset = qbio_cvtnum(optarg);
            if (pattern_offset < 0) {
                qbio_print_cvtnum_err(pattern_offset, optarg);
                return pattern_offset;
            }
            break;
        case 'v': vflag = true; break;
        default:
            qbio_command_usage(&read_cmd);
            return -EINVAL;
        }
    }
    if (optind != argc - 2) {
        qbio_command_usage(&read_cmd);
        return -EINVAL;
    }
    if (!parse_offset_len(argv[optind], argv[optind + 1], &offset, &count)) {
        return -EINVAL;
    }
    if (!pflag && (lflag || sflag)) {
        qbio_command_usage(&read_cmd);
        return -EINVAL;
    }
    if (!lflag) {
        pattern_count = count - pattern_offset;
    }
    if (pattern_count < 0 || pattern_count + pattern_offset > count) {
        printf("pattern verification range exceeds end of read data\n");
        return -EINVAL;
    }

    buf = io_alloc(blk, count, 0xab);
    t1 = now_secs();
    if (bflag) {
        ret = -ENOTSUP;     /* no VM state area in qblock */
    } else {
        ret = blk_pread(blk, offset, count, buf, 0);
    }
    t1 = now_secs() - t1;
    if (ret < 0) {
        printf("read failed: %s\n", strerror(-ret));
        goto out;
    }
    ret = 0;
    if (pflag && !verify_pattern(buf + pattern_offset, pattern_count,
                                 pattern, offset + pattern_offset)) {
        ret = -EINVAL;
    }
    if (qflag) {
        goto out;
    }
    if (vflag) {
        qbio_dump_buffer(stdout, buf, offset, count);
    }
    qbio_print_report(stdout, "read", t1, offset, count, count, 1, cflag);
out:
    io_free(buf);
    return ret;
}

static void readv_help(void)
{
    printf(
"\n"
" reads a range of bytes from the given offset into multiple buffers\n"
"\n"
" Example:\n"
" 'readv -v 512 1k 1k ' - dumps 2 kilobytes read from 512 bytes into the file\n"
"\n"
" Reads a segment of the currently open file, optionally dumping it to the\n"
" standard output stream (with -v option) for subsequent inspection.\n"
" Uses multiple iovec buffers if more than one byte range is specified.\n"
" -C, -- report statistics in a machine parsable format\n"
" -P, -- use a pattern to verify read data\n"
" -v, -- dump buffer to standard output\n"
" -q, -- quiet mode, do not show I/O statistics\n"
"\n");
}

static int readv_f(BlockBackend *blk, int argc, char **argv);
static const QbioCmd readv_cmd = {
    .name = "readv", .cfunc = readv_f, .argmin = 2, .argmax = -1,
    .args = "[-Cqv] [-P pattern] off len [len..]",
    .oneline = "reads a number of bytes at a specified offset",
    .help = readv_help,
};

static int readv_f(BlockBackend *blk, int argc, char **argv)
{
    bool cflag = false, qflag = false, vflag = false, pflag = false;
    int pattern = 0, c, ret;
    int64_t offset;
    IOVector qiov;
    GPtrArray *bufs;
    double t1;

    while ((c = cmd_getopt(argc, argv, "CP:qv")) != -1) {
        switch (c) {
        case 'C': cflag = true; break;
        case 'P':
            pflag = true;
            pattern = parse_pattern(optarg);
            if (pattern < 0) {
                return -EINVAL;
            }
            break;
        case 'q': qflag = true; break;
        case 'v': vflag = true; break;
        default:
            qbio_command_usage(&readv_cmd);
            return -EINVAL;
        }
    }
    if (optind > argc - 2) {
        qbio_command_usage(&readv_cmd);
        return -EINVAL;
    }
    offset = qbio_cvtnum(argv[optind]);
    if (offset < 0) {
        qbio_print_cvtnum_err(offset, argv[optind]);
        return -EINVAL;
    }
    optind++;
    bufs = create_iovec(blk, &qiov, &argv[optind], argc - optind, 0xab);
    if (!bufs) {
        return -EINVAL;
    }
    t1 = now_secs();
    ret = blk_preadv(blk, offset, qiov.size, &qiov, 0);
    t1 = now_secs() - t1;
    if (ret < 0) {
        printf("readv failed: %s\n", strerror(-ret));
        goto out;
    }
    ret = 0;
    if (pflag) {
        g_autofree uint8_t *flat = g_malloc(qiov.size ? qiov.size : 1);
        qiov_to_buf(&qiov, 0, flat, qiov.size);
        if (!verify_pattern(flat, qiov.size, pattern, offset)) {
            ret = -EINVAL;
        }
    }
    if (qflag) {
        goto out;
    }
    if (vflag) {
        g_autofree uint8_t *flat = g_malloc(qiov.size ? qiov.size : 1);
        qiov_to_buf(&qiov, 0, flat, qiov.size);
        qbio_dump_buffer(stdout, flat, offset, qiov.size);
    }
    qbio_print_report(stdout, "read", t1, offset, qiov.size, qiov.size, 1,
                      cflag);
out:
    qiov_destroy(&qiov);
    g_ptr_array_free(bufs, TRUE);
    return ret;
}

/* ---------------------------------------------------------------------- */
/* write / writev                                                          */

static void write_help(void)
{
    printf(
"\n"
" writes a range of bytes from the given offset\n"
"\n"
" Example:\n"
" 'write 512 1k' - writes 1 kilobyte at 512 bytes into the open file\n"
"\n"
" Writes into a segment of the currently open file, using a buffer\n"
" filled with a set pattern (0xcdcdcdcd).\n"
" -b, -- write to the VM state rather than the virtual disk\n"
" -c, -- write compressed data with blk_write_compressed\n"
" -f, -- use Force Unit Access semantics\n"
" -n, -- with -z, don't allow slow fallback\n"
" -p, -- ignored for backwards compatibility\n"
" -P, -- use different pattern to fill file\n"
" -s, -- use a pattern file to fill the write buffer\n"
" -C, -- report statistics in a machine parsable format\n"
" -q, -- quiet mode, do not show I/O statistics\n"
" -u, -- with -z, allow unmapping\n"
" -z, -- write zeroes using blk_co_pwrite_zeroes\n"
"\n");
}

static int write_f(BlockBackend *blk, int argc, char **argv);
static const QbioCmd write_cmd = {
    .name = "write", .altname = "w", .cfunc = write_f,
    .argmin = 2, .argmax = -1, .perm = BLK_PERM_WRITE,
    .args = "[-bcCfnquz] [-P pattern | -s source_file] off len",
    .oneline = "writes a number of bytes at a specified offset",
    .help = write_help,
};

static int write_f(BlockBackend *blk, int argc, char **argv)
{
    bool bflag = false, cflag = false, compressed = false, qflag = false;
    bool zflag = false, pflag = false, sflag = false;
    BdrvRequestFlags flags = 0;
    int pattern = 0xcd, c, ret;
    int64_t offset, count;
    const char *file = NULL;
    uint8_t *buf = NULL;
    double t1;

    while ((c = cmd_getopt(argc, argv, "bcCfnpP:qs:uz")) != -1) {
        switch (c) {
        case 'b': bflag = true; break;
        case 'c': compressed = true; break;
        case 'C': cflag = true; break;
        case 'f': flags |= BDRV_REQ_FUA; break;
        case 'n': flags |= BDRV_REQ_NO_FALLBACK; break;
        case 'p': break;
        case 'P':
            pflag = true;
            pattern = parse_pattern(optarg);
            if (pattern < 0) {
                return -EINVAL;
            }
            break;
        case 'q': qflag = true; break;
        case 's': sflag = true; file = optarg; break;
        case 'u': flags |= BDRV_REQ_MAY_UNMAP; break;
        case 'z': zflag = true; break;
        default:
            qbio_command_usage(&write_cmd);
            return -EINVAL;
        }
    }
    if (optind != argc - 2) {
        qbio_command_usage(&write_cmd);
        return -EINVAL;
    }
    if (bflag && zflag) {
        printf("-b and -z cannot be specified at the same time\n");
        return -EINVAL;
    }
    if ((flags & BDRV_REQ_FUA) && (bflag || compressed)) {
        printf("-f and -b or -c cannot be specified at the same time\n");
        return -EINVAL;
    }
    if ((flags & BDRV_REQ_NO_FALLBACK) && !zflag) {
        printf("-n requires -z to be specified\n");
        return -EINVAL;
    }
    if ((flags & BDRV_REQ_MAY_UNMAP) && !zflag) {
        printf("-u requires -z to be specified\n");
        return -EINVAL;
    }
    if (zflag + pflag + sflag > 1) {
        printf("Only one of -z, -P, and -s can be specified at the same "
               "time\n");
        return -EINVAL;
    }
    offset = qbio_cvtnum(argv[optind]);
    if (offset < 0) {
        qbio_print_cvtnum_err(offset, argv[optind]);
        return -EINVAL;
    }
    count = qbio_cvtnum(argv[optind + 1]);
    if (count < 0) {
        qbio_print_cvtnum_err(count, argv[optind + 1]);
        return -EINVAL;
    }
    /* Only a fast (no-fallback) write-zeroes may exceed the request limit. */
    if (count > BDRV_REQUEST_MAX_BYTES && !(flags & BDRV_REQ_NO_FALLBACK)) {
        printf("length cannot exceed %" PRIu64 " without -n, given %s\n",
               (uint64_t)BDRV_REQUEST_MAX_BYTES, argv[optind + 1]);
        return -EINVAL;
    }
    if (bflag || compressed) {
        if (offset % 512) {
            printf("%" PRId64 " is not a sector-aligned value for 'offset'\n",
                   offset);
            return -EINVAL;
        }
        if (count % 512) {
            printf("%" PRId64 " is not a sector-aligned value for 'count'\n",
                   count);
            return -EINVAL;
        }
    }
    if (!zflag) {
        buf = sflag ? io_alloc_from_file(blk, count, file)
                    : io_alloc(blk, count, pattern);
        if (!buf) {
            return -EINVAL;
        }
    }

    t1 = now_secs();
    if (bflag) {
        ret = -ENOTSUP;     /* no VM state area in qblock */
    } else if (zflag) {
        ret = blk_pwrite_zeroes(blk, offset, count, flags);
    } else if (compressed) {
        ret = blk_pwrite_compressed(blk, offset, count, buf);
    } else {
        ret = blk_pwrite(blk, offset, count, buf, flags);
    }
    t1 = now_secs() - t1;
    if (ret < 0) {
        printf("write failed: %s\n", strerror(-ret));
        goto out;
    }
    ret = 0;
    if (!qflag) {
        qbio_print_report(stdout, "wrote", t1, offset, count, count, 1,
                          cflag);
    }
out:
    io_free(buf);
    return ret;
}

static void writev_help(void)
{
    printf(
"\n"
" writes a range of bytes from the given offset source from multiple buffers\n"
"\n"
" Example:\n"
" 'writev 512 1k 1k' - writes 2 kilobytes at 512 bytes into the open file\n"
"\n"
" Writes into a segment of the currently open file, using a buffer\n"
" filled with a set pattern (0xcdcdcdcd).\n"
" -P, -- use different pattern to fill file\n"
" -C, -- report statistics in a machine parsable format\n"
" -f, -- use Force Unit Access semantics\n"
" -q, -- quiet mode, do not show I/O statistics\n"
"\n");
}

static int writev_f(BlockBackend *blk, int argc, char **argv);
static const QbioCmd writev_cmd = {
    .name = "writev", .cfunc = writev_f, .argmin = 2, .argmax = -1,
    .perm = BLK_PERM_WRITE,
    .args = "[-Cfq] [-P pattern] off len [len..]",
    .oneline = "writes a number of bytes at a specified offset",
    .help = writev_help,
};

static int writev_f(BlockBackend *blk, int argc, char **argv)
{
    bool cflag = false, qflag = false;
    BdrvRequestFlags flags = 0;
    int pattern = 0xcd, c, ret;
    int64_t offset;
    IOVector qiov;
    GPtrArray *bufs;
    double t1;

    while ((c = cmd_getopt(argc, argv, "CfqP:")) != -1) {
        switch (c) {
        case 'C': cflag = true; break;
        case 'f': flags |= BDRV_REQ_FUA; break;
        case 'q': qflag = true; break;
        case 'P':
            pattern = parse_pattern(optarg);
            if (pattern < 0) {
                return -EINVAL;
            }
            break;
        default:
            qbio_command_usage(&writev_cmd);
            return -EINVAL;
        }
    }
    if (optind > argc - 2) {
        qbio_command_usage(&writev_cmd);
        return -EINVAL;
    }
    offset = qbio_cvtnum(argv[optind]);
    if (offset < 0) {
        qbio_print_cvtnum_err(offset, argv[optind]);
        return -EINVAL;
    }
    optind++;
    bufs = create_iovec(blk, &qiov, &argv[optind], argc - optind, pattern);
    if (!bufs) {
        return -EINVAL;
    }
    t1 = now_secs();
    ret = blk_pwritev(blk, offset, qiov.size, &qiov, flags);
    t1 = now_secs() - t1;
    if (ret < 0) {
        printf("writev failed: %s\n", strerror(-ret));
        goto out;
    }
    ret = 0;
    if (!qflag) {
        qbio_print_report(stdout, "wrote", t1, offset, qiov.size, qiov.size,
                          1, cflag);
    }
out:
    qiov_destroy(&qiov);
    g_ptr_array_free(bufs, TRUE);
    return ret;
}

/* ---------------------------------------------------------------------- */
/* aio_read / aio_write / aio_flush                                        */

/* One asynchronous request; freed by its completion callback. */
typedef struct AioReq {
    BlockBackend *blk;
    IOVector qiov;
    GPtrArray *bufs;          /* NULL for write-zeroes */
    int64_t offset;
    int64_t bytes;
    double t1;
    bool cflag, qflag, vflag, pflag;
    int pattern;
    bool zflag;
} AioReq;

static void aio_req_free(AioReq *r)
{
    if (r->bufs) {
        qiov_destroy(&r->qiov);
        g_ptr_array_free(r->bufs, TRUE);
    }
    blk_unref(r->blk);
    g_free(r);
}

static void aio_write_done(void *opaque, int ret)
{
    AioReq *r = opaque;
    double t = now_secs() - r->t1;

    if (ret < 0) {
        printf("aio_write failed: %s\n", strerror(-ret));
    } else if (!r->qflag) {
        qbio_print_report(stdout, "wrote", t, r->offset, r->bytes, r->bytes,
                          1, r->cflag);
    }
    aio_req_free(r);
}

static void aio_read_done(void *opaque, int ret)
{
    AioReq *r = opaque;
    double t = now_secs() - r->t1;
    g_autofree uint8_t *flat = NULL;

    if (ret < 0) {
        printf("readv failed: %s\n", strerror(-ret));
        goto out;
    }
    if (r->pflag || r->vflag) {
        flat = g_malloc(r->qiov.size ? r->qiov.size : 1);
        qiov_to_buf(&r->qiov, 0, flat, r->qiov.size);
    }
    if (r->pflag) {
        verify_pattern(flat, r->qiov.size, r->pattern, r->offset);
    }
    if (r->qflag) {
        goto out;
    }
    if (r->vflag) {
        qbio_dump_buffer(stdout, flat, r->offset, r->qiov.size);
    }
    qbio_print_report(stdout, "read", t, r->offset, r->bytes, r->bytes, 1,
                      r->cflag);
out:
    aio_req_free(r);
}

static void aio_read_help(void)
{
    printf(
"\n"
" asynchronously reads a range of bytes from the given offset\n"
"\n"
" Example:\n"
" 'aio_read -v 512 1k 1k ' - dumps 2 kilobytes read from 512 bytes into the file\n"
"\n"
" Reads a segment of the currently open file, optionally dumping it to the\n"
" standard output stream (with -v option) for subsequent inspection.\n"
" The read is performed asynchronously and the aio_flush command must be\n"
" used to ensure all outstanding aio requests have been completed.\n"
" Note that due to its asynchronous nature, this command will be\n"
" considered successful once the request is submitted, independently\n"
" of potential I/O errors or pattern mismatches.\n"
" -C, -- report statistics in a machine parsable format\n"
" -P, -- use a pattern to verify read data\n"
" -i, -- treat request as invalid, for exercising stats\n"
" -v, -- dump buffer to standard output\n"
" -q, -- quiet mode, do not show I/O statistics\n"
"\n");
}

static int aio_read_f(BlockBackend *blk, int argc, char **argv);
static const QbioCmd aio_read_cmd = {
    .name = "aio_read", .cfunc = aio_read_f, .argmin = 2, .argmax = -1,
    .args = "[-Ciqv] [-P pattern] off len [len..]",
    .oneline = "asynchronously reads a number of bytes",
    .help = aio_read_help,
};

static int aio_read_f(BlockBackend *blk, int argc, char **argv)
{
    AioReq *r = g_new0(AioReq, 1);
    int c;

    while ((c = cmd_getopt(argc, argv, "CiP:qv")) != -1) {
        switch (c) {
        case 'C': r->cflag = true; break;
        case 'P':
            r->pflag = true;
            r->pattern = parse_pattern(optarg);
            if (r->pattern < 0) {
                g_free(r);
                return -EINVAL;
            }
            break;
        case 'i':
            printf("injecting invalid read request\n");
            g_free(r);
            return 0;
        case 'q': r->qflag = true; break;
        case 'v': r->vflag = true; break;
        default:
            g_free(r);
            qbio_command_usage(&aio_read_cmd);
            return -EINVAL;
        }
    }
    if (optind > argc - 2) {
        g_free(r);
        qbio_command_usage(&aio_read_cmd);
        return -EINVAL;
    }
    r->offset = qbio_cvtnum(argv[optind]);
    if (r->offset < 0) {
        qbio_print_cvtnum_err(r->offset, argv[optind]);
        g_free(r);
        return -EINVAL;
    }
    optind++;
    r->bufs = create_iovec(blk, &r->qiov, &argv[optind], argc - optind, 0xab);
    if (!r->bufs) {
        g_free(r);
        return -EINVAL;
    }
    r->bytes = r->qiov.size;
    r->blk = blk;
    blk_ref(blk);
    r->t1 = now_secs();
    blk_aio_preadv(blk, r->offset, &r->qiov, 0, aio_read_done, r);
    return 0;
}

static void aio_write_help(void)
{
    printf(
"\n"
" asynchronously writes a range of bytes from the given offset source\n"
" from multiple buffers\n"
"\n"
" Example:\n"
" 'aio_write 512 1k 1k' - writes 2 kilobytes at 512 bytes into the open file\n"
"\n"
" Writes into a segment of the currently open file, using a buffer\n"
" filled with a set pattern (0xcdcdcdcd).\n"
" The write is performed asynchronously and the aio_flush command must be\n"
" used to ensure all outstanding aio requests have been completed.\n"
" Note that due to its asynchronous nature, this command will be\n"
" considered successful once the request is submitted, independently\n"
" of potential I/O errors or pattern mismatches.\n"
" -P, -- use different pattern to fill file\n"
" -C, -- report statistics in a machine parsable format\n"
" -f, -- use Force Unit Access semantics\n"
" -i, -- treat request as invalid, for exercising stats\n"
" -q, -- quiet mode, do not show I/O statistics\n"
" -u, -- with -z, allow unmapping\n"
" -z, -- write zeroes using blk_aio_pwrite_zeroes\n"
"\n");
}

static int aio_write_f(BlockBackend *blk, int argc, char **argv);
static const QbioCmd aio_write_cmd = {
    .name = "aio_write", .cfunc = aio_write_f, .argmin = 2, .argmax = -1,
    .perm = BLK_PERM_WRITE,
    .args = "[-Cfiquz] [-P pattern] off len [len..]",
    .oneline = "asynchronously writes a number of bytes",
    .help = aio_write_help,
};

static int aio_write_f(BlockBackend *blk, int argc, char **argv)
{
    AioReq *r = g_new0(AioReq, 1);
    BdrvRequestFlags flags = 0;
    int pattern = 0xcd, c;

    while ((c = cmd_getopt(argc, argv, "CfiqP:uz")) != -1) {
        switch (c) {
        case 'C': r->cflag = true; break;
        case 'f': flags |= BDRV_REQ_FUA; break;
        case 'q': r->qflag = true; break;
        case 'u': flags |= BDRV_REQ_MAY_UNMAP; break;
        case 'P':
            pattern = parse_pattern(optarg);
            if (pattern < 0) {
                g_free(r);
                return -EINVAL;
            }
            break;
        case 'i':
            printf("injecting invalid write request\n");
            g_free(r);
            return 0;
        case 'z': r->zflag = true; break;
        default:
            g_free(r);
            qbio_command_usage(&aio_write_cmd);
            return -EINVAL;
        }
    }
    if (optind > argc - 2) {
        g_free(r);
        qbio_command_usage(&aio_write_cmd);
        return -EINVAL;
    }
    if ((flags & BDRV_REQ_MAY_UNMAP) && !r->zflag) {
        printf("-u requires -z to be specified\n");
        g_free(r);
        return -EINVAL;
    }
    r->offset = qbio_cvtnum(argv[optind]);
    if (r->offset < 0) {
        qbio_print_cvtnum_err(r->offset, argv[optind]);
        g_free(r);
        return -EINVAL;
    }
    optind++;
    if (r->zflag) {
        if (optind != argc - 1) {
            printf("-z supports only a single length parameter\n");
            g_free(r);
            return -EINVAL;
        }
        r->bytes = qbio_cvtnum(argv[optind]);
        if (r->bytes < 0) {
            qbio_print_cvtnum_err(r->bytes, argv[optind]);
            g_free(r);
            return -EINVAL;
        }
        r->blk = blk;
        blk_ref(blk);
        r->t1 = now_secs();
        blk_aio_pwrite_zeroes(blk, r->offset, r->bytes, flags,
                              aio_write_done, r);
        return 0;
    }
    r->bufs = create_iovec(blk, &r->qiov, &argv[optind], argc - optind,
                           pattern);
    if (!r->bufs) {
        g_free(r);
        return -EINVAL;
    }
    r->bytes = r->qiov.size;
    r->blk = blk;
    blk_ref(blk);
    r->t1 = now_secs();
    blk_aio_pwritev(blk, r->offset, &r->qiov, flags, aio_write_done, r);
    return 0;
}

static int aio_flush_f(BlockBackend *blk, int argc, char **argv)
{
    blk_drain_all();
    return 0;
}

static const QbioCmd aio_flush_cmd = {
    .name = "aio_flush", .cfunc = aio_flush_f, .argmin = 0, .argmax = 0,
    .oneline = "completes all outstanding aio requests",
};

/* ---------------------------------------------------------------------- */
/* flush, truncate, length, info, discard                                  */

static int flush_f(BlockBackend *blk, int argc, char **argv)
{
    return blk_flush(blk);
}

static const QbioCmd flush_cmd = {
    .name = "flush", .altname = "f", .cfunc = flush_f,
    .argmin = 0, .argmax = 0,
    .oneline = "flush all in-core file state to disk",
};

static int truncate_f(BlockBackend *blk, int argc, char **argv);
static const QbioCmd truncate_cmd = {
    .name = "truncate", .altname = "t", .cfunc = truncate_f,
    .argmin = 1, .argmax = 3, .perm = BLK_PERM_WRITE | BLK_PERM_RESIZE,
    .args = "[-m prealloc_mode] off",
    .oneline = "truncates the current file at the given offset",
};

static int truncate_f(BlockBackend *blk, int argc, char **argv)
{
    static const char *const modes[] = { "off", "metadata", "falloc",
                                         "full" };
    PreallocMode prealloc = PREALLOC_MODE_OFF;
    Error *err = NULL;
    int64_t offset;
    int c, ret;
    unsigned i;

    while ((c = cmd_getopt(argc, argv, "m:")) != -1) {
        switch (c) {
        case 'm':
            for (i = 0; i < QB_ARRAY_SIZE(modes); i++) {
                if (!strcmp(optarg, modes[i])) {
                    break;
                }
            }
            if (i == QB_ARRAY_SIZE(modes)) {
                error_report("Invalid preallocation mode '%s'", optarg);
                return -EINVAL;
            }
            prealloc = (PreallocMode)i;
            break;
        default:
            qbio_command_usage(&truncate_cmd);
            return -EINVAL;
        }
    }
    if (optind >= argc) {
        /* qemu-io crashes here; a usage line is kinder. */
        qbio_command_usage(&truncate_cmd);
        return -EINVAL;
    }
    offset = qbio_cvtnum(argv[optind]);
    if (offset < 0) {
        qbio_print_cvtnum_err(offset, argv[optind]);
        return offset;
    }
    ret = blk_truncate(blk, offset, false, prealloc, 0, &err);
    if (ret < 0) {
        error_report_err(err);
        return ret;
    }
    return 0;
}

static int length_f(BlockBackend *blk, int argc, char **argv)
{
    int64_t size = blk_getlength(blk);
    char s[64];

    if (size < 0) {
        printf("getlength: %s\n", strerror(-size));
        return size;
    }
    qbio_cvtstr((double)size, s, sizeof(s));
    printf("%s\n", s);
    return 0;
}

static const QbioCmd length_cmd = {
    .name = "length", .altname = "l", .cfunc = length_f,
    .argmin = 0, .argmax = 0,
    .oneline = "gets the length of the current file",
};

/* Print a format-specific info object as qemu-io/qemu-img "human" output:
 * keys with dashes shown with spaces, nested objects indented. */
static void dump_specific(json_t *obj, int indent)
{
    const char *key;
    json_t *val;

    json_object_foreach(obj, key, val) {
        g_autofree char *name = g_strdelimit(g_strdup(key), "-", ' ');
        if (json_is_object(val)) {
            printf("%*s%s:\n", indent, "", name);
            dump_specific(val, indent + 4);
        } else if (json_is_array(val)) {
            size_t i;
            json_t *e;
            printf("%*s%s:\n", indent, "", name);
            json_array_foreach(val, i, e) {
                if (json_is_object(e)) {
                    printf("%*s[%zu]:\n", indent + 4, "", i);
                    dump_specific(e, indent + 8);
                } else if (json_is_string(e)) {
                    printf("%*s[%zu]: %s\n", indent + 4, "", i,
                           json_string_value(e));
                } else {
                    g_autofree char *s = json_dumps(e, JSON_ENCODE_ANY);
                    printf("%*s[%zu]: %s\n", indent + 4, "", i, s);
                }
            }
        } else if (json_is_string(val)) {
            printf("%*s%s: %s\n", indent, "", name, json_string_value(val));
        } else {
            g_autofree char *s = json_dumps(val, JSON_ENCODE_ANY);
            printf("%*s%s: %s\n", indent, "", name, s);
        }
    }
}

static int info_f(BlockBackend *blk, int argc, char **argv)
{
    BlockDriverState *bs = blk_bs(blk);
    BlockDriverInfo bdi = { 0 };
    Error *err = NULL;
    json_t *spec;
    char s1[64], s2[64];
    int ret;

    printf("format name: %s\n", bdrv_get_format_name(bs));
    /* qemu-io 7.2 names a protocol node twice (its format and protocol
     * lines coincide); keep that. */
    if (bs->drv && !bs->drv->is_format) {
        printf("format name: %s\n", bdrv_get_format_name(bs));
    }
    ret = bdrv_get_info(bs, &bdi);
    if (ret) {
        return ret;
    }
    qbio_cvtstr(bdi.cluster_size, s1, sizeof(s1));
    qbio_cvtstr(bdi.vm_state_offset, s2, sizeof(s2));
    printf("cluster size: %s\n", s1);
    printf("vm state offset: %s\n", s2);

    spec = bdrv_get_specific_info(bs, &err);
    if (err) {
        error_report_err(err);
        return -EIO;
    }
    if (spec) {
        json_t *data = json_object_get(spec, "data");
        printf("Format specific information:\n");
        if (json_is_object(data)) {
            dump_specific(data, 4);
        }
        json_decref(spec);
    }
    return 0;
}

static const QbioCmd info_cmd = {
    .name = "info", .altname = "i", .cfunc = info_f,
    .argmin = 0, .argmax = 0,
    .oneline = "prints information about the current file",
};

static void discard_help(void)
{
    printf(
"\n"
" discards a range of bytes from the given offset\n"
"\n"
" Example:\n"
" 'discard 512 1k' - discards 1 kilobyte from 512 bytes into the file\n"
"\n"
" Discards a segment of the currently open file.\n"
" -C, -- report statistics in a machine parsable format\n"
" -q, -- quiet mode, do not show I/O statistics\n"
"\n");
}

static int discard_f(BlockBackend *blk, int argc, char **argv);
static const QbioCmd discard_cmd = {
    .name = "discard", .altname = "d", .cfunc = discard_f,
    .argmin = 2, .argmax = -1, .perm = BLK_PERM_WRITE,
    .args = "[-Cq] off len",
    .oneline = "discards a number of bytes at a specified offset",
    .help = discard_help,
};

static int discard_f(BlockBackend *blk, int argc, char **argv)
{
    bool cflag = false, qflag = false;
    int64_t offset, bytes;
    double t1;
    int c, ret;

    while ((c = cmd_getopt(argc, argv, "Cq")) != -1) {
        switch (c) {
        case 'C': cflag = true; break;
        case 'q': qflag = true; break;
        default:
            qbio_command_usage(&discard_cmd);
            return -EINVAL;
        }
    }
    if (optind != argc - 2) {
        qbio_command_usage(&discard_cmd);
        return -EINVAL;
    }
    if (!parse_offset_len(argv[optind], argv[optind + 1], &offset, &bytes)) {
        return -EINVAL;
    }
    t1 = now_secs();
    ret = blk_pdiscard(blk, offset, bytes);
    t1 = now_secs() - t1;
    if (ret < 0) {
        printf("discard failed: %s\n", strerror(-ret));
        return ret;
    }
    if (!qflag) {
        qbio_print_report(stdout, "discard", t1, offset, bytes, bytes, 1,
                          cflag);
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* alloc, map                                                              */

/*
 * Allocation status of [offset, offset+bytes) in the top node: 1 allocated,
 * 0 not, -errno; *pnum is the length of the run (0 only at EOF).
 */
static int is_allocated(BlockDriverState *bs, int64_t offset, int64_t bytes,
                        int64_t *pnum)
{
    int64_t len = bdrv_getlength(bs);
    int ret;

    if (len < 0) {
        return len;
    }
    if (offset >= len) {
        *pnum = 0;
        return 0;
    }
    bytes = MIN(bytes, len - offset);
    ret = bdrv_block_status(bs, offset, bytes, pnum, NULL, NULL);
    if (ret < 0) {
        return ret;
    }
    return !!(ret & BDRV_BLOCK_ALLOCATED);
}

static int alloc_f(BlockBackend *blk, int argc, char **argv)
{
    BlockDriverState *bs = blk_bs(blk);
    int64_t offset, start, remaining, count = BDRV_SECTOR_SIZE;
    int64_t sum_alloc = 0;
    char s1[64];
    int ret;

    start = offset = qbio_cvtnum(argv[1]);
    if (offset < 0) {
        qbio_print_cvtnum_err(offset, argv[1]);
        return offset;
    }
    if (argc == 3) {
        count = qbio_cvtnum(argv[2]);
        if (count < 0) {
            qbio_print_cvtnum_err(count, argv[2]);
            return count;
        }
    }
    remaining = count;
    while (remaining) {
        int64_t num;
        ret = is_allocated(bs, offset, remaining, &num);
        if (ret < 0) {
            printf("is_allocated failed: %s\n", strerror(-ret));
            return ret;
        }
        offset += num;
        remaining -= num;
        if (ret) {
            sum_alloc += num;
        }
        if (num == 0) {
            /* EOF: report only what exists. */
            count -= remaining;
            remaining = 0;
        }
    }
    qbio_cvtstr(start, s1, sizeof(s1));
    printf("%" PRId64 "/%" PRId64 " bytes allocated at offset %s\n",
           sum_alloc, count, s1);
    return 0;
}

static const QbioCmd alloc_cmd = {
    .name = "alloc", .altname = "a", .cfunc = alloc_f,
    .argmin = 1, .argmax = 2,
    .args = "offset [count]",
    .oneline = "checks if offset is allocated in the file",
};

/* Length of the run starting at offset whose allocation matches the first
 * byte's; *allocated tells which. */
static int map_run(BlockDriverState *bs, int64_t offset, int64_t bytes,
                   int64_t *pnum, bool *allocated)
{
    int64_t num, total = 0;
    int ret, first;

    first = is_allocated(bs, offset, bytes, &num);
    if (first < 0) {
        return first;
    }
    *allocated = first;
    while (num > 0) {
        total += num;
        offset += num;
        bytes -= num;
        if (!bytes) {
            break;
        }
        ret = is_allocated(bs, offset, bytes, &num);
        if (ret < 0) {
            return ret;
        }
        if (ret != first) {
            break;
        }
    }
    *pnum = total;
    return 0;
}

static int map_f(BlockBackend *blk, int argc, char **argv)
{
    BlockDriverState *bs = blk_bs(blk);
    int64_t offset = 0, length, num;
    char s1[64], s2[64];
    bool allocated;
    int ret;

    length = blk_getlength(blk);
    if (length < 0) {
        error_report("Failed to query image length: %s", strerror(-length));
        return length;
    }
    while (offset < length) {
        ret = map_run(bs, offset, length - offset, &num, &allocated);
        if (ret < 0) {
            error_report("Failed to get allocation status: %s",
                         strerror(-ret));
            return ret;
        }
        if (num == 0) {
            error_report("Unexpected end of image");
            return -EIO;
        }
        qbio_cvtstr(num, s1, sizeof(s1));
        qbio_cvtstr(offset, s2, sizeof(s2));
        printf("%s (0x%" PRIx64 ") bytes %s allocated at offset %s (0x%"
               PRIx64 ")\n", s1, (uint64_t)num, allocated ? "   " : "not",
               s2, (uint64_t)offset);
        offset += num;
    }
    return 0;
}

static const QbioCmd map_cmd = {
    .name = "map", .cfunc = map_f, .argmin = 0, .argmax = 0,
    .args = "",
    .oneline = "prints the allocated areas of a file",
};

/* ---------------------------------------------------------------------- */
/* sleep, help, abort, sigraise, blkdebug breakpoints                      */

static void sleep_done(void *opaque)
{
    *(bool *)opaque = true;
}

static int sleep_f(BlockBackend *blk, int argc, char **argv)
{
    AioContext *ctx = qb_get_aio_context();
    char *end;
    long ms = strtol(argv[1], &end, 0);
    QBTimer *t;
    bool done = false;

    if (ms < 0 || *end || end == argv[1]) {
        printf("%s is not a valid number\n", argv[1]);
        return -EINVAL;
    }
    /* Poll (not plain sleep) so that aio completions print meanwhile. */
    t = aio_timer_new(ctx, QB_CLOCK_MONOTONIC, sleep_done, &done);
    qb_timer_mod_ns(t, qb_clock_get_ns(QB_CLOCK_MONOTONIC) +
                    (int64_t)ms * 1000000);
    AIO_WAIT_WHILE(ctx, !done);
    qb_timer_free(t);
    return 0;
}

static const QbioCmd sleep_cmd = {
    .name = "sleep", .cfunc = sleep_f, .argmin = 1, .argmax = 1,
    .flags = QBIO_CMD_NOFILE_OK,
    .oneline = "waits for the given value in milliseconds",
};

static int help_f(BlockBackend *blk, int argc, char **argv)
{
    const QbioCmd *ct;
    guint i;

    if (argc == 1) {
        for (i = 0; i < cmdtab->len; i++) {
            const QbioCmd *c = g_ptr_array_index(cmdtab, i);
            help_oneline(c->name, c);
        }
        printf("\nUse 'help commandname' for extended help.\n");
        return 0;
    }
    ct = find_command(argv[1]);
    if (!ct) {
        printf("command %s not found\n", argv[1]);
        return -EINVAL;
    }
    help_oneline(argv[1], ct);
    if (ct->help) {
        ct->help();
    }
    return 0;
}

static const QbioCmd help_cmd = {
    .name = "help", .altname = "?", .cfunc = help_f,
    .argmin = 0, .argmax = 1, .flags = QBIO_CMD_NOFILE_OK,
    .args = "[command]",
    .oneline = "help for one or all commands",
};

static int abort_f(BlockBackend *blk, int argc, char **argv)
{
    abort();
}

static const QbioCmd abort_cmd = {
    .name = "abort", .cfunc = abort_f, .flags = QBIO_CMD_NOFILE_OK,
    .argmin = 0, .argmax = 0,
    .oneline = "simulate a program crash using abort(3)",
};

static void sigraise_help(void)
{
    printf(
"\n"
" raises the given signal\n"
"\n"
" Example:\n"
" 'sigraise 15' - raises SIGTERM\n"
"\n"
" Invokes raise(signal), where \"signal\" is the mandatory integer argument\n"
" given to sigraise.\n"
"\n");
}

static int sigraise_f(BlockBackend *blk, int argc, char **argv)
{
    int64_t sig = qbio_cvtnum(argv[1]);

    if (sig < 0) {
        qbio_print_cvtnum_err(sig, argv[1]);
        return sig;
    }
    if (sig > INT_MAX) {
        printf("signal argument '%s' is too large to be a valid signal\n",
               argv[1]);
        return -EINVAL;
    }
    /* Output written so far must not be lost with the process. */
    fflush(stdout);
    fflush(stderr);
    raise((int)sig);
    return 0;
}

static const QbioCmd sigraise_cmd = {
    .name = "sigraise", .cfunc = sigraise_f, .argmin = 1, .argmax = 1,
    .flags = QBIO_CMD_NOFILE_OK, .args = "signal",
    .oneline = "raises a signal", .help = sigraise_help,
};

/* The first node below bs (bs included) whose driver has a debug hook. */
static BlockDriverState *find_debug_node(BlockDriverState *bs)
{
    while (bs && bs->drv && !bs->drv->bdrv_debug_breakpoint) {
        bs = bs->file ? bs->file->bs : NULL;
    }
    return bs && bs->drv ? bs : NULL;
}

static int break_f(BlockBackend *blk, int argc, char **argv)
{
    BlockDriverState *bs = find_debug_node(blk_bs(blk));
    int ret = bs ? bs->drv->bdrv_debug_breakpoint(bs, argv[1], argv[2])
                 : -ENOTSUP;
    if (ret < 0) {
        printf("Could not set breakpoint: %s\n", strerror(-ret));
    }
    return ret;
}

static int remove_break_f(BlockBackend *blk, int argc, char **argv)
{
    BlockDriverState *bs = find_debug_node(blk_bs(blk));
    int ret = bs && bs->drv->bdrv_debug_remove_breakpoint
        ? bs->drv->bdrv_debug_remove_breakpoint(bs, argv[1]) : -ENOTSUP;
    if (ret < 0) {
        printf("Could not remove breakpoint %s: %s\n", argv[1],
               strerror(-ret));
    }
    return ret;
}

static int resume_f(BlockBackend *blk, int argc, char **argv)
{
    BlockDriverState *bs = find_debug_node(blk_bs(blk));
    int ret = bs && bs->drv->bdrv_debug_resume
        ? bs->drv->bdrv_debug_resume(bs, argv[1]) : -ENOTSUP;
    if (ret < 0) {
        printf("Could not resume request: %s\n", strerror(-ret));
    }
    return ret;
}

static int wait_break_f(BlockBackend *blk, int argc, char **argv)
{
    AioContext *ctx = blk_get_aio_context(blk);
    BlockDriverState *bs = find_debug_node(blk_bs(blk));

    if (!bs || !bs->drv->bdrv_debug_is_suspended) {
        return -ENOTSUP;
    }
    AIO_WAIT_WHILE(ctx, !bs->drv->bdrv_debug_is_suspended(bs, argv[1]));
    return 0;
}

static const QbioCmd break_cmd = {
    .name = "break", .cfunc = break_f, .argmin = 2, .argmax = 2,
    .args = "event tag",
    .oneline = "sets a breakpoint on event and tags the stopped request as "
               "tag",
};
static const QbioCmd remove_break_cmd = {
    .name = "remove_break", .cfunc = remove_break_f, .argmin = 1,
    .argmax = 1, .args = "tag",
    .oneline = "remove a breakpoint by tag",
};
static const QbioCmd resume_cmd = {
    .name = "resume", .cfunc = resume_f, .argmin = 1, .argmax = 1,
    .args = "tag",
    .oneline = "resumes the request tagged as tag",
};
static const QbioCmd wait_break_cmd = {
    .name = "wait_break", .cfunc = wait_break_f, .argmin = 1, .argmax = 1,
    .args = "tag",
    .oneline = "waits for the suspension of a request",
};

void qbio_register_io_commands(void)
{
    static const QbioCmd *const cmds[] = {
        &read_cmd, &readv_cmd, &write_cmd, &writev_cmd, &aio_read_cmd,
        &aio_write_cmd, &aio_flush_cmd, &flush_cmd, &truncate_cmd,
        &length_cmd, &info_cmd, &discard_cmd, &alloc_cmd, &map_cmd,
        &break_cmd, &remove_break_cmd, &resume_cmd, &wait_break_cmd,
        &abort_cmd, &sleep_cmd, &sigraise_cmd, &help_cmd,
    };
    unsigned i;

    for (i = 0; i < QB_ARRAY_SIZE(cmds); i++) {
        qbio_add_command(cmds[i]);
    }
}
