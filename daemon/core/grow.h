/* grow.h - room in a growing array or byte buffer: one doubling rule for
 * every table and text the daemon builds up.  Header-only and pure.
 */
#ifndef OUTCOMED_GROW_H
#define OUTCOMED_GROW_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

/* Room for `need` elements of `size` bytes in arr, whose capacity is *cap
 * elements (doubled, from `first` when 0): arr itself when it has room,
 * else its reallocation with *cap updated, or NULL (arr and *cap
 * untouched) when out of memory. */
static inline void *grow_to(void *arr, size_t *cap, size_t need, size_t size, size_t first)
{
        if (need <= *cap)
                return arr;
        size_t ncap = *cap ? *cap : first;
        while (ncap < need) {
                if (ncap > SIZE_MAX / 2 / size)
                        return NULL;
                ncap *= 2;
        }
        void *p = realloc(arr, ncap * size);
        if (p)
                *cap = ncap;
        return p;
}

#endif
