/*
 * Embedding qblock and keeping QMP as the management API: a program (think
 * of a hypervisor) that runs QMP commands in-process, watches events, does
 * its guest I/O through the C API on a node QMP created, and shuts down
 * cleanly.  Uses only the public header <qblock/qblock.h> (plus jansson to
 * read replies).  Usage: embed-qmp IMAGE.qcow2
 *
 * Steps:
 *   1. blockdev-create the file and then the qcow2 image (two jobs; their
 *      JOB_STATUS_CHANGE events drive the wait), blockdev-add the image;
 *   2. add a persistent dirty bitmap in a transaction;
 *   3. write through qblock_open_node() + qblock_pwrite();
 *   4. read the bitmap's dirty count back over QMP;
 *   5. qblock_shutdown(): the bitmap is stored in the image, which real
 *      QEMU tools then see (tests/interop/test_embed_qmp.py checks).
 * Prints one line per step; "all checks passed" at the end, exit 0.
 */
#include <qblock/qblock.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int failures;

static void check(int cond, const char *what)
{
    if (!cond) {
        printf("FAILED: %s\n", what);
        failures++;
    }
}

/* ---- events ---- */

/* What the event handler saw: the last status of each of two jobs. */
static struct {
    unsigned count;
    char job[2][16];
    char status[2][16];
} seen;

static void on_event(const char *event_json, void *opaque)
{
    json_t *ev = json_loads(event_json, 0, NULL);
    const char *name = json_string_value(json_object_get(ev, "event"));
    json_t *data = json_object_get(ev, "data");

    seen.count++;
    if (name && !strcmp(name, "JOB_STATUS_CHANGE")) {
        const char *id = json_string_value(json_object_get(data, "id"));
        const char *st = json_string_value(json_object_get(data, "status"));

        for (int i = 0; i < 2 && id && st; i++) {
            if (!seen.job[i][0] || !strcmp(seen.job[i], id)) {
                snprintf(seen.job[i], sizeof(seen.job[i]), "%s", id);
                snprintf(seen.status[i], sizeof(seen.status[i]), "%s", st);
                break;
            }
        }
        /* Every event carries QEMU's timestamp object. */
        check(json_is_object(json_object_get(ev, "timestamp")),
              "event has a timestamp");
    }
    json_decref(ev);
}

static const char *job_status(const char *id)
{
    for (int i = 0; i < 2; i++) {
        if (!strcmp(seen.job[i], id)) {
            return seen.status[i];
        }
    }
    return "";
}

/* ---- QMP helpers ---- */

/* Run a command built from fmt; return the parsed reply (caller frees). */
static json_t *qmp(const char *fmt, ...)
{
    char cmd[2048];
    char *reply = NULL;
    QBlockError *err = NULL;
    json_t *rsp;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (qblock_qmp_execute(cmd, &reply, &err) < 0) {
        printf("qmp error (%s): %s\n", qblock_error_class(err),
               qblock_error_message(err));
        qblock_error_free(err);
    }
    rsp = reply ? json_loads(reply, 0, NULL) : NULL;
    qblock_free(reply);
    return rsp;
}

static int qmp_ok(json_t *rsp)
{
    int ok = rsp && json_object_get(rsp, "return") != NULL;

    json_decref(rsp);
    return ok;
}

/* Wait (driving the event loop) until the job concluded, then dismiss. */
static int wait_job(const char *id)
{
    time_t deadline = time(NULL) + 30;

    for (int i = 0; i < 100000 && strcmp(job_status(id), "concluded"); i++) {
        if (time(NULL) > deadline) {
            break;
        }
        qblock_poll(true);
    }
    if (strcmp(job_status(id), "concluded")) {
        return 0;
    }
    /* A failed job would show its error in query-jobs before dismissal. */
    return qmp_ok(qmp("{\"execute\": \"job-dismiss\", "
                      "\"arguments\": {\"id\": \"%s\"}}", id)) &&
           !strcmp(job_status(id), "null");
}

/* The dirty count of bitmap name on node, from query-named-block-nodes. */
static long long dirty_count(const char *node, const char *name)
{
    json_t *rsp = qmp("{\"execute\": \"query-named-block-nodes\"}");
    json_t *nodes = json_object_get(rsp, "return"), *n, *b;
    long long count = -1;
    size_t i, j;

    json_array_foreach(nodes, i, n) {
        const char *nn = json_string_value(json_object_get(n, "node-name"));

        if (!nn || strcmp(nn, node)) {
            continue;
        }
        json_array_foreach(json_object_get(n, "dirty-bitmaps"), j, b) {
            const char *bn = json_string_value(json_object_get(b, "name"));

            if (bn && !strcmp(bn, name)) {
                count = json_integer_value(json_object_get(b, "count"));
            }
        }
    }
    json_decref(rsp);
    return count;
}

int main(int argc, char **argv)
{
    QBlockError *err = NULL;
    char *reply = NULL;
    static char buf[65536];
    const char *img;
    long long count;
    QBlock *qb;

    if (argc != 2) {
        fprintf(stderr, "usage: %s IMAGE.qcow2\n", argv[0]);
        return 2;
    }
    img = argv[1];
    if (qblock_init(&err) < 0) {
        fprintf(stderr, "qblock_init: %s\n", qblock_error_message(err));
        return 1;
    }
    qblock_qmp_set_event_handler(on_event, NULL);

    /* An error reply is returned as the daemon would send it. */
    qblock_qmp_execute("{\"execute\": \"no-such-command\", \"id\": 1}",
                       &reply, NULL);
    printf("reply: %s\n", reply);
    qblock_free(reply);

    /* 1. Create the image with blockdev-create jobs, then open it. */
    check(qmp_ok(qmp("{\"execute\": \"blockdev-create\", \"arguments\": "
                     "{\"job-id\": \"create-file\", \"options\": "
                     "{\"driver\": \"file\", \"filename\": \"%s\", "
                     "\"size\": 0}}}", img)), "blockdev-create file");
    check(wait_job("create-file"), "file creation job");
    check(qmp_ok(qmp("{\"execute\": \"blockdev-add\", \"arguments\": "
                     "{\"driver\": \"file\", \"node-name\": \"disk0-file\", "
                     "\"filename\": \"%s\"}}", img)), "blockdev-add file");
    check(qmp_ok(qmp("{\"execute\": \"blockdev-create\", \"arguments\": "
                     "{\"job-id\": \"create-qcow2\", \"options\": "
                     "{\"driver\": \"qcow2\", \"file\": \"disk0-file\", "
                     "\"size\": 16777216}}}")), "blockdev-create qcow2");
    check(wait_job("create-qcow2"), "qcow2 creation job");
    check(qmp_ok(qmp("{\"execute\": \"blockdev-add\", \"arguments\": "
                     "{\"driver\": \"qcow2\", \"node-name\": \"disk0\", "
                     "\"file\": \"disk0-file\"}}")), "blockdev-add qcow2");
    printf("created and opened %s as node disk0 (%u events seen)\n", img,
           seen.count);

    /* 2. A persistent bitmap, added in a transaction. */
    check(qmp_ok(qmp("{\"execute\": \"transaction\", \"arguments\": "
                     "{\"actions\": [{\"type\": \"block-dirty-bitmap-add\", "
                     "\"data\": {\"node\": \"disk0\", \"name\": \"bm0\", "
                     "\"persistent\": true}}]}}")), "transaction");
    count = dirty_count("disk0", "bm0");
    printf("bitmap bm0 added, dirty count %lld\n", count);
    check(count == 0, "new bitmap is clean");

    /* 3. Guest I/O through the C API on the QMP-created node. */
    qb = qblock_open_node("disk0", QBLOCK_OPEN_RDWR, &err);
    if (!qb) {
        printf("FAILED: qblock_open_node: %s\n", qblock_error_message(err));
        qblock_error_free(err);
        return 1;
    }
    memset(buf, 0x5a, sizeof(buf));
    check(qblock_pwrite(qb, 0, buf, sizeof(buf), 0) == 0, "write 1");
    check(qblock_pwrite(qb, 1048576, buf, 4096, 0) == 0, "write 2");
    check(qblock_flush(qb) == 0, "flush");

    /* 4. The bitmap saw both writes: two 64 KiB granules. */
    count = dirty_count("disk0", "bm0");
    printf("wrote 65536 bytes at 0 and 4096 at 1 MiB, dirty count %lld\n",
           count);
    check(count == 131072, "dirty count after the writes");
    qblock_close(qb);

    /* 5. Close everything: the bitmap is stored in the image. */
    qblock_shutdown();
    printf("shut down: %s\n",
           dirty_count("disk0", "bm0") == -1 ? "no nodes left" : "node left");
    check(dirty_count("disk0", "bm0") == -1, "shutdown closed the node");

    if (failures) {
        printf("%d check(s) FAILED\n", failures);
        return 1;
    }
    printf("all checks passed\n");
    return 0;
}
