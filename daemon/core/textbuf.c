/* textbuf.c - the growable text buffer (textbuf.h). */
#include "textbuf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int textbuf_reserve(struct textbuf *b, size_t more)
{
        if (b->oom)
                return -ENOMEM;
        if (more > SIZE_MAX / 4 - b->len) {
                b->oom = true;
                return -ENOMEM;
        }
        if (b->len + more + 1 <= b->cap)
                return 0;
        size_t cap = b->cap ? b->cap : 64;
        while (cap < b->len + more + 1)
                cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
                b->oom = true;
                return -ENOMEM;
        }
        b->p = p;
        b->cap = cap;
        return 0;
}

void textbuf_put(struct textbuf *b, const char *s, size_t n)
{
        if (textbuf_reserve(b, n) < 0)
                return;
        if (n)
                memcpy(b->p + b->len, s, n);
        b->len += n;
        b->p[b->len] = '\0';
}

void textbuf_puts(struct textbuf *b, const char *s)
{
        textbuf_put(b, s, strlen(s));
}

void textbuf_free(struct textbuf *b)
{
        free(b->p);
        *b = (struct textbuf){ 0 };
}
