/* textbuf.h - a growable text buffer: bytes appended at the end, always
 * NUL-terminated, doubled as it fills.
 *
 * An allocation failure is remembered (oom) rather than returned by each
 * append, so that a caller builds a whole text and checks once; after it,
 * appends do nothing.  Zero-initialise one; textbuf_free gives the memory
 * back (or take b.p and free it yourself).  Pure: no I/O.
 */
#ifndef OUTCOMED_TEXTBUF_H
#define OUTCOMED_TEXTBUF_H

#include <stdbool.h>
#include <stddef.h>

struct textbuf {
        char *p; /* NULL until the first append */
        size_t len, cap;
        bool oom;
};

/* Room for `more` bytes past len, and the NUL.  0, or -ENOMEM (oom set). */
int textbuf_reserve(struct textbuf *b, size_t more);
void textbuf_put(struct textbuf *b, const char *s, size_t n);
void textbuf_puts(struct textbuf *b, const char *s);
void textbuf_free(struct textbuf *b);

#endif
