/*
 * QMP sessions: one Monitor per connected client.  Reads bytes, frames them
 * into JSON texts (json-stream.c), checks the request envelope, enforces
 * capability negotiation, dispatches through the command table and writes
 * the reply with the request's "id" echoed.  Output is buffered and written
 * without blocking the main loop; QEMU's key order comes from the json-qemu
 * printer.
 *
 * Lifetime: a Monitor is freed from an idle callback after it was marked
 * dead, never inside its own I/O callback, so a command that makes the
 * connection fail (write error while replying) cannot free the object that
 * is still running it.
 */
#include "monitor/monitor.h"
#include "util/json-qemu.h"
#include <glib-unix.h>
#include <signal.h>

struct Monitor {
    int in_fd, out_fd;
    bool close_fds;
    bool pretty;
    bool negotiated;
    bool oob;
    bool dead;
    JsonStream *stream;
    GString *outbuf;
    size_t out_pos;          /* bytes of outbuf already written */
    guint in_watch, out_watch;
    MonitorCloseNotify *notify;
    void *notify_opaque;
};

static const QmpCommand *command_table;
static GList *monitors;
static Monitor *cur_mon;
static bool shutdown_requested;

void monitor_set_command_table(const QmpCommand *table)
{
    command_table = table;
}

const QmpCommand *monitor_get_command_table(void)
{
    return command_table;
}

Monitor *monitor_cur(void)
{
    return cur_mon;
}

void qb_request_shutdown(void)
{
    shutdown_requested = true;
    g_main_context_wakeup(NULL);
}

bool qb_shutdown_requested(void)
{
    return shutdown_requested;
}

json_t *monitor_version_info(void)
{
    /* Report QEMU 7.2's numbers so clients gating features on the version
     * work; the package string names us. */
    /* Members in QEMU's insertion order (json-qemu.h). */
    return json_pack("{s:{s:i,s:i,s:i},s:s}", "qemu", "major", 7,
                     "minor", 2, "micro", 0, "package",
                     "qblock " QBLOCK_VERSION);
}

/* ---- output ---- */

static void monitor_mark_dead(Monitor *mon);

static gboolean monitor_out_ready(gint fd, GIOCondition cond, gpointer opaque);

static void monitor_try_write(Monitor *mon)
{
    /* One write() per reply in the common case: the whole reply is in
     * outbuf and the socket takes it.  What the socket does not take stays
     * from out_pos on; the buffer is emptied (not shifted) once all of it
     * was written. */
    while (mon->out_pos < mon->outbuf->len) {
        ssize_t n = write(mon->out_fd, mon->outbuf->str + mon->out_pos,
                          mon->outbuf->len - mon->out_pos);

        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                break;
            }
            monitor_mark_dead(mon);
            return;
        }
        mon->out_pos += n;
    }
    if (mon->out_pos == mon->outbuf->len) {
        g_string_truncate(mon->outbuf, 0);
        mon->out_pos = 0;
        /* Give back what one huge reply took. */
        if (mon->outbuf->allocated_len > 4 * 1024 * 1024) {
            g_string_free(mon->outbuf, TRUE);
            mon->outbuf = g_string_new(NULL);
        }
    } else if (mon->out_pos > 1024 * 1024) {
        g_string_erase(mon->outbuf, 0, mon->out_pos);
        mon->out_pos = 0;
    }
    if (mon->outbuf->len > 0 && !mon->out_watch) {
        mon->out_watch = g_unix_fd_add(mon->out_fd, G_IO_OUT, monitor_out_ready,
                                       mon);
    } else if (mon->outbuf->len == 0 && mon->out_watch) {
        g_source_remove(mon->out_watch);
        mon->out_watch = 0;
    }
}

static gboolean monitor_out_ready(gint fd, GIOCondition cond, gpointer opaque)
{
    Monitor *mon = opaque;

    mon->out_watch = 0;
    if (!mon->dead) {
        monitor_try_write(mon);
    }
    return G_SOURCE_REMOVE;
}

void monitor_send_json(Monitor *mon, json_t *obj)
{
    if (mon->dead) {
        return;
    }
    if (mon->pretty) {
        g_autofree char *text = qemu_json_to_pretty(obj);

        /* QEMU's monitor output turns every newline into CR LF (observed
         * on sockets and stdio alike), pretty-printed lines included. */
        for (const char *p = text; *p; p++) {
            if (*p == '\n') {
                g_string_append_c(mon->outbuf, '\r');
            }
            g_string_append_c(mon->outbuf, *p);
        }
    } else {
        /* The compact form has no raw newline (strings escape theirs), so
         * it is printed straight into the output buffer. */
        qemu_json_append(mon->outbuf, obj, false, 0);
    }
    g_string_append_len(mon->outbuf, "\r\n", 2);
    if (mon->outbuf->len - mon->out_pos > MONITOR_MAX_OUTBUF) {
        /* The client does not read: drop it rather than grow without end. */
        monitor_mark_dead(mon);
        return;
    }
    monitor_try_write(mon);
}

void monitor_foreach_negotiated(void (*fn)(Monitor *mon, void *opaque),
                                void *opaque)
{
    /* fn may make a monitor die, which unlinks it from the list: walk a
     * copy (dead monitors are freed only from an idle callback). */
    GList *copy = g_list_copy(monitors);

    for (GList *l = copy; l; l = l->next) {
        Monitor *mon = l->data;

        if (mon->negotiated && !mon->dead) {
            fn(mon, opaque);
        }
    }
    g_list_free(copy);
}

/* ---- requests ---- */

/* The reply object for ret (or err; both are consumed), "id" echoed. */
static json_t *build_reply(json_t *ret, Error *err, json_t *id)
{
    json_t *rsp = json_object();

    if (err) {
        json_t *e = json_object();
        /* The text may quote invalid UTF-8 from the input (a stray byte):
         * kept as is, the printer shows such bytes as U+FFFD like QEMU. */
        const char *desc = error_get_pretty(err);

        json_object_set_new(e, "class",
                            json_string(error_class_name(error_get_class(err))));
        json_object_set_new(e, "desc", json_stringn_nocheck(desc,
                                                            strlen(desc)));
        json_object_set_new(rsp, "error", e);
        error_free(err);
    } else {
        json_object_set_new(rsp, "return", ret ? ret : json_object());
    }
    if (id) {
        json_object_set(rsp, "id", id);
    }
    return rsp;
}

static void send_reply(Monitor *mon, json_t *ret, Error *err, json_t *id)
{
    json_t *rsp = build_reply(ret, err, id);

    monitor_send_json(mon, rsp);
    json_decref(rsp);
}

static bool handle_capabilities(Monitor *mon, json_t *args, Error **errp)
{
    const char *key;
    json_t *val;
    bool oob = false;

    if (mon && mon->negotiated) {
        error_set(errp, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "Capabilities negotiation is already complete, command "
                  "ignored");
        return false;
    }
    json_object_foreach(args, key, val) {
        size_t i;
        json_t *cap;

        if (strcmp(key, "enable")) {
            error_setg(errp, "Parameter '%s' is unexpected", key);
            return false;
        }
        if (!json_is_array(val)) {
            error_setg(errp, "Invalid parameter type for 'enable', "
                       "expected: array");
            return false;
        }
        json_array_foreach(val, i, cap) {
            if (!json_is_string(cap)) {
                error_setg(errp, "Invalid parameter type for 'enable[%zu]', "
                           "expected: string", i);
                return false;
            }
            if (strcmp(json_string_value(cap), "oob")) {
                /* QEMU names an enum inside a list 'null' (see
                 * qapi/qapi-visit-core.c), unlike a type error. */
                error_setg(errp, "Parameter 'null' does not accept "
                           "value '%s'", json_string_value(cap));
                return false;
            }
            oob = true;
        }
    }
    if (mon) {
        mon->oob = oob;
        mon->negotiated = true;
    }
    return true;
}

/*
 * Check the envelope of req and run it; returns the reply object, or NULL
 * for a command that sends no success response.  mon NULL is an in-process
 * caller (monitor_execute_request): it counts as negotiated without OOB,
 * and qmp_capabilities only checks its arguments.
 */
static json_t *handle_request(Monitor *mon, json_t *req)
{
    const char *key, *name = NULL, *oob_name = NULL;
    json_t *val, *args = NULL, *id = NULL, *ret = NULL;
    g_autofree const char **keys = NULL;
    const QmpCommand *cmd = NULL;
    Error *err = NULL;
    bool oob = false, mon_oob = mon && mon->oob;

    if (!json_is_object(req)) {
        error_setg(&err, "QMP input must be a JSON object");
        return build_reply(NULL, err, NULL);
    }
    id = json_object_get(req, "id");
    /* Members are checked in QEMU's QDict iteration order (not the order
     * they arrived in), so that of two bad members the same one is
     * reported.  Without the oob capability "exec-oob" is just another
     * unexpected member. */
    keys = qemu_json_object_keys(req);
    for (size_t i = 0; keys[i]; i++) {
        key = keys[i];
        val = json_object_get(req, key);
        if (!strcmp(key, "execute") ||
            (!strcmp(key, "exec-oob") && mon_oob)) {
            if (!json_is_string(val)) {
                error_setg(&err, "QMP input member '%s' must be a string",
                           key);
                goto out;
            }
            if (!strcmp(key, "exec-oob")) {
                oob_name = json_string_value(val);
            } else {
                name = json_string_value(val);
            }
        } else if (!strcmp(key, "arguments")) {
            if (!json_is_object(val)) {
                error_setg(&err, "QMP input member 'arguments' must be an "
                           "object");
                goto out;
            }
            args = val;
        } else if (strcmp(key, "id")) {
            error_setg(&err, "QMP input member '%s' is unexpected", key);
            goto out;
        }
    }
    if (name && oob_name) {
        error_setg(&err, "QMP input member 'execute' clashes with "
                   "'exec-oob'");
        goto out;
    }
    if (oob_name) {
        name = oob_name;
        oob = true;
    }
    if (!name) {
        error_setg(&err, "QMP input lacks member 'execute'");
        goto out;
    }

    if (!strcmp(name, "qmp_capabilities")) {
        if (oob) {
            error_setg(&err, "The command %s does not support OOB", name);
        } else if (handle_capabilities(mon, args, &err)) {
            ret = json_object();
        }
        goto out;
    }
    if (mon && !mon->negotiated) {
        error_set(&err, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "Expecting capabilities negotiation with "
                  "'qmp_capabilities'");
        goto out;
    }
    if (command_table) {
        for (const QmpCommand *c = command_table; c->name; c++) {
            if (!strcmp(c->name, name)) {
                cmd = c;
                break;
            }
        }
    }
    if (!cmd) {
        error_set(&err, ERROR_CLASS_COMMAND_NOT_FOUND,
                  "The command %s has not been found", name);
        goto out;
    }
    if (oob && !(cmd->options & QCO_ALLOW_OOB)) {
        error_setg(&err, "The command %s does not support OOB", name);
        goto out;
    }

    cur_mon = mon;
    cmd->fn(args, &ret, &err);
    cur_mon = NULL;
    if (!err && (cmd->options & QCO_NO_SUCCESS_RESP)) {
        json_decref(ret);
        return NULL;
    }
    if (err) {
        json_decref(ret);
        ret = NULL;
    }

out:
    return build_reply(ret, err, id);
}

void monitor_handle_request(Monitor *mon, json_t *req)
{
    json_t *rsp = handle_request(mon, req);

    if (rsp) {
        monitor_send_json(mon, rsp);
        json_decref(rsp);
    }
}

json_t *monitor_execute_request(json_t *req)
{
    Monitor *saved = cur_mon;
    json_t *rsp = handle_request(NULL, req);

    /* An embedder may call this from inside an event raised by a command
     * a monitor runs: keep that monitor current afterwards. */
    cur_mon = saved;
    return rsp;
}

static void monitor_stream_emit(void *opaque, json_t *value, Error *err)
{
    Monitor *mon = opaque;

    if (mon->dead) {
        json_decref(value);
        error_free(err);
        return;
    }
    if (err) {
        send_reply(mon, NULL, err, NULL);
        return;
    }
    monitor_handle_request(mon, value);
    json_decref(value);
}

/* ---- input and lifetime ---- */

static gboolean monitor_free_idle(gpointer opaque)
{
    Monitor *mon = opaque;

    json_stream_free(mon->stream);
    g_string_free(mon->outbuf, TRUE);
    g_free(mon);
    return G_SOURCE_REMOVE;
}

static void monitor_mark_dead(Monitor *mon)
{
    if (mon->dead) {
        return;
    }
    mon->dead = true;
    monitors = g_list_remove(monitors, mon);
    if (mon->in_watch) {
        g_source_remove(mon->in_watch);
        mon->in_watch = 0;
    }
    if (mon->out_watch) {
        g_source_remove(mon->out_watch);
        mon->out_watch = 0;
    }
    if (mon->close_fds) {
        close(mon->in_fd);
        if (mon->out_fd != mon->in_fd) {
            close(mon->out_fd);
        }
    }
    if (mon->notify) {
        mon->notify(mon->notify_opaque);
    }
    g_idle_add(monitor_free_idle, mon);
}

void monitor_close(Monitor *mon)
{
    monitor_mark_dead(mon);
}

static gboolean monitor_in_ready(gint fd, GIOCondition cond, gpointer opaque)
{
    Monitor *mon = opaque;
    char buf[65536];
    ssize_t n;

    n = read(mon->in_fd, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        return G_SOURCE_CONTINUE;
    }
    if (n <= 0) {
        /* EOF or error: a partial message is forgotten. */
        mon->in_watch = 0;
        monitor_mark_dead(mon);
        return G_SOURCE_REMOVE;
    }
    json_stream_feed(mon->stream, buf, n);
    if (mon->dead) {
        mon->in_watch = 0;
        return G_SOURCE_REMOVE;
    }
    return G_SOURCE_CONTINUE;
}

Monitor *monitor_new_qmp(int in_fd, int out_fd, bool close_fds, bool pretty,
                         MonitorCloseNotify *notify, void *opaque)
{
    Monitor *mon = g_new0(Monitor, 1);
    json_t *greeting;

    /* A client that disconnects while we write must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    g_unix_set_fd_nonblocking(in_fd, TRUE, NULL);
    g_unix_set_fd_nonblocking(out_fd, TRUE, NULL);
    mon->in_fd = in_fd;
    mon->out_fd = out_fd;
    mon->close_fds = close_fds;
    mon->pretty = pretty;
    mon->notify = notify;
    mon->notify_opaque = opaque;
    mon->stream = json_stream_new(monitor_stream_emit, mon);
    mon->outbuf = g_string_new(NULL);
    monitors = g_list_append(monitors, mon);

    greeting = json_pack("{s:{s:o,s:[s]}}", "QMP", "version",
                         monitor_version_info(), "capabilities", "oob");
    monitor_send_json(mon, greeting);
    json_decref(greeting);
    if (!mon->dead) {
        mon->in_watch = g_unix_fd_add(in_fd, G_IO_IN | G_IO_HUP | G_IO_ERR,
                                      monitor_in_ready, mon);
    }
    return mon;
}

void monitor_flush_all(int timeout_ms)
{
    int64_t deadline = g_get_monotonic_time() + (int64_t)timeout_ms * 1000;

    GList *copy = g_list_copy(monitors);

    for (GList *l = copy; l; l = l->next) {
        Monitor *mon = l->data;

        while (!mon->dead && mon->out_pos < mon->outbuf->len &&
               g_get_monotonic_time() < deadline) {
            GPollFD pfd = { .fd = mon->out_fd, .events = G_IO_OUT };

            g_poll(&pfd, 1, 10);
            monitor_try_write(mon);
        }
    }
    g_list_free(copy);
}

void monitor_cleanup_all(void)
{
    while (monitors) {
        monitor_mark_dead(monitors->data);
    }
    /* Run the pending frees. */
    while (g_main_context_iteration(NULL, FALSE)) {
    }
}
