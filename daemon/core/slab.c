/* slab.c - blocks of huge pages for objects loaded at once (slab.h): each
 * block is SLAB_BLOCK bytes aligned to its size, so that an object finds
 * its block's header by masking its address. */
#include "slab.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>

#if defined(__SANITIZE_ADDRESS__)
#define SLAB_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SLAB_ASAN 1
#endif
#endif
#ifdef SLAB_ASAN
#include <sanitizer/asan_interface.h>
#define SLAB_POISON(p, n) ASAN_POISON_MEMORY_REGION((p), (n))
#define SLAB_UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define SLAB_POISON(p, n) ((void)(p), (void)(n))
#define SLAB_UNPOISON(p, n) ((void)(p), (void)(n))
#endif

#define SLAB_BLOCK ((size_t)2 << 20)
#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

struct slab__block {
        size_t used; /* bytes handed out, this header's included */
        size_t live; /* objects in it not yet freed */
        bool open;   /* the one being filled */
};

#define SLAB_HEAD ((sizeof(struct slab__block) + 15) & ~(size_t)15)

static struct slab__block *slab__block_new(void)
{
        /* Twice the size, then the unaligned ends are unmapped. */
        char *p = mmap(NULL, 2 * SLAB_BLOCK, PROT_READ | PROT_WRITE,
                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
                return NULL;
        char *b = (char *)(((uintptr_t)p + SLAB_BLOCK - 1) & ~(uintptr_t)(SLAB_BLOCK - 1));
        if (b > p)
                (void)munmap(p, (size_t)(b - p));
        if (b + SLAB_BLOCK < p + 2 * SLAB_BLOCK)
                (void)munmap(b + SLAB_BLOCK, (size_t)(p + 2 * SLAB_BLOCK - (b + SLAB_BLOCK)));
        (void)madvise(b, SLAB_BLOCK, MADV_HUGEPAGE);       /* where THP is "madvise" */
        (void)madvise(b, SLAB_BLOCK, MADV_POPULATE_WRITE); /* one call, not 512 faults */
        struct slab__block *blk = (struct slab__block *)b;
        blk->used = SLAB_HEAD;
        blk->live = 0;
        blk->open = true;
        return blk;
}

static void slab__block_unmap(struct slab__block *b)
{
        SLAB_UNPOISON(b, SLAB_BLOCK);
        (void)munmap(b, SLAB_BLOCK);
}

/* A slot's size: rounded up to 16. */
static size_t slab__slot_size(size_t size)
{
        return (size + 15) & ~(size_t)15;
}

void *slab_alloc(struct slab *s, size_t size)
{
        size = slab__slot_size(size);
        if (size > SLAB_BLOCK - SLAB_HEAD)
                return NULL;
        struct slab__block *b = s->open;
        if (!b || b->used + size > SLAB_BLOCK) {
                struct slab__block *nb = slab__block_new();
                if (!nb)
                        return NULL;
                if (b) {
                        b->open = false;
                        if (b->live == 0)
                                slab__block_unmap(b);
                }
                s->open = b = nb;
        }
        void *r = (char *)b + b->used;
        b->used += size;
        b->live++;
        return r;
}

void slab_free(void *p, size_t size)
{
        struct slab__block *b =
                (struct slab__block *)((uintptr_t)p & ~(uintptr_t)(SLAB_BLOCK - 1));
        SLAB_POISON(p, slab__slot_size(size));
        if (--b->live == 0 && !b->open)
                slab__block_unmap(b);
}

void slab_release(struct slab *s)
{
        if (s->open)
                slab__block_unmap(s->open);
        s->open = NULL;
}
