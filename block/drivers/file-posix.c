/*
 * The "file" protocol driver: a node backed by a regular POSIX file.
 *
 * It owns one file descriptor and does four jobs:
 *  - data path: reads/writes through the thread pool (aio=threads), Linux
 *    native AIO (aio=native, O_DIRECT only) or io_uring (aio=io_uring);
 *    write-zeroes/discard through fallocate(); block status through
 *    SEEK_DATA/SEEK_HOLE; flush through fdatasync();
 *  - O_DIRECT support: probing the request and buffer alignment the kernel
 *    wants, and bouncing requests whose buffers are misaligned;
 *  - image locks: the node's permissions are mirrored as shared OFD locks on
 *    single bytes at QEMU's offsets (100+i "I take perm i", 200+i "I do not
 *    share perm i"), so qblock and QEMU processes see each other's users;
 *  - creation (qemu-img create -f raw / blockdev-create driver=file),
 *    truncation with preallocation, and rw<->ro reopen with a new fd.
 *
 * Lock invariants (see docs/drivers/file.md):
 *  1. s->held describes exactly the lock bytes held on s->fd; rs->held the
 *     ones held on a pending reopen fd.
 *  2. Outside a permission update, s->held == lockset(s->perm, s->shared)
 *     (or empty when locking is off / the node is inactive).
 *  3. During an update (check done, set/abort pending) s->held is a superset
 *     of both the old and the new set, so no other process can slip in
 *     between the check and the commit.
 *  4. Locks are only ever F_RDLCK; conflicts are detected by probing with
 *     F_WRLCK through GETLK, which ignores our own open file description.
 */
#include "block/block-int.h"
#include "block/options.h"
#include "util/raw-aio.h"
#include "util/thread-pool.h"
#include "block/drivers/file-posix-locks.h"

#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#ifndef FALLOC_FL_KEEP_SIZE
#include <linux/falloc.h>
#endif

enum { FILE_AIO_THREADS, FILE_AIO_NATIVE, FILE_AIO_IO_URING };
static const char *const aio_names[] = { "threads", "native", "io_uring", NULL };

enum { LOCKING_AUTO, LOCKING_ON, LOCKING_OFF };
static const char *const locking_names[] = { "auto", "on", "off", NULL };

static const char *const prealloc_names[] = {
    "off", "metadata", "falloc", "full", NULL
};

#define PROBE_MAX_ALIGN   4096

typedef struct RawReopenState {
    int fd;                  /* == s->fd when no new fd was needed */
    int open_flags;
    LockSet held;            /* locks on fd when fd != s->fd */
    bool drop_cache;
    bool check_cache_dropped;
} RawReopenState;

typedef struct BDRVRawState {
    int fd;
    int open_flags;          /* O_* flags fd was opened with */
    char *filename;
    int aio;                 /* FILE_AIO_* */
    int64_t aio_max_batch;
    bool drop_cache;
    bool check_cache_dropped;

    bool use_lock;
    bool use_ofd;            /* OFD locks; false: classic POSIX locks */
    uint64_t perm, shared_perm;      /* committed permissions */
    bool perm_update_pending;        /* check done, set/abort not yet */
    LockSet held;

    /* O_DIRECT requirements (1 / 1 when buffered). */
    uint32_t request_alignment;
    size_t buf_align;

    /* Cleared when the file system says it cannot do the operation. */
    bool has_discard;
    bool has_write_zeroes;
    bool has_fallocate;
    /* Set after a failed fdatasync: the page cache may have dropped dirty
     * data, so later flushes must not report success. */
    bool page_cache_inconsistent;

    RawReopenState *reopen;  /* non-NULL between reopen prepare and end */

    /* Buffered (page cache) fast path, see raw_try_inline. */
    bool no_nowait_read;     /* the kernel refused RWF_NOWAIT reads */
    bool no_nowait_write;    /* ... and writes */
    unsigned inline_turn;    /* spreads large reads: inline / lane */
    /* Buffered writes, one batch at a time (see raw_write_batch), and
     * every other large cached read (see raw_read_batch). */
    ThreadPoolLane *write_lane;
    ThreadPoolLane *read_lane;
} BDRVRawState;

/* ------------------------------------------------------------------ */
/* Locks                                                               */

static const char *raw_hint_name(BlockDriverState *bs)
{
    BDRVRawState *s = bs->opaque;
    return bs->filename[0] ? bs->filename : s->filename;
}

static bool raw_locks_active(BlockDriverState *bs)
{
    BDRVRawState *s = bs->opaque;
    return s->use_lock && !(bs->open_flags & BDRV_O_INACTIVE);
}

static void warn_lock_error(Error *err)
{
    /* Dropping locks can only fail for reasons unrelated to other users
     * (e.g. NFS hiccups); we then merely over-claim, so warn and go on. */
    if (err) {
        warn_report_err(err);
    }
}

static int raw_check_perm(BlockDriverState *bs, uint64_t perm,
                          uint64_t shared, Error **errp)
{
    BDRVRawState *s = bs->opaque;
    RawReopenState *rs = s->reopen;
    uint64_t old_unshared = ~s->shared_perm & BLK_PERM_ALL;
    uint64_t new_unshared = ~shared & BLK_PERM_ALL;
    int ret;

    s->perm_update_pending = true;
    if (!raw_locks_active(bs)) {
        return 0;
    }

    /* Only a widening needs locking and probing; a narrowing is done at
     * commit and cannot conflict. */
    if ((perm & ~s->perm) || (new_unshared & ~old_unshared)) {
        ret = raw_locks_apply(s->fd, s->use_ofd, &s->held, s->perm | perm,
                          old_unshared | new_unshared, false, errp);
        if (ret == 0) {
            ret = raw_locks_probe(s->fd, s->use_ofd, perm, shared, errp);
            if (ret < 0) {
                error_append_hint(errp,
                                  "Is another process using the image [%s]?\n",
                                  raw_hint_name(bs));
            }
        }
        if (ret < 0) {
            Error *local_err = NULL;
            raw_locks_apply(s->fd, s->use_ofd, &s->held, s->perm, old_unshared,
                        true, &local_err);
            warn_lock_error(local_err);
            s->perm_update_pending = false;
            return ret;
        }
    }

    /*
     * A reopen switching to a new fd: give the new fd the new set only now,
     * after probing, because the probe on the old fd would see the new
     * fd's locks as a foreign user.
     */
    if (rs && rs->fd != s->fd) {
        ret = raw_locks_apply(rs->fd, s->use_ofd, &rs->held, perm, new_unshared,
                          false, errp);
        if (ret < 0) {
            Error *local_err = NULL;
            raw_locks_apply(s->fd, s->use_ofd, &s->held, s->perm, old_unshared,
                        true, &local_err);
            warn_lock_error(local_err);
            s->perm_update_pending = false;
            return ret;
        }
    }
    return 0;
}

static void raw_set_perm(BlockDriverState *bs, uint64_t perm, uint64_t shared)
{
    BDRVRawState *s = bs->opaque;
    RawReopenState *rs = s->reopen;
    uint64_t unshared = ~shared & BLK_PERM_ALL;

    s->perm = perm;
    s->shared_perm = shared;
    s->perm_update_pending = false;
    if (!raw_locks_active(bs)) {
        return;
    }

    Error *local_err = NULL;
    raw_locks_apply(s->fd, s->use_ofd, &s->held, perm, unshared, true, &local_err);
    warn_lock_error(local_err);
    if (rs && rs->fd != s->fd) {
        local_err = NULL;
        raw_locks_apply(rs->fd, s->use_ofd, &rs->held, perm, unshared, true,
                    &local_err);
        warn_lock_error(local_err);
    }
}

static void raw_abort_perm_update(BlockDriverState *bs)
{
    BDRVRawState *s = bs->opaque;
    RawReopenState *rs = s->reopen;
    uint64_t unshared = ~s->shared_perm & BLK_PERM_ALL;
    Error *local_err = NULL;

    s->perm_update_pending = false;
    if (!raw_locks_active(bs)) {
        return;
    }
    raw_locks_apply(s->fd, s->use_ofd, &s->held, s->perm, unshared, true,
                &local_err);
    warn_lock_error(local_err);
    if (rs && rs->fd != s->fd) {
        local_err = NULL;
        raw_locks_apply(rs->fd, s->use_ofd, &rs->held, s->perm, unshared, true,
                    &local_err);
        warn_lock_error(local_err);
    }
}

/* ------------------------------------------------------------------ */
/* Options and open                                                    */

/* Enum option given as a string (both QMP and the command line give
 * strings for enums).  Returns the index, def when absent, -1 on error. */
static int take_enum(json_t *opts, const char *key, const char *const *names,
                     int def, Error **errp)
{
    json_t *v = json_object_get(opts, key);
    int ret = -1;

    if (!v) {
        return def;
    }
    if (!json_is_string(v)) {
        error_setg(errp, "Invalid parameter type for '%s', expected: string",
                   key);
        return -1;
    }
    for (int i = 0; names[i]; i++) {
        if (!strcmp(names[i], json_string_value(v))) {
            ret = i;
            break;
        }
    }
    if (ret < 0) {
        error_setg(errp, "invalid parameter value: %s", json_string_value(v));
        return -1;
    }
    json_object_del(opts, key);
    return ret;
}

static int raw_open_flags(int bdrv_flags)
{
    int flags = O_CLOEXEC;

    flags |= (bdrv_flags & BDRV_O_RDWR) ? O_RDWR : O_RDONLY;
    if (bdrv_flags & BDRV_O_NOCACHE) {
        flags |= O_DIRECT;
    }
    return flags;
}

/* open() that retries on EINTR; returns fd or -errno. */
static int open_retry(const char *path, int flags, mode_t mode)
{
    int fd;

    do {
        fd = open(path, flags, mode);
    } while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

static int64_t fd_getlength(int fd)
{
    struct stat st;

    if (fstat(fd, &st) < 0) {
        return -errno;
    }
    if (S_ISBLK(st.st_mode)) {
        uint64_t size;
        if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
            return -errno;
        }
        return size;
    }
    return st.st_size;
}

/*
 * Find the alignment O_DIRECT needs by trying reads, as the kernel gives no
 * portable way to ask.  Probing only tells the truth where the file has
 * allocated data at offset 0 (reads of holes and past EOF succeed whatever
 * the alignment), so elsewhere fall back to 512 / 4096.
 */
static void raw_probe_alignment(BDRVRawState *s)
{
    size_t page = sysconf(_SC_PAGESIZE);
    size_t max_align = MAX(PROBE_MAX_ALIGN, page);
    struct stat st;
    uint8_t *buf;
    off_t data;

    if (!(s->open_flags & O_DIRECT)) {
        s->request_alignment = 1;
        s->buf_align = 1;
        return;
    }

    s->request_alignment = 512;
    s->buf_align = 4096;

    if (fstat(s->fd, &st) == 0 && S_ISBLK(st.st_mode)) {
        int sector;
        if (ioctl(s->fd, BLKSSZGET, &sector) == 0 && sector > 0) {
            s->request_alignment = sector;
        }
    }

    data = lseek(s->fd, 0, SEEK_DATA);
    if (data != 0 || fd_getlength(s->fd) < (int64_t)max_align) {
        return;
    }

    buf = qb_memalign(max_align, 2 * max_align);
    for (size_t align = 512; align <= max_align; align <<= 1) {
        if (pread(s->fd, buf, align, 0) >= 0) {
            s->request_alignment = align;
            break;
        }
    }
    for (size_t align = 512; align <= max_align; align <<= 1) {
        if (pread(s->fd, buf + align, max_align, 0) >= 0) {
            s->buf_align = align;
            break;
        }
    }
    qb_vfree(buf);
}

static int check_regular(int fd, const char *filename, Error **errp)
{
    struct stat st;

    if (fstat(fd, &st) < 0) {
        int err = errno;
        error_setg_errno(errp, err, "Could not stat file");
        return -err;
    }
    if (!S_ISREG(st.st_mode)) {
        error_setg(errp, "'file' driver requires '%s' to be a regular file",
                   filename);
        return -EINVAL;
    }
    return 0;
}

static AioContext *raw_ctx(BlockDriverState *bs)
{
    return bs->aio_context ? bs->aio_context : qb_get_current_aio_context();
}

static int raw_open(BlockDriverState *bs, json_t *options, int flags,
                    Error **errp)
{
    BDRVRawState *s = bs->opaque;
    Error *local_err = NULL;
    json_t *v;
    int aio_default, aio, locking, fd, ret;

    s->fd = -1;
    s->perm = 0;
    s->shared_perm = BLK_PERM_ALL;

    s->aio_max_batch = qb_opt_take_int(options, "aio-max-batch", 0,
                                       &local_err);
    if (!local_err) {
        s->drop_cache = qb_opt_take_bool(options, "drop-cache", true,
                                         &local_err);
    }
    if (!local_err) {
        s->check_cache_dropped = qb_opt_take_bool(options,
                                                  "x-check-cache-dropped",
                                                  false, &local_err);
    }
    if (local_err) {
        error_propagate(errp, local_err);
        return -EINVAL;
    }

    v = json_object_get(options, "filename");
    if (!v || !json_is_string(v)) {
        error_setg(errp, "The 'file' block driver requires a file name");
        return -EINVAL;
    }
    s->filename = g_strdup(json_string_value(v));
    json_object_del(options, "filename");

    aio_default = (flags & BDRV_O_NATIVE_AIO) ? FILE_AIO_NATIVE :
                  (flags & BDRV_O_IO_URING) ? FILE_AIO_IO_URING :
                  FILE_AIO_THREADS;
    aio = take_enum(options, "aio", aio_names, aio_default, errp);
    if (aio < 0) {
        ret = -EINVAL;
        goto fail;
    }
    s->aio = aio;

    locking = take_enum(options, "locking", locking_names, LOCKING_AUTO,
                        errp);
    if (locking < 0) {
        ret = -EINVAL;
        goto fail;
    }

    v = json_object_get(options, "pr-manager");
    if (v) {
        /* qblock has no persistent reservation managers at all. */
        error_setg(errp, "No persistent reservation manager with id '%s'",
                   json_is_string(v) ? json_string_value(v) : "");
        ret = -EINVAL;
        goto fail;
    }

    s->open_flags = raw_open_flags(flags);
    fd = open_retry(s->filename, s->open_flags, 0);
    if (fd < 0 && (flags & BDRV_O_RDWR) && (flags & BDRV_O_AUTO_RDONLY) &&
        (fd == -EACCES || fd == -EROFS || fd == -EPERM)) {
        /* auto-read-only: settle for read-only when writing is denied. */
        int ro_fd = open_retry(s->filename,
                               raw_open_flags(flags & ~BDRV_O_RDWR), 0);
        if (ro_fd >= 0) {
            fd = ro_fd;
            flags &= ~BDRV_O_RDWR;
            s->open_flags = raw_open_flags(flags);
            bs->open_flags &= ~BDRV_O_RDWR;
            bs->read_only = true;
        }
    }
    if (fd < 0) {
        error_setg_errno(errp, -fd, "Could not open '%s'", s->filename);
        ret = fd;
        goto fail;
    }
    s->fd = fd;

    ret = check_regular(fd, s->filename, errp);
    if (ret < 0) {
        goto fail;
    }

    if (s->aio == FILE_AIO_NATIVE && !(flags & BDRV_O_NOCACHE)) {
        error_setg(errp, "aio=native was specified, but it requires "
                   "cache.direct=on, which was not specified.");
        ret = -EINVAL;
        goto fail;
    }
    if (s->aio == FILE_AIO_NATIVE &&
        !aio_get_linux_aio(raw_ctx(bs), &local_err)) {
        error_propagate_prepend(errp, local_err, "Unable to use native AIO: ");
        ret = -EINVAL;
        goto fail;
    }
    if (s->aio == FILE_AIO_IO_URING &&
        !aio_get_linux_io_uring(raw_ctx(bs), &local_err)) {
        error_propagate_prepend(errp, local_err, "Unable to use io_uring: ");
        ret = -EINVAL;
        goto fail;
    }

    switch (locking) {
    case LOCKING_ON:
        s->use_lock = true;
        s->use_ofd = raw_ofd_locks_supported();
        if (!s->use_ofd) {
            warn_report("File lock requested but OFD locking syscall is "
                        "unavailable, falling back to POSIX file locks");
        }
        break;
    case LOCKING_OFF:
        s->use_lock = false;
        break;
    default:
        s->use_lock = s->use_ofd = raw_ofd_locks_supported();
        break;
    }

    s->has_discard = true;
    s->has_write_zeroes = true;
    s->has_fallocate = true;
    raw_probe_alignment(s);

    if (!bs->filename[0]) {
        g_strlcpy(bs->filename, s->filename, sizeof(bs->filename));
    }
    return 0;

fail:
    if (s->fd >= 0) {
        close(s->fd);
        s->fd = -1;
    }
    g_free(s->filename);
    s->filename = NULL;
    return ret;
}

static void raw_close(BlockDriverState *bs)
{
    BDRVRawState *s = bs->opaque;

    thread_pool_lane_free(s->write_lane);
    s->write_lane = NULL;
    thread_pool_lane_free(s->read_lane);
    s->read_lane = NULL;

    if (s->reopen) {
        if (s->reopen->fd != s->fd && s->reopen->fd >= 0) {
            close(s->reopen->fd);
        }
        g_free(s->reopen);
        s->reopen = NULL;
    }
    if (s->fd >= 0) {
        /* Closing the (only) fd of this open file description drops all
         * of its OFD locks. */
        close(s->fd);
        s->fd = -1;
    }
    g_free(s->filename);
    s->filename = NULL;
}

static void raw_parse_filename(const char *filename, json_t *options,
                               Error **errp)
{
    /* "file:PATH" names the same file as "PATH". */
    if (g_str_has_prefix(filename, "file:")) {
        filename += strlen("file:");
    }
    json_object_set_new(options, "filename", json_string(filename));
}

static void raw_refresh_limits(BlockDriverState *bs, Error **errp)
{
    BDRVRawState *s = bs->opaque;
    long page = sysconf(_SC_PAGESIZE);
    long iov_max = sysconf(_SC_IOV_MAX);

    bs->bl.request_alignment = s->request_alignment;
    bs->bl.min_mem_alignment = s->buf_align;
    bs->bl.opt_mem_alignment = MAX(s->buf_align, (size_t)page);
    bs->bl.max_iov = iov_max > 0 ? iov_max : 1024;
}

/* ------------------------------------------------------------------ */
/* Blocking work, run in the thread pool (or inline outside coroutines)   */

typedef struct RawWork {
    int fd;
    bool write;
    bool direct;             /* fd has O_DIRECT */
    int64_t offset;
    int64_t bytes;
    struct iovec *iov;
    int niov;
    int falloc_mode;
    PreallocMode prealloc;
    Error *err;
} RawWork;

static void iov_zero_from(struct iovec *iov, int niov, size_t skip)
{
    for (int i = 0; i < niov; i++) {
        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        memset((char *)iov[i].iov_base + skip, 0, iov[i].iov_len - skip);
        skip = 0;
    }
}

/*
 * preadv/pwritev until the whole request is done.  A read that hits EOF
 * zero-fills the rest (the block layer sees files as zero-padded).
 */
static int work_rw(void *opaque)
{
    RawWork *w = opaque;
    g_autofree struct iovec *iov = g_memdup2(w->iov,
                                             w->niov * sizeof(struct iovec));
    int idx = 0;
    size_t done = 0;

    while (done < (size_t)w->bytes) {
        ssize_t n;

        if (w->niov - idx == 1) {
            n = w->write ? pwrite(w->fd, iov[idx].iov_base, iov[idx].iov_len,
                                  w->offset + done)
                         : pread(w->fd, iov[idx].iov_base, iov[idx].iov_len,
                                 w->offset + done);
        } else {
            int cnt = MIN(w->niov - idx, IOV_MAX);
            n = w->write ? pwritev(w->fd, iov + idx, cnt, w->offset + done)
                         : preadv(w->fd, iov + idx, cnt, w->offset + done);
        }
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            /* After a short O_DIRECT read the next offset is unaligned
             * and the kernel says EINVAL: that short read was EOF. */
            if (errno == EINVAL && w->direct && !w->write && done > 0) {
                break;
            }
            return -errno;
        }
        if (n == 0) {
            if (w->write) {
                return -ENOSPC;
            }
            break;
        }
        done += n;
        while (n > 0 && idx < w->niov) {
            if ((size_t)n >= iov[idx].iov_len) {
                n -= iov[idx].iov_len;
                idx++;
            } else {
                iov[idx].iov_base = (char *)iov[idx].iov_base + n;
                iov[idx].iov_len -= n;
                n = 0;
            }
        }
    }
    if (done < (size_t)w->bytes) {
        iov_zero_from(w->iov, w->niov, done);
    }
    return 0;
}

static int work_fallocate(void *opaque)
{
    RawWork *w = opaque;
    int ret;

    do {
        ret = fallocate(w->fd, w->falloc_mode, w->offset, w->bytes);
    } while (ret < 0 && errno == EINTR);
    if (ret < 0) {
        return errno == EOPNOTSUPP ? -ENOTSUP : -errno;
    }
    return 0;
}

static int work_flush(void *opaque)
{
    RawWork *w = opaque;

    if (fdatasync(w->fd) < 0) {
        return -errno;
    }
    return 0;
}

/*
 * Buffered writes go through a thread-pool lane (util/thread-pool.c): the
 * kernel runs buffered writes to one file one at a time anyway (inode
 * lock), so one worker writes them back to back instead of many workers
 * spinning on that lock, and neighbouring writes of a batch (same fd, each
 * starting where the previous one ends) become one pwritev of up to
 * IOV_MAX buffers.  Completion still means "in the page cache", and each
 * request gets its own result: if a merged pwritev fails or comes back
 * short, the requests it did not cover completely are redone one by one
 * (rewriting the same bytes at the same place is harmless), so an error
 * lands on the request it belongs to.
 */
#define RAW_MERGE_MAX_BYTES  (16 * MiB)

/*
 * Find the run of neighbours that starts at args[i] (same fd, each request
 * starting where the previous one ends, at most IOV_MAX buffers and
 * RAW_MERGE_MAX_BYTES), gather their buffers into iov and return the index
 * after the run; *niov gets the number of buffers.
 */
static int raw_gather_run(void **args, int i, int n, struct iovec *iov,
                          int *niov)
{
    RawWork *first = args[i];
    int64_t end = first->offset + first->bytes;
    int j = i + 1, k;

    *niov = first->niov;
    while (j < n) {
        RawWork *w = args[j];
        if (w->fd != first->fd || w->offset != end ||
            *niov + w->niov > IOV_MAX ||
            end - first->offset + w->bytes > RAW_MERGE_MAX_BYTES) {
            break;
        }
        end += w->bytes;
        *niov += w->niov;
        j++;
    }
    k = 0;
    for (int m = i; m < j; m++) {
        RawWork *w = args[m];
        memcpy(iov + k, w->iov, w->niov * sizeof(struct iovec));
        k += w->niov;
    }
    return j;
}

static void raw_write_batch(void *opaque, void **args, int *rets, int n)
{
    struct iovec iov[IOV_MAX];
    int i = 0;

    while (i < n) {
        RawWork *first = args[i];
        int niov;
        int j = raw_gather_run(args, i, n, iov, &niov);
        ssize_t done;

        if (j == i + 1) {
            rets[i] = work_rw(first);
            i++;
            continue;
        }
        do {
            done = pwritev(first->fd, iov, niov, first->offset);
        } while (done < 0 && errno == EINTR);
        for (int m = i; m < j; m++) {
            RawWork *w = args[m];
            if (done >= 0 && w->offset + w->bytes <= first->offset + done) {
                rets[m] = 0;
            } else {
                rets[m] = work_rw(w);
            }
        }
        i = j;
    }
}

/*
 * Large cached reads: two of three run here, in the read lane's worker,
 * while the event-loop thread copies the third itself (raw_try_inline),
 * so two cores copy without a worker wake-up per request.  Only the page
 * cache is read (RWF_NOWAIT): a request that is not completely cached, hits
 * EOF or fails gets -EAGAIN and goes to the thread pool, where a cache miss
 * may block without holding up the lane (cold reads keep the pool's
 * parallelism).  Neighbouring requests are read with one preadv2.
 */
static void raw_read_batch(void *opaque, void **args, int *rets, int n)
{
#ifdef RWF_NOWAIT
    struct iovec iov[IOV_MAX];
    int i = 0;

    while (i < n) {
        RawWork *first = args[i];
        int niov;
        int j = raw_gather_run(args, i, n, iov, &niov);
        ssize_t done;

        do {
            done = preadv2(first->fd, iov, niov, first->offset, RWF_NOWAIT);
        } while (done < 0 && errno == EINTR);
        for (int m = i; m < j; m++) {
            RawWork *w = args[m];
            rets[m] = done >= 0 &&
                      w->offset + w->bytes <= first->offset + done ? 0
                                                                   : -EAGAIN;
        }
        i = j;
    }
#else
    for (int i = 0; i < n; i++) {
        rets[i] = -EAGAIN;
    }
#endif
}

/* The lane *lanep of this node's AioContext's pool, created on first use. */
static ThreadPoolLane *raw_lane(BlockDriverState *bs, ThreadPoolLane **lanep,
                                ThreadPoolBatchFunc *batch)
{
    ThreadPool *pool = aio_get_thread_pool(raw_ctx(bs));

    if (*lanep && thread_pool_lane_pool(*lanep) != pool) {
        /* The node moved to another AioContext (drained meanwhile). */
        thread_pool_lane_free(*lanep);
        *lanep = NULL;
    }
    if (!*lanep) {
        *lanep = thread_pool_lane_new(pool, batch, bs->opaque);
    }
    return *lanep;
}

/* Run fn in the thread pool from a coroutine, or inline otherwise (tools
 * and creation code may call us from plain context). */
static int raw_run(BlockDriverState *bs, ThreadPoolFunc *fn, RawWork *w)
{
    if (in_coroutine()) {
        AioContext *ctx = bs ? raw_ctx(bs) : qb_get_current_aio_context();
        return thread_pool_submit_co(aio_get_thread_pool(ctx), fn, w);
    }
    return fn(w);
}

/* ------------------------------------------------------------------ */
/* Data path                                                           */

/*
 * Page-cache fast path for buffered files (aio=threads without O_DIRECT).
 * A request whose data is in the page cache is a memory copy: doing it
 * here with RWF_NOWAIT, which makes the kernel fail instead of waiting for
 * the disk, a lock or memory reclaim, costs one system call, where a trip
 * through the thread pool costs a wake-up of a worker, two context
 * switches and a BH.  Returns true if the request is done (*ret set); false
 * sends it to the pool: not cached (EAGAIN), partly done (the pool redoes
 * it whole, which is harmless: same data at the same place), at end of
 * file (the pool knows how to zero-fill), or RWF_NOWAIT unsupported, which
 * is remembered per node.
 */
#define RAW_INLINE_SHARE_MIN  (32 * KiB)

static bool raw_try_inline(BDRVRawState *s, int64_t offset, IOVector *qiov,
                           bool write, int *ret)
{
#ifdef RWF_NOWAIT
    ssize_t n;

    if ((s->open_flags & O_DIRECT) || qiov->niov > IOV_MAX ||
        qiov->niov == 0 || (write ? s->no_nowait_write : s->no_nowait_read)) {
        return false;
    }
    /* Writes: ext4 in Linux 6.x answers EOPNOTSUPP (remembered below),
     * and they go to the write lane.  A plain inline pwritev is no
     * option: it may wait for the disk in the event-loop thread. */
    n = write ? pwritev2(s->fd, qiov->iov, qiov->niov, offset, RWF_NOWAIT)
              : preadv2(s->fd, qiov->iov, qiov->niov, offset, RWF_NOWAIT);
    if (n >= 0 && (size_t)n == qiov->size) {
        *ret = 0;
        return true;
    }
    if (n < 0 && (errno == EOPNOTSUPP || errno == EINVAL || errno == ENOSYS)) {
        if (write) {
            s->no_nowait_write = true;
        } else {
            s->no_nowait_read = true;
        }
    }
#endif
    return false;
}

static int raw_engine_rw(BlockDriverState *bs, int64_t offset,
                         IOVector *qiov, bool write)
{
    BDRVRawState *s = bs->opaque;
    QBAioType type = write ? QB_AIO_WRITE : QB_AIO_READ;
    size_t transferred = 0;
    Error *local_err = NULL;
    int ret;

    if (s->aio == FILE_AIO_NATIVE && in_coroutine()) {
        LinuxAioState *la = aio_get_linux_aio(raw_ctx(bs), &local_err);
        if (!la) {
            error_free(local_err);
            return -EIO;
        }
        ret = laio_co_submit(la, s->fd, offset, qiov, type, &transferred);
    } else if (s->aio == FILE_AIO_IO_URING && in_coroutine()) {
        LuringState *lu = aio_get_linux_io_uring(raw_ctx(bs), &local_err);
        if (!lu) {
            error_free(local_err);
            return -EIO;
        }
        ret = luring_co_submit(lu, s->fd, offset, qiov, type, &transferred);
    } else {
        RawWork w = {
            .fd = s->fd, .write = write, .direct = s->open_flags & O_DIRECT,
            .offset = offset, .bytes = qiov->size,
            .iov = qiov->iov, .niov = qiov->niov,
        };
        if (write && !w.direct && in_coroutine()) {
            if (raw_try_inline(s, offset, qiov, write, &ret)) {
                return ret;
            }
            return thread_pool_lane_submit_co(
                raw_lane(bs, &s->write_lane, raw_write_batch), &w);
        }
        /* A large cached read is mostly the copy itself: two of three go
         * to the read lane, whose worker copies on another core while this
         * thread copies the third inline besides running the event loop.
         * (64 KiB at depth 32, docs/design/io-path.md: 2 of 3 0.088 s,
         * 1 of 2 0.116 s, 3 of 4 0.112 s, QEMU 0.217 s.) */
        if (!write && !w.direct && in_coroutine() &&
            qiov->size >= RAW_INLINE_SHARE_MIN && !s->no_nowait_read &&
            qiov->niov > 0 && qiov->niov <= IOV_MAX &&
            s->inline_turn++ % 3 != 0) {
            if (thread_pool_lane_submit_co(
                    raw_lane(bs, &s->read_lane, raw_read_batch), &w) == 0) {
                return 0;
            }
            return raw_run(bs, work_rw, &w);
        }
        if (in_coroutine() && raw_try_inline(s, offset, qiov, write, &ret)) {
            return ret;
        }
        return raw_run(bs, work_rw, &w);
    }

    if (ret < 0) {
        return ret;
    }
    if (transferred < qiov->size) {
        if (write) {
            return -ENOSPC;
        }
        /* Short read: EOF.  The engines leave the tail to us. */
        qiov_memset(qiov, transferred, 0, qiov->size - transferred);
    }
    return 0;
}

/*
 * One read or write.  With O_DIRECT the kernel rejects buffers that are not
 * aligned to buf_align; such requests go through an aligned bounce buffer.
 */
static int coroutine_fn raw_co_prw(BlockDriverState *bs, int64_t offset,
                                   int64_t bytes, IOVector *qiov, bool write)
{
    BDRVRawState *s = bs->opaque;
    IOVector bounce_qiov;
    void *bounce;
    int ret;

    if (s->fd < 0) {
        return -EBADF;
    }
    assert(qiov->size == (size_t)bytes);
    if ((s->open_flags & O_DIRECT) &&
        (!QB_IS_ALIGNED(offset, s->request_alignment) ||
         !QB_IS_ALIGNED(bytes, s->request_alignment))) {
        /* io.c aligns requests to request_alignment; never pass the
         * kernel something it would fail half-way. */
        return -EINVAL;
    }
    if (!(s->open_flags & O_DIRECT) || qiov_is_aligned(qiov, s->buf_align)) {
        return raw_engine_rw(bs, offset, qiov, write);
    }

    bounce = qb_try_memalign(MAX(s->buf_align, QB_MEM_ALIGN), bytes);
    if (!bounce) {
        return -ENOMEM;
    }
    qiov_init_buf(&bounce_qiov, bounce, bytes);
    if (write) {
        qiov_to_buf(qiov, 0, bounce, bytes);
    }
    ret = raw_engine_rw(bs, offset, &bounce_qiov, write);
    if (ret == 0 && !write) {
        qiov_from_buf(qiov, 0, bounce, bytes);
    }
    qiov_destroy(&bounce_qiov);
    qb_vfree(bounce);
    return ret;
}

static int coroutine_fn raw_co_preadv(BlockDriverState *bs, int64_t offset,
                                      int64_t bytes, IOVector *qiov,
                                      BdrvRequestFlags flags)
{
    return raw_co_prw(bs, offset, bytes, qiov, false);
}

static int coroutine_fn raw_co_pwritev(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, IOVector *qiov,
                                       BdrvRequestFlags flags)
{
    return raw_co_prw(bs, offset, bytes, qiov, true);
}

static int raw_fallocate(BlockDriverState *bs, int mode, int64_t offset,
                         int64_t bytes)
{
    BDRVRawState *s = bs->opaque;
    RawWork w = {
        .fd = s->fd, .falloc_mode = mode, .offset = offset, .bytes = bytes,
    };
    return raw_run(bs, work_fallocate, &w);
}

/* Grow the file (sparsely) so that it ends at least at w->offset. */
static int work_extend(void *opaque)
{
    RawWork *w = opaque;
    struct stat st;

    if (fstat(w->fd, &st) < 0) {
        return -errno;
    }
    if (S_ISREG(st.st_mode) && st.st_size < w->offset &&
        ftruncate(w->fd, w->offset) < 0) {
        return -errno;
    }
    return 0;
}

static int coroutine_fn raw_zero_range(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, BdrvRequestFlags flags);

/*
 * Zeroes past the end of the file extend it, as a write would (QEMU's file
 * driver behaves so, and qcow2 zeroes clusters it has just allocated at
 * the end of its file).  Hole punching keeps the size, so extend after.
 */
static int coroutine_fn raw_co_pwrite_zeroes(BlockDriverState *bs,
                                             int64_t offset, int64_t bytes,
                                             BdrvRequestFlags flags)
{
    BDRVRawState *s = bs->opaque;
    int ret = raw_zero_range(bs, offset, bytes, flags);

    if (ret == 0) {
        RawWork w = { .fd = s->fd, .offset = offset + bytes };
        ret = raw_run(bs, work_extend, &w);
    }
    return ret;
}

static int coroutine_fn raw_zero_range(BlockDriverState *bs, int64_t offset,
                                       int64_t bytes, BdrvRequestFlags flags)
{
    BDRVRawState *s = bs->opaque;
    int ret;

    /* A punched hole reads back as zeroes in a regular file. */
    if ((flags & BDRV_REQ_MAY_UNMAP) && s->has_discard) {
        ret = raw_fallocate(bs, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                            offset, bytes);
        if (ret == 0) {
            return 0;
        }
        if (ret == -ENOTSUP) {
            s->has_discard = false;
        } else if (ret != -EINVAL) {
            return ret;
        }
    }

    if (s->has_write_zeroes) {
        ret = raw_fallocate(bs, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                            offset, bytes);
        if (ret == 0) {
            return 0;
        }
        if (ret == -ENOTSUP) {
            s->has_write_zeroes = false;
        } else if (ret != -EINVAL) {
            return ret;
        }
    }

    /* Punch then allocate again: zeroes without leaving a hole. */
    if (s->has_discard && s->has_fallocate) {
        ret = raw_fallocate(bs, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                            offset, bytes);
        if (ret == 0) {
            ret = raw_fallocate(bs, 0, offset, bytes);
            if (ret == 0 || ret != -ENOTSUP) {
                return ret;
            }
            s->has_fallocate = false;
        } else if (ret == -ENOTSUP) {
            s->has_discard = false;
        } else if (ret != -EINVAL) {
            return ret;
        }
    }
    return -ENOTSUP;
}

static int coroutine_fn raw_co_pdiscard(BlockDriverState *bs, int64_t offset,
                                        int64_t bytes)
{
    BDRVRawState *s = bs->opaque;
    int ret;

    if (!s->has_discard) {
        return -ENOTSUP;
    }
    ret = raw_fallocate(bs, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                        offset, bytes);
    if (ret == -ENOTSUP) {
        s->has_discard = false;
    }
    return ret;
}

static int coroutine_fn raw_co_flush_to_disk(BlockDriverState *bs)
{
    BDRVRawState *s = bs->opaque;
    int ret;

    if (s->page_cache_inconsistent) {
        return -EIO;
    }
    if (s->aio == FILE_AIO_IO_URING && in_coroutine()) {
        LuringState *lu = aio_get_linux_io_uring(raw_ctx(bs), NULL);
        IOVector empty;
        qiov_init_buf(&empty, NULL, 0);
        ret = lu ? luring_co_submit(lu, s->fd, 0, &empty, QB_AIO_FLUSH, NULL)
                 : -EIO;
        qiov_destroy(&empty);
    } else {
        RawWork w = { .fd = s->fd };
        ret = raw_run(bs, work_flush, &w);
    }
    if (ret < 0 && ret != -ENOTSUP) {
        s->page_cache_inconsistent = true;
    }
    return ret;
}

/*
 * Status from SEEK_DATA/SEEK_HOLE.  The answer covers at most the asked
 * range: seeking is cheap, but the caller only cares about [offset, +bytes).
 */
static int coroutine_fn raw_co_block_status(BlockDriverState *bs,
                                            bool want_zero, int64_t offset,
                                            int64_t bytes, int64_t *pnum,
                                            int64_t *map,
                                            BlockDriverState **file)
{
    BDRVRawState *s = bs->opaque;
    off_t data, hole;
    int ret;

    *map = offset;
    *file = bs;
    if (!want_zero) {
        *pnum = bytes;
        return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
    }

    data = lseek(s->fd, offset, SEEK_DATA);
    if (data < 0) {
        if (errno == ENXIO) {
            /* offset is in the hole that runs to EOF (or beyond EOF). */
            *pnum = bytes;
            return BDRV_BLOCK_ZERO | BDRV_BLOCK_OFFSET_VALID;
        }
        /* No information: everything is data. */
        *pnum = bytes;
        return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
    }

    if (data > offset) {
        *pnum = MIN(bytes, data - offset);
        return BDRV_BLOCK_ZERO | BDRV_BLOCK_OFFSET_VALID;
    }
    if (data < offset) {
        /* A file system that answers backwards: don't trust it. */
        *pnum = bytes;
        return BDRV_BLOCK_DATA | BDRV_BLOCK_OFFSET_VALID;
    }

    hole = lseek(s->fd, offset, SEEK_HOLE);
    if (hole < 0 || hole <= offset) {
        /* Changed under us (truncated?): treat as data. */
        *pnum = bytes;
        ret = BDRV_BLOCK_DATA;
    } else {
        *pnum = MIN(bytes, hole - offset);
        /* The data extent may end in a partial block at EOF; the caller
         * works in request_alignment units, so round up (not past the
         * request). */
        *pnum = MIN(QB_ALIGN_UP(*pnum, (int64_t)s->request_alignment),
                    bytes);
        ret = BDRV_BLOCK_DATA;
    }
    return ret | BDRV_BLOCK_OFFSET_VALID;
}

/* ------------------------------------------------------------------ */
/* Size                                                                */

static int fd_full_prealloc(int fd, int64_t from, int64_t to, Error **errp)
{
    const size_t chunk = 64 * KiB;
    g_autofree char *zeroes = g_malloc0(chunk);
    int64_t pos = from;

    while (pos < to) {
        ssize_t n = pwrite(fd, zeroes, MIN((int64_t)chunk, to - pos), pos);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            int err = errno;
            error_setg_errno(errp, err,
                             "Could not write zeros for preallocation");
            return -err;
        }
        pos += n;
    }
    if (fsync(fd) < 0) {
        int err = errno;
        error_setg_errno(errp, err, "Could not flush file to disk");
        return -err;
    }
    return 0;
}

/*
 * A file that starts with a hole fools O_DIRECT alignment probing (holes
 * read fine at any alignment), so a freshly grown empty file gets its
 * first block written.  Failure is harmless.
 */
static void allocate_first_block(int fd, int64_t size)
{
    size_t len = MIN((int64_t)MAX(PROBE_MAX_ALIGN, sysconf(_SC_PAGESIZE)),
                     size);
    void *buf = qb_try_memalign(MAX(PROBE_MAX_ALIGN, QB_MEM_ALIGN), len);
    ssize_t n;

    if (!buf) {
        return;
    }
    memset(buf, 0, len);
    do {
        n = pwrite(fd, buf, len, 0);
    } while (n < 0 && errno == EINTR);
    qb_vfree(buf);
}

/* Resize a regular file to exactly size; on failure the old length is
 * restored as far as possible. */
static int fd_truncate(int fd, int64_t size, PreallocMode prealloc,
                       Error **errp)
{
    int64_t cur = fd_getlength(fd);
    int ret = 0;

    if (cur < 0) {
        error_setg_errno(errp, -cur, "Could not stat file");
        return cur;
    }
    if (cur > size && prealloc != PREALLOC_MODE_OFF) {
        error_setg(errp, "Cannot use preallocation for shrinking files");
        return -ENOTSUP;
    }

    switch (prealloc) {
    case PREALLOC_MODE_OFF:
        if (ftruncate(fd, size) < 0) {
            ret = -errno;
            error_setg_errno(errp, -ret, "Could not resize file");
            return ret;
        }
        if (cur == 0 && size > 0) {
            allocate_first_block(fd, size);
        }
        return 0;
    case PREALLOC_MODE_FALLOC:
        if (size > cur) {
            ret = -posix_fallocate(fd, cur, size - cur);
            if (ret < 0) {
                error_setg_errno(errp, -ret, "Could not preallocate new data");
            } else if (cur == 0) {
                allocate_first_block(fd, size);
            }
        }
        break;
    case PREALLOC_MODE_FULL:
        if (ftruncate(fd, size) < 0) {
            ret = -errno;
            error_setg_errno(errp, -ret, "Could not resize file");
            break;
        }
        ret = fd_full_prealloc(fd, cur, size, errp);
        break;
    default:
        error_setg(errp, "Unsupported preallocation mode: %s",
                   prealloc_names[prealloc]);
        return -ENOTSUP;
    }

    if (ret < 0 && ftruncate(fd, cur) < 0) {
        error_report("Failed to restore old file length: %s",
                     strerror(errno));
    }
    return ret;
}

static int work_truncate(void *opaque)
{
    RawWork *w = opaque;
    return fd_truncate(w->fd, w->bytes, w->prealloc, &w->err);
}

static int coroutine_fn raw_co_truncate(BlockDriverState *bs, int64_t offset,
                                        bool exact, PreallocMode prealloc,
                                        BdrvRequestFlags flags, Error **errp)
{
    BDRVRawState *s = bs->opaque;
    RawWork w = { .fd = s->fd, .bytes = offset, .prealloc = prealloc };
    struct stat st;
    int ret;

    if (fstat(s->fd, &st) < 0) {
        ret = -errno;
        error_setg_errno(errp, -ret, "Failed to fstat() the file");
        return ret;
    }
    if (!S_ISREG(st.st_mode)) {
        error_setg(errp, "Resizing this file is not supported");
        return -ENOTSUP;
    }
    ret = raw_run(bs, work_truncate, &w);
    if (ret < 0) {
        error_propagate(errp, w.err);
    } else {
        error_free(w.err);
    }
    return ret;
}

static int64_t raw_getlength(BlockDriverState *bs)
{
    BDRVRawState *s = bs->opaque;
    return fd_getlength(s->fd);
}

static int64_t raw_get_allocated_file_size(BlockDriverState *bs)
{
    BDRVRawState *s = bs->opaque;
    struct stat st;

    if (fstat(s->fd, &st) < 0) {
        return -errno;
    }
    return (int64_t)st.st_blocks * 512;
}

/* ------------------------------------------------------------------ */
/* Reopen                                                              */

static int raw_reopen_prepare(BDRVReopenState *state, BlockReopenQueue *queue,
                              Error **errp)
{
    BDRVRawState *s = state->bs->opaque;
    RawReopenState *rs;
    Error *local_err = NULL;
    int new_flags, fd;

    assert(!s->reopen);
    rs = g_new0(RawReopenState, 1);
    rs->fd = -1;
    rs->drop_cache = qb_opt_take_bool(state->options, "drop-cache", true,
                                      &local_err);
    if (!local_err) {
        rs->check_cache_dropped =
            qb_opt_take_bool(state->options, "x-check-cache-dropped", false,
                             &local_err);
    }
    if (local_err) {
        error_propagate(errp, local_err);
        g_free(rs);
        return -EINVAL;
    }

    if (s->aio == FILE_AIO_NATIVE && !(state->flags & BDRV_O_NOCACHE)) {
        error_setg(errp, "aio=native was specified, but it requires "
                   "cache.direct=on, which was not specified.");
        g_free(rs);
        return -EINVAL;
    }

    new_flags = raw_open_flags(state->flags);
    if (new_flags == s->open_flags) {
        rs->fd = s->fd;
        rs->open_flags = s->open_flags;
    } else {
        /* Reopen the very inode we have open, even if the path has been
         * renamed or replaced since; fall back to the path. */
        g_autofree char *self = g_strdup_printf("/proc/self/fd/%d", s->fd);
        fd = open_retry(self, new_flags, 0);
        if (fd == -ENOENT) {
            fd = open_retry(s->filename, new_flags, 0);
        }
        if (fd < 0) {
            error_setg_errno(errp, -fd, "Could not reopen file");
            g_free(rs);
            return fd;
        }
        if (check_regular(fd, s->filename, errp) < 0) {
            close(fd);
            g_free(rs);
            return -EINVAL;
        }
        rs->fd = fd;
        rs->open_flags = new_flags;
    }
    s->reopen = rs;
    state->opaque = rs;
    return 0;
}

static void raw_reopen_commit(BDRVReopenState *state)
{
    BlockDriverState *bs = state->bs;
    BDRVRawState *s = bs->opaque;
    RawReopenState *rs = state->opaque;

    s->drop_cache = rs->drop_cache;
    s->check_cache_dropped = rs->check_cache_dropped;

    if (rs->fd != s->fd) {
        if (raw_locks_active(bs)) {
            /* The new fd must carry every lock the old one holds: while a
             * permission update is pending that is the union of old and
             * new sets (set_perm narrows later), otherwise the committed
             * set exactly. */
            Error *local_err = NULL;
            bool pending = s->perm_update_pending;
            raw_locks_apply(rs->fd, s->use_ofd, &rs->held,
                        pending ? s->held.perm : s->perm,
                        pending ? s->held.unshared
                                : ~s->shared_perm & BLK_PERM_ALL,
                        !pending, &local_err);
            warn_lock_error(local_err);
        }
        close(s->fd);
        s->fd = rs->fd;
        s->open_flags = rs->open_flags;
        s->held = rs->held;
        raw_probe_alignment(s);
    }
    s->reopen = NULL;
    state->opaque = NULL;
    g_free(rs);
}

static void raw_reopen_abort(BDRVReopenState *state)
{
    BDRVRawState *s = state->bs->opaque;
    RawReopenState *rs = state->opaque;

    if (!rs) {
        return;
    }
    if (rs->fd >= 0 && rs->fd != s->fd) {
        close(rs->fd);
    }
    s->reopen = NULL;
    state->opaque = NULL;
    g_free(rs);
}

/* ------------------------------------------------------------------ */
/* Creation                                                            */

/*
 * Create (or reuse) filename with the given size.  While it works on the
 * file it takes WRITE+RESIZE and refuses to share RESIZE, so nobody can use
 * the image in a way that conflicts (an rw qcow2 user elsewhere fails us).
 */
typedef struct CreateSizing {
    int fd;
    int64_t size;
    PreallocMode prealloc;
    Error **errp;      /* only touched by the worker while the caller waits */
} CreateSizing;

/* Start from an empty file so preallocation covers everything. */
static int create_sizing_work(void *opaque)
{
    CreateSizing *cs = opaque;
    int ret;

    /* QEMU finds out here, after the file exists and the job yielded. */
    if (cs->prealloc == PREALLOC_MODE_METADATA) {
        error_setg(cs->errp, "Unsupported preallocation mode: %s",
                   prealloc_names[cs->prealloc]);
        return -ENOTSUP;
    }
    ret = fd_truncate(cs->fd, 0, PREALLOC_MODE_OFF, cs->errp);

    if (ret == 0) {
        ret = fd_truncate(cs->fd, cs->size, cs->prealloc, cs->errp);
    }
    return ret;
}

static int raw_create_file(const char *filename, int64_t size,
                           PreallocMode prealloc, bool nocow, Error **errp)
{
    LockSet held = { 0, 0 };
    bool ofd = raw_ofd_locks_supported();
    int fd, ret;

    /* A size beyond INT64_MAX (blockdev-create takes any uint64) fails
     * in ftruncate, after the file was created, as in QEMU. */
    fd = open_retry(filename, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
        error_setg_errno(errp, -fd, "Could not create '%s'", filename);
        return fd;
    }

    if (nocow) {
        /* btrfs: must be set while the file is empty; best effort. */
        int attr;
        if (ioctl(fd, FS_IOC_GETFLAGS, &attr) == 0) {
            attr |= FS_NOCOW_FL;
            ioctl(fd, FS_IOC_SETFLAGS, &attr);
        }
    }

    ret = raw_locks_apply(fd, ofd, &held, BLK_PERM_WRITE | BLK_PERM_RESIZE,
                      BLK_PERM_RESIZE, false, errp);
    if (ret < 0) {
        goto out_close;
    }
    ret = raw_locks_probe(fd, ofd, BLK_PERM_WRITE | BLK_PERM_RESIZE,
                      BLK_PERM_ALL & ~BLK_PERM_RESIZE, errp);
    if (ret < 0) {
        error_append_hint(errp, "Is another process using the image [%s]?\n",
                          filename);
        goto out_close;
    }

    /* Sizing may take long (preallocation): in a coroutine (the create
     * job) it goes to the thread pool, as QEMU's does, so the job yields
     * here and the main loop (and the monitor) keep running. */
    {
        CreateSizing cs = { fd, size, prealloc, errp };
        ret = in_coroutine() ?
            thread_pool_submit_co(aio_get_thread_pool(
                                      qb_get_current_aio_context()),
                                  create_sizing_work, &cs) :
            create_sizing_work(&cs);
    }

out_close:
    /* close() drops the locks with the open file description. */
    if (close(fd) < 0 && ret == 0) {
        ret = -errno;
        error_setg_errno(errp, -ret, "Could not close the new file");
    }
    return ret;
}

static int take_prealloc(json_t *opts, const char *key, Error **errp)
{
    int p = take_enum(opts, key, prealloc_names, PREALLOC_MODE_OFF, errp);

    if (p == PREALLOC_MODE_METADATA) {
        error_setg(errp, "Unsupported preallocation mode: %s",
                   prealloc_names[p]);
        return -1;
    }
    return p;
}

/* blockdev-create: {"driver":"file","filename":..,"size":..,...} */
static int coroutine_fn raw_co_create(json_t *create_options, Error **errp)
{
    Error *local_err = NULL;
    const char *filename;
    uint64_t size;
    bool nocow;
    int prealloc;

    filename = qb_opt_get_str(create_options, "filename");
    if (!filename) {
        error_setg(errp, "Parameter 'filename' is missing");
        return -EINVAL;
    }
    if (!qb_opt_has(create_options, "size")) {
        error_setg(errp, "Parameter 'size' is missing");
        return -EINVAL;
    }
    /* QAPI's size is a uint64: values past INT64_MAX arrive negative. */
    if (json_is_integer(json_object_get(create_options, "size"))) {
        size = (uint64_t)json_integer_value(json_object_get(create_options,
                                                            "size"));
        json_object_del(create_options, "size");
    } else {
        size = qb_opt_take_size(create_options, "size", 0, &local_err);
    }
    if (!local_err) {
        nocow = qb_opt_take_bool(create_options, "nocow", false, &local_err);
    }
    if (local_err) {
        error_propagate(errp, local_err);
        return -EINVAL;
    }
    /* blockdev-create: "metadata" is refused by the sizing step. */
    json_object_del(create_options, "extent-size-hint");
    prealloc = take_enum(create_options, "preallocation", prealloc_names,
                         PREALLOC_MODE_OFF, errp);
    if (prealloc < 0) {
        return -EINVAL;
    }
    return raw_create_file(filename, size, prealloc, nocow, errp);
}

/* qemu-img create: flat -o options {"size":..,"preallocation":..,"nocow":..} */
static int coroutine_fn raw_co_create_opts(BlockDriver *drv,
                                           const char *filename, json_t *opts,
                                           Error **errp)
{
    Error *local_err = NULL;
    uint64_t size;
    bool nocow = false;
    int prealloc;

    if (g_str_has_prefix(filename, "file:")) {
        filename += strlen("file:");
    }
    size = qb_opt_take_size(opts, "size", 0, &local_err);
    if (!local_err) {
        nocow = qb_opt_take_bool(opts, "nocow", false, &local_err);
    }
    if (local_err) {
        error_propagate(errp, local_err);
        return -EINVAL;
    }
    /* Only meaningful on XFS; accepted and ignored. */
    json_object_del(opts, "extent_size_hint");
    prealloc = take_prealloc(opts, "preallocation", errp);
    if (prealloc < 0) {
        return -EINVAL;
    }
    size = QB_ALIGN_UP(size, BDRV_SECTOR_SIZE);
    return raw_create_file(filename, size, prealloc, nocow, errp);
}

/* ------------------------------------------------------------------ */
/* Activation                                                          */

static int coroutine_fn raw_co_invalidate_cache(BlockDriverState *bs,
                                                Error **errp)
{
    BDRVRawState *s = bs->opaque;
    int ret;

    /* Another host may have written the file: forget cached pages.  Data
     * must be clean first or fadvise leaves dirty pages alone. */
    if (!s->drop_cache) {
        return 0;
    }
    if (fdatasync(s->fd) < 0) {
        ret = -errno;
        error_setg_errno(errp, -ret, "Failed to flush the file");
        return ret;
    }
    ret = posix_fadvise(s->fd, 0, 0, POSIX_FADV_DONTNEED);
    if (ret) {
        error_setg_errno(errp, ret, "Failed to drop the page cache");
        return -ret;
    }
    return 0;
}

static const char *const raw_mutable_opts[] = {
    "drop-cache",
    "x-check-cache-dropped",
    NULL
};

/* A plain file has no clusters and no VM state area: all zeroes, but the
 * query succeeds (qemu-io 'info' prints them; filters forward to it). */
static int raw_get_info(BlockDriverState *bs, BlockDriverInfo *bdi)
{
    memset(bdi, 0, sizeof(*bdi));
    return 0;
}

BlockDriver bdrv_file = {
    .format_name = "file",
    .protocol_name = "file",
    .instance_size = sizeof(BDRVRawState),

    .bdrv_parse_filename = raw_parse_filename,
    .bdrv_open = raw_open,
    .bdrv_close = raw_close,
    .bdrv_reopen_prepare = raw_reopen_prepare,
    .bdrv_reopen_commit = raw_reopen_commit,
    .bdrv_reopen_abort = raw_reopen_abort,

    .bdrv_co_preadv = raw_co_preadv,
    .bdrv_co_pwritev = raw_co_pwritev,
    .bdrv_co_pwrite_zeroes = raw_co_pwrite_zeroes,
    .bdrv_co_pdiscard = raw_co_pdiscard,
    .bdrv_co_flush_to_disk = raw_co_flush_to_disk,
    .bdrv_co_block_status = raw_co_block_status,
    .bdrv_co_truncate = raw_co_truncate,
    .bdrv_getlength = raw_getlength,
    .bdrv_get_info = raw_get_info,
    .bdrv_get_allocated_file_size = raw_get_allocated_file_size,
    .bdrv_refresh_limits = raw_refresh_limits,

    .bdrv_check_perm = raw_check_perm,
    .bdrv_set_perm = raw_set_perm,
    .bdrv_abort_perm_update = raw_abort_perm_update,

    .bdrv_co_create = raw_co_create,
    .bdrv_co_create_opts = raw_co_create_opts,
    .bdrv_co_invalidate_cache = raw_co_invalidate_cache,

    .mutable_opts = raw_mutable_opts,
    .supported_zero_flags = BDRV_REQ_MAY_UNMAP | BDRV_REQ_NO_FALLBACK,
    .supported_truncate_flags = 0,
};
