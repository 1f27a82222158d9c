/* strtab.c - the intrusive string-keyed hash table (strtab.h): chains
 * through the entries' own link, doubled when it holds as many entries as
 * buckets. */
#include "strtab.h"
#include "siphash.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define STRTAB_KEY(tb, e) (*(char **)((char *)(e) + (tb)->key_off))
#define STRTAB_NEXT(tb, e) (*(void **)((char *)(e) + (tb)->next_off))

static void **strtab__bucket(const struct strtab *tb, const char *key)
{
        return &tb->buckets[siphash_str(key) & (tb->nbuckets - 1)];
}

int strtab_init(struct strtab *tb, size_t key_off, size_t next_off)
{
        tb->buckets = calloc(64, sizeof(void *));
        tb->nbuckets = tb->buckets ? 64 : 0;
        tb->count = 0;
        tb->key_off = key_off;
        tb->next_off = next_off;
        return tb->buckets ? 0 : -ENOMEM;
}

void strtab_free(struct strtab *tb)
{
        free(tb->buckets);
        tb->buckets = NULL;
        tb->nbuckets = tb->count = 0;
}

void *strtab_get(const struct strtab *tb, const char *key)
{
        for (void *e = *strtab__bucket(tb, key); e; e = STRTAB_NEXT(tb, e))
                if (strcmp(STRTAB_KEY(tb, e), key) == 0)
                        return e;
        return NULL;
}

static void strtab__grow(struct strtab *tb)
{
        size_t n = tb->nbuckets * 2;
        void **b = calloc(n, sizeof(void *));
        if (!b)
                return; /* keep the longer chains: still correct */
        for (size_t i = 0; i < tb->nbuckets; i++) {
                void *e = tb->buckets[i];
                while (e) {
                        void *next = STRTAB_NEXT(tb, e);
                        size_t j = siphash_str(STRTAB_KEY(tb, e)) & (n - 1);
                        STRTAB_NEXT(tb, e) = b[j];
                        b[j] = e;
                        e = next;
                }
        }
        free(tb->buckets);
        tb->buckets = b;
        tb->nbuckets = n;
}

void strtab_reserve(struct strtab *tb, size_t n)
{
        while (tb->nbuckets < n && tb->nbuckets <= SIZE_MAX / 2 / sizeof(void *)) {
                size_t before = tb->nbuckets;
                strtab__grow(tb);
                if (tb->nbuckets == before)
                        return; /* out of memory: it grows as entries come */
        }
}

static void strtab__link(struct strtab *tb, void **bucket, void *e)
{
        STRTAB_NEXT(tb, e) = *bucket;
        *bucket = e;
        tb->count++;
}

void strtab_put(struct strtab *tb, void *e)
{
        if (tb->count >= tb->nbuckets)
                strtab__grow(tb);
        strtab__link(tb, strtab__bucket(tb, STRTAB_KEY(tb, e)), e);
}

int strtab_put_new(struct strtab *tb, void *e)
{
        if (tb->count >= tb->nbuckets)
                strtab__grow(tb);
        const char *key = STRTAB_KEY(tb, e);
        void **bucket = strtab__bucket(tb, key);
        for (void *o = *bucket; o; o = STRTAB_NEXT(tb, o))
                if (strcmp(STRTAB_KEY(tb, o), key) == 0)
                        return -EEXIST;
        strtab__link(tb, bucket, e);
        return 0;
}

void strtab_del(struct strtab *tb, void *e)
{
        for (void **p = strtab__bucket(tb, STRTAB_KEY(tb, e)); *p; p = &STRTAB_NEXT(tb, *p)) {
                if (*p == e) {
                        *p = STRTAB_NEXT(tb, e);
                        tb->count--;
                        return;
                }
        }
}

void *strtab_first(const struct strtab *tb, size_t *i)
{
        for (*i = 0; *i < tb->nbuckets; (*i)++)
                if (tb->buckets[*i])
                        return tb->buckets[*i];
        return NULL;
}

void *strtab_next(const struct strtab *tb, void *e, size_t *i)
{
        void *n = STRTAB_NEXT(tb, e);
        if (n)
                return n;
        while (++*i < tb->nbuckets)
                if (tb->buckets[*i])
                        return tb->buckets[*i];
        return NULL;
}
