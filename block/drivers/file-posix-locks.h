/*
 * Image locks of the file driver: QEMU-compatible byte-range locks that
 * mirror a node's permissions into the file so that other processes (qblock
 * or QEMU) can see them.
 *
 * Byte map: a shared (F_RDLCK) lock on byte 100+i means "I hold permission
 * bit i", one on byte 200+i means "I do not share permission bit i".  Bit i
 * is 0 consistent read, 1 write, 2 write unchanged, 3 resize.  Nobody ever
 * takes a write lock; conflicts are found by probing with F_WRLCK through
 * F_OFD_GETLK, which ignores locks of the probing open file description.
 * Bytes 0 and 104/204 are never touched.
 */
#ifndef BLOCK_DRIVERS_FILE_POSIX_LOCKS_H
#define BLOCK_DRIVERS_FILE_POSIX_LOCKS_H

#include "util/common.h"
#include "util/error.h"

#define RAW_LOCK_PERM_BASE    100
#define RAW_LOCK_SHARED_BASE  200

/* Lock bytes held on one fd, as permission bit masks. */
typedef struct LockSet {
    uint64_t perm;      /* bit i set: byte 100+i is read-locked */
    uint64_t unshared;  /* bit i set: byte 200+i is read-locked */
} LockSet;

/* Whether the kernel has open-file-description locks (checked once). */
bool raw_ofd_locks_supported(void);

/* Read-lock (lock) or unlock one byte; 0 or -errno. */
int raw_lock_byte(int fd, bool ofd, int64_t byte, bool lock);
/* 0 if no other open file description (POSIX: process) holds a lock on
 * byte, -EAGAIN if one does, other -errno on failure. */
int raw_probe_byte(int fd, bool ofd, int64_t byte);

/*
 * Make fd hold at least the bytes of (perm, unshared); with release, also
 * drop every other byte so it holds exactly that set.  held is kept equal
 * to what is really locked, also on failure ("Failed to lock byte N").
 */
int raw_locks_apply(int fd, bool ofd, LockSet *held, uint64_t perm,
                    uint64_t unshared, bool release, Error **errp);

/*
 * Probe whether someone else is in the way of taking perm and not sharing
 * ~shared: "Failed to get \"NAME\" lock" (someone unshares a perm we want)
 * or "Failed to get shared \"NAME\" lock" (someone holds a perm we unshare).
 * Returns 0 or -EAGAIN.
 */
int raw_locks_probe(int fd, bool ofd, uint64_t perm, uint64_t shared,
                    Error **errp);

#endif
