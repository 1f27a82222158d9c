/* fuzz.h - what the libFuzzer targets of tests/fuzz/ share: the entry
 * points libFuzzer calls, and FUZZ_CHECK, which turns a broken invariant
 * into a crash that libFuzzer reports (and saves the input of) like any
 * sanitizer finding. */
#ifndef OUTCOMED_FUZZ_H
#define OUTCOMED_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond) \
        do { \
                if (!(cond)) { \
                        fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, \
                                #cond); \
                        abort(); \
                } \
        } while (0)

/* A small deterministic generator, for cutting an input into reads. */
static inline uint32_t fuzz_xorshift(uint32_t *s)
{
        uint32_t x = *s ? *s : 0x9e3779b9u;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        return *s = x;
}

#endif
