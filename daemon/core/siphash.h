/* siphash.h - SipHash-2-4, a keyed hash for the tables whose keys clients
 * choose (trace ids, model ids, the lines of a suggestion).
 *
 * An unkeyed hash (FNV-1a) lets a client pick keys that all land in one
 * bucket, so that every lookup walks one long chain: hash flooding.  With a
 * secret 128-bit key drawn at start, the client cannot tell which keys
 * collide.  SipHash-2-4 is the variant of the paper (Aumasson, Bernstein,
 * "SipHash: a fast short-input PRF", 2012) that its test vectors pin down.
 *
 * Pure: siphash24 takes its key; siphash_str / siphash_bytes use the
 * process key, all zeros (deterministic: unit tests, fuzzers, tools) until
 * siphash_init_random() draws one.  The daemon calls that once at start,
 * before any table holds a key, and never again: a table hashed under one
 * key cannot be searched under another.
 */
#ifndef OUTCOMED_SIPHASH_H
#define OUTCOMED_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

#define SIPHASH_KEY_BYTES 16

/* SipHash-2-4 of data[0..len) under key (16 bytes, read little-endian as
 * the paper's k0, k1). */
uint64_t siphash24(const uint8_t key[SIPHASH_KEY_BYTES], const void *data, size_t len);

/* Draw the process key from getrandom(2).  0, or a negative errno (the key
 * is then unchanged). */
int siphash_init_random(void);
/* Set the process key (tests, fuzzers); not while tables hold keys. */
void siphash_set_key(const uint8_t key[SIPHASH_KEY_BYTES]);

/* Under the process key. */
uint64_t siphash_bytes(const void *data, size_t len);
uint64_t siphash_str(const char *s);

#endif
