/*
 * qblock-storage-daemon: qemu-storage-daemon 7.2's command line on top of
 * the qblock library.  Options are processed in command-line order, as
 * QEMU does (a --monitor must follow its --chardev); the first failing
 * option ends startup with "PROG: --OPT ARG: message" and status 1.  Then
 * the main loop runs the monitors (GLib default context) with the block
 * layer's AioContext attached as a GSource, until `quit`, SIGTERM, SIGINT
 * or SIGHUP.  Shutdown flushes pending replies, then bdrv_close_all()
 * closes every node so persistent bitmaps are stored and image locks are
 * released, and exits 0.
 */
#include "block/block-int.h"
#include "block/options.h"
#include "block/job.h"
#include "monitor/monitor.h"
#include "qapi/json-input-visitor.h"
#include "qapi/dealloc-visitor.h"
#include "block/qmp/qmp-internal.h"
#include "nbd/tls.h"

#include <getopt.h>

G_DEFINE_AUTOPTR_CLEANUP_FUNC(json_t, json_decref)
#include <glib-unix.h>
#include <sys/stat.h>

static const char *prog = "qblock-storage-daemon";

static void help(void)
{
    printf(
"Usage: %s [options]\n"
"qblock storage daemon (command line and QMP of qemu-storage-daemon 7.2)\n"
"\n"
"  -h, --help             display this help and exit\n"
"  -T, --trace [[enable=]<pattern>][,events=<file>][,file=<file>]\n"
"                         specify tracing options (accepted; qblock has no\n"
"                         trace events)\n"
"  -V, --version          output version information and exit\n"
"\n"
"  --blockdev [driver=]<driver>[,node-name=<N>][,discard=ignore|unmap]\n"
"             [,cache.direct=on|off][,cache.no-flush=on|off]\n"
"             [,read-only=on|off][,auto-read-only=on|off]\n"
"             [,force-share=on|off][,detect-zeroes=on|off|unmap]\n"
"             [,driver specific parameters...]\n"
"                         configure a block backend (or a JSON object)\n"
"\n"
"  --chardev <options>    configure a character device backend:\n"
"                         socket,id=<id>,path=<path>[,server=on|off][,wait=on|off]\n"
"                         socket,id=<id>,host=<host>,port=<port>[,server=on|off][,wait=on|off]\n"
"                         stdio,id=<id>\n"
"\n"
"  --daemonize            daemonize the process, and have the parent exit\n"
"                         once startup is complete\n"
"\n"
"  --export [type=]nbd,id=<id>,node-name=<node-name>[,name=<export-name>]\n"
"           [,writable=on|off][,bitmap=<name>]\n"
"                         export the specified block node over NBD\n"
"                         (requires --nbd-server)\n"
"\n"
"  --monitor [chardev=]name[,mode=control][,pretty[=on|off]]\n"
"                         configure a QMP monitor\n"
"\n"
"  --nbd-server addr.type=inet,addr.host=<host>,addr.port=<port>\n"
"               [,tls-creds=<id>][,tls-authz=<id>][,max-connections=<n>]\n"
"  --nbd-server addr.type=unix,addr.path=<path>\n"
"               [,tls-creds=<id>][,tls-authz=<id>][,max-connections=<n>]\n"
"                         start an NBD server for exporting block nodes\n"
"\n"
"  --object help          list object types that can be added\n"
"  --object <type>[,<property>=<value>...]\n"
"                         create a new object of type <type> (iothread,\n"
"                         secret); the 'id' property must be set\n"
"\n"
"  --pidfile <path>       write process ID to a file after startup\n"
"\n"
"A QMP message is limited to %d MiB; larger ones get an error reply.\n",
        prog, MONITOR_MAX_MESSAGE >> 20);
}

static void version(void)
{
    printf("%s version " QBLOCK_VERSION
           " (QMP compatible with QEMU 7.2)\n", prog);
}

/* "PROG: --opt arg: message", then exit(1). */
static void G_GNUC_NORETURN fail_opt(const char *opt, const char *arg,
                                     Error *err)
{
    fprintf(stderr, "%s: %s %s: %s\n", prog, opt, arg,
            error_get_pretty(err));
    error_free(err);
    exit(EXIT_FAILURE);
}

/* ---- --blockdev ---- */

static void add_blockdev(const char *arg)
{
    Error *err = NULL;
    BlockdevOptions *opts = NULL;
    json_t *obj;
    Visitor *v;

    if (arg[0] == '{') {
        json_error_t jerr;

        obj = json_loads(arg, JSON_REJECT_DUPLICATES, &jerr);
        if (!obj) {
            /* QEMU's texts for the common cases. */
            switch (json_error_code(&jerr)) {
            case json_error_premature_end_of_input:
                error_setg(&err, "JSON parse error, premature EOI");
                break;
            case json_error_end_of_input_expected:
                error_setg(&err, "Expecting at most one JSON value");
                break;
            case json_error_duplicate_key:
                error_setg(&err, "JSON parse error, duplicate key");
                break;
            default:
                error_setg(&err, "JSON parse error, expecting value");
                break;
            }
            fail_opt("--blockdev", arg, err);
        }
        v = json_input_visitor_new(obj);
    } else {
        obj = qb_keyval_parse(arg, "driver", &err);
        if (!obj) {
            fail_opt("--blockdev", arg, err);
        }
        v = json_input_visitor_new_keyval(obj);
    }
    visit_type_BlockdevOptions(v, NULL, &opts, &err);
    visit_free(v);
    json_decref(obj);
    if (err) {
        fail_opt("--blockdev", arg, err);
    }
    qmp_blockdev_add(opts, &err);
    qapi_free_BlockdevOptions(opts);
    if (err) {
        fail_opt("--blockdev", arg, err);
    }
}

/* ---- --nbd-server, --export ---- */

/*
 * --nbd-server addr.type=inet,addr.host=H,addr.port=P[,tls-creds=..]...
 * names the address the flat way (NbdServerOptions, with SocketAddress);
 * the QMP command takes the legacy nesting {"type": T, "data": {...}}.
 * The options are checked in their own shape first, so that errors name
 * the members the user wrote ('addr.path', not 'addr.data.path'), then
 * rewrapped for nbd-server-start.
 */
static bool check_nbd_server_options(json_t *obj, Error **errp)
{
    NbdServerOptions *opts = NULL;
    Visitor *v = json_input_visitor_new_keyval(obj);
    bool ok = visit_type_NbdServerOptions(v, NULL, &opts, errp);

    visit_free(v);
    qapi_free_NbdServerOptions(opts);
    return ok;
}

static void start_nbd_server(const char *arg)
{
    Error *err = NULL;
    q_obj_nbd_server_start_arg a = { 0 };
    json_t *obj, *addr, *legacy, *data;
    const char *type;
    Visitor *v;
    bool ok;

    obj = qb_keyval_parse(arg, NULL, &err);
    if (!obj) {
        fail_opt("--nbd-server", arg, err);
    }
    if (!check_nbd_server_options(obj, &err)) {
        json_decref(obj);
        fail_opt("--nbd-server", arg, err);
    }
    addr = json_object_get(obj, "addr");
    type = json_string_value(json_object_get(addr, "type"));
    if (addr && type) {
        legacy = json_object();
        data = json_deep_copy(addr);
        json_object_del(data, "type");
        json_object_set_new(legacy, "type", json_string(type));
        json_object_set_new(legacy, "data", data);
        json_object_set_new(obj, "addr", legacy);
    }
    v = json_input_visitor_new_keyval(obj);
    ok = visit_start_struct(v, NULL, NULL, 0, &err) &&
         visit_type_q_obj_nbd_server_start_arg_members(v, &a, &err) &&
         visit_check_struct(v, &err);
    visit_end_struct(v, NULL);
    visit_free(v);
    json_decref(obj);
    if (ok) {
        qmp_nbd_server_start(a.addr, a.has_tls_creds, a.tls_creds,
                             a.has_tls_authz, a.tls_authz,
                             a.has_max_connections, a.max_connections, &err);
    }
    v = qapi_dealloc_visitor_new();
    visit_start_struct(v, NULL, NULL, 0, NULL);
    visit_type_q_obj_nbd_server_start_arg_members(v, &a, NULL);
    visit_end_struct(v, NULL);
    visit_free(v);
    if (err) {
        fail_opt("--nbd-server", arg, err);
    }
}

/* --export [type=]nbd,id=..,node-name=..: block-export-add. */
static void add_export(const char *arg)
{
    Error *err = NULL;
    BlockExportOptions *opts = NULL;
    json_t *obj = qb_keyval_parse(arg, "type", &err);
    Visitor *v;

    if (!obj) {
        fail_opt("--export", arg, err);
    }
    v = json_input_visitor_new_keyval(obj);
    visit_type_BlockExportOptions(v, NULL, &opts, &err);
    visit_free(v);
    json_decref(obj);
    if (!err) {
        qmp_block_export_add(opts, &err);
    }
    qapi_free_BlockExportOptions(opts);
    if (err) {
        fail_opt("--export", arg, err);
    }
}

/* ---- --object ---- */

/* Secrets by id (data), for drivers that will ask for them. */
static GHashTable *secrets;
static GHashTable *object_ids;

/* QOM types QEMU knows but this daemon does not offer. */
static const char *const foreign_types[] = {
    "authz-list", "authz-listfile", "authz-pam",
    "can-bus", "can-host-socketcan", "colo-compare", "cryptodev-backend",
    "dbus-vmstate", "filter-buffer", "filter-dump", "filter-mirror",
    "filter-redirector", "filter-replay", "filter-rewriter", "input-barrier",
    "input-linux", "memory-backend-epc", "memory-backend-file",
    "memory-backend-memfd", "memory-backend-ram", "pr-manager-helper",
    "qtest", "rng-builtin", "rng-egd", "rng-random", "secret_keyring",
    "sev-guest", "throttle-group", "tls-cipher-suites", "tls-creds-anon",
    "x-remote-object", "x-vfio-user-server",
    NULL,
};

/*
 * TLS credentials and authz-simple live in nbd/tls.c (qblock-nbd creates
 * them too); nbd-server-start finds them by id.
 */
static void add_tls_object(const char *arg, json_t *obj, const char *type)
{
    static const char *const creds_props[] = {
        "qom-type", "id", "dir", "endpoint", "verify-peer", "username",
        "priority", "sanity-check", "loaded", "passwordid", NULL,
    };
    static const char *const authz_props[] = {
        "qom-type", "id", "identity", NULL,
    };
    bool authz = !strcmp(type, "authz-simple");
    const char *id = json_string_value(json_object_get(obj, "id"));
    const char *vp = json_string_value(json_object_get(obj, "verify-peer"));
    Error *err = NULL;
    const char *key;
    json_t *val;

    if (!id) {
        error_setg(&err, "Parameter 'id' is missing");
        fail_opt("--object", arg, err);
    }
    json_object_foreach(obj, key, val) {
        if (!g_strv_contains(authz ? authz_props : creds_props, key)) {
            error_setg(&err, "Property '%s.%s' not found", type, key);
            fail_opt("--object", arg, err);
        }
    }
    if (g_hash_table_contains(object_ids, id)) {
        error_setg(&err, "attempt to add duplicate property '%s' to object "
                   "(type 'container')", id);
        fail_opt("--object", arg, err);
    }
    if (authz) {
        const char *who = json_string_value(json_object_get(obj, "identity"));
        if (!nbd_tls_authz_add(id, who ? who : "", &err)) {
            fail_opt("--object", arg, err);
        }
    } else if (!nbd_tls_creds_add(type, id,
                   json_string_value(json_object_get(obj, "dir")),
                   json_string_value(json_object_get(obj, "endpoint")),
                   !vp || !strcmp(vp, "on") || !strcmp(vp, "true") ||
                   !strcmp(vp, "yes"),
                   json_string_value(json_object_get(obj, "username")),
                   &err)) {
        fail_opt("--object", arg, err);
    }
    g_hash_table_add(object_ids, g_strdup(id));
}

static void add_object(const char *arg)
{
    Error *err = NULL;
    g_autoptr(json_t) obj = NULL;
    const char *type, *id, *key;
    json_t *val;

    if (!strcmp(arg, "help")) {
        printf("List of user creatable objects:\n  iothread\n  secret\n");
        exit(EXIT_SUCCESS);
    }
    obj = qb_keyval_parse(arg, "qom-type", &err);
    if (!obj) {
        fail_opt("--object", arg, err);
    }
    type = json_string_value(json_object_get(obj, "qom-type"));
    if (!type) {
        error_setg(&err, "Parameter 'qom-type' is missing");
        fail_opt("--object", arg, err);
    }
    if (!strcmp(type, "tls-creds-x509") || !strcmp(type, "tls-creds-psk") ||
        !strcmp(type, "authz-simple")) {
        add_tls_object(arg, obj, type);
        return;
    }
    if (strcmp(type, "iothread") && strcmp(type, "secret")) {
        if (g_strv_contains(foreign_types, type)) {
            error_setg(&err, "invalid object type: %s", type);
        } else {
            error_setg(&err, "Parameter 'qom-type' does not accept value "
                       "'%s'", type);
        }
        fail_opt("--object", arg, err);
    }
    id = json_string_value(json_object_get(obj, "id"));
    if (!id) {
        error_setg(&err, "Parameter 'id' is missing");
        fail_opt("--object", arg, err);
    }
    if (g_hash_table_contains(object_ids, id)) {
        error_setg(&err, "attempt to add duplicate property '%s' to object "
                   "(type 'container')", id);
        fail_opt("--object", arg, err);
    }
    json_object_foreach(obj, key, val) {
        static const char *const iothread_props[] = {
            "qom-type", "id", "poll-max-ns", "poll-grow", "poll-shrink",
            "aio-max-batch", NULL,
        };
        static const char *const secret_props[] = {
            "qom-type", "id", "data", "file", "format", "keyid", "iv",
            "loaded", NULL,
        };
        const char *const *props = strcmp(type, "iothread") ? secret_props
                                                            : iothread_props;

        if (!g_strv_contains(props, key)) {
            error_setg(&err, "Property '%s.%s' not found", type, key);
            fail_opt("--object", arg, err);
        }
    }
    if (!strcmp(type, "secret")) {
        const char *data = json_string_value(json_object_get(obj, "data"));
        const char *file = json_string_value(json_object_get(obj, "file"));
        char *contents = NULL;

        if (!!data == !!file) {
            error_setg(&err, "Either 'data' or 'file' must be provided, "
                       "but not both");
            fail_opt("--object", arg, err);
        }
        if (file) {
            GError *gerr = NULL;

            if (!g_file_get_contents(file, &contents, NULL, &gerr)) {
                error_setg(&err, "Unable to read %s: %s", file,
                           gerr->message);
                g_error_free(gerr);
                fail_opt("--object", arg, err);
            }
        } else {
            contents = g_strdup(data);
        }
        g_hash_table_insert(secrets, g_strdup(id), contents);
    }
    /* iothread: one event loop serves everything here; the object exists
     * so that references to it by id resolve. */
    g_hash_table_add(object_ids, g_strdup(id));
}

/* ---- -T ---- */

static void trace_opt(const char *arg)
{
    g_autoptr(json_t) obj = NULL;
    const char *pattern;

    if (!strcmp(arg, "help")) {
        /* No trace events to list. */
        exit(EXIT_SUCCESS);
    }
    obj = qb_keyval_parse(arg, "enable", NULL);
    pattern = obj ? json_string_value(json_object_get(obj, "enable")) : arg;
    if (pattern && !strpbrk(pattern, "*?")) {
        fprintf(stderr, "%s: -T %s: warning: trace event '%s' does not "
                "exist\n", prog, arg, pattern);
    }
}

/* ---- pidfile, daemonize ---- */

static char *pidfile;
static int daemon_pipe = -1;

static void write_pidfile(const char *path)
{
    g_autofree char *text = g_strdup_printf("%d\n", (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);

    if (fd < 0) {
        fprintf(stderr, "%s: Cannot open pid file: %s\n", prog,
                strerror(errno));
        exit(EXIT_FAILURE);
    }
    /* Held while we run, so a second daemon with the same pidfile fails. */
    if (lockf(fd, F_TLOCK, 0) < 0) {
        fprintf(stderr, "%s: Cannot lock pid file: %s\n", prog,
                strerror(errno));
        exit(EXIT_FAILURE);
    }
    if (ftruncate(fd, 0) < 0 || write(fd, text, strlen(text)) !=
        (ssize_t)strlen(text)) {
        fprintf(stderr, "%s: Failed to write pid file\n", prog);
        exit(EXIT_FAILURE);
    }
    /* fd stays open (and locked) until exit. */
}

/* Fork; the parent waits until the child finished startup and exits with
 * its verdict.  The child continues in a new session. */
static void daemonize_start(void)
{
    int fds[2];
    pid_t pid;

    if (pipe(fds) < 0) {
        fprintf(stderr, "%s: pipe: %s\n", prog, strerror(errno));
        exit(EXIT_FAILURE);
    }
    pid = fork();
    if (pid < 0) {
        fprintf(stderr, "%s: fork: %s\n", prog, strerror(errno));
        exit(EXIT_FAILURE);
    }
    if (pid > 0) {
        char status = 1;

        close(fds[1]);
        while (read(fds[0], &status, 1) < 0 && errno == EINTR) {
        }
        _exit(status == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
    }
    close(fds[0]);
    setsid();
    daemon_pipe = fds[1];
}

static void daemonize_finish(void)
{
    char ok = 0;
    int null;

    if (daemon_pipe < 0) {
        return;
    }
    null = open("/dev/null", O_RDWR);
    if (null >= 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(null, STDERR_FILENO);
        if (null > STDERR_FILENO) {
            close(null);
        }
    }
    if (write(daemon_pipe, &ok, 1) < 0) {
        /* The parent is gone; nothing to tell. */
    }
    close(daemon_pipe);
    daemon_pipe = -1;
}

/* ---- main ---- */

static gboolean on_signal(gpointer opaque)
{
    qb_request_shutdown();
    return G_SOURCE_CONTINUE;
}

enum {
    OPT_BLOCKDEV = 256,
    OPT_CHARDEV,
    OPT_DAEMONIZE,
    OPT_EXPORT,
    OPT_MONITOR,
    OPT_NBD_SERVER,
    OPT_OBJECT,
    OPT_PIDFILE,
};

static const struct option long_options[] = {
    { "blockdev", required_argument, NULL, OPT_BLOCKDEV },
    { "chardev", required_argument, NULL, OPT_CHARDEV },
    { "daemonize", no_argument, NULL, OPT_DAEMONIZE },
    { "export", required_argument, NULL, OPT_EXPORT },
    { "help", no_argument, NULL, 'h' },
    { "monitor", required_argument, NULL, OPT_MONITOR },
    { "nbd-server", required_argument, NULL, OPT_NBD_SERVER },
    { "object", required_argument, NULL, OPT_OBJECT },
    { "pidfile", required_argument, NULL, OPT_PIDFILE },
    { "trace", required_argument, NULL, 'T' },
    { "version", no_argument, NULL, 'V' },
    { NULL, 0, NULL, 0 },
};

/* --help, --version and --daemonize act before anything else, as QEMU's
 * first pass does. */
static bool first_pass(int argc, char **argv)
{
    bool daemonize = false;
    int c;

    opterr = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "-:hT:V", long_options, NULL)) != -1) {
        switch (c) {
        case 'h':
            help();
            exit(EXIT_SUCCESS);
        case 'V':
            version();
            exit(EXIT_SUCCESS);
        case OPT_DAEMONIZE:
            daemonize = true;
            break;
        case ':':
            /* Missing argument (glibc's wording, QEMU's prefix). */
            if (optopt > 0 && optopt < 256) {
                fprintf(stderr, "%s: option requires an argument -- '%c'\n",
                        prog, optopt);
            } else {
                const char *name = argv[optind - 1] + 2;

                for (const struct option *lo = long_options; lo->name; lo++) {
                    if (lo->val == optopt) {
                        name = lo->name;
                    }
                }
                fprintf(stderr, "%s: option '--%s' requires an argument\n",
                        prog, name);
            }
            exit(EXIT_FAILURE);
        case '?':
            if (optopt > 0 && optopt < 256) {
                fprintf(stderr, "%s: invalid option -- '%c'\n", prog,
                        optopt);
            } else {
                fprintf(stderr, "%s: unrecognized option '%s'\n", prog,
                        argv[optind - 1]);
            }
            exit(EXIT_FAILURE);
        case 1: {
            Error *err = NULL;

            error_setg(&err, "Unexpected argument");
            fprintf(stderr, "%s: %s: %s\n", prog, optarg,
                    error_get_pretty(err));
            error_free(err);
            exit(EXIT_FAILURE);
        }
        default:
            break;
        }
    }
    return daemonize;
}

int main(int argc, char **argv)
{
    GSource *aio_src;
    Error *err = NULL;
    int c;

    qb_set_progname(argv[0]);
    prog = qb_get_progname();
    secrets = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
    object_ids = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);

    if (first_pass(argc, argv)) {
        daemonize_start();
    }

    bdrv_register_builtin_drivers();
    monitor_set_command_table(qmp_commands);
    monitor_events_init();

    optind = 1;
    while ((c = getopt_long(argc, argv, "-:hT:V", long_options, NULL)) != -1) {
        switch (c) {
        case 'T':
            trace_opt(optarg);
            break;
        case OPT_BLOCKDEV:
            add_blockdev(optarg);
            break;
        case OPT_CHARDEV: {
            ChardevOptions *o = chardev_parse(optarg, &err);

            if (!o || !chardev_new(o, &err)) {
                fail_opt("--chardev", optarg, err);
            }
            break;
        }
        case OPT_MONITOR:
            if (!monitor_parse_and_attach(optarg, &err)) {
                fail_opt("--monitor", optarg, err);
            }
            break;
        case OPT_OBJECT:
            add_object(optarg);
            break;
        case OPT_PIDFILE:
            g_free(pidfile);
            pidfile = g_strdup(optarg);
            break;
        case OPT_EXPORT:
            add_export(optarg);
            break;
        case OPT_NBD_SERVER:
            start_nbd_server(optarg);
            break;
        default:
            break;
        }
    }

    if (pidfile) {
        write_pidfile(pidfile);
    }
    g_unix_signal_add(SIGTERM, on_signal, NULL);
    g_unix_signal_add(SIGINT, on_signal, NULL);
    g_unix_signal_add(SIGHUP, on_signal, NULL);
    aio_src = aio_get_g_source(qb_get_aio_context());
    g_source_attach(aio_src, NULL);
    g_source_unref(aio_src);
    daemonize_finish();

    while (!qb_shutdown_requested()) {
        g_main_context_iteration(NULL, TRUE);
    }

    /* Replies first (the quit reply), then close nodes cleanly. */
    monitor_flush_all(1000);
    qmp_block_exports_close_all();
    /* After a signal jobs may remain (quit has cancelled them already). */
    job_cancel_sync_all();
    bdrv_close_all();
    chardev_cleanup_all();
    monitor_cleanup_all();
    if (pidfile) {
        unlink(pidfile);
    }
    return EXIT_SUCCESS;
}
