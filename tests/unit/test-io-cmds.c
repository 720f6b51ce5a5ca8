/*
 * Unit tests for qblock-io's output formatting and argument parsing
 * (tools/io-cmds.c): the texts must match qemu-io 7.2 byte for byte, so
 * each expectation below is a string observed from qemu-io.
 *
 * io-cmds.c is compiled into this test directly (it belongs to the tool,
 * not to libqblock).
 */
#include "tools/io-cmds.c"

static void test_cvtnum(void)
{
    g_assert_cmpint(qbio_cvtnum("0"), ==, 0);
    g_assert_cmpint(qbio_cvtnum("512"), ==, 512);
    g_assert_cmpint(qbio_cvtnum("4k"), ==, 4096);
    g_assert_cmpint(qbio_cvtnum("4K"), ==, 4096);
    g_assert_cmpint(qbio_cvtnum("1b"), ==, 1);
    g_assert_cmpint(qbio_cvtnum("1M"), ==, 1048576);
    g_assert_cmpint(qbio_cvtnum("1.5k"), ==, 1536);
    g_assert_cmpint(qbio_cvtnum("0x10"), ==, 16);
    g_assert_cmpint(qbio_cvtnum("1E"), ==, INT64_C(1) << 60);
    g_assert_cmpint(qbio_cvtnum("9223372036854775807"), ==, INT64_MAX);
    g_assert_cmpint(qbio_cvtnum("8E"), ==, -ERANGE);
    g_assert_cmpint(qbio_cvtnum("99999999999999999999"), ==, -ERANGE);
    g_assert_cmpint(qbio_cvtnum("-1"), ==, -EINVAL);
    g_assert_cmpint(qbio_cvtnum("x"), ==, -EINVAL);
    g_assert_cmpint(qbio_cvtnum("0.5"), ==, -EINVAL);
    g_assert_cmpint(qbio_cvtnum("1.5"), ==, -EINVAL);
    g_assert_cmpint(qbio_cvtnum("1e3"), ==, -EINVAL);
    g_assert_cmpint(qbio_cvtnum("1kB"), ==, -EINVAL);
    g_assert_cmpint(qbio_cvtnum("\"0\""), ==, -EINVAL);
    g_assert_cmpint(qbio_cvtnum(""), ==, -EINVAL);
}

static void test_cvtstr(void)
{
    char s[64];

    qbio_cvtstr(4096, s, sizeof(s));
    g_assert_cmpstr(s, ==, "4 KiB");
    qbio_cvtstr(1536, s, sizeof(s));
    g_assert_cmpstr(s, ==, "1.500 KiB");
    qbio_cvtstr(512, s, sizeof(s));
    g_assert_cmpstr(s, ==, "512 bytes");
    qbio_cvtstr(0, s, sizeof(s));
    g_assert_cmpstr(s, ==, "0 bytes");
    qbio_cvtstr(6.400205, s, sizeof(s));
    g_assert_cmpstr(s, ==, "6.400205 bytes");
    qbio_cvtstr(1048576, s, sizeof(s));
    g_assert_cmpstr(s, ==, "1 MiB");
    qbio_cvtstr(3.0 * GiB, s, sizeof(s));
    g_assert_cmpstr(s, ==, "3 GiB");
    qbio_cvtstr(2.043 * MiB, s, sizeof(s));
    g_assert_cmpstr(s, ==, "2.043 MiB");
    qbio_cvtstr(102400, s, sizeof(s));
    g_assert_cmpstr(s, ==, "100 KiB");
}

static void test_timestr(void)
{
    char s[64];

    qbio_timestr(0.001, s, sizeof(s), false);
    g_assert_cmpstr(s, ==, "00.00 sec");
    qbio_timestr(1.25, s, sizeof(s), false);
    g_assert_cmpstr(s, ==, "01.25 sec");
    qbio_timestr(639.98, s, sizeof(s), false);
    g_assert_cmpstr(s, ==, "0:10:39.98");
    qbio_timestr(0.001, s, sizeof(s), true);
    g_assert_cmpstr(s, ==, "0:00:00.00");
    qbio_timestr(3723.5, s, sizeof(s), false);
    g_assert_cmpstr(s, ==, "1:02:03.50");
}

/* qbio_dump_buffer's output as a string. */
static char *capture_dump(const void *buf, int64_t offset, int64_t len)
{
    char *out = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&out, &size);

    qbio_dump_buffer(f, buf, offset, len);
    fclose(f);
    return out;
}

static void test_dump_buffer(void)
{
    uint8_t buf[40];
    g_autofree char *a = NULL, *b = NULL, *c = NULL;

    memset(buf, 0x05, sizeof(buf));
    a = capture_dump(buf, 0, 40);
    g_assert_cmpstr(a, ==,
        "00000000:  05 05 05 05 05 05 05 05 05 05 05 05 05 05 05 05  "
        "................\n"
        "00000010:  05 05 05 05 05 05 05 05 05 05 05 05 05 05 05 05  "
        "................\n"
        "00000020:  05 05 05 05 05 05 05 05  ........\n");
    memcpy(buf, "hello\n~\x7f", 8);
    b = capture_dump(buf, 512, 8);
    g_assert_cmpstr(b, ==,
        "00000200:  68 65 6c 6c 6f 0a 7e 7f  hello...\n");
    c = capture_dump(buf, 0, 0);
    g_assert_cmpstr(c, ==, "");
}

static void test_breakline(void)
{
    int n;
    g_auto(GStrv) v = qbio_breakline("  read   0\t1 \n", &n);
    g_auto(GStrv) e = NULL;

    g_assert_cmpint(n, ==, 3);
    g_assert_cmpstr(v[0], ==, "read");
    g_assert_cmpstr(v[1], ==, "0");
    g_assert_cmpstr(v[2], ==, "1");
    g_assert_null(v[3]);
    e = qbio_breakline("", &n);
    g_assert_cmpint(n, ==, 0);
    g_assert_null(e[0]);
}

static void test_print_report(void)
{
    char *out = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&out, &size);

    /* 4 KiB in 1/512 s: 2 MiB/s and 512 ops/s. */
    qbio_print_report(f, "wrote", 1.0 / 512, 0, 4096, 4096, 1, false);
    qbio_print_report(f, "read", 0.5, 1536, 1536, 1536, 1, true);
    qbio_print_report(f, "read", 2.0, 0, 0, 0, 1, false);
    fclose(f);
    g_assert_cmpstr(out, ==,
        "wrote 4096/4096 bytes at offset 0\n"
        "4 KiB, 1 ops; 00.00 sec (2 MiB/sec and 512.0000 ops/sec)\n"
        "1536,1,0:00:00.50,3072.000,2.000\n"
        "read 0/0 bytes at offset 0\n"
        "0 bytes, 1 ops; 02.00 sec (0 bytes/sec and 0.5000 ops/sec)\n");
    free(out);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/io-cmds/cvtnum", test_cvtnum);
    g_test_add_func("/io-cmds/cvtstr", test_cvtstr);
    g_test_add_func("/io-cmds/timestr", test_timestr);
    g_test_add_func("/io-cmds/dump-buffer", test_dump_buffer);
    g_test_add_func("/io-cmds/breakline", test_breakline);
    g_test_add_func("/io-cmds/print-report", test_print_report);
    return g_test_run();
}
