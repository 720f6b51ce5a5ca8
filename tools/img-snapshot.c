/*
 * qblock-img snapshot: list, create, apply and delete internal snapshots
 * (-l / -c / -a / -d), with qemu-img 7.2's options, table layout and error
 * texts.  Also the snapshot table renderer that `info` shares.
 */
#include "tools/qblock-img.h"
#include "block/block-int.h"
#include "block/snapshot.h"

#include <getopt.h>
#include <time.h>

enum { SN_NONE, SN_LIST, SN_APPLY, SN_CREATE, SN_DELETE };

/* One row (or, sn NULL, the header) of qemu-img's snapshot table. */
static char *snapshot_row(const QBSnapshotInfo *sn)
{
    char date[32], clock[64], icount[32];
    g_autofree char *size = NULL;

    if (!sn) {
        return g_strdup_printf("%-10s%-17s%8s%20s%13s%11s", "ID", "TAG",
                               "VM SIZE", "DATE", "VM CLOCK", "ICOUNT");
    }
    time_t t = sn->date_sec;
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(date, sizeof(date), "%Y-%m-%d %H:%M:%S", &tm);

    uint64_t secs = sn->vm_clock_nsec / 1000000000;
    g_snprintf(clock, sizeof(clock), "%02d:%02d:%02d.%03d",
               (int)(secs / 3600), (int)((secs / 60) % 60), (int)(secs % 60),
               (int)((sn->vm_clock_nsec / 1000000) % 1000));
    icount[0] = '\0';
    if (sn->icount != UINT64_MAX) {
        g_snprintf(icount, sizeof(icount), "%" PRId64, (int64_t)sn->icount);
    }
    size = img_size_to_str(sn->vm_state_size);
    return g_strdup_printf("%-9s %-16s %8s%20s%13s%11s", sn->id_str,
                           sn->name, size, date, clock, icount);
}

void img_print_snapshot_list(BlockDriverState *bs)
{
    g_autofree QBSnapshotInfo *sn = NULL;
    int n = bdrv_snapshot_list(bs, &sn);

    if (n <= 0) {
        return;
    }
    printf("Snapshot list:\n");
    g_autofree char *hdr = snapshot_row(NULL);
    printf("%s\n", hdr);
    for (int i = 0; i < n; i++) {
        g_autofree char *row = snapshot_row(&sn[i]);
        printf("%s\n", row);
    }
}

json_t *img_snapshot_list_json(BlockDriverState *bs)
{
    g_autofree QBSnapshotInfo *sn = NULL;
    int n = bdrv_snapshot_list(bs, &sn);
    json_t *arr;

    if (n <= 0) {
        return NULL;
    }
    arr = json_array();
    for (int i = 0; i < n; i++) {
        json_array_append_new(arr, bdrv_snapshot_info_json(&sn[i]));
    }
    return arr;
}

int img_snapshot(int argc, char **argv)
{
    static const struct option long_options[] = {
        { "help", no_argument, NULL, 'h' },
        { "object", required_argument, NULL, OPTION_OBJECT },
        { "image-opts", no_argument, NULL, OPTION_IMAGE_OPTS },
        { "force-share", no_argument, NULL, 'U' },
        { NULL, 0, NULL, 0 },
    };
    const char *filename, *name = NULL;
    bool quiet = false, image_opts = false, force_share = false;
    int action = SN_NONE, flags = BDRV_O_RDWR, c, ret = 0;
    Error *err = NULL;
    BlockBackend *blk;
    BlockDriverState *bs;

    while ((c = getopt_long(argc, argv, ":la:c:d:hqU", long_options,
                            NULL)) != -1) {
        int want = SN_NONE;
        switch (c) {
        case ':':
        case '?':
            img_getopt_error(c, argv);
        case 'h':
            img_help();
        case 'l':
            want = SN_LIST;
            break;
        case 'a':
            want = SN_APPLY;
            break;
        case 'c':
            want = SN_CREATE;
            break;
        case 'd':
            want = SN_DELETE;
            break;
        case 'q':
            quiet = true;
            break;
        case 'U':
            force_share = true;
            break;
        case OPTION_OBJECT:
            error_report("--object is not supported");
            return 1;
        case OPTION_IMAGE_OPTS:
            image_opts = true;
            break;
        }
        if (want != SN_NONE) {
            if (action != SN_NONE) {
                img_error_exit("Cannot mix '-l', '-a', '-c', '-d'");
            }
            action = want;
            name = want == SN_LIST ? NULL : optarg;
            if (want == SN_LIST) {
                flags &= ~BDRV_O_RDWR;
            }
        }
    }
    if (optind != argc - 1) {
        img_error_exit("Expecting one image file name");
    }
    filename = argv[optind];

    blk = img_open(image_opts, filename, NULL, flags, false, quiet,
                   force_share);
    if (!blk) {
        return 1;
    }
    bs = blk_bs(blk);

    switch (action) {
    case SN_LIST:
        img_print_snapshot_list(bs);
        break;
    case SN_CREATE: {
        QBSnapshotInfo sn = { 0 };
        int64_t now = g_get_real_time();
        g_strlcpy(sn.name, name, sizeof(sn.name));
        sn.date_sec = now / G_USEC_PER_SEC;
        sn.date_nsec = (now % G_USEC_PER_SEC) * 1000;
        sn.icount = 0;   /* what qemu-img records (no replay) */
        ret = bdrv_snapshot_create(bs, &sn);
        if (ret < 0) {
            error_report("Could not create snapshot '%s': %d (%s)", name,
                         ret, strerror(-ret));
        }
        break;
    }
    case SN_APPLY:
        ret = bdrv_snapshot_goto(bs, name, &err);
        if (ret < 0) {
            error_prepend(&err, "Could not apply snapshot '%s': ", name);
            error_report_err(err);
        }
        break;
    case SN_DELETE:
        ret = bdrv_snapshot_delete(bs, NULL, name, &err);
        if (ret < 0) {
            error_prepend(&err, "Could not delete snapshot '%s': ", name);
            error_report_err(err);
        }
        break;
    default:
        break;
    }
    blk_unref(blk);
    return ret < 0 ? 1 : 0;
}

void img_dump_snapshots_human(json_t *snapshots)
{
    g_autofree char *hdr = snapshot_row(NULL);

    printf("Snapshot list:\n%s\n", hdr);
    for (size_t i = 0; i < json_array_size(snapshots); i++) {
        json_t *o = json_array_get(snapshots, i);
        json_t *ic = json_object_get(o, "icount");
        QBSnapshotInfo sn = { 0 };

        g_strlcpy(sn.id_str, json_string_value(json_object_get(o, "id")),
                  sizeof(sn.id_str));
        g_strlcpy(sn.name, json_string_value(json_object_get(o, "name")),
                  sizeof(sn.name));
        sn.vm_state_size =
            json_integer_value(json_object_get(o, "vm-state-size"));
        sn.date_sec = json_integer_value(json_object_get(o, "date-sec"));
        sn.date_nsec = json_integer_value(json_object_get(o, "date-nsec"));
        sn.vm_clock_nsec =
            json_integer_value(json_object_get(o, "vm-clock-sec")) *
            UINT64_C(1000000000) +
            json_integer_value(json_object_get(o, "vm-clock-nsec"));
        sn.icount = ic ? (uint64_t)json_integer_value(ic) : UINT64_MAX;
        g_autofree char *row = snapshot_row(&sn);
        printf("%s\n", row);
    }
}
