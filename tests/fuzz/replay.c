/* replay.c - a main() for the fuzz targets without libFuzzer: runs each
 * file named on the command line (each file of a directory named) once
 * through LLVMFuzzerTestOneInput.  Linked with a target's source in the
 * ordinary build (and the ASan and valgrind builds), it replays the seed
 * corpus and every input in regressions/ as a plain test, with whatever
 * compiler and sanitizers the build uses.  A broken invariant aborts;
 * REPLAY_VERBOSE=1 names each input before it runs.
 *
 *   build/tests/fuzz/replay_request tests/fuzz/corpus/request tests/fuzz/regressions/request
 */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz.h"

static int replay__file(const char *path, unsigned *count)
{
        FILE *f = fopen(path, "rb");
        if (!f) {
                fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
                return -1;
        }
        size_t cap = 4096, len = 0;
        uint8_t *buf = malloc(cap);
        int rc = 0;
        while (buf) {
                size_t n = fread(buf + len, 1, cap - len, f);
                len += n;
                if (len < cap)
                        break;
                uint8_t *nb = realloc(buf, cap * 2);
                if (!nb) {
                        free(buf);
                        buf = NULL;
                        break;
                }
                buf = nb;
                cap *= 2;
        }
        if (!buf || ferror(f)) {
                fprintf(stderr, "replay: %s: cannot read it\n", path);
                rc = -1;
        } else {
                /* Named first, so that the input that aborts is known. */
                if (getenv("REPLAY_VERBOSE"))
                        fprintf(stderr, "replay: %s (%zu bytes)\n", path, len);
                LLVMFuzzerTestOneInput(buf, len);
                (*count)++;
        }
        free(buf);
        fclose(f);
        return rc;
}

static int replay__cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every regular file of dir, in name order (so that runs compare). */
static int replay__dir(const char *dir, unsigned *count)
{
        DIR *d = opendir(dir);
        if (!d) {
                fprintf(stderr, "replay: %s: %s\n", dir, strerror(errno));
                return -1;
        }
        char **names = NULL;
        size_t n = 0;
        int rc = 0;
        struct dirent *e;
        while ((e = readdir(d))) {
                if (e->d_name[0] == '.')
                        continue;
                char **nn = realloc(names, (n + 1) * sizeof(*names));
                if (!nn || !(nn[n] = strdup(e->d_name))) {
                        names = nn ? nn : names;
                        rc = -1;
                        break;
                }
                names = nn;
                n++;
        }
        closedir(d);
        if (names)
                qsort(names, n, sizeof(*names), replay__cmp);
        for (size_t i = 0; i < n; i++) {
                char path[4096];
                snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
                struct stat st;
                if (rc == 0 && stat(path, &st) == 0 && S_ISREG(st.st_mode))
                        rc = replay__file(path, count);
                free(names[i]);
        }
        free(names);
        return rc;
}

int main(int argc, char **argv)
{
        unsigned count = 0;
        int rc = 0;
        LLVMFuzzerInitialize(&argc, &argv);
        for (int i = 1; i < argc && rc == 0; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        /* An empty regressions/ directory is not in git. */
                        if (errno == ENOENT)
                                continue;
                        fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
                        rc = -1;
                } else if (S_ISDIR(st.st_mode)) {
                        rc = replay__dir(argv[i], &count);
                } else {
                        rc = replay__file(argv[i], &count);
                }
        }
        printf("replay: %u input(s) run%s\n", count, rc ? ", then an error" : "");
        return rc ? 1 : 0;
}
