/* strtab.h - an intrusive chained hash table keyed by a C string.
 *
 * The entries are the caller's structs: the table reads each one's key (a
 * char * at key_off) and chains through its next pointer (a void * at
 * next_off), so that a lookup allocates nothing and an entry is in the
 * table without a node of its own.  Keys come from clients, so they are
 * hashed with the process's keyed SipHash (siphash.h): a client cannot
 * choose keys that share a chain.
 *
 * Pure: no I/O.  The table owns its bucket array only, never the entries.
 */
#ifndef OUTCOMED_STRTAB_H
#define OUTCOMED_STRTAB_H

#include <stddef.h>

struct strtab {
        void **buckets;
        size_t nbuckets; /* a power of two */
        size_t count;
        size_t key_off;  /* offsetof(the entry's char * key) */
        size_t next_off; /* offsetof(the entry's void * chain link) */
};

/* 0, or -ENOMEM. */
int strtab_init(struct strtab *tb, size_t key_off, size_t next_off);
/* The bucket array (the entries stay the caller's). */
void strtab_free(struct strtab *tb);
/* The entry whose key is key, or NULL. */
void *strtab_get(const struct strtab *tb, const char *key);
/* Add e (its key not yet in the table). */
void strtab_put(struct strtab *tb, void *e);
/* Add e unless an entry with its key is there (one hash, one walk of the
 * chain): 0, or -EEXIST and nothing changes. */
int strtab_put_new(struct strtab *tb, void *e);
/* Take e out (a no-op when it is not in). */
void strtab_del(struct strtab *tb, void *e);
/* Grow the table to hold n entries without growing again (as far as
 * memory allows: past that, it grows as entries come). */
void strtab_reserve(struct strtab *tb, size_t n);
/* Every entry, in no order: for (e = strtab_first(tb, &i); e; e =
 * strtab_next(tb, e, &i)); e may be freed after next returned. */
void *strtab_first(const struct strtab *tb, size_t *i);
void *strtab_next(const struct strtab *tb, void *e, size_t *i);

#endif
