/* textshare.c - significant lines and the multiset of added lines
 * (textshare.h): open addressing over the lines' bytes, kept in one
 * buffer. */
#include "textshare.h"
#include "siphash.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static bool textshare__space(char ch)
{
        return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f';
}

static void textshare__trim(const char **s, size_t *n)
{
        while (*n && textshare__space(**s)) {
                (*s)++;
                (*n)--;
        }
        while (*n && textshare__space((*s)[*n - 1]))
                (*n)--;
}

/* A trimmed line that carries meaning: at least 4 characters (UTF-8
 * sequences count once), not only brackets and punctuation, not a
 * markdown fence around the suggestion. */
static bool textshare__significant(const char *s, size_t n)
{
        size_t chars = 0;
        bool word = false;
        if (n >= 3 && memcmp(s, "```", 3) == 0)
                return false;
        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char)s[i];
                if ((ch & 0xc0) != 0x80)
                        chars++;
                if (ch >= 0x80 || (ch > ' ' && ch < 0x7f &&
                                   ((ch >= '0' && ch <= '9') || (ch >= 'A' && ch <= 'Z') ||
                                    (ch >= 'a' && ch <= 'z'))))
                        word = true;
        }
        return chars >= 4 && word;
}

/* The lines are a client's output: keyed SipHash, so that it cannot
 * choose lines that pile up in one probe sequence (siphash.h). */
static uint64_t textshare__hash(const char *s, size_t n)
{
        return siphash_bytes(s, n);
}

/* A multiset of lines: open addressing over the lines' bytes. */
struct textshare_slot {
        uint64_t hash;
        size_t off;
        uint32_t len;
        uint32_t count; /* 0: empty slot */
};


static struct textshare_slot *textshare__slot(struct textshare_lines *ls, const char *s, size_t n,
                                          uint64_t h)
{
        size_t mask = ls->nslots - 1;
        for (size_t i = h & mask;; i = (i + 1) & mask) {
                struct textshare_slot *sl = &ls->slots[i];
                if (!sl->count ||
                    (sl->hash == h && sl->len == n && memcmp(ls->bytes + sl->off, s, n) == 0))
                        return sl;
        }
}

static int textshare__grow(struct textshare_lines *ls)
{
        size_t n = ls->nslots ? ls->nslots * 2 : 256;
        struct textshare_slot *v = calloc(n, sizeof(*v)), *old = ls->slots;
        if (!v)
                return -ENOMEM;
        size_t oldn = ls->nslots;
        ls->slots = v;
        ls->nslots = n;
        for (size_t i = 0; i < oldn; i++) {
                if (!old[i].count)
                        continue;
                size_t mask = n - 1, j = old[i].hash & mask;
                while (v[j].count)
                        j = (j + 1) & mask;
                v[j] = old[i];
        }
        free(old);
        return 0;
}

void textshare_add(struct textshare_lines *ls, const char *s, size_t n)
{
        textshare__trim(&s, &n);
        if (!n || ls->oom || ls->full || n > UINT32_MAX)
                return;
        if (ls->len + n > TEXTSHARE_MAX_ADDED_BYTES) {
                ls->full = true;
                return;
        }
        if ((ls->n + 1) * 2 > ls->nslots && textshare__grow(ls) < 0) {
                ls->oom = true;
                return;
        }
        uint64_t h = textshare__hash(s, n);
        struct textshare_slot *sl = textshare__slot(ls, s, n, h);
        if (sl->count) {
                sl->count++;
                return;
        }
        if (ls->len + n > ls->cap) {
                size_t cap = ls->cap ? ls->cap : 4096;
                while (cap < ls->len + n)
                        cap *= 2;
                char *b = realloc(ls->bytes, cap);
                if (!b) {
                        ls->oom = true;
                        return;
                }
                ls->bytes = b;
                ls->cap = cap;
        }
        memcpy(ls->bytes + ls->len, s, n);
        *sl = (struct textshare_slot){ .hash = h, .off = ls->len, .len = (uint32_t)n, .count = 1 };
        ls->len += n;
        ls->n++;
}

/* Take one occurrence of s out; false when there is none left. */
static bool textshare__take(struct textshare_lines *ls, const char *s, size_t n)
{
        if (!ls->nslots)
                return false;
        struct textshare_slot *sl = textshare__slot(ls, s, n, textshare__hash(s, n));
        if (sl->count <= 1) /* 1 marks "present, none left" once taken */
                return false;
        sl->count--;
        return true;
}

void textshare_free(struct textshare_lines *ls)
{
        free(ls->bytes);
        free(ls->slots);
}

/* Counts are stored plus one, so that a line whose occurrences were all
 * taken keeps its slot (open addressing must not see a hole). */
void textshare_seal(struct textshare_lines *ls)
{
        for (size_t i = 0; i < ls->nslots; i++)
                if (ls->slots[i].count)
                        ls->slots[i].count++;
}

/* The suggestion's significant lines found among the added ones. */
void textshare_count(const char *output, struct textshare_lines *added, size_t *found,
                     size_t *total)
{
        *found = *total = 0;
        for (const char *p = output; p && *p;) {
                const char *nl = strchr(p, '\n');
                size_t n = nl ? (size_t)(nl - p) : strlen(p);
                const char *s = p;
                textshare__trim(&s, &n);
                if (textshare__significant(s, n)) {
                        (*total)++;
                        if (textshare__take(added, s, n))
                                (*found)++;
                }
                p = nl ? nl + 1 : p + strlen(p);
        }
}

bool textshare_significant(const char *line, size_t len)
{
        textshare__trim(&line, &len);
        return textshare__significant(line, len);
}

int textshare_share(const char *output, const char *added, size_t len, size_t *found,
                    size_t *total)
{
        struct textshare_lines ls;
        memset(&ls, 0, sizeof(ls));
        for (size_t off = 0; off < len;) {
                const char *nl = memchr(added + off, '\n', len - off);
                size_t n = nl ? (size_t)(nl - (added + off)) : len - off;
                textshare_add(&ls, added + off, n);
                off += n + 1;
        }
        int r = ls.oom ? -ENOMEM : 0;
        if (r == 0) {
                textshare_seal(&ls);
                textshare_count(output, &ls, found, total);
        }
        textshare_free(&ls);
        return r;
}
