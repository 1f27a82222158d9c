/* cleanup.h - freeing on every way out of a scope, as systemd's _cleanup_
 * does: a variable declared CLEANUP_FREE is free()d when it goes out of
 * scope, so that a function with several early returns needs no `goto out`
 * to release it.  Take ownership away with cleanup_take (the variable is
 * then NULL and nothing is freed).  GCC and Clang's cleanup attribute.
 */
#ifndef OUTCOMED_CLEANUP_H
#define OUTCOMED_CLEANUP_H

#include <stdlib.h>

static inline void cleanup_free(void *p)
{
        free(*(void **)p);
}

#define CLEANUP_FREE __attribute__((cleanup(cleanup_free)))

/* *pp, which the caller now owns; *pp becomes NULL. */
static inline void *cleanup_take(void *pp)
{
        void **p = pp;
        void *v = *p;
        *p = NULL;
        return v;
}

#endif
