/*
 * The QMP monitor: JSON framing, greeting, capability negotiation, command
 * dispatch through a QmpCommand table, replies and events, plus the
 * character devices (unix / TCP sockets, stdio) monitors run on.
 *
 * Threading: everything here runs in the main thread, driven by GLib's
 * default main context.  A command runs to completion inside the read
 * callback of its monitor, so the block layer's nested aio_poll() never
 * re-enters the monitor (monitor fds are not AioContext handlers).
 *
 * Invariants:
 *  1. Replies go out in the order the commands arrived, one JSON text per
 *     line (CR LF terminated, as QEMU); events raised while a command runs
 *     precede its reply.
 *  2. Events reach only monitors that completed qmp_capabilities.
 *  3. A message is capped at MONITOR_MAX_MESSAGE bytes and 1024 levels of
 *     nesting; beyond either the client gets an error reply and memory
 *     stays bounded.  Past the size cap the rest of the message is skipped;
 *     past the nesting cap the message is dropped and the input after the
 *     offending bracket is read afresh, as QEMU 7.2 does (json-stream.c).
 */
#ifndef MONITOR_MONITOR_H
#define MONITOR_MONITOR_H

#include "util/common.h"
#include "util/error.h"
#include "qapi/qmp-registry.h"
#include <jansson.h>

#define MONITOR_MAX_MESSAGE   (64 * 1024 * 1024)
#define MONITOR_MAX_NESTING   1024
/* A client that does not read its replies is dropped past this backlog. */
#define MONITOR_MAX_OUTBUF    (64 * 1024 * 1024)

/* ---- JSON stream framing (monitor/json-stream.c) ---- */

typedef struct JsonStream JsonStream;
/*
 * Called once per complete top-level JSON text: exactly one of value (a new
 * reference, ownership passes) and err (ownership passes) is set.
 */
typedef void JsonStreamEmit(void *opaque, json_t *value, Error *err);
JsonStream *json_stream_new(JsonStreamEmit *emit, void *opaque);
/* Feed bytes; calls emit for every text completed by them. */
void json_stream_feed(JsonStream *js, const char *buf, size_t len);
/* Forget a partial message (used on disconnect). */
void json_stream_reset(JsonStream *js);
void json_stream_free(JsonStream *js);
/* Bytes held for the message being collected (text plus token records):
 * never more than MONITOR_MAX_MESSAGE plus a few bytes (tests use it). */
size_t json_stream_buffered(const JsonStream *js);

/* ---- monitors (monitor/qmp.c) ---- */

typedef struct Monitor Monitor;
typedef void MonitorCloseNotify(void *opaque);

/* The command table every monitor dispatches through, and the version the
 * greeting and query-version report. */
void monitor_set_command_table(const QmpCommand *table);
const QmpCommand *monitor_get_command_table(void);
/* The greeting / query-version object: {"qemu": {...}, "package": ...}. */
json_t *monitor_version_info(void);

/*
 * Start a QMP monitor on connected fds (may be equal).  Sends the
 * greeting.  The monitor closes itself on EOF or error, closes the fds
 * when close_fds, then calls notify(opaque).
 */
Monitor *monitor_new_qmp(int in_fd, int out_fd, bool close_fds, bool pretty,
                         MonitorCloseNotify *notify, void *opaque);
/* Close now (no notify re-entry problems: safe inside callbacks). */
void monitor_close(Monitor *mon);
/* Write out every monitor's pending output, blocking up to timeout_ms. */
void monitor_flush_all(int timeout_ms);
/* Close every monitor (at exit). */
void monitor_cleanup_all(void);
/* The monitor whose command is running, NULL outside dispatch. */
Monitor *monitor_cur(void);
/* Handle one parsed request on mon (exposed for tests and fuzzing). */
void monitor_handle_request(Monitor *mon, json_t *req);
/*
 * Run one parsed request for an in-process caller (libqblock's
 * qblock_qmp_execute) with the same checks, dispatch and error texts as a
 * monitor; the caller counts as having negotiated capabilities (no OOB).
 * Returns the reply object (new reference), NULL for a command without a
 * success response.
 */
json_t *monitor_execute_request(json_t *req);

/* ---- events (monitor/events.c) ---- */

/* QapiEventEmitter: timestamps the event and sends it to every negotiated
 * monitor.  Takes ownership of data (may be NULL). */
void monitor_emit_event(const char *name, json_t *data);
/* Install monitor_emit_event as the QAPI event hook. */
void monitor_events_init(void);
/* An in-process receiver of every event (libqblock's event handler):
 * called with the timestamped event object before the monitors get it.
 * NULL fn removes it. */
typedef void MonitorEventSink(json_t *event, void *opaque);
void monitor_set_event_sink(MonitorEventSink *fn, void *opaque);
/* Internal: queue a JSON text on one monitor. */
void monitor_send_json(Monitor *mon, json_t *obj);
/* Internal: call fn for every monitor that completed negotiation. */
void monitor_foreach_negotiated(void (*fn)(Monitor *mon, void *opaque),
                                void *opaque);

/* ---- shutdown requests (quit, signals) ---- */
void qb_request_shutdown(void);
bool qb_shutdown_requested(void);

/* ---- character devices (monitor/chardev.c, monitor/qmp-socket.c) ---- */

typedef enum ChardevKind {
    CHARDEV_SOCKET_UNIX,
    CHARDEV_SOCKET_TCP,
    CHARDEV_STDIO,
} ChardevKind;

typedef struct ChardevOptions {
    char *id;
    ChardevKind kind;
    char *path;           /* unix */
    char *host, *port;    /* tcp */
    bool server;
    bool wait;
    char *text;           /* the option text, for messages */
} ChardevOptions;

typedef struct Chardev Chardev;

/* Parse "-chardev" text ("socket,id=x,path=P,server=on,wait=off", "stdio,id=x"). */
ChardevOptions *chardev_parse(const char *text, Error **errp);
void chardev_options_free(ChardevOptions *opts);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(ChardevOptions, chardev_options_free)

/* Create the chardev (binds / listens / connects).  Takes opts. */
Chardev *chardev_new(ChardevOptions *opts, Error **errp);
Chardev *chardev_find(const char *id);
/* Run a QMP monitor on the chardev (each accepted client in turn). */
bool chardev_attach_qmp(Chardev *chr, bool pretty, Error **errp);
/* Close every chardev and its monitor, unlinking socket paths we created. */
void chardev_cleanup_all(void);

/*
 * Parse "--monitor [chardev=]ID[,mode=control][,pretty=on|off]" and attach
 * a QMP monitor to that chardev.
 */
bool monitor_parse_and_attach(const char *text, Error **errp);

#endif
