/*
 * Character devices for monitors: unix and TCP sockets (server or client)
 * and stdio.  A server chardev serves one client at a time, as QEMU's socket
 * chardev does: while a client is connected the listening socket is not
 * polled, so further clients wait in the backlog until it disconnects.
 * Each connection gets a fresh Monitor (fresh negotiation, as in QEMU).
 */
#include "monitor/monitor.h"
#include <glib-unix.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/un.h>

struct Chardev {
    ChardevOptions *opts;
    int listen_fd;           /* server sockets, else -1 */
    int conn_fd;             /* connected fd not yet given to a monitor */
    guint listen_watch;
    bool qmp;                /* a QMP monitor is attached */
    bool pretty;
    Monitor *mon;            /* current client's monitor */
};

static GHashTable *chardevs;   /* id -> Chardev */
static bool stdio_in_use;

static void chardev_free(gpointer p)
{
    Chardev *chr = p;

    if (chr->mon) {
        Monitor *mon = chr->mon;

        chr->mon = NULL;
        chr->qmp = false;      /* no re-listening from the close notify */
        monitor_close(mon);
    }
    if (chr->listen_watch) {
        g_source_remove(chr->listen_watch);
    }
    if (chr->listen_fd >= 0) {
        close(chr->listen_fd);
        if (chr->opts->kind == CHARDEV_SOCKET_UNIX) {
            unlink(chr->opts->path);
        }
    }
    if (chr->conn_fd >= 0 && chr->opts->kind != CHARDEV_STDIO) {
        close(chr->conn_fd);
    }
    if (chr->opts->kind == CHARDEV_STDIO) {
        stdio_in_use = false;
    }
    chardev_options_free(chr->opts);
    g_free(chr);
}

Chardev *chardev_find(const char *id)
{
    return chardevs ? g_hash_table_lookup(chardevs, id) : NULL;
}

static char *describe(const ChardevOptions *o)
{
    if (o->kind == CHARDEV_SOCKET_UNIX) {
        return g_strdup(o->path);
    }
    return g_strdup_printf("%s:%s", o->host, o->port);
}

static int unix_socket(const char *path, bool server, Error **errp)
{
    struct sockaddr_un sun = { .sun_family = AF_UNIX };
    int fd;

    if (strlen(path) >= sizeof(sun.sun_path)) {
        error_setg(errp, "UNIX socket path '%s' is too long", path);
        return -1;
    }
    strcpy(sun.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        error_setg_errno(errp, errno, "Failed to create Unix socket");
        return -1;
    }
    if (server) {
        unlink(path);
        if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
            error_setg_errno(errp, errno, "Failed to bind socket to %s",
                             path);
            close(fd);
            return -1;
        }
        if (listen(fd, 1) < 0) {
            error_setg_errno(errp, errno, "Failed to listen on socket");
            close(fd);
            return -1;
        }
    } else if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
        error_setg_errno(errp, errno, "Failed to connect to '%s'", path);
        close(fd);
        return -1;
    }
    return fd;
}

static int tcp_socket(const char *host, const char *port, bool server,
                      Error **errp)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
                              .ai_flags = server ? AI_PASSIVE : 0 };
    struct addrinfo *res = NULL;
    int fd = -1, saved = 0, rc;

    rc = getaddrinfo(host, port, &hints, &res);
    if (rc) {
        error_setg(errp, "address resolution failed for %s:%s: %s", host,
                   port, gai_strerror(rc));
        return -1;
    }
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int one = 1;

        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                    ai->ai_protocol);
        if (fd < 0) {
            saved = errno;
            continue;
        }
        if (server) {
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
                listen(fd, 1) == 0) {
                break;
            }
        } else if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            break;
        }
        saved = errno;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        if (server) {
            error_setg_errno(errp, saved, "Failed to bind socket");
        } else {
            error_setg_errno(errp, saved, "Failed to connect to '%s:%s'",
                             host, port);
        }
    }
    return fd;
}

static void chardev_start_monitor(Chardev *chr);

static gboolean chardev_accept(gint fd, GIOCondition cond, gpointer opaque)
{
    Chardev *chr = opaque;
    int conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

    if (conn < 0) {
        return G_SOURCE_CONTINUE;
    }
    chr->conn_fd = conn;
    chr->listen_watch = 0;
    chardev_start_monitor(chr);
    return G_SOURCE_REMOVE;
}

static void chardev_listen(Chardev *chr)
{
    if (chr->listen_fd >= 0 && !chr->listen_watch && chr->qmp) {
        chr->listen_watch = g_unix_fd_add(chr->listen_fd, G_IO_IN,
                                          chardev_accept, chr);
    }
}

static void chardev_monitor_closed(void *opaque)
{
    Chardev *chr = opaque;

    chr->mon = NULL;
    /* A server takes the next client; stdio and client sockets are done. */
    chardev_listen(chr);
}

static void chardev_start_monitor(Chardev *chr)
{
    int fd = chr->conn_fd;

    chr->conn_fd = -1;
    if (chr->opts->kind == CHARDEV_STDIO) {
        chr->mon = monitor_new_qmp(STDIN_FILENO, STDOUT_FILENO, false,
                                   chr->pretty, chardev_monitor_closed, chr);
    } else {
        chr->mon = monitor_new_qmp(fd, fd, true, chr->pretty,
                                   chardev_monitor_closed, chr);
    }
}

Chardev *chardev_new(ChardevOptions *opts, Error **errp)
{
    Chardev *chr;
    int fd = -1;

    if (!chardevs) {
        chardevs = g_hash_table_new_full(g_str_hash, g_str_equal, NULL,
                                         chardev_free);
    }
    if (g_hash_table_contains(chardevs, opts->id)) {
        error_setg(errp, "Duplicate ID '%s' for chardev", opts->id);
        chardev_options_free(opts);
        return NULL;
    }
    chr = g_new0(Chardev, 1);
    chr->listen_fd = -1;
    chr->conn_fd = -1;
    switch (opts->kind) {
    case CHARDEV_STDIO:
        if (stdio_in_use) {
            error_setg(errp, "cannot use stdio by multiple character devices");
            chardev_options_free(opts);
            g_free(chr);
            return NULL;
        }
        stdio_in_use = true;
        chr->conn_fd = STDIN_FILENO;
        break;
    case CHARDEV_SOCKET_UNIX:
    case CHARDEV_SOCKET_TCP:
        fd = opts->kind == CHARDEV_SOCKET_UNIX
             ? unix_socket(opts->path, opts->server, errp)
             : tcp_socket(opts->host, opts->port, opts->server, errp);
        if (fd < 0) {
            chardev_options_free(opts);
            g_free(chr);
            return NULL;
        }
        if (!opts->server) {
            chr->conn_fd = fd;
        } else {
            chr->listen_fd = fd;
            if (opts->wait) {
                g_autofree char *where = describe(opts);

                /* Like QEMU: block until the first client connects. */
                fprintf(stderr, "%s: --chardev %s: info: QEMU waiting for "
                        "connection on: disconnected:%s:%s,server=on\n",
                        qb_get_progname(), opts->text ? opts->text : "",
                        opts->kind == CHARDEV_SOCKET_UNIX ? "unix" : "tcp",
                        where);
                do {
                    chr->conn_fd = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
                } while (chr->conn_fd < 0 && errno == EINTR);
            }
        }
        break;
    }
    chr->opts = opts;
    g_hash_table_insert(chardevs, opts->id, chr);
    return chr;
}

bool chardev_attach_qmp(Chardev *chr, bool pretty, Error **errp)
{
    if (chr->qmp) {
        error_setg(errp, "Device '%s' is in use", chr->opts->id);
        return false;
    }
    chr->qmp = true;
    chr->pretty = pretty;
    if (chr->conn_fd >= 0) {
        chardev_start_monitor(chr);
    } else {
        chardev_listen(chr);
    }
    return true;
}

void chardev_cleanup_all(void)
{
    if (chardevs) {
        g_hash_table_destroy(chardevs);
        chardevs = NULL;
    }
}
