/* textshare.h - the git scanner's text evidence: how much of a suggestion
 * was applied, by its lines.
 *
 * A significant line is a trimmed line of at least 4 characters (a UTF-8
 * sequence counts once) that is not only brackets and punctuation and not
 * a markdown fence.  The suggestion's significant lines are looked up
 * among the lines a diff added, as a multiset: a line suggested twice is
 * found twice only if it was added twice.  The share found decides
 * `applied` (gitscan.c).
 *
 * Pure: no git, no I/O.  The added lines are a client's choosing (the
 * model's output, written into a repository), so the multiset hashes them
 * with the process's keyed SipHash (siphash.h).
 */
#ifndef OUTCOMED_TEXTSHARE_H
#define OUTCOMED_TEXTSHARE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TEXTSHARE_MAX_ADDED_BYTES (32u << 20) /* added lines kept per trace */

struct textshare_slot;

/* The multiset of added lines; zero-initialise it. */
struct textshare_lines {
        char *bytes;
        size_t len, cap;
        struct textshare_slot *slots;
        size_t nslots, n;
        bool full; /* TEXTSHARE_MAX_ADDED_BYTES reached: the rest was not kept */
        bool oom;  /* a line was lost to an allocation failure */
};

/* Add one added line (trimmed here; an empty one is left out). */
void textshare_add(struct textshare_lines *ls, const char *s, size_t n);
/* After the last add, before textshare_count. */
void textshare_seal(struct textshare_lines *ls);
/* Of the suggestion's significant lines (output, '\n'-separated), how many
 * (*found) of them (*total) are among the added ones.  Takes the lines it
 * finds out of ls. */
void textshare_count(const char *output, struct textshare_lines *ls, size_t *found,
                     size_t *total);
void textshare_free(struct textshare_lines *ls);

/* A line that counts (trimmed first). */
bool textshare_significant(const char *line, size_t len);
/* The whole evidence at once, added[0..len) one line per '\n': 0 or
 * -ENOMEM. */
int textshare_share(const char *output, const char *added, size_t len, size_t *found,
                    size_t *total);

#endif
