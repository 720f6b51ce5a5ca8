/*
 * Parsing "--chardev" option text the way qemu-storage-daemon 7.2 does for
 * the backends qblock offers: "socket" (unix path or TCP host/port, server
 * or client) and "stdio".  Produces a ChardevOptions; creating the device
 * is qmp-socket.c's job.  Error texts are QEMU's.
 */
#include "monitor/monitor.h"

void chardev_options_free(ChardevOptions *opts)
{
    if (opts) {
        g_free(opts->id);
        g_free(opts->path);
        g_free(opts->host);
        g_free(opts->port);
        g_free(opts->text);
        g_free(opts);
    }
}

static bool parse_onoff(const char *name, const char *value, bool *out,
                        Error **errp)
{
    if (!value || !strcmp(value, "on") || !strcmp(value, "yes") ||
        !strcmp(value, "true")) {
        *out = true;
        return true;
    }
    if (!strcmp(value, "off") || !strcmp(value, "no") ||
        !strcmp(value, "false")) {
        *out = false;
        return true;
    }
    error_setg(errp, "Parameter '%s' expects 'on' or 'off'", name);
    return false;
}

/*
 * Split "a=b,c=d" into (key, value) pairs, honouring ",," as a literal comma
 * in values.  The first element may be a bare word (the backend name).
 */
static GPtrArray *split_opts(const char *text)
{
    GPtrArray *parts = g_ptr_array_new_with_free_func(g_free);
    GString *cur = g_string_new(NULL);

    for (const char *p = text; ; p++) {
        if (*p == ',' && p[1] == ',') {
            g_string_append_c(cur, ',');
            p++;
        } else if (*p == ',' || *p == '\0') {
            g_ptr_array_add(parts, g_string_free(cur, FALSE));
            if (*p == '\0') {
                break;
            }
            cur = g_string_new(NULL);
        } else {
            g_string_append_c(cur, *p);
        }
    }
    return parts;
}

ChardevOptions *chardev_parse(const char *text, Error **errp)
{
    g_autoptr(GPtrArray) parts = split_opts(text);
    g_autoptr(ChardevOptions) opts = g_new0(ChardevOptions, 1);
    const char *backend = NULL;
    bool has_server = false, has_wait = false;

    for (guint i = 0; i < parts->len; i++) {
        char *item = parts->pdata[i];
        char *eq = strchr(item, '=');
        g_autofree char *key = eq ? g_strndup(item, eq - item)
                                  : g_strdup(item);
        const char *val = eq ? eq + 1 : NULL;

        if (i == 0 && !eq) {
            backend = item;
            continue;
        }
        if (!strcmp(key, "backend")) {
            backend = val;
        } else if (!strcmp(key, "id")) {
            g_free(opts->id);
            opts->id = g_strdup(val);
        } else if (!strcmp(key, "path")) {
            g_free(opts->path);
            opts->path = g_strdup(val);
        } else if (!strcmp(key, "host")) {
            g_free(opts->host);
            opts->host = g_strdup(val);
        } else if (!strcmp(key, "port")) {
            g_free(opts->port);
            opts->port = g_strdup(val);
        } else if (!strcmp(key, "server")) {
            if (!parse_onoff(key, val, &opts->server, errp)) {
                return NULL;
            }
            has_server = true;
        } else if (!strcmp(key, "wait")) {
            if (!parse_onoff(key, val, &opts->wait, errp)) {
                return NULL;
            }
            has_wait = true;
        } else if (!strcmp(key, "nodelay") || !strcmp(key, "ipv4") ||
                   !strcmp(key, "ipv6") || !strcmp(key, "signal") ||
                   !strcmp(key, "mux")) {
            bool ignored;

            /* Accepted for compatibility; they change nothing for us. */
            if (!parse_onoff(key, val, &ignored, errp)) {
                return NULL;
            }
        } else {
            error_setg(errp, "Invalid parameter '%s'", key);
            return NULL;
        }
    }
    if (!backend) {
        error_setg(errp, "chardev: \"%s\" missing backend",
                   opts->id ? opts->id : "");
        return NULL;
    }
    if (!strcmp(backend, "socket")) {
        if (opts->path) {
            opts->kind = CHARDEV_SOCKET_UNIX;
        } else if (opts->host || opts->port) {
            opts->kind = CHARDEV_SOCKET_TCP;
            if (!opts->port) {
                error_setg(errp, "chardev: socket: no port given");
                return NULL;
            }
            if (!opts->host) {
                opts->host = g_strdup("localhost");
            }
        } else {
            if (!opts->id) {
                error_setg(errp, "chardev: no id specified");
                return NULL;
            }
            error_setg(errp, "Unable to parse FD number ");
            return NULL;
        }
    } else if (!strcmp(backend, "stdio")) {
        opts->kind = CHARDEV_STDIO;
    } else {
        error_setg(errp, "'%s' is not a valid char driver name", backend);
        return NULL;
    }
    if (!opts->id) {
        error_setg(errp, "chardev: no id specified");
        return NULL;
    }
    /* A server waits for its first client unless told otherwise. */
    if (!has_wait) {
        opts->wait = opts->server;
    }
    (void)has_server;
    opts->text = g_strdup(text);
    return g_steal_pointer(&opts);
}

bool monitor_parse_and_attach(const char *text, Error **errp)
{
    g_autoptr(GPtrArray) parts = split_opts(text);
    const char *chardev = NULL;
    bool pretty = false;
    Chardev *chr;

    for (guint i = 0; i < parts->len; i++) {
        char *item = parts->pdata[i];
        char *eq = strchr(item, '=');
        g_autofree char *key = eq ? g_strndup(item, eq - item)
                                  : g_strdup(item);
        const char *val = eq ? eq + 1 : NULL;

        if (i == 0 && !eq) {
            chardev = item;
        } else if (!strcmp(key, "chardev")) {
            chardev = val;
        } else if (!strcmp(key, "mode")) {
            if (!val || strcmp(val, "control")) {
                if (val && strcmp(val, "readline")) {
                    error_setg(errp, "Parameter 'mode' does not accept "
                               "value '%s'", val);
                } else {
                    error_setg(errp, "Only QMP is supported");
                }
                return false;
            }
        } else if (!strcmp(key, "pretty")) {
            if (!parse_onoff(key, val, &pretty, errp)) {
                return false;
            }
        } else if (!strcmp(key, "id")) {
            /* The monitor's own id: accepted, unused. */
        } else {
            error_setg(errp, "Parameter '%s' is unexpected", key);
            return false;
        }
    }
    if (!chardev) {
        error_setg(errp, "Parameter 'chardev' is missing");
        return false;
    }
    chr = chardev_find(chardev);
    if (!chr) {
        error_setg(errp, "chardev \"%s\" not found", chardev);
        return false;
    }
    return chardev_attach_qmp(chr, pretty, errp);
}
