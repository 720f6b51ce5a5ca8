/*
 * The command interpreter of qblock-io: a table of commands (read, write,
 * aio_read, map, ...) and the helpers that format their output exactly as
 * qemu-io 7.2 does (sizes like "1.500 KiB", timing lines, hex dumps).
 * qblock-io.c owns the program (options, open/close/quit, the loop);
 * io-cmds.c owns everything a command does once a line has been split.
 */
#ifndef TOOLS_IO_CMDS_H
#define TOOLS_IO_CMDS_H

#include "block/block-backend.h"

/* The command may run with no image open (help, open, quit, sleep...). */
#define QBIO_CMD_NOFILE_OK 0x01

typedef int (*QbioCmdFunc)(BlockBackend *blk, int argc, char **argv);
typedef void (*QbioHelpFunc)(void);

typedef struct QbioCmd {
    const char *name;
    const char *altname;     /* short alias ("r" for read); may be NULL */
    QbioCmdFunc cfunc;
    int argmin;              /* not counting the command name; -1 = none */
    int argmax;              /* -1 = unlimited */
    int flags;               /* QBIO_CMD_* */
    const char *args;        /* synopsis after the name; NULL = none */
    const char *oneline;     /* one-line description */
    QbioHelpFunc help;       /* extended help, or NULL */
    uint64_t perm;           /* BLK_PERM_* the command needs on the root */
} QbioCmd;

/* Add a command to the table (the table is kept sorted by name). */
void qbio_add_command(const QbioCmd *cmd);
/* Register the I/O commands of io-cmds.c. */
void qbio_register_io_commands(void);
/*
 * Split line and run it on blk (NULL when no image is open).  Returns 0 on
 * success, a negative errno when the command failed; the caller turns any
 * failure into exit status 1.  *quit is set when the command asks to stop.
 */
int qbio_command(BlockBackend *blk, const char *line);
void qbio_command_usage(const QbioCmd *cmd);

/* Set by "quit"; the command loop stops reading further commands. */
extern bool qbio_quit_requested;
/* -m: misalign I/O buffers by 512 bytes to exercise bounce buffers. */
extern bool qbio_misalign;

/* --- formatting helpers (exported for tests/unit/test-io-cmds.c) --- */

/* Parse a size ("4k", "0x10", "1.5M"): >= 0, or -EINVAL / -ERANGE. */
int64_t qbio_cvtnum(const char *s);
/* Print qemu-io's "Parsing error: ..." text for a cvtnum failure. */
void qbio_print_cvtnum_err(int64_t rc, const char *arg);
/* "4 KiB", "1.500 KiB", "512 bytes", "6.400205 bytes" (qemu-io's cvtstr). */
void qbio_cvtstr(double value, char *str, size_t size);
/* "00.01 sec" (short) or "0:00:00.01" (fixed, or when >= 1 minute). */
void qbio_timestr(double secs, char *str, size_t size, bool fixed);
/* Hex dump lines as "read -v" prints them, offset is the image offset. */
void qbio_dump_buffer(FILE *f, const void *buf, int64_t offset, int64_t len);
/* Split a command line on blanks (no quoting, as qemu-io). g_strfreev. */
char **qbio_breakline(const char *input, int *count);
/* The statistics line(s) printed after a request (read/wrote/discard). */
void qbio_print_report(FILE *f, const char *op, double secs, int64_t offset,
                       int64_t count, int64_t total, int cnt, bool cflag);

#endif
