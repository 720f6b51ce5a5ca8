/*
 * Sockets for NBD: exact-length reads and writes that park the calling
 * coroutine on the AioContext's fd handler while the socket is not ready
 * (so one thread serves many connections), blocking fallbacks for callers
 * outside coroutine context (handshakes of tools), and listen/connect from
 * SocketAddress-style JSON ({"type":"unix","path":..} or
 * {"type":"inet","host":..,"port":..}).
 *
 * Invariant: s->read_co / s->write_co are non-NULL exactly while a
 * coroutine is parked waiting for that direction; the fd handler for a
 * direction is registered exactly then.
 */
#include "nbd/nbd.h"
#include "nbd/tls.h"

#include <netdb.h>
#include <limits.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

static void sock_update_handlers(NBDSock *s);

static void sock_readable(void *opaque)
{
    NBDSock *s = opaque;
    Coroutine *co = s->read_co;

    s->read_co = NULL;
    sock_update_handlers(s);
    if (co) {
        aio_co_wake(co);
    }
}

static void sock_writable(void *opaque)
{
    NBDSock *s = opaque;
    Coroutine *co = s->write_co;

    s->write_co = NULL;
    sock_update_handlers(s);
    if (co) {
        aio_co_wake(co);
    }
}

static void sock_update_handlers(NBDSock *s)
{
    aio_set_fd_handler(s->ctx, s->fd, s->read_co ? sock_readable : NULL,
                       s->write_co ? sock_writable : NULL, s);
}

void nbd_sock_init(NBDSock *s, int fd, AioContext *ctx)
{
    int fl = fcntl(fd, F_GETFL);

    memset(s, 0, sizeof(*s));
    s->fd = fd;
    s->ctx = ctx;
    if (fl >= 0) {
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    }
}

/* Wait until fd is ready for the direction (in or out). */
void coroutine_fn nbd_sock_wait(NBDSock *s, bool out)
{
    if (in_coroutine()) {
        if (out) {
            s->write_co = coroutine_self();
        } else {
            s->read_co = coroutine_self();
        }
        sock_update_handlers(s);
        coroutine_yield();
    } else {
        struct pollfd pfd = { .fd = s->fd, .events = out ? POLLOUT : POLLIN };
        while (poll(&pfd, 1, -1) < 0 && errno == EINTR) {
            /* retry */
        }
    }
}

int coroutine_fn nbd_sock_read(NBDSock *s, void *buf, size_t len)
{
    uint8_t *p = buf;

    while (len > 0) {
        ssize_t n = nbd_sock_recv_some(s, p, len);
        if (n < 0) {
            return n;
        }
        p += n;
        len -= n;
    }
    return 0;
}

/*
 * Read what the socket has, at least one byte and at most len: the
 * server's buffered request reader takes many request headers with one
 * system call.  >0 bytes read, or -errno (-ECONNRESET on EOF).
 */
ssize_t coroutine_fn nbd_sock_recv_some(NBDSock *s, void *buf, size_t len)
{
    for (;;) {
        ssize_t n;

        if (s->shutdown) {
            return -ESHUTDOWN;
        }
        if (s->tls) {
            bool out = false;
            n = nbd_tls_recv(s, buf, len, &out);
            if (n == -EAGAIN) {
                nbd_sock_wait(s, out);
                continue;
            }
            return n == 0 ? -ECONNRESET : n;
        }
        n = recv(s->fd, buf, len, 0);
        if (n > 0) {
            return n;
        } else if (n == 0) {
            return -ECONNRESET;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            nbd_sock_wait(s, false);
        } else if (errno != EINTR) {
            return -errno;
        }
    }
}

int coroutine_fn nbd_sock_writev_consume(NBDSock *s, struct iovec *v,
                                         int niov)
{
    int i = 0;

    while (i < niov) {
        /* sendmsg() takes at most IOV_MAX elements; the rest follows. */
        struct msghdr msg = { .msg_iov = v + i,
                              .msg_iovlen = MIN(niov - i, IOV_MAX) };
        ssize_t n;

        if (v[i].iov_len == 0) {
            i++;
            continue;
        }
        if (s->shutdown) {
            return -ESHUTDOWN;
        }
        if (s->tls) {
            bool out = true;
            n = nbd_tls_send(s, v[i].iov_base, v[i].iov_len, &out);
            if (n == -EAGAIN) {
                nbd_sock_wait(s, out);
                continue;
            } else if (n < 0) {
                return n;
            }
        } else {
            n = sendmsg(s->fd, &msg, MSG_NOSIGNAL);
        }
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                nbd_sock_wait(s, true);
                continue;
            }
            if (errno == EINTR) {
                continue;
            }
            return -errno;
        }
        while (n > 0 && i < niov) {
            if ((size_t)n >= v[i].iov_len) {
                n -= v[i].iov_len;
                i++;
            } else {
                v[i].iov_base = (uint8_t *)v[i].iov_base + n;
                v[i].iov_len -= n;
                n = 0;
            }
        }
    }
    return 0;
}

int coroutine_fn nbd_sock_writev(NBDSock *s, struct iovec *iov, int niov)
{
    /* Advance through a private copy: callers keep their iovecs.  Small
     * vectors (every header + payload write) stay on the stack. */
    struct iovec local[8];
    g_autofree struct iovec *heap = NULL;
    struct iovec *v = local;

    if (niov > (int)G_N_ELEMENTS(local)) {
        v = heap = g_new(struct iovec, niov);
    }
    memcpy(v, iov, sizeof(*iov) * niov);
    return nbd_sock_writev_consume(s, v, niov);
}

int coroutine_fn nbd_sock_write(NBDSock *s, const void *buf, size_t len)
{
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    return nbd_sock_writev(s, &iov, 1);
}

void nbd_sock_shutdown(NBDSock *s)
{
    if (s->fd < 0 || s->shutdown) {
        return;
    }
    s->shutdown = true;
    /* Makes the fd readable and writable, so parked coroutines wake up
     * through their handlers and see the shutdown. */
    shutdown(s->fd, SHUT_RDWR);
}

void nbd_sock_close(NBDSock *s)
{
    if (s->fd < 0) {
        return;
    }
    assert(!s->read_co && !s->write_co);
    aio_set_fd_handler(s->ctx, s->fd, NULL, NULL, NULL);
    nbd_tls_free(s);
    close(s->fd);
    s->fd = -1;
}

/* ---------------------------------------------------------------------- */
/* Addresses                                                               */

static const char *addr_get(json_t *addr, const char *key)
{
    json_t *v = json_object_get(addr, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Port as string whether given as a number or a string. */
static char *addr_port(json_t *addr)
{
    json_t *v = json_object_get(addr, "port");
    if (json_is_integer(v)) {
        return g_strdup_printf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    }
    if (json_is_string(v)) {
        return g_strdup(json_string_value(v));
    }
    return g_strdup_printf("%d", NBD_DEFAULT_PORT);
}

char *nbd_socket_addr_str(json_t *addr)
{
    const char *type = addr_get(addr, "type");
    if (g_strcmp0(type, "unix") == 0) {
        return g_strdup(addr_get(addr, "path") ?: "");
    }
    g_autofree char *port = addr_port(addr);
    return g_strdup_printf("%s:%s", addr_get(addr, "host") ?: "", port);
}

static int unix_sockaddr(json_t *addr, struct sockaddr_un *sun, Error **errp)
{
    const char *path = addr_get(addr, "path");

    if (!path) {
        error_setg(errp, "Parameter 'path' is missing");
        return -1;
    }
    if (strlen(path) >= sizeof(sun->sun_path)) {
        error_setg(errp, "UNIX socket path '%s' is too long", path);
        return -1;
    }
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    strcpy(sun->sun_path, path);
    return 0;
}

static struct addrinfo *inet_resolve(json_t *addr, bool passive, Error **errp)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC,
                              .ai_socktype = SOCK_STREAM,
                              .ai_flags = passive ? AI_PASSIVE : 0 };
    struct addrinfo *res = NULL;
    const char *host = addr_get(addr, "host");
    g_autofree char *port = addr_port(addr);
    int rc;

    if (host && !*host) {
        host = NULL;
    }
    rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        error_setg(errp, "address resolution failed for %s:%s: %s",
                   host ?: "", port, gai_strerror(rc));
        return NULL;
    }
    return res;
}

/*
 * Bind and listen on a Unix socket.  The socket file appears at bind(),
 * before listen(): a client that waits for the file (every test does) can
 * be refused in between.  So the socket is bound under a temporary name
 * in the same directory and renamed into place once it listens; rename()
 * replaces a stale socket from an earlier run atomically.  Abstract names,
 * and paths too long for the temporary suffix, are bound directly.
 */
static int listen_unix(int fd, const struct sockaddr_un *sun, Error **errp)
{
    struct sockaddr_un tmp = *sun;
    bool staged = sun->sun_path[0] != '\0' &&
                  snprintf(tmp.sun_path, sizeof(tmp.sun_path), "%s.%d~",
                           sun->sun_path, (int)getpid()) <
                      (int)sizeof(tmp.sun_path);
    const struct sockaddr_un *at = staged ? &tmp : sun;

    if (!staged) {
        unlink(sun->sun_path);   /* a stale socket from an earlier run */
    } else {
        unlink(tmp.sun_path);
    }
    if (bind(fd, (const struct sockaddr *)at, sizeof(*at)) < 0) {
        error_setg_errno(errp, errno, "Failed to bind socket to %s",
                         sun->sun_path);
        close(fd);
        return -1;
    }
    if (listen(fd, 128) < 0) {
        error_setg_errno(errp, errno, "Failed to listen on socket");
        goto fail;
    }
    if (staged && rename(tmp.sun_path, sun->sun_path) < 0) {
        error_setg_errno(errp, errno, "Failed to bind socket to %s",
                         sun->sun_path);
        goto fail;
    }
    return fd;

fail:
    if (staged) {
        unlink(tmp.sun_path);
    }
    close(fd);
    return -1;
}

int nbd_socket_listen(json_t *addr, Error **errp)
{
    const char *type = addr_get(addr, "type");
    int fd;

    if (g_strcmp0(type, "unix") == 0) {
        struct sockaddr_un sun;
        if (unix_sockaddr(addr, &sun, errp) < 0) {
            return -1;
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            error_setg_errno(errp, errno, "Failed to create Unix socket");
            return -1;
        }
        return listen_unix(fd, &sun, errp);
    } else if (g_strcmp0(type, "inet") == 0) {
        struct addrinfo *res = inet_resolve(addr, true, errp), *ai;
        int err = 0;
        if (!res) {
            return -1;
        }
        fd = -1;
        for (ai = res; ai; ai = ai->ai_next) {
            int on = 1;
            fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                        ai->ai_protocol);
            if (fd < 0) {
                err = errno;
                continue;
            }
            setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
            if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
                break;
            }
            err = errno;
            close(fd);
            fd = -1;
        }
        freeaddrinfo(res);
        if (fd < 0) {
            /* qemu's text when every address of an inet port is taken */
            error_setg_errno(errp, err, "Failed to find an available port");
            return -1;
        }
    } else {
        error_setg(errp, "Invalid parameter 'type'");
        return -1;
    }
    if (listen(fd, 128) < 0) {
        error_setg_errno(errp, errno, "Failed to listen on socket");
        close(fd);
        return -1;
    }
    return fd;
}

int nbd_socket_connect(json_t *addr, Error **errp)
{
    const char *type = addr_get(addr, "type");
    int fd;

    if (g_strcmp0(type, "unix") == 0) {
        struct sockaddr_un sun;
        if (unix_sockaddr(addr, &sun, errp) < 0) {
            return -1;
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            error_setg_errno(errp, errno, "Failed to create socket");
            return -1;
        }
        if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
            error_setg_errno(errp, errno, "Failed to connect to '%s'",
                             sun.sun_path);
            close(fd);
            return -1;
        }
        return fd;
    } else if (g_strcmp0(type, "inet") == 0) {
        struct addrinfo *res = inet_resolve(addr, false, errp), *ai;
        int err = ECONNREFUSED;
        if (!res) {
            return -1;
        }
        fd = -1;
        for (ai = res; ai; ai = ai->ai_next) {
            fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
                        ai->ai_protocol);
            if (fd < 0) {
                err = errno;
                continue;
            }
            if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) {
                int on = 1;
                setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
                break;
            }
            err = errno;
            close(fd);
            fd = -1;
        }
        freeaddrinfo(res);
        if (fd < 0) {
            g_autofree char *s = nbd_socket_addr_str(addr);
            error_setg_errno(errp, err, "Failed to connect to '%s'", s);
        }
        return fd;
    }
    error_setg(errp, "Invalid parameter 'type'");
    return -1;
}
