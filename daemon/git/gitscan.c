/* gitscan.c - the git scanner: a thread that judges pending code traces by
 * their repositories, and the loop side that feeds it.
 *
 * The hand-off (one job at a time):
 *
 *   loop                                   scanner thread
 *   ----                                   --------------
 *   timer (scan_interval_s) or `scan`
 *     -> snapshot: copies of the pending
 *        completed code traces of watched
 *        repositories (id, repo, base,
 *        files, output, completed_at)
 *     -> todo = job, signal cond   ----->  wakes, takes todo, runs it with
 *                                          its own git_repository handles
 *                                          and tree-sitter parser
 *     <-----------  uv_async_send  <-----  done = job (judgements inside)
 *   async: takes done; for each judgement
 *     whose trace is still the same
 *     pending trace: tracker_resolve(git)
 *     and a journal entry (source git,
 *     evidence); answers the `scan`
 *     requests that waited for this job;
 *     starts the next job if one is due.
 *
 * `todo`, `done` and `quit` live under the mutex; everything else is owned
 * by one side: the tracker, the configuration, the waiters and the loop's
 * own repository handles (HEAD lookups for `start`) by the loop; the job
 * being run, the thread's repository handles and the parser by the thread.
 * The job is a deep copy, so the tracker may change (or be rebuilt after a
 * failed write) while the thread works: a judgement whose trace left the
 * pending set, or was started again since, is dropped.  A `scan` request
 * waits for the next job that starts after it, never for one already
 * running, whose snapshot may predate what the caller just did.
 *
 * Judging one trace (files: its `files`, or the whole repository):
 *   - diff the base commit's tree against the working tree and index
 *     (git_diff_tree_to_workdir_with_index: committed, staged and unstaged
 *     changes together, untracked files included);
 *   - no change: `ignored` once deadline_s has passed since complete, else
 *     wait;
 *   - text evidence: the share of the suggestion's significant lines
 *     (trimmed, at least 4 characters, not only brackets and punctuation,
 *     markdown fences left out) found among the added lines, as a
 *     multiset; at or above text_threshold: `applied`, at once;
 *   - else, once settle_s has passed since complete, structural evidence:
 *     the symbols of each changed file's base and current versions
 *     (symbols.c): a removed symbol or a changed signature gives
 *     `signature_changed`, changed bodies `body_modified`, only new symbols
 *     or new files `symbol_added`, anything else `modified`.
 */
#include "gitscan.h"

#include <errno.h>
#include <sched.h>
#include <fcntl.h>
#include <git2.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "journal.h"
#include "log.h"
#include "symbols.h"
#include "textshare.h"
#include "tracker.h"

#define GITSCAN_MAX_ITEMS 4096                /* traces per scan; the rest the next time */
#define GITSCAN_MAX_OUTPUT_BYTES (64u << 20)  /* suggestions copied per scan */
#define GITSCAN_MAX_FILE_BYTES (4u << 20)     /* larger files are not parsed */
#define GITSCAN_EVIDENCE_MAX 400
#define GITSCAN_NAMES_MAX 160
#define GITSCAN_MAX_ERRORS 8

/* ---- jobs ---------------------------------------------------------------- */

struct gitscan_item {
        char *id;
        char *repo;
        char *base;   /* NULL: the repository had no commit (an empty tree) */
        char *output; /* NULL: no suggestion text */
        char **files;
        uint32_t nfiles;
        uint64_t seq;
        uint64_t completed_at;
};

struct gitscan_job {
        /* in: the loop's snapshot */
        uint64_t now, settle_s, deadline_s;
        double threshold;
        struct gitscan_item *items;
        size_t nitems, items_cap;
        /* out: the thread's judgements */
        struct rpc_scan_judged *judged; /* strings owned here */
        uint64_t *judged_seq;           /* the trace's seq, to tell a restart */
        size_t njudged;
        uint32_t repos;
        char *errors[GITSCAN_MAX_ERRORS];
        size_t nerrors;
        uint64_t started_ns;
};

struct gitscan_waiter {
        struct gitscan_waiter *next;
        rpc_scan_cb cb;
        void *arg;
};

/* A repository handle of one thread, kept across scans. */
struct gitscan_repo {
        char *path;
        git_repository *repo;
        bool used; /* by the current job */
};

struct gitscan_repos {
        struct gitscan_repo *v;
        size_t n;
};

struct gitscan {
        uv_timer_t timer;
        uv_async_t async;
        int open_handles;
        uv_loop_t *loop;
        struct rpc_env *env;
        const struct config *cfg;

        /* shared, under mu */
        uv_mutex_t mu;
        uv_cond_t cond;
        struct gitscan_job *todo;
        struct gitscan_job *done;
        bool quit;

        /* the loop's */
        uv_thread_t thread;
        bool busy;                      /* a job is out */
        bool due;                       /* the timer asked for a scan */
        bool stopping;
        struct gitscan_waiter *waiting; /* for the next job, in order */
        struct gitscan_waiter **waiting_tail;
        struct gitscan_waiter *inflight; /* for the job that runs */
        uint64_t resume_seq;            /* the next snapshot starts here (0: oldest) */
        uint32_t interval_s;
        struct gitscan_repos loop_repos;
        char last_error[512];   /* the last problem logged */

        /* the thread's */
        struct gitscan_repos thread_repos;
        struct symbols *sy;
};

static void gitscan__item_free(struct gitscan_item *it)
{
        for (uint32_t i = 0; i < it->nfiles; i++)
                free(it->files[i]);
        free(it->files);
        free(it->id);
        free(it->repo);
        free(it->base);
        free(it->output);
}

static void gitscan__job_free(struct gitscan_job *job)
{
        if (!job)
                return;
        for (size_t i = 0; i < job->nitems; i++)
                gitscan__item_free(&job->items[i]);
        free(job->items);
        for (size_t i = 0; i < job->njudged; i++) {
                free((char *)job->judged[i].trace_id);
                free((char *)job->judged[i].evidence);
        }
        free(job->judged);
        free(job->judged_seq);
        for (size_t i = 0; i < job->nerrors; i++)
                free(job->errors[i]);
        free(job);
}

/* Remember an error for the loop to log (the thread never logs). */
static void gitscan__job_error(struct gitscan_job *job, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void gitscan__job_error(struct gitscan_job *job, const char *fmt, ...)
{
        char msg[512];
        va_list ap;
        if (job->nerrors == GITSCAN_MAX_ERRORS)
                return;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        for (size_t i = 0; i < job->nerrors; i++)
                if (strcmp(job->errors[i], msg) == 0)
                        return;
        char *copy = strdup(msg);
        if (copy)
                job->errors[job->nerrors++] = copy;
}

static const char *gitscan__git_error(void)
{
        const git_error *e = git_error_last();
        return e && e->message ? e->message : "unknown libgit2 error";
}

/* ---- repository handles (each thread its own) ---------------------------- */

static void gitscan__repos_clear(struct gitscan_repos *rs, bool unused_only)
{
        size_t k = 0;
        for (size_t i = 0; i < rs->n; i++) {
                if (unused_only && rs->v[i].used) {
                        rs->v[i].used = false;
                        rs->v[k++] = rs->v[i];
                        continue;
                }
                git_repository_free(rs->v[i].repo);
                free(rs->v[i].path);
        }
        rs->n = k;
        if (k == 0) {
                free(rs->v);
                rs->v = NULL;
        }
}

/* The handle of a repository (opened at first use, exactly at path: no
 * search upwards).  0, or a negative errno with err filled. */
static int gitscan__repo(struct gitscan_repos *rs, const char *path, git_repository **out,
                         char *err, size_t errlen)
{
        for (size_t i = 0; i < rs->n; i++) {
                if (strcmp(rs->v[i].path, path) == 0) {
                        rs->v[i].used = true;
                        *out = rs->v[i].repo;
                        return 0;
                }
        }
        struct gitscan_repo *v = realloc(rs->v, (rs->n + 1) * sizeof(*v));
        if (!v) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        rs->v = v;
        git_repository *repo;
        if (git_repository_open_ext(&repo, path, GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0) {
                snprintf(err, errlen, "cannot open the repository %s: %s", path,
                         gitscan__git_error());
                return -ENOTDIR;
        }
        char *copy = strdup(path);
        if (!copy) {
                git_repository_free(repo);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        rs->v[rs->n++] = (struct gitscan_repo){ .path = copy, .repo = repo, .used = true };
        *out = repo;
        return 0;
}

/* ---- text evidence (textshare.h) ------------------------------------------ */

static int gitscan__on_line(const git_diff_delta *delta, const git_diff_hunk *hunk,
                            const git_diff_line *line, void *payload)
{
        struct textshare_lines *ls = payload;
        if (line->origin == GIT_DIFF_LINE_ADDITION)
                textshare_add(ls, line->content, line->content_len);
        return 0;
}

/* ---- structural evidence ---------------------------------------------------- */

/* Names for the evidence: the first few, then a count of the rest. */
struct gitscan_names {
        char buf[GITSCAN_NAMES_MAX];
        size_t len;
        unsigned n, more;
};

static void gitscan__name(struct gitscan_names *nm, const char *prefix, const char *name)
{
        nm->n++;
        size_t need = strlen(prefix) + strlen(name) + (nm->len ? 2 : 0);
        if (nm->len + need + 1 > sizeof(nm->buf)) {
                nm->more++;
                return;
        }
        nm->len += (size_t)snprintf(nm->buf + nm->len, sizeof(nm->buf) - nm->len, "%s%s%s",
                                    nm->len ? ", " : "", prefix, name);
}

struct gitscan_verdict {
        struct gitscan_names sig, body, added, changed;
};

static void gitscan__on_symbol(void *data, enum symbols_change ch, const struct symbol *s)
{
        struct gitscan_verdict *v = data;
        switch (ch) {
        case SYMBOLS_REMOVED:
                gitscan__name(&v->sig, "removed ", s->name);
                break;
        case SYMBOLS_SIGNATURE:
                gitscan__name(&v->sig, "", s->name);
                break;
        case SYMBOLS_BODY:
                gitscan__name(&v->body, "", s->name);
                break;
        case SYMBOLS_ADDED:
                gitscan__name(&v->added, "", s->name);
                break;
        }
}

/* The working tree's version of a file, at most GITSCAN_MAX_FILE_BYTES.
 * 0, -ENOENT (gone), -EFBIG, or another errno. */
static int gitscan__read_workdir(git_repository *repo, const char *path, char **out, size_t *len)
{
        const char *wd = git_repository_workdir(repo);
        char full[PATH_MAX];
        if (!wd || snprintf(full, sizeof(full), "%s%s", wd, path) >= (int)sizeof(full))
                return -ENAMETOOLONG;
        int fd = open(full, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0)
                return -errno;
        struct stat st;
        int r = 0;
        char *buf = NULL;
        if (fstat(fd, &st) < 0) {
                r = -errno;
                goto out;
        }
        if (!S_ISREG(st.st_mode) || st.st_size > GITSCAN_MAX_FILE_BYTES) {
                r = -EFBIG;
                goto out;
        }
        buf = malloc((size_t)st.st_size + 1);
        if (!buf) {
                r = -ENOMEM;
                goto out;
        }
        size_t got = 0;
        while (got < (size_t)st.st_size) {
                ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break; /* shrank meanwhile: what was read */
                got += (size_t)n;
        }
        *out = buf;
        *len = got;
        buf = NULL;
out:
        free(buf);
        close(fd);
        return r;
}

/* Symbols of one version of a file; -errno when it cannot be parsed. */
static int gitscan__symbols(struct symbols *sy, enum symbols_lang lang, const char *src,
                            size_t len, struct symbols_file *out)
{
        if (!sy)
                return -ENOMEM;
        return symbols_extract(sy, lang, src, len, out);
}

/* Compare a changed file's base and current versions; false when that
 * cannot be done (no grammar, too big, unreadable): a plain change. */
static bool gitscan__file_symbols(struct symbols *sy, git_repository *repo,
                                  const git_diff_delta *d, struct gitscan_verdict *v)
{
        const char *path = d->new_file.path ? d->new_file.path : d->old_file.path;
        enum symbols_lang lang = symbols_lang_of(path);
        struct symbols_file of = { 0 }, nf = { 0 };
        git_blob *blob = NULL;
        char *cur = NULL;
        size_t curlen = 0;
        bool ok = false;

        if (lang == SYMBOLS_NONE)
                return false;
        if (git_blob_lookup(&blob, repo, &d->old_file.id) < 0 ||
            git_blob_rawsize(blob) > GITSCAN_MAX_FILE_BYTES)
                goto out;
        if (gitscan__symbols(sy, lang, git_blob_rawcontent(blob), (size_t)git_blob_rawsize(blob),
                             &of) < 0)
                goto out;
        int r = d->status == GIT_DELTA_DELETED ? -ENOENT
                                               : gitscan__read_workdir(repo, path, &cur, &curlen);
        if (r == -ENOENT) {
                curlen = 0; /* deleted: every symbol is removed */
        } else if (r < 0 || gitscan__symbols(sy, lang, cur, curlen, &nf) < 0) {
                goto out;
        }
        symbols_diff(&of, &nf, gitscan__on_symbol, v);
        ok = true;
out:
        symbols_file_clear(&of);
        symbols_file_clear(&nf);
        free(cur);
        git_blob_free(blob);
        return ok;
}

/* ---- judging one trace -------------------------------------------------------- */

struct gitscan_outcome {
        bool judged;
        enum tracker_kind kind;
        char evidence[GITSCAN_EVIDENCE_MAX];
};

static void gitscan__ev(struct gitscan_outcome *o, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void gitscan__ev(struct gitscan_outcome *o, const char *fmt, ...)
{
        size_t n = strlen(o->evidence);
        va_list ap;
        if (n + 1 >= sizeof(o->evidence))
                return;
        va_start(ap, fmt);
        vsnprintf(o->evidence + n, sizeof(o->evidence) - n, fmt, ap);
        va_end(ap);
}

static void gitscan__ev_names(struct gitscan_outcome *o, const char *what,
                              const struct gitscan_names *nm)
{
        if (!nm->n)
                return;
        gitscan__ev(o, "%s%s: %s", o->evidence[0] ? "; " : "", what, nm->buf);
        if (nm->more)
                gitscan__ev(o, " (+%u more)", nm->more);
}

/* The trace's files for people: "a.py, b.py" or "the repository". */
static void gitscan__ev_files(struct gitscan_outcome *o, const struct gitscan_item *it)
{
        if (!it->nfiles) {
                gitscan__ev(o, "the repository");
                return;
        }
        for (uint32_t i = 0; i < it->nfiles && i < 4; i++)
                gitscan__ev(o, "%s%s", i ? ", " : "", it->files[i]);
        if (it->nfiles > 4)
                gitscan__ev(o, " (+%u more)", it->nfiles - 4);
}

/* The trace's base tree against the working tree and the index, limited
 * to its files.  0, or a negative errno with err filled. */
static int gitscan__diff(git_repository *repo, const struct gitscan_item *it, git_diff **out,
                         char *err, size_t errlen)
{
        git_tree *tree = NULL;
        int r = 0;
        if (it->base) {
                git_oid oid;
                git_commit *commit;
                if (git_oid_fromstr(&oid, it->base) < 0 ||
                    git_commit_lookup(&commit, repo, &oid) < 0) {
                        snprintf(err, errlen, "%s: base commit %.12s of trace %s not found: %s",
                                 it->repo, it->base, it->id, gitscan__git_error());
                        return -ENOENT;
                }
                r = git_commit_tree(&tree, commit);
                git_commit_free(commit);
                if (r < 0) {
                        snprintf(err, errlen, "%s: the tree of %.12s: %s", it->repo, it->base,
                                 gitscan__git_error());
                        return -EIO;
                }
        }

        git_diff_options opts;
        git_diff_options_init(&opts, GIT_DIFF_OPTIONS_VERSION);
        opts.flags = GIT_DIFF_INCLUDE_UNTRACKED | GIT_DIFF_RECURSE_UNTRACKED_DIRS |
                     GIT_DIFF_SHOW_UNTRACKED_CONTENT | GIT_DIFF_IGNORE_SUBMODULES;
        opts.context_lines = 0;
        opts.interhunk_lines = 0;
        if (it->nfiles) {
                opts.flags |= GIT_DIFF_DISABLE_PATHSPEC_MATCH; /* exact paths, no globs */
                opts.pathspec.strings = it->files;
                opts.pathspec.count = it->nfiles;
        }
        if (git_diff_tree_to_workdir_with_index(out, repo, tree, &opts) < 0) {
                snprintf(err, errlen, "%s: diff for trace %s: %s", it->repo, it->id,
                         gitscan__git_error());
                r = -EIO;
        }
        git_tree_free(tree);
        return r;
}

static int gitscan__judge(struct gitscan *g, const struct gitscan_job *job, git_repository *repo,
                          const struct gitscan_item *it, git_diff *diff,
                          struct gitscan_outcome *o, char *err, size_t errlen)
{
        struct textshare_lines added = { 0 };
        int r = 0;
        uint64_t done = it->completed_at;

        o->judged = false;
        o->evidence[0] = '\0';
        size_t ndeltas = git_diff_num_deltas(diff);
        if (ndeltas == 0) {
                if (job->now >= done + job->deadline_s) {
                        o->judged = true;
                        o->kind = KIND_IGNORED;
                        gitscan__ev(o, "no change to ");
                        gitscan__ev_files(o, it);
                        gitscan__ev(o, " within %" PRIu64 " s of completion", job->deadline_s);
                }
                goto out;
        }

        /* Text evidence. */
        if (git_diff_foreach(diff, NULL, NULL, NULL, gitscan__on_line, &added) < 0) {
                snprintf(err, errlen, "%s: reading the diff for trace %s: %s", it->repo, it->id,
                         gitscan__git_error());
                r = -EIO;
                goto out;
        }
        if (added.oom) {
                snprintf(err, errlen, "out of memory reading the diff for trace %s", it->id);
                r = -ENOMEM;
                goto out;
        }
        textshare_seal(&added);
        size_t found, total;
        textshare_count(it->output, &added, &found, &total);
        double share = total ? (double)found / (double)total : 0.0;
        if (total && share >= job->threshold) {
                o->judged = true;
                o->kind = KIND_APPLIED;
                gitscan__ev(o, "%zu of %zu suggested lines found among the added lines (%.0f%%)",
                            found, total, share * 100.0);
                goto out;
        }
        if (job->now < done + job->settle_s)
                goto out; /* still settling: wait before judging the structure */

        /* Structural evidence. */
        struct gitscan_verdict v;
        memset(&v, 0, sizeof(v));
        for (size_t i = 0; i < ndeltas; i++) {
                const git_diff_delta *d = git_diff_get_delta(diff, i);
                const char *path = d->new_file.path ? d->new_file.path : d->old_file.path;
                switch (d->status) {
                case GIT_DELTA_ADDED:
                case GIT_DELTA_UNTRACKED:
                case GIT_DELTA_COPIED:
                        gitscan__name(&v.added, "new file ", path);
                        break;
                default:
                        if (!gitscan__file_symbols(g->sy, repo, d, &v) ||
                            !(v.sig.n || v.body.n || v.added.n))
                                gitscan__name(&v.changed, "", path);
                        break;
                }
        }
        o->judged = true;
        if (v.sig.n) {
                o->kind = KIND_SIGNATURE_CHANGED;
                gitscan__ev_names(o, "signature changed", &v.sig);
                gitscan__ev_names(o, "body changed", &v.body);
                gitscan__ev_names(o, "added", &v.added);
        } else if (v.body.n) {
                o->kind = KIND_BODY_MODIFIED;
                gitscan__ev_names(o, "body changed", &v.body);
                gitscan__ev_names(o, "added", &v.added);
        } else if (v.added.n) {
                o->kind = KIND_SYMBOL_ADDED;
                gitscan__ev_names(o, "added", &v.added);
        } else {
                o->kind = KIND_MODIFIED;
                gitscan__ev_names(o, "changed with no structural difference", &v.changed);
                if (total)
                        gitscan__ev(o, "; %zu of %zu suggested lines found (%.0f%%)", found, total,
                                    share * 100.0);
        }
out:
        textshare_free(&added);
        return r;
}

/* ---- the thread ----------------------------------------------------------------- */

static bool gitscan__quitting(struct gitscan *g)
{
        uv_mutex_lock(&g->mu);
        bool q = g->quit;
        uv_mutex_unlock(&g->mu);
        return q;
}

/* By repository, then base (none first), then start order. */
static int gitscan__cmp_items(const void *a, const void *b)
{
        const struct gitscan_item *x = a, *y = b;
        int c = strcmp(x->repo, y->repo);
        if (c == 0 && (x->base || y->base))
                c = !x->base ? -1 : !y->base ? 1 : strcmp(x->base, y->base);
        if (c == 0 && x->seq != y->seq)
                c = x->seq < y->seq ? -1 : 1;
        return c;
}

static bool gitscan__same_base(const char *a, const char *b)
{
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int gitscan__add_judged(struct gitscan_job *job, const struct gitscan_item *it,
                               const struct gitscan_outcome *o)
{
        struct rpc_scan_judged *v = realloc(job->judged, (job->njudged + 1) * sizeof(*v));
        if (!v)
                return -ENOMEM;
        job->judged = v;
        uint64_t *s = realloc(job->judged_seq, (job->njudged + 1) * sizeof(*s));
        if (!s)
                return -ENOMEM;
        job->judged_seq = s;
        char *id = strdup(it->id), *ev = strdup(o->evidence);
        if (!id || !ev) {
                free(id);
                free(ev);
                return -ENOMEM;
        }
        job->judged[job->njudged] = (struct rpc_scan_judged){ id, o->kind, ev };
        job->judged_seq[job->njudged] = it->seq;
        job->njudged++;
        return 0;
}

static void gitscan__run(struct gitscan *g, struct gitscan_job *job)
{
        char err[512];
        const char *last_repo = NULL;
        git_repository *repo = NULL;
        /* The diff of the whole repository against one base, shared by the
         * traces that name no files: it walks every file. */
        git_diff *whole = NULL;
        const char *whole_base = NULL;

        /* One repository after the other; the items are the thread's now. */
        if (job->nitems > 1)
                qsort(job->items, job->nitems, sizeof(*job->items), gitscan__cmp_items);
        for (size_t i = 0; i < job->nitems && !gitscan__quitting(g); i++) {
                const struct gitscan_item *it = &job->items[i];
                if (!last_repo || strcmp(last_repo, it->repo) != 0) {
                        last_repo = it->repo;
                        git_diff_free(whole);
                        whole = NULL;
                        err[0] = '\0';
                        if (gitscan__repo(&g->thread_repos, it->repo, &repo, err, sizeof(err)) < 0) {
                                gitscan__job_error(job, "%s", err);
                                repo = NULL;
                        } else {
                                job->repos++;
                        }
                }
                if (!repo)
                        continue;
                struct gitscan_outcome o;
                git_diff *diff = NULL;
                err[0] = '\0';
                if (!it->nfiles && whole && gitscan__same_base(whole_base, it->base)) {
                        diff = whole;
                } else if (gitscan__diff(repo, it, &diff, err, sizeof(err)) < 0) {
                        gitscan__job_error(job, "%s", err);
                        continue;
                } else if (!it->nfiles) {
                        git_diff_free(whole);
                        whole = diff;
                        whole_base = it->base;
                }
                int r = gitscan__judge(g, job, repo, it, diff, &o, err, sizeof(err));
                if (diff != whole)
                        git_diff_free(diff);
                if (r < 0) {
                        gitscan__job_error(job, "%s", err[0] ? err : "cannot judge a trace");
                        continue;
                }
                if (o.judged && gitscan__add_judged(job, it, &o) < 0)
                        gitscan__job_error(job, "out of memory keeping a judgement");
        }
        git_diff_free(whole);
        /* Let go of repositories no trace needed this time. */
        gitscan__repos_clear(&g->thread_repos, true);
}

static void gitscan__thread(void *arg)
{
        struct gitscan *g = arg;
        /* Background work: it runs on CPU time nothing else wants.  Under
         * SCHED_IDLE a request's wake-up of the loop thread preempts a scan
         * at once; with a nice value (10 below the daemon's, the fallback)
         * the loop could wait a whole time slice behind it, which on a
         * 2-core machine under load was a p99 of 4 ms instead of 0.6.  On
         * a machine busy all the time scans wait; their deadlines are in
         * seconds to hours.  Both are per thread on Linux. */
        id_t tid = (id_t)syscall(SYS_gettid);
        struct sched_param sp = { .sched_priority = 0 };
        if (sched_setscheduler((pid_t)tid, SCHED_IDLE, &sp) < 0) {
                errno = 0;
                int nice = getpriority(PRIO_PROCESS, tid);
                if (nice != -1 || errno == 0)
                        (void)setpriority(PRIO_PROCESS, tid, nice + 10 > 19 ? 19 : nice + 10);
        }
        if (symbols_new(&g->sy) < 0)
                g->sy = NULL; /* structural evidence then falls back to `modified` */
        uv_mutex_lock(&g->mu);
        for (;;) {
                while (!g->todo && !g->quit)
                        uv_cond_wait(&g->cond, &g->mu);
                if (g->quit)
                        break;
                struct gitscan_job *job = g->todo;
                g->todo = NULL;
                uv_mutex_unlock(&g->mu);
                gitscan__run(g, job);
                uv_mutex_lock(&g->mu);
                g->done = job;
                uv_async_send(&g->async);
        }
        uv_mutex_unlock(&g->mu);
        gitscan__repos_clear(&g->thread_repos, false);
        symbols_free(g->sy);
        g->sy = NULL;
}

/* ---- the loop side ---------------------------------------------------------------- */

/* Log a problem once, until another one comes (every scan and every
 * start would repeat it). */
static void gitscan__warn_once(struct gitscan *g, const char *msg)
{
        if (strcmp(msg, g->last_error) != 0) {
                log_warn("git: %s", msg);
                snprintf(g->last_error, sizeof(g->last_error), "%s", msg);
        } else {
                log_debug("git: %s", msg);
        }
}

static bool gitscan__watched(const struct config *cfg, const char *repo)
{
        for (size_t i = 0; i < cfg->ngit_repos; i++)
                if (strcmp(cfg->git_repos[i], repo) == 0)
                        return true;
        return false;
}

static int gitscan__copy_item(struct gitscan_item *it, const struct tracker_trace *tr)
{
        memset(it, 0, sizeof(*it));
        it->id = strdup(tr->id);
        it->repo = strdup(tr->repo);
        it->base = tr->base ? strdup(tr->base) : NULL;
        it->output = tr->output ? strdup(tr->output) : NULL;
        it->files = tr->nfiles ? calloc(tr->nfiles, sizeof(char *)) : NULL;
        it->seq = tr->seq;
        /* A trace stored before completed_at existed counts from its start. */
        it->completed_at = tr->completed_at ? tr->completed_at : tr->started_at;
        bool ok = it->id && it->repo && (!tr->base || it->base) && (!tr->output || it->output) &&
                  (!tr->nfiles || it->files);
        for (uint32_t i = 0; ok && i < tr->nfiles; i++) {
                it->files[i] = strdup(tr->files[i]);
                it->nfiles = i + 1;
                ok = it->files[i] != NULL;
        }
        if (!ok) {
                gitscan__item_free(it);
                return -ENOMEM;
        }
        return 0;
}

/* Is this trace one for the scanner? */
static bool gitscan__wanted(const struct config *cfg, const struct tracker_trace *tr)
{
        return tr->task == TASK_CODE && tr->repo && tr->completed && gitscan__watched(cfg, tr->repo);
}

/* The snapshot: copies of the traces to judge, oldest first, starting
 * where the last capped snapshot stopped (so that no trace waits behind
 * thousands of older ones forever).  It runs on the loop, so it walks the
 * code traces only, not every pending trace. */
static struct gitscan_job *gitscan__snapshot(struct gitscan *g)
{
        struct tracker *t = g->env->tracker;
        const struct config *cfg = g->cfg;
        struct gitscan_job *job = calloc(1, sizeof(*job));
        if (!job)
                return NULL;
        job->now = (uint64_t)time(NULL);
        job->settle_s = cfg->git_settle_s;
        job->deadline_s = cfg->git_deadline_s;
        job->threshold = cfg->git_text_threshold;
        job->started_ns = uv_hrtime();
        if (!cfg->ngit_repos)
                return job;

        const struct tracker_trace *start = tracker_task_first(t, TASK_CODE);
        while (start && g->resume_seq && start->seq < g->resume_seq)
                start = tracker_task_next(start);
        if (!start)
                start = tracker_task_first(t, TASK_CODE);
        g->resume_seq = 0;
        size_t bytes = 0;
        const struct tracker_trace *tr = start;
        for (bool wrapped = false; tr;) {
                if (gitscan__wanted(cfg, tr)) {
                        size_t out = tr->output ? strlen(tr->output) : 0;
                        if (job->nitems == GITSCAN_MAX_ITEMS ||
                            (job->nitems && bytes + out > GITSCAN_MAX_OUTPUT_BYTES)) {
                                g->resume_seq = tr->seq; /* the rest next time */
                                break;
                        }
                        if (job->nitems == job->items_cap) {
                                size_t cap = job->items_cap ? job->items_cap * 2 : 16;
                                struct gitscan_item *v = realloc(job->items, cap * sizeof(*v));
                                if (!v)
                                        break; /* what was copied goes */
                                job->items = v;
                                job->items_cap = cap;
                        }
                        if (gitscan__copy_item(&job->items[job->nitems], tr) < 0)
                                break;
                        job->nitems++;
                        bytes += out;
                }
                tr = tracker_task_next(tr);
                if (!tr && !wrapped) {
                        wrapped = true;
                        tr = tracker_task_first(t, TASK_CODE);
                }
                if (wrapped && tr == start)
                        break;
        }
        return job;
}

static void gitscan__answer(struct gitscan_waiter **list, const struct rpc_scan_report *rep)
{
        while (*list) {
                struct gitscan_waiter *w = *list;
                *list = w->next;
                if (w->cb)
                        w->cb(w->arg, rep);
                free(w);
        }
}

static void gitscan__start(struct gitscan *g)
{
        struct gitscan_job *job = gitscan__snapshot(g);
        g->due = false;
        g->inflight = g->waiting;
        g->waiting = NULL;
        g->waiting_tail = &g->waiting;
        if (!job) {
                log_error("git scan: out of memory taking the snapshot");
                struct rpc_scan_report none = { 0 };
                gitscan__answer(&g->inflight, &none);
                return;
        }
        g->busy = true;
        uv_mutex_lock(&g->mu);
        g->todo = job;
        uv_cond_signal(&g->cond);
        uv_mutex_unlock(&g->mu);
}

static void gitscan__maybe_start(struct gitscan *g)
{
        if (!g->busy && !g->stopping && (g->waiting || g->due))
                gitscan__start(g);
}

/* Apply a finished job's judgements and answer the requests that waited
 * for it. */
static void gitscan__apply(struct gitscan *g, struct gitscan_job *job)
{
        struct rpc_env *env = g->env;
        uint64_t now = (uint64_t)time(NULL);
        bool writable = !env->journal.writable || env->journal.writable(env->journal.data);

        for (size_t i = 0; i < job->nerrors; i++)
                gitscan__warn_once(g, job->errors[i]);
        size_t k = 0;
        for (size_t i = 0; i < job->njudged; i++) {
                struct rpc_scan_judged j = job->judged[i];
                const struct tracker_trace *tr = tracker_trace_get(env->tracker, j.trace_id);
                struct tracker_result res;
                bool keep = writable && tr && tr->seq == job->judged_seq[i];
                int rc = keep ? tracker_resolve(env->tracker, j.trace_id, j.kind, 0.0, 0, now,
                                                TRACKER_SRC_GIT, &res)
                              : -ENOENT;
                if (rc < 0) {
                        if (keep)
                                log_warn("git scan: cannot resolve %s as %s: %s", j.trace_id,
                                         tracker_kind_name(j.kind), strerror(-rc));
                        free((char *)j.trace_id);
                        free((char *)j.evidence);
                        continue;
                }
                struct journal_entry e = {
                        .op = JOURNAL_OUTCOME, .at = now, .uid = 0, .trace_id = j.trace_id,
                        .kind = j.kind, .confidence = 0.0, .source = TRACKER_SRC_GIT,
                        .evidence = j.evidence,
                };
                if (env->journal.record && env->journal.record(env->journal.data, &e) < 0)
                        log_error("out of memory journaling git's judgement of %s; it may be "
                                  "lost at a restart", j.trace_id);
                env->counters.git_judged_total++;
                log_debug("git: %s is %s (%s)", j.trace_id, tracker_kind_name(j.kind), j.evidence);
                job->judged[k] = j;
                job->judged_seq[k] = job->judged_seq[i];
                k++;
        }
        job->njudged = k;
        env->counters.scans_total++;
        struct rpc_scan_report rep = {
                .repos = job->repos,
                .judged = job->judged,
                .njudged = job->njudged,
                .duration_ms = (uv_hrtime() - job->started_ns) / 1000000,
        };
        gitscan__answer(&g->inflight, &rep);
}

static void gitscan__on_close(uv_handle_t *h);

static void gitscan__on_async(uv_async_t *h)
{
        struct gitscan *g = h->data;
        uv_mutex_lock(&g->mu);
        struct gitscan_job *job = g->done;
        g->done = NULL;
        uv_mutex_unlock(&g->mu);
        if (job) {
                g->busy = false;
                if (!g->stopping)
                        gitscan__apply(g, job);
                gitscan__job_free(job);
        }
        gitscan__maybe_start(g);
}

static void gitscan__on_timer(uv_timer_t *h)
{
        struct gitscan *g = h->data;
        if (!g->cfg->ngit_repos)
                return;
        g->due = true;
        gitscan__maybe_start(g);
}

/* rpc_git.scan */
static int gitscan__request(void *data, rpc_scan_cb cb, void *arg)
{
        struct gitscan *g = data;
        if (g->stopping)
                return -ECANCELED;
        struct gitscan_waiter *w = calloc(1, sizeof(*w));
        if (!w)
                return -ENOMEM;
        w->cb = cb;
        w->arg = arg;
        *g->waiting_tail = w;
        g->waiting_tail = &w->next;
        /* Started from the async callback, never from within this call. */
        uv_async_send(&g->async);
        return 0;
}

/* rpc_git.head: the loop's own handles. */
static int gitscan__head(void *data, const char *repo, char *oid, size_t len)
{
        struct gitscan *g = data;
        char err[512];
        git_repository *r;
        git_oid id;
        int rc = gitscan__repo(&g->loop_repos, repo, &r, err, sizeof(err));
        if (rc < 0) {
                gitscan__warn_once(g, err);
                return rc;
        }
        rc = git_reference_name_to_id(&id, r, "HEAD");
        if (rc == GIT_ENOTFOUND || rc == GIT_EUNBORNBRANCH)
                return -ENOENT;
        if (rc < 0) {
                snprintf(err, sizeof(err), "%s: cannot read HEAD: %s", repo, gitscan__git_error());
                gitscan__warn_once(g, err);
                return -EIO;
        }
        if (len < GIT_OID_HEXSZ + 1)
                return -ENAMETOOLONG;
        git_oid_tostr(oid, len, &id);
        return 0;
}

void gitscan_hooks(struct gitscan *g, struct rpc_git *hooks)
{
        *hooks = (struct rpc_git){ .head = gitscan__head, .scan = gitscan__request, .data = g };
}

void gitscan_reconfigure(struct gitscan *g)
{
        uint64_t ms = (uint64_t)g->cfg->git_scan_interval_s * 1000;
        uv_timer_start(&g->timer, gitscan__on_timer, ms, ms);
        /* The loop's handles are reopened as needed: a repository that is
         * no longer watched is closed. */
        gitscan__repos_clear(&g->loop_repos, false);
}

int gitscan_open(struct gitscan **out, uv_loop_t *loop, struct rpc_env *env,
                 const struct config *cfg, char *err, size_t errlen)
{
        struct gitscan *g = calloc(1, sizeof(*g));
        if (!g) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        if (git_libgit2_init() < 0) {
                snprintf(err, errlen, "cannot initialise libgit2: %s", gitscan__git_error());
                free(g);
                return -EIO;
        }
        /* Only repositories the administrator listed as [git] repo are ever
         * opened, and they are often another user's: do not refuse them as
         * git's safe.directory check would. */
        git_libgit2_opts(GIT_OPT_SET_OWNER_VALIDATION, 0);
        /* Nor read the user's or the system's git configuration: the daemon
         * needs none of it, and a HOME it may not read (a service user's,
         * or root's under setpriv) would make every open fail. */
        git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_GLOBAL, "");
        git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_XDG, "");
        git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_SYSTEM, "");
        git_libgit2_opts(GIT_OPT_SET_SEARCH_PATH, GIT_CONFIG_LEVEL_PROGRAMDATA, "");
        g->loop = loop;
        g->env = env;
        g->cfg = cfg;
        g->waiting_tail = &g->waiting;
        int r = uv_mutex_init(&g->mu);
        if (r == 0 && (r = uv_cond_init(&g->cond)) != 0)
                uv_mutex_destroy(&g->mu);
        if (r != 0) {
                snprintf(err, errlen, "git scanner: %s", uv_strerror(r));
                git_libgit2_shutdown();
                free(g);
                return r;
        }
        uv_async_init(loop, &g->async, gitscan__on_async);
        uv_timer_init(loop, &g->timer);
        g->async.data = g->timer.data = g;
        r = uv_thread_create(&g->thread, gitscan__thread, g);
        if (r != 0) {
                snprintf(err, errlen, "cannot start the git scanner thread: %s", uv_strerror(r));
                /* No thread: close the handles; g is freed in their close
                 * callbacks, when the caller runs the loop. */
                g->stopping = true;
                g->open_handles = 2;
                uv_close((uv_handle_t *)&g->async, gitscan__on_close);
                uv_close((uv_handle_t *)&g->timer, gitscan__on_close);
                return r;
        }
        gitscan_reconfigure(g);
        *out = g;
        return 0;
}

static void gitscan__on_close(uv_handle_t *h)
{
        struct gitscan *g = h->data;
        if (--g->open_handles > 0)
                return;
        uv_cond_destroy(&g->cond);
        uv_mutex_destroy(&g->mu);
        gitscan__repos_clear(&g->loop_repos, false);
        free(g);
        git_libgit2_shutdown();
}

void gitscan_close(struct gitscan *g)
{
        if (!g)
                return;
        g->stopping = true;
        uv_timer_stop(&g->timer);
        uv_mutex_lock(&g->mu);
        g->quit = true;
        uv_cond_signal(&g->cond);
        uv_mutex_unlock(&g->mu);
        uv_thread_join(&g->thread); /* a running job stops after its current trace */
        gitscan__job_free(g->todo);
        gitscan__job_free(g->done);
        g->todo = g->done = NULL;
        gitscan__answer(&g->inflight, NULL);
        gitscan__answer(&g->waiting, NULL);
        g->waiting_tail = &g->waiting;
        g->open_handles = 2;
        uv_close((uv_handle_t *)&g->async, gitscan__on_close);
        uv_close((uv_handle_t *)&g->timer, gitscan__on_close);
}
