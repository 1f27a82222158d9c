/* slab.h - blocks of huge pages for many small objects loaded at once.
 *
 * The traces loaded at start-up are carved from blocks of SLAB_BLOCK
 * bytes, aligned to their size, asked for in huge pages and populated in
 * one call: a million pending traces are a quarter GiB, and faulting that
 * in 4 KiB at a time was a third of the start-up.  A block's slots are not
 * reused; a block is given back when its last object is freed (objects
 * load oldest first and mostly leave in that order).  The block being
 * filled stays until the next one is started or slab_release.
 *
 * Under AddressSanitizer a freed slot is poisoned (and a block unpoisoned
 * before it is unmapped), so that a use after free is caught as with
 * malloc.  No other I/O than mmap.
 */
#ifndef OUTCOMED_SLAB_H
#define OUTCOMED_SLAB_H

#include <stddef.h>

struct slab__block;

struct slab {
        struct slab__block *open; /* the block being filled, or NULL */
};

/* size bytes, 16-aligned, or NULL (too large, or no memory: the caller
 * then uses malloc). */
void *slab_alloc(struct slab *s, size_t size);
/* Give back an object slab_alloc returned, with the size it was asked
 * for. */
void slab_free(void *p, size_t size);
/* Unmap the open block; every object in it must have been freed. */
void slab_release(struct slab *s);

#endif
