/*
 * Image lock primitives of the file driver (see file-posix-locks.h for the
 * byte map).  Pure fd operations: the permission bookkeeping per node lives
 * in file-posix.c.
 */
#include "block/block.h"
#include "block/drivers/file-posix-locks.h"

/* Human names used in lock error texts, indexed by permission bit. */
static const char *const perm_lock_names[BLK_PERM_COUNT] = {
    "consistent read", "write", "write unchanged", "resize",
};

int raw_lock_byte(int fd, bool ofd, int64_t byte, bool lock)
{
    struct flock fl = {
        .l_whence = SEEK_SET,
        .l_start = byte,
        .l_len = 1,
        .l_type = lock ? F_RDLCK : F_UNLCK,
    };

    if (fcntl(fd, ofd ? F_OFD_SETLK : F_SETLK, &fl) == -1) {
        return -errno;
    }
    return 0;
}

int raw_probe_byte(int fd, bool ofd, int64_t byte)
{
    struct flock fl = {
        .l_whence = SEEK_SET,
        .l_start = byte,
        .l_len = 1,
        .l_type = F_WRLCK,
    };

    if (fcntl(fd, ofd ? F_OFD_GETLK : F_GETLK, &fl) == -1) {
        return -errno;
    }
    return fl.l_type == F_UNLCK ? 0 : -EAGAIN;
}

bool raw_ofd_locks_supported(void)
{
    static gsize once;
    static bool supported;

    /* Asking about a lock is harmless and fails with EINVAL on kernels
     * without OFD locks. */
    if (g_once_init_enter(&once)) {
        struct flock fl = {
            .l_whence = SEEK_SET, .l_start = 0, .l_len = 0, .l_type = F_RDLCK,
        };
        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            supported = fcntl(fd, F_OFD_GETLK, &fl) == 0;
            close(fd);
        }
        g_once_init_leave(&once, 1);
    }
    return supported;
}

int raw_locks_apply(int fd, bool ofd, LockSet *held, uint64_t perm,
                    uint64_t unshared, bool release, Error **errp)
{
    for (int i = 0; i < BLK_PERM_COUNT; i++) {
        uint64_t bit = 1ULL << i;
        struct {
            int base;
            uint64_t want;
            uint64_t *have;
        } kinds[2] = {
            { RAW_LOCK_PERM_BASE, perm, &held->perm },
            { RAW_LOCK_SHARED_BASE, unshared, &held->unshared },
        };

        for (int k = 0; k < 2; k++) {
            int byte = kinds[k].base + i;
            int ret;

            if ((kinds[k].want & bit) && !(*kinds[k].have & bit)) {
                ret = raw_lock_byte(fd, ofd, byte, true);
                if (ret < 0) {
                    error_setg_errno(errp, -ret, "Failed to lock byte %d",
                                     byte);
                    return ret;
                }
                *kinds[k].have |= bit;
            } else if (release && !(kinds[k].want & bit) &&
                       (*kinds[k].have & bit)) {
                ret = raw_lock_byte(fd, ofd, byte, false);
                if (ret < 0) {
                    error_setg_errno(errp, -ret, "Failed to unlock byte %d",
                                     byte);
                    return ret;
                }
                *kinds[k].have &= ~bit;
            }
        }
    }
    return 0;
}

int raw_locks_probe(int fd, bool ofd, uint64_t perm, uint64_t shared,
                    Error **errp)
{
    for (int i = 0; i < BLK_PERM_COUNT; i++) {
        if ((perm & (1ULL << i)) &&
            raw_probe_byte(fd, ofd, RAW_LOCK_SHARED_BASE + i) < 0) {
            error_setg(errp, "Failed to get \"%s\" lock", perm_lock_names[i]);
            return -EAGAIN;
        }
    }
    for (int i = 0; i < BLK_PERM_COUNT; i++) {
        if (!(shared & (1ULL << i)) &&
            raw_probe_byte(fd, ofd, RAW_LOCK_PERM_BASE + i) < 0) {
            error_setg(errp, "Failed to get shared \"%s\" lock",
                       perm_lock_names[i]);
            return -EAGAIN;
        }
    }
    return 0;
}

