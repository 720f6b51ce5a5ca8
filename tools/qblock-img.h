/*
 * qblock-img internals shared by the subcommand files (tools/img-*.c).
 *
 * A subcommand is one file with one entry function `int img_NAME(int argc,
 * char **argv)` (argv[0] is the subcommand name, getopt-ready) returning the
 * process exit status, plus one line in the command table in qblock-img.c.
 * The generic pieces every subcommand needs (size parsing with qemu-img's
 * messages, -o option lists, cache modes, opening an image, human sizes)
 * live in img-common.c.
 */
#ifndef TOOLS_QBLOCK_IMG_H
#define TOOLS_QBLOCK_IMG_H

#include "util/common.h"
#include "util/error.h"
#include "block/block-backend.h"
#include "block/block-int.h"
#include <jansson.h>

/* Subcommand entry points (one per tools/img-*.c). */
int img_create(int argc, char **argv);
int img_info(int argc, char **argv);
int img_bench(int argc, char **argv);
int img_bitmap(int argc, char **argv);
/* img-bitmap.c: make inconsistent bitmap NAME of bs usable, all dirty
 * (bitmap --repair-inconsistent, check --repair-inconsistent-bitmaps). */
void img_repair_inconsistent_bitmap(BlockDriverState *bs, const char *name,
                                    Error **errp);
/* Format-generic subcommands (tools/img-NAME.c, helpers in img-util.c). */
int img_check(int argc, char **argv);
int img_map(int argc, char **argv);
int img_compare(int argc, char **argv);
int img_convert(int argc, char **argv);
int img_resize(int argc, char **argv);
int img_dd(int argc, char **argv);
int img_commit(int argc, char **argv);
int img_rebase(int argc, char **argv);
int img_amend(int argc, char **argv);
int img_measure(int argc, char **argv);
int img_snapshot(int argc, char **argv);

/* Long-option values shared by subcommands (getopt_long's val). */
enum {
    OPTION_OUTPUT = 256,
    OPTION_BACKING_CHAIN,
    OPTION_OBJECT,
    OPTION_IMAGE_OPTS,
    OPTION_PATTERN,
    OPTION_FLUSH_INTERVAL,
    OPTION_NO_DRAIN,
    OPTION_FORCE,
    OPTION_SHRINK,
    OPTION_PREALLOCATION,
};

/* "qemu-img: <msg>" then "Try 'qblock-img --help' ..." and exit(1). */
void G_GNUC_NORETURN G_GNUC_PRINTF(1, 2) img_error_exit(const char *fmt, ...);
/* getopt's '?' / ':' cases (optstring starts with ':'): "unrecognized
 * option 'X'" / "missing argument for option 'X'", the hint, exit 1. */
void G_GNUC_NORETURN img_getopt_error(int c, char **argv);
/* getopt's 'h' case: the full --help text, exit 0. */
void G_GNUC_NORETURN img_help(void);

/*
 * Parse a size as qemu-img does (suffixes k M G T P E, "b" ignored, no
 * negative values, fractions allowed with a suffix).  Returns -1 on error
 * without printing.
 */
int64_t img_cvtnum(const char *s);
/* As img_cvtnum, but prints qemu-img's two-line "Invalid NAME specified. You
 * may use k, M, G, ..." error (name: "image size", "buffer size", ...). */
int64_t img_cvtnum_full(const char *name, const char *s, int64_t min,
                        int64_t max);

/* Human size as QEMU's size_to_str: "0 B", "512 B", "1.5 KiB", "0.999 MiB". */
char *img_size_to_str(uint64_t val);

/* Cache mode names as qemu-img's -t: none, writeback, writethrough,
 * directsync, unsafe (and "off" = none).  Returns 0 or -1. */
int img_parse_cache_mode(const char *mode, int *flags, bool *writethrough);
/* aio names: threads, native, io_uring.  Returns 0 or -1. */
int img_parse_aio(const char *aio, int *flags);

/*
 * Accumulate "-o a=b,c=d" arguments (several -o are joined with ',' as
 * qemu-img does).  Returns the new string; frees old.
 */
char *img_add_options(char *old, const char *add);
/* qemu-img's check of one -o argument: not empty, not starting with ',',
 * not ending in an odd number of ',' (an unfinished escape). */
bool img_valid_option_list(const char *list);
/* True if the -o list asks for help ("help" or "?" as an element). */
bool img_options_want_help(const char *opts);
/* Parse a QemuOpts-style list ("a=b,,c,d=e") into a flat object of strings.
 * Errors: "Invalid option list: ..." / "Invalid parameter 'x'". */
json_t *img_parse_optlist(const char *list, Error **errp);
/* Creation options a driver accepts (-o): its create_opts, or a built-in
 * table for raw and file while those drivers do not publish one.  NULL for
 * a NULL driver or one without options. */
const CreateOptDesc *img_create_opts_of(BlockDriver *drv);
/* Type-check the -o value s of option d (named key) as qemu-img does;
 * sizes are stored back into opts as integers. */
bool img_check_create_opt(json_t *opts, const char *key, const char *s,
                          const CreateOptDesc *d, Error **errp);
/* --object: TLS credential / authz objects for the nbd driver's
 * tls-creds (nbd/tls.c); other types are refused with QEMU's text. */
bool img_tls_object(const char *arg);

/*
 * Open an image as qemu-img's img_open does: filename + optional format, or
 * (image_opts) a dotted-key option string.  Prints "Could not open 'F': ..."
 * and returns NULL on error.  flags are BDRV_O_*.
 */
BlockBackend *img_open(bool image_opts, const char *filename,
                       const char *fmt, int flags, bool writethrough,
                       bool quiet, bool force_share);

/* ImageInfo of one node as a JSON object in QEMU's insertion order (see
 * img-info.c), and its human rendering as qemu-img info prints it. */
json_t *img_collect_info(BlockDriverState *bs, Error **errp);
void img_dump_info_human(json_t *info);

/* Internal snapshots (img-snapshot.c): qemu-img's "Snapshot list:" table
 * of a node, the SnapshotInfo array of info --output=json (NULL when the
 * node has none), and the table rendered from such an array. */
void img_print_snapshot_list(BlockDriverState *bs);
json_t *img_snapshot_list_json(BlockDriverState *bs);
void img_dump_snapshots_human(json_t *snapshots);

/* Set up the block layer once (drivers, main AioContext). */
void img_block_init(void);

#endif
