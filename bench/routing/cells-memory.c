/* cells-memory.c - what a domain cell costs in memory: a tracker fed N
 * calls of one model on N domains ("subject-0" ...), the heap in use
 * (mallinfo2) before and after, less what the same calls cost without a
 * domain, per cell and per cell beside its domain string.  Prints one
 * line; a benchmark, not a test.
 *
 *   build/bench/routing/cells-memory [N]      (default 1000000)
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tracker.h"

static size_t heap(void)
{
        malloc_trim(0);
        return mallinfo2().uordblks;
}

static void nop_profile(void *d, const struct tracker_profile *p) { (void)d, (void)p; }
static void nop_deleted(void *d, const char *id) { (void)d, (void)id; }
static void nop_trace(void *d, const struct tracker_trace *tr) { (void)d, (void)tr; }

/* n calls of model m, each on its own domain (or none), resolved. */
static size_t feed(size_t n, bool domains, size_t *strings)
{
        struct tracker_options o = { .id_prefix = "b" };
        struct tracker *t = tracker_new(&o);
        if (!t)
                exit(1);
        size_t before = heap();
        char dom[32];
        *strings = 0;
        for (size_t i = 0; i < n; i++) {
                const char *id;
                snprintf(dom, sizeof(dom), "subject-%zu", i);
                struct tracker_start s = { .model = "m", .task = TASK_REASONING,
                                           .domain = domains ? dom : NULL, .now = 1 };
                if (tracker_start(t, &s, &id) < 0)
                        exit(1);
                char idc[96];
                strcpy(idc, id);
                struct tracker_complete c = { .trace_id = idc, .latency_ms = 100,
                                              .input_tokens = 400, .output_tokens = 50, .now = 1 };
                struct tracker_result r;
                if (tracker_complete(t, &c) < 0 ||
                    tracker_outcome(t, idc, KIND_ACCEPTED, 1.0, 0, 1, &r) < 0)
                        exit(1);
                *strings += strlen(dom) + 1;
        }
        /* The change lists as a snapshot leaves them: drained. */
        struct tracker_sink sink = { .profile = nop_profile, .deleted = nop_deleted,
                                     .trace = nop_trace };
        tracker_collect(t, &sink);
        size_t used = heap() - before;
        tracker_free(t);
        return used;
}

int main(int argc, char **argv)
{
        size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
        size_t strings, none;
        size_t base = feed(n, false, &none);
        size_t with = feed(n, true, &strings);
        double per = (double)(with - base) / (double)n;
        printf("%zu domain cells: %.1f bytes a cell, %.1f beside its domain string "
               "(%zu-byte strings on average; target <= 200)\n",
               n, per, per - (double)strings / (double)n, strings / n);
        return 0;
}
