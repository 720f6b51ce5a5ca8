/*
 * qblock-nbd: serve one image over NBD without the daemon, with qemu-nbd
 * 7.2's command line (-k/-p/-b/-x/-D/-f/-r/-t/-e/-B/-A, --image-opts,
 * --fork, --pid-file, -L to list a server's exports, cache/aio/discard/
 * detect-zeroes).  Kernel NBD devices (-c/-d) and snapshots (-s/-l) are
 * refused: qblock has no kernel client and no temporary overlays here.
 * TLS as qemu-nbd: --object tls-creds-psk|tls-creds-x509|authz-simple,
 * --tls-creds (server endpoint when serving, client endpoint with -L),
 * --tls-authz (serving only), --tls-hostname (-L only).
 *
 * Life cycle (as qemu-nbd): listen, open the image, serve; without -t the
 * process exits once a client that chose an export has come and the last
 * such client has gone.  The socket is bound before the image is opened,
 * so a busy port is reported before an image error (a lock held by
 * another server), and a Unix socket stays behind when the open fails,
 * as qemu-nbd leaves it.  SIGTERM/SIGINT/SIGHUP end it cleanly (the Unix
 * socket is unlinked, the image closed).
 */
#include "nbd/nbd.h"
#include "nbd/tls.h"
#include "block/block-backend.h"
#include "block/block-int.h"
#include "block/options.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>

enum {
    OPT_OBJECT = 256, OPT_IMAGE_OPTS, OPT_FORK, OPT_PID_FILE, OPT_CACHE,
    OPT_AIO, OPT_DISCARD, OPT_DETECT_ZEROES, OPT_TLSCREDS, OPT_TLSAUTHZ,
    OPT_LOAD_SNAPSHOT, OPT_TLSHOSTNAME,
};

static bool persistent;
static bool terminate;
static NBDExport *the_export;

static void usage(const char *name)
{
    printf(
"Usage: %s [OPTIONS] FILE\n"
"  or:  %s -L [OPTIONS]\n"
"QEMU Disk Network Block Device Utility (qblock)\n"
"\n"
"  -h, --help                display this help and exit\n"
"  -V, --version             output version information and exit\n"
"\n"
"Connection properties:\n"
"  -p, --port=PORT           port to listen on (default `%d')\n"
"  -b, --bind=IFACE          interface to bind to (default `0.0.0.0')\n"
"  -k, --socket=PATH         path to the unix socket\n"
"                            (default '/var/lock/qemu-nbd-DEVICE')\n"
"  -e, --shared=NUM          device can be shared by NUM clients (default '1')\n"
"  -t, --persistent          don't exit on the last connection\n"
"  -v, --verbose             display extra debugging information\n"
"  -x, --export-name=NAME    expose export by name (default is empty string)\n"
"  -D, --description=TEXT    export a human-readable description\n"
"\n"
"Exposing part of the image:\n"
"  -o, --offset=OFFSET       offset into the image (not supported)\n"
"  -A, --allocation-depth    expose the allocation depth\n"
"  -B, --bitmap=NAME         expose a persistent dirty bitmap\n"
"\n"
"General purpose options:\n"
"  -L, --list                list exports available from another NBD server\n"
"  --object type,id=ID,...   define an object such as 'secret' for providing\n"
"                            passwords and/or encryption keys\n"
"  --tls-creds=ID            use id of an earlier --object to provide TLS\n"
"  --tls-authz=ID            id of an earlier --object to provide\n"
"                            authorization\n"
"  --tls-hostname=HOSTNAME   override hostname used to check x509 certificate\n"
"  --fork                    fork off the server process and exit the parent\n"
"                            once the server is running\n"
"  --pid-file=PATH           store the server's process ID in the given file\n"
"\n"
"Block device options:\n"
"  -f, --format=FORMAT       set image format (raw, qcow2, ...)\n"
"  -r, --read-only           export read-only\n"
"  -s, --snapshot            use FILE as an external snapshot (not supported)\n"
"  -n, --nocache             disable host cache\n"
"      --cache=MODE          set cache mode used to access the disk image, the\n"
"                            valid options are: 'none', 'writeback' (default),\n"
"                            'writethrough', 'directsync' and 'unsafe'\n"
"      --aio=MODE            set AIO mode (native, io_uring or threads)\n"
"      --discard=MODE        set discard mode (ignore, unmap)\n"
"      --detect-zeroes=MODE  set detect-zeroes mode (off, on, unmap)\n"
"      --image-opts          treat FILE as a full set of image options\n"
"\n"
"Kernel NBD client support (-c, -d) is not available in qblock.\n",
           name, name, NBD_DEFAULT_PORT);
}

static bool parse_cache(const char *mode, int *flags, bool *writethrough)
{
    *flags &= ~BDRV_O_CACHE_MASK;
    if (!strcmp(mode, "none") || !strcmp(mode, "off")) {
        *flags |= BDRV_O_NOCACHE;
        *writethrough = false;
    } else if (!strcmp(mode, "directsync")) {
        *flags |= BDRV_O_NOCACHE;
        *writethrough = true;
    } else if (!strcmp(mode, "writeback")) {
        *writethrough = false;
    } else if (!strcmp(mode, "unsafe")) {
        *flags |= BDRV_O_NO_FLUSH;
        *writethrough = false;
    } else if (!strcmp(mode, "writethrough")) {
        *writethrough = true;
    } else {
        return false;
    }
    return true;
}

static void client_closed(void *opaque, bool negotiated)
{
    /* The closing client is already detached from the export. */
    if (negotiated && !persistent && the_export &&
        nbd_export_client_count(the_export) == 0) {
        terminate = true;
    }
}

static void signal_ready(void *opaque)
{
    int fd = GPOINTER_TO_INT(opaque);
    struct signalfd_siginfo si;

    while (read(fd, &si, sizeof(si)) == sizeof(si)) {
        terminate = true;
    }
}

/* The address to listen on (or, with -L, to query) as nbd_socket_* take it. */
static json_t *server_address(const char *sockpath, const char *bindto,
                              const char *port, bool list)
{
    if (sockpath) {
        return json_pack("{s:s, s:s}", "type", "unix", "path", sockpath);
    }
    return json_pack("{s:s, s:s, s:s}", "type", "inet", "host",
                     bindto ? bindto : (list ? "localhost" : "0.0.0.0"),
                     "port", port ? port : "10809");
}

static int do_list(json_t *addr, NBDTLSCreds *creds, const char *hostname)
{
    Error *err = NULL;
    int fd = nbd_socket_connect(addr, &err);
    NBDSock sock;
    int ret;

    if (fd < 0) {
        error_report_err(err);
        return 1;
    }
    nbd_sock_init(&sock, fd, qb_get_aio_context());
    ret = nbd_client_list_sock(&sock, stdout, creds, hostname, &err);
    nbd_sock_close(&sock);
    if (ret < 0) {
        error_report_err(err);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option lopts[] = {
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { "bind", required_argument, NULL, 'b' },
        { "port", required_argument, NULL, 'p' },
        { "socket", required_argument, NULL, 'k' },
        { "offset", required_argument, NULL, 'o' },
        { "read-only", no_argument, NULL, 'r' },
        { "allocation-depth", no_argument, NULL, 'A' },
        { "bitmap", required_argument, NULL, 'B' },
        { "connect", required_argument, NULL, 'c' },
        { "disconnect", no_argument, NULL, 'd' },
        { "list", no_argument, NULL, 'L' },
        { "snapshot", no_argument, NULL, 's' },
        { "load-snapshot", required_argument, NULL, 'l' },
        { "nocache", no_argument, NULL, 'n' },
        { "cache", required_argument, NULL, OPT_CACHE },
        { "aio", required_argument, NULL, OPT_AIO },
        { "discard", required_argument, NULL, OPT_DISCARD },
        { "detect-zeroes", required_argument, NULL, OPT_DETECT_ZEROES },
        { "shared", required_argument, NULL, 'e' },
        { "format", required_argument, NULL, 'f' },
        { "persistent", no_argument, NULL, 't' },
        { "verbose", no_argument, NULL, 'v' },
        { "object", required_argument, NULL, OPT_OBJECT },
        { "export-name", required_argument, NULL, 'x' },
        { "description", required_argument, NULL, 'D' },
        { "tls-creds", required_argument, NULL, OPT_TLSCREDS },
        { "tls-authz", required_argument, NULL, OPT_TLSAUTHZ },
        { "tls-hostname", required_argument, NULL, OPT_TLSHOSTNAME },
        { "image-opts", no_argument, NULL, OPT_IMAGE_OPTS },
        { "trace", required_argument, NULL, 'T' },
        { "fork", no_argument, NULL, OPT_FORK },
        { "pid-file", required_argument, NULL, OPT_PID_FILE },
        { NULL, 0, NULL, 0 }
    };
    const char *bindto = NULL, *port = NULL, *sockpath = NULL;
    const char *export_name = NULL, *desc = NULL, *fmt = NULL;
    const char *pid_file = NULL, *detect_zeroes = NULL;
    const char *tls_creds = NULL, *tls_authz = NULL, *tls_hostname = NULL;
    NBDTLSCreds *creds = NULL;
    g_autoptr(GPtrArray) bitmaps = g_ptr_array_new();
    bool readonly = false, list = false, alloc_depth = false;
    bool image_opts = false, do_fork = false, writethrough = false;
    /* Options qemu-nbd -L calls "per-device settings" (observed: -r,
     * -e, -t, --detect-zeroes and -s are not among them). */
    bool per_device = false;
    bool kernel_dev = false, snapshot = false, load_snapshot = false;
    int flags = BDRV_O_RDWR, shared = 1, ch;
    int ready_pipe[2] = { -1, -1 };
    Error *err = NULL;
    json_t *addr, *opts;
    BlockBackend *blk;
    NBDExport *exp;
    int lfd, sfd;
    sigset_t mask;

    qb_set_progname(argv[0]);
    argv[0] = (char *)qb_get_progname();
    /* Block the exit signals before any thread exists (the thread pool
     * inherits the mask), so only the signalfd sees them. */
    sigemptyset(&mask);
    sigaddset(&mask, SIGTERM);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &mask, NULL);
    signal(SIGPIPE, SIG_IGN);

    while ((ch = getopt_long(argc, argv, "-hVb:o:p:rsnc:dvk:e:f:tl:x:T:D:AB:L",
                             lopts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            usage(qb_get_progname());
            return 0;
        case 'V':
            printf("%s %s (qblock)\nCompatible with qemu-nbd 7.2\n",
                   qb_get_progname(), QBLOCK_VERSION);
            return 0;
        case 'b': bindto = optarg; break;
        case 'p': port = optarg; break;
        case 'k':
            sockpath = optarg;
            if (sockpath[0] != '/') {
                error_report("socket path must be absolute");
                return 1;
            }
            break;
        case 'o': {
            char *end;
            long long v = strtoll(optarg, &end, 0);
            if (*end || v < 0) {
                error_report("Invalid offset '%s'", optarg);
                return 1;
            }
            if (v) {
                error_report("--offset is not supported by qblock-nbd");
                return 1;
            }
            break;
        }
        case 'r':
            readonly = true;
            flags &= ~BDRV_O_RDWR;
            break;
        case 'A': alloc_depth = per_device = true; break;
        /* Last -B first, as qemu-nbd 7.2 lists (and numbers) them. */
        case 'B':
            g_ptr_array_insert(bitmaps, 0, optarg);
            per_device = true;
            break;
        /* Refused after the -L checks, which qemu-nbd makes first. */
        case 'c':
        case 'd':
            kernel_dev = per_device = true;
            break;
        case 'L': list = true; break;
        case 's': snapshot = true; break;
        case 'l': load_snapshot = per_device = true; break;
        case 'n':
            flags |= BDRV_O_NOCACHE;
            per_device = true;
            break;
        case OPT_CACHE:
            if (!parse_cache(optarg, &flags, &writethrough)) {
                error_report("Invalid cache mode `%s'", optarg);
                return 1;
            }
            per_device = true;
            break;
        case OPT_AIO:
            per_device = true;
            flags &= ~(BDRV_O_NATIVE_AIO | BDRV_O_IO_URING);
            if (!strcmp(optarg, "native")) {
                flags |= BDRV_O_NATIVE_AIO;
            } else if (!strcmp(optarg, "io_uring")) {
                flags |= BDRV_O_IO_URING;
            } else if (strcmp(optarg, "threads")) {
                error_report("Invalid aio mode '%s'", optarg);
                return 1;
            }
            break;
        case OPT_DISCARD:
            per_device = true;
            if (!strcmp(optarg, "unmap") || !strcmp(optarg, "on")) {
                flags |= BDRV_O_UNMAP;
            } else if (!strcmp(optarg, "ignore") || !strcmp(optarg, "off")) {
                flags &= ~BDRV_O_UNMAP;
            } else {
                error_report("Invalid discard mode `%s'", optarg);
                return 1;
            }
            break;
        case OPT_DETECT_ZEROES:
            if (strcmp(optarg, "off") && strcmp(optarg, "on") &&
                strcmp(optarg, "unmap")) {
                error_report("Failed to parse detect_zeroes mode: invalid "
                             "parameter value: %s", optarg);
                return 1;
            }
            /* Checked against the --discard given so far, as qemu-nbd. */
            if (!strcmp(optarg, "unmap") && !(flags & BDRV_O_UNMAP)) {
                error_report("setting detect-zeroes to unmap is not allowed "
                             "without setting discard operation to unmap");
                return 1;
            }
            detect_zeroes = optarg;
            break;
        case 'e': {
            char *end;
            long v = strtol(optarg, &end, 0);
            if (*end || v < 0 || v > INT_MAX) {
                error_report("Invalid shared device number '%s'", optarg);
                return 1;
            }
            shared = v;
            break;
        }
        case 'f': fmt = optarg; per_device = true; break;
        case 't': persistent = true; break;
        case 'v': break;
        case 'x':
            export_name = optarg;
            per_device = true;
            if (strlen(optarg) > NBD_MAX_STRING_SIZE) {
                error_report("export name '%s' too long", optarg);
                return 1;
            }
            break;
        case 'D':
            desc = optarg;
            per_device = true;
            if (strlen(optarg) > NBD_MAX_STRING_SIZE) {
                error_report("export description '%s' too long", optarg);
                return 1;
            }
            break;
        case 'T': break;
        case OPT_OBJECT: {
            /* Objects are created as they come (files are read now), as
             * qemu-nbd does; only the TLS types exist here. */
            json_t *o = qb_keyval_parse(optarg, "qom-type", &err);
            const char *t = o ? qb_opt_get_str(o, "qom-type") : NULL;
            if (!o) {
                error_report_err(err);
                return 1;
            }
            if (!t) {
                error_report("Parameter 'qom-type' is missing");
                json_decref(o);
                return 1;
            }
            if (!nbd_tls_object_add(o, &err)) {
                error_report_err(err);
                json_decref(o);
                return 1;
            }
            json_decref(o);
            break;
        }
        case OPT_TLSCREDS: tls_creds = optarg; break;
        case OPT_TLSAUTHZ: tls_authz = optarg; break;
        case OPT_TLSHOSTNAME: tls_hostname = optarg; break;
        case OPT_IMAGE_OPTS: image_opts = true; break;
        case OPT_FORK: do_fork = true; break;
        case OPT_PID_FILE: pid_file = optarg; break;
        case 1:
            /* A positional argument ("-" in optstring keeps order). */
            if (list || optind != argc) {
                /* handled below: remember by moving back */
            }
            optind--;
            goto args_done;
        default:
            /* getopt printed the first line; qemu-nbd prefixes this one. */
            error_report("Try `%s --help' for more information.",
                         qb_get_progname());
            return 1;
        }
    }
args_done:
    if (list) {
        if (argc != optind) {
            error_report("List mode is incompatible with a file name");
            return 1;
        }
        if (per_device) {
            error_report("List mode is incompatible with per-device settings");
            return 1;
        }
        if (do_fork) {
            error_report("List mode is incompatible with forking");
            return 1;
        }
    } else if (argc - optind != 1) {
        error_report("Invalid number of arguments");
        fprintf(stderr, "Try `%s --help' for more information.\n",
                     qb_get_progname());
        return 1;
    }
    /* The TLS checks in qemu-nbd's order. */
    if (tls_authz && !tls_creds) {
        error_report("--tls-authz is not permitted without --tls-creds");
        return 1;
    }
    if (tls_hostname && !tls_creds) {
        error_report("--tls-hostname is not permitted without --tls-creds");
        return 1;
    }
    if (tls_creds) {
        if (tls_hostname && !list) {
            error_report("TLS hostname is only supported with export list");
            return 1;
        }
        if (tls_authz && list) {
            error_report("TLS authorization is incompatible with export list");
            return 1;
        }
        creds = nbd_tls_creds_find(tls_creds, !list, &err);
        if (!creds) {
            error_prepend(&err, "Failed to get TLS creds: ");
            error_report_err(err);
            return 1;
        }
    }
    /* -k with -b/-p is not an error in qemu-nbd 7.2: the socket wins. */
    if (list) {
        int ret;
        addr = server_address(sockpath, bindto, port, true);
        ret = do_list(addr, creds,
                      tls_hostname ? tls_hostname
                                   : (sockpath ? NULL
                                               : (bindto ? bindto
                                                         : "localhost")));
        json_decref(addr);
        return ret;
    }

    if (kernel_dev) {
        error_report("Kernel NBD devices are not supported by qblock-nbd "
                     "(no -c/--connect, -d/--disconnect)");
        return 1;
    }
    if (snapshot || load_snapshot) {
        error_report("snapshots (-s/--snapshot, -l/--load-snapshot) are "
                     "not supported by qblock-nbd");
        return 1;
    }

    /* Bind first (qemu-nbd's order): a busy port wins over image errors. */
    addr = server_address(sockpath, bindto, port, false);
    lfd = nbd_socket_listen(addr, &err);
    json_decref(addr);   /* the socket is all that is needed from here on */
    if (lfd < 0) {
        error_report_err(err);
        return 1;
    }

    bdrv_register_builtin_drivers();
    if (image_opts) {
        if (fmt) {
            error_report("--image-opts and -f are mutually exclusive");
            return 1;
        }
        opts = qb_keyval_parse(argv[optind], NULL, &err);
        if (!opts) {
            error_report_err(err);
            return 1;
        }
    } else {
        opts = json_object();
        if (fmt) {
            json_object_set_new(opts, "driver", json_string(fmt));
        }
    }
    if (detect_zeroes) {
        json_object_set_new(opts, "detect-zeroes",
                            json_string(detect_zeroes));
    }

    blk = blk_new_open(image_opts ? NULL : argv[optind], NULL, opts, flags,
                       &err);
    if (!blk) {
        error_prepend(&err, "Failed to blk_new_open '%s': ", argv[optind]);
        error_report_err(err);
        return 1;
    }
    blk_set_enable_write_cache(blk, !writethrough);

    NBDExportOptions eo = {
        .name = export_name ? export_name : "",
        .description = desc,
        .writable = !readonly,
        .allocation_depth = alloc_depth,
        .multi_conn = shared > 1 ? 1 : 0,
    };
    g_ptr_array_add(bitmaps, NULL);
    eo.bitmaps = (const char *const *)bitmaps->pdata;
    exp = nbd_export_new(blk, &eo, NULL, NULL, &err);
    if (!exp) {
        /* qemu-nbd creates the export with error_fatal, which exits
         * before a hint is appended ("Try block-dirty-bitmap-remove ..."
         * after an inconsistent bitmap): the message alone (iotest 319). */
        error_report("%s", error_get_pretty(err));
        error_free(err);
        blk_unref(blk);
        return 1;
    }

    if (do_fork) {
        pid_t pid;
        if (pipe(ready_pipe) < 0) {
            error_report("Failed to create pipe: %s", strerror(errno));
            return 1;
        }
        pid = fork();
        if (pid < 0) {
            error_report("Failed to fork: %s", strerror(errno));
            return 1;
        }
        if (pid > 0) {
            char c = 1;
            close(ready_pipe[1]);
            /* Wait for the child to say it serves (or die trying). */
            if (read(ready_pipe[0], &c, 1) != 1 || c != 0) {
                int status;
                waitpid(pid, &status, 0);
                return 1;
            }
            return 0;
        }
        close(ready_pipe[0]);
        setsid();
    }
    if (pid_file) {
        g_autofree char *s = g_strdup_printf("%d\n", (int)getpid());
        GError *gerr = NULL;
        if (!g_file_set_contents(pid_file, s, -1, &gerr)) {
            error_report("Failed to write pid file: %s", gerr->message);
            g_error_free(gerr);
            return 1;
        }
    }

    sfd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    aio_set_fd_handler(qb_get_aio_context(), sfd, signal_ready, NULL,
                       GINT_TO_POINTER(sfd));

    the_export = exp;
    nbd_server_set_tls(creds, tls_authz);
    nbd_server_set_client_closed_cb(client_closed, NULL);
    nbd_server_add_listen_fd(lfd, shared, &err);

    if (do_fork) {
        char c = 0;
        if (write(ready_pipe[1], &c, 1) != 1) {
            /* the parent is gone; keep serving */
        }
        close(ready_pipe[1]);
        int nul = open("/dev/null", O_RDWR);
        if (nul >= 0) {
            dup2(nul, STDIN_FILENO);
            dup2(nul, STDOUT_FILENO);
            close(nul);
        }
    }

    while (!terminate) {
        aio_poll(qb_get_aio_context(), true);
    }

    the_export = NULL;
    nbd_server_stop();
    /* Let shut-down clients finish (bounded: each fails fast). */
    for (int i = 0; i < 1000 && nbd_server_client_count() > 0; i++) {
        aio_poll(qb_get_aio_context(), false);
        if (nbd_server_client_count() > 0) {
            g_usleep(1000);
        }
    }
    blk_unref(blk);
    bdrv_close_all();
    if (sockpath) {
        unlink(sockpath);
    }
    if (pid_file) {
        unlink(pid_file);
    }
    return 0;
}
