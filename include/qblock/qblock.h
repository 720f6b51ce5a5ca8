/*
 * libqblock: embed qblock's block layer (raw and qcow2 images, the file
 * protocol, image locks compatible with QEMU) in a program.
 *
 * This header is the whole public API.  It includes only standard C
 * headers; every type it names is either a plain C type or opaque.
 *
 * Model
 *   - Call qblock_init() once before anything else.
 *   - qblock_open() / qblock_open_image() give a QBlock handle on an image:
 *     the root of a node graph (e.g. qcow2 -> file), opened read-only or
 *     read-write, holding QEMU-compatible locks on the image file.
 *   - Synchronous I/O (qblock_pread, ...) returns 0 or a negative errno.
 *   - Asynchronous I/O (qblock_aio_*) returns at once; the completion
 *     callback runs later, from inside qblock_poll(), never from inside the
 *     submitting call.  Buffers must stay valid until the callback ran.
 *   - The library is single-threaded: call it from one thread (the one that
 *     called qblock_init()).
 *
 * Errors
 *   Control functions (init, open, create) report failures through an
 *   optional QBlockError **errp: on failure they return NULL / -1 and, when
 *   errp is not NULL, store an error object that the caller frees with
 *   qblock_error_free().  Message texts are QEMU's (e.g. "Could not open
 *   'x.qcow2': No such file or directory").  I/O functions return -errno;
 *   qblock_strerror() turns that into text.
 *
 * QMP: qblock_qmp_execute() runs QMP commands in-process (blockdev-add,
 * bitmaps, transactions, jobs, exports: the command set of
 * qblock-storage-daemon) and returns the reply text the daemon's monitor
 * would send; qblock_qmp_set_event_handler() receives the events.  Nodes
 * added over QMP can be used for I/O through qblock_open_node().
 * qblock_shutdown() closes everything.  See docs/embedding.md.
 *
 * Threads: every function must be called from the thread that called
 * qblock_init() (the one that runs qblock_poll()); callbacks (I/O
 * completions, events) run on that thread, from inside qblock_poll() or
 * from inside the call that caused them.
 *
 * Stability: functions and constants in this header keep their meaning
 * across releases; new ones may be added.
 */
#ifndef QBLOCK_QBLOCK_H
#define QBLOCK_QBLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An open image. */
typedef struct QBlock QBlock;
/* An error from a control function: a message (and a QMP error class). */
typedef struct QBlockError QBlockError;

/* Completion callback of an asynchronous request: ret is 0 or -errno. */
typedef void QBlockCompletionFunc(void *opaque, int ret);

/* Open flags. */
enum {
    QBLOCK_OPEN_RDWR        = 0x1,  /* read-write (default: read-only) */
    QBLOCK_OPEN_NOCACHE     = 0x2,  /* O_DIRECT (cache.direct=on) */
    QBLOCK_OPEN_NATIVE_AIO  = 0x4,  /* aio=native (needs NOCACHE) */
    QBLOCK_OPEN_FORCE_SHARE = 0x8,  /* like qemu-img -U (read-only only) */
    QBLOCK_OPEN_NO_FLUSH    = 0x10, /* cache.no-flush=on: flush is a no-op */
    QBLOCK_OPEN_UNMAP       = 0x20, /* discard=unmap */
};

/* Write flags. */
enum {
    QBLOCK_WRITE_FUA        = 0x1,  /* done = on stable storage */
    QBLOCK_ZERO_MAY_UNMAP   = 0x2,  /* write_zeroes may deallocate */
};

/* Block status bits (qblock_block_status). */
enum {
    QBLOCK_STATUS_DATA      = 0x1,  /* data is stored in this image */
    QBLOCK_STATUS_ZERO      = 0x2,  /* reads as zeroes */
    QBLOCK_STATUS_ALLOCATED = 0x4,  /* allocated in this layer (not backing) */
};

/*
 * Initialise the library: register the drivers and create the event loop.
 * Idempotent.  Returns 0, or -1 with *errp set.
 */
int qblock_init(QBlockError **errp);

/* Version of the library as "MAJOR.MINOR.MICRO". */
const char *qblock_version(void);

/*
 * Create an image file of size bytes.  format: "raw" or "qcow2" (NULL =
 * "raw").  options: qemu-img create's -o list ("cluster_size=64k,..."), or
 * NULL.  Returns 0, or -1 with *errp set.
 */
int qblock_create(const char *filename, const char *format, uint64_t size,
                  const char *options, QBlockError **errp);

/*
 * Open an image from blockdev options, either dotted keys
 * ("driver=qcow2,file.driver=file,file.filename=disk.qcow2") or a
 * "json:{...}" string.  flags: QBLOCK_OPEN_*.  NULL with *errp on failure.
 */
QBlock *qblock_open(const char *options, int flags, QBlockError **errp);

/*
 * Open an image by file name, as qemu-img does; format NULL probes the
 * format (raw images then refuse writes to their first sector that look
 * like another format's header, as QEMU does).
 */
QBlock *qblock_open_image(const char *filename, const char *format,
                          int flags, QBlockError **errp);

/* Close the handle (waits for its requests, flushes, releases locks). */
void qblock_close(QBlock *qb);

/* Virtual size in bytes, or -errno. */
int64_t qblock_get_length(QBlock *qb);

/* Synchronous I/O.  Any offset and length; 0 or -errno. */
int qblock_pread(QBlock *qb, uint64_t offset, void *buf, size_t bytes);
int qblock_pwrite(QBlock *qb, uint64_t offset, const void *buf, size_t bytes,
                  int flags);
int qblock_pwrite_zeroes(QBlock *qb, uint64_t offset, uint64_t bytes,
                         int flags);
int qblock_discard(QBlock *qb, uint64_t offset, uint64_t bytes);
int qblock_flush(QBlock *qb);

/*
 * Status of the range starting at offset: returns QBLOCK_STATUS_* bits (>= 0)
 * or -errno, and stores in *pnum how many bytes from offset (at most bytes)
 * share that status.
 */
int qblock_block_status(QBlock *qb, uint64_t offset, uint64_t bytes,
                        uint64_t *pnum);

/* Asynchronous I/O: returns 0 when submitted (cb will run exactly once,
 * from qblock_poll()), or -errno if the request could not be submitted
 * (then cb never runs). */
int qblock_aio_pread(QBlock *qb, uint64_t offset, void *buf, size_t bytes,
                     QBlockCompletionFunc *cb, void *opaque);
int qblock_aio_pwrite(QBlock *qb, uint64_t offset, const void *buf,
                      size_t bytes, int flags, QBlockCompletionFunc *cb,
                      void *opaque);
int qblock_aio_flush(QBlock *qb, QBlockCompletionFunc *cb, void *opaque);

/* Requests submitted through this handle whose callback has not run. */
unsigned qblock_aio_in_flight(QBlock *qb);

/*
 * Run the event loop once: dispatch whatever is ready (completions run
 * here).  blocking: wait until at least one event was dispatched.  Returns
 * true if anything was dispatched.
 */
bool qblock_poll(bool blocking);

/*
 * Integration into another event loop (poll/epoll/GLib):
 *
 *     int fd = qblock_get_fd();            // once; -1 if unavailable
 *     for (;;) {
 *         int timeout_ms = qblock_prepare_wait();
 *         poll(&(struct pollfd){ fd, POLLIN }, 1, timeout_ms);  // + yours
 *         qblock_poll(false);              // runs completions
 *     }
 *
 * qblock_prepare_wait() announces that the caller is about to sleep (so
 * completions arriving from worker threads make fd readable) and returns
 * how long it may sleep: -1 (until fd is readable), 0 (work is ready now)
 * or milliseconds until the library's next timer.  The fd is owned by the
 * library; do not read from or close it.
 */
int qblock_get_fd(void);
int qblock_prepare_wait(void);

/*
 * Open a handle on a node that already exists, e.g. one added with the QMP
 * command blockdev-add: node_name is its "node-name".  The handle is a new
 * user of the node (a BlockBackend on it): I/O through it goes through the
 * node's whole graph, so dirty bitmaps on the node see the writes.  flags:
 * QBLOCK_OPEN_RDWR for writing (the node must be writable; other flags are
 * ignored: the node's options were fixed by whoever opened it).  The node
 * stays open after qblock_close() of the handle if QMP still holds it
 * (blockdev-del removes it once no handle uses it).
 * NULL with *errp on failure.
 */
QBlock *qblock_open_node(const char *node_name, int flags, QBlockError **errp);

/*
 * QMP in-process.
 *
 * qblock_qmp_execute() runs one QMP command given as a JSON text, e.g.
 *   {"execute": "blockdev-add", "arguments": {...}, "id": 1}
 * through the same dispatcher, argument checks and error texts as
 * qblock-storage-daemon's monitor (QEMU 7.2 compatible).  No capabilities
 * negotiation is needed: the caller starts in command mode (sending
 * qmp_capabilities anyway just returns {"return": {}}); out-of-band
 * execution (exec-oob) is not available.  The command runs to completion
 * before the call returns; long-running work (jobs) continues from
 * qblock_poll().
 *
 * On return *reply (if reply is not NULL) holds the reply exactly as the
 * daemon would send it, minus the line end: compact JSON in QEMU's key
 * order, e.g. {"return": {}} or
 * {"id": 1, "error": {"class": "GenericError", "desc": "..."}} ("id" is
 * echoed as in QEMU).  Free it with qblock_free() (or free()).  *reply is
 * NULL when there is no reply text (a command that sends no success
 * response, or a call that could not run at all).
 *
 * Returns 0 when the command succeeded, -1 when it failed: then *errp (if
 * errp is not NULL) holds the error's desc and class as well.  Malformed
 * input gets the daemon's error replies ("JSON parse error, ...", "QMP
 * input must be a JSON object", ...); two input cases the daemon cannot
 * see on a stream have their own texts: no complete JSON text in the
 * string ("JSON parse error, premature end of input") and more than one
 * ("QMP input must be a single JSON text").
 *
 * Do not call qblock_qmp_execute() from inside an event handler.
 */
int qblock_qmp_execute(const char *json_command, char **reply,
                       QBlockError **errp);

/*
 * Event callback: event_json is one event as the daemon would send it
 * (compact JSON, QEMU's key order, with timestamp), e.g.
 *   {"timestamp": {"seconds": 1700000000, "microseconds": 5},
 *    "event": "JOB_STATUS_CHANGE",
 *    "data": {"status": "created", "id": "job0"}}
 * It is valid only during the call.  Events raised while a command runs
 * are delivered during qblock_qmp_execute(), before it returns the reply
 * (the daemon's order); others (job progress) during qblock_poll().
 */
typedef void QBlockEventFunc(const char *event_json, void *opaque);

/* Install (cb NULL: remove) the single event handler. */
void qblock_qmp_set_event_handler(QBlockEventFunc *cb, void *opaque);

/* Frees memory the library returned (QMP reply texts); NULL is fine. */
void qblock_free(void *ptr);

/* True once the QMP command "quit" ran; the embedder then decides when to
 * call qblock_shutdown(). */
bool qblock_shutdown_requested(void);

/*
 * Close everything, as qblock-storage-daemon does on exit: every handle
 * still open (their QBlock pointers become invalid), block exports, jobs
 * (cancelled and waited for) and every node added over QMP.  Closing a
 * qcow2 node stores its persistent dirty bitmaps and marks the image
 * clean, so afterwards the image files are consistent and unlocked.  The
 * library stays initialised and usable (the event handler stays
 * installed).
 */
void qblock_shutdown(void);

/* Text for a negative errno from an I/O function. */
const char *qblock_strerror(int ret);

/* Error objects. */
const char *qblock_error_message(const QBlockError *err);
/* QMP error class name, e.g. "GenericError". */
const char *qblock_error_class(const QBlockError *err);
void qblock_error_free(QBlockError *err);

#ifdef __cplusplus
}
#endif

#endif
