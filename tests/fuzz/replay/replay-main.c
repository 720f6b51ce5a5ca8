/*
 * A main() for the fuzz targets in ordinary (gcc, non-fuzzing) builds: runs
 * LLVMFuzzerTestOneInput once on every file named on the command line, or
 * on every file in a directory named there.  `make check` uses it to
 * replay each target's seed corpus (tests/fuzz/corpus/TARGET), so the
 * targets keep compiling and their assertions keep holding on known-good
 * inputs even where clang's libFuzzer is not available.
 * Exit status: 0 when every input ran (a crash or failed assertion kills
 * the process), 1 when an argument could not be read or no input was found.
 */
#include <glib.h>
#include <stdint.h>
#include <stdio.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path)
{
    g_autofree char *data = NULL;
    gsize len;
    g_autoptr(GError) err = NULL;

    if (!g_file_get_contents(path, &data, &len, &err)) {
        fprintf(stderr, "replay: %s\n", err->message);
        return -1;
    }
    LLVMFuzzerTestOneInput((const uint8_t *)data, len);
    return 1;
}

int main(int argc, char **argv)
{
    int ran = 0;

    if (LLVMFuzzerInitialize) {
        LLVMFuzzerInitialize(&argc, &argv);
    }
    for (int i = 1; i < argc; i++) {
        if (g_file_test(argv[i], G_FILE_TEST_IS_DIR)) {
            g_autoptr(GDir) dir = g_dir_open(argv[i], 0, NULL);
            g_autoptr(GPtrArray) names = g_ptr_array_new_with_free_func(g_free);
            const char *n;

            while (dir && (n = g_dir_read_name(dir))) {
                g_ptr_array_add(names, g_build_filename(argv[i], n, NULL));
            }
            /* Sorted, so a failure names the same input every time. */
            g_ptr_array_sort(names, (GCompareFunc)g_strcmp0);
            for (guint k = 0; k < names->len; k++) {
                const char *p = *(char **)&names->pdata[k];
                if (run_file(p) < 0) {
                    return 1;
                }
                ran++;
            }
        } else if (run_file(argv[i]) < 0) {
            return 1;
        } else {
            ran++;
        }
    }
    printf("replayed %d input(s)\n", ran);
    return ran > 0 ? 0 : 1;
}
