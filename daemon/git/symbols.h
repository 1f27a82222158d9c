/* symbols.h - the symbols of a source file and how two versions differ,
 * found with tree-sitter queries (one set of .scm patterns per language in
 * symbols.c).
 *
 * A symbol is a function, method, class, struct, enum, union, trait,
 * interface or type declared in the file, with
 *   - its qualified name: the names of the scopes around it joined by the
 *     language's separator (`Class.method` in Python, JavaScript, TypeScript
 *     and Java; `Type::fn`, `<Type as Trait>::fn` and `ns::Class::method` in
 *     Rust and C++; `pkg.Func` and `pkg.Type.Method` in Go);
 *   - its signature: the declaration's head, everything before its body
 *     (modifiers, return type, name, parameter list), as tokens joined by
 *     one space, comments left out, so white space never matters;
 *   - a hash of its body's tokens, without comments and without the
 *     symbols nested in it (a class's own body is its fields, not its
 *     methods, which are symbols of their own).
 *
 * A `struct symbols` holds a parser and the compiled queries; it belongs to
 * one thread (the git scanner's).  Nothing here does I/O.
 */
#ifndef OUTCOMED_SYMBOLS_H
#define OUTCOMED_SYMBOLS_H

#include <stddef.h>
#include <stdint.h>

enum symbols_lang {
        SYMBOLS_NONE,
        SYMBOLS_C,
        SYMBOLS_CPP,
        SYMBOLS_PYTHON,
        SYMBOLS_RUST,
        SYMBOLS_JAVASCRIPT,
        SYMBOLS_TYPESCRIPT,
        SYMBOLS_TSX,
        SYMBOLS_GO,
        SYMBOLS_JAVA,
        SYMBOLS__COUNT
};

/* The language of a path, by its extension; SYMBOLS_NONE when unknown. */
enum symbols_lang symbols_lang_of(const char *path);
const char *symbols_lang_name(enum symbols_lang lang);

struct symbol {
        char *name;      /* qualified */
        char *signature; /* normalised head */
        uint64_t body;   /* hash of the body's own tokens; 0: no body */
};

/* The symbols of one file, sorted by name, then signature. */
struct symbols_file {
        struct symbol *v;
        size_t n;
};

struct symbols;

/* 0 or -ENOMEM. */
int symbols_new(struct symbols **out);
void symbols_free(struct symbols *sy); /* accepts NULL */

/* Give up parsing one file after this long (default 5 s): error recovery
 * on some garbage takes very long. */
void symbols_set_timeout(struct symbols *sy, uint64_t micros);

/* Parse src (len bytes, any bytes at all) and list its symbols into *out.
 * Returns 0; -EINVAL for SYMBOLS_NONE; -ENOTSUP when the grammar or its
 * queries cannot be used with this tree-sitter runtime; -ETIMEDOUT when
 * parsing took too long; -ENOMEM.  *out is written only on success. */
int symbols_extract(struct symbols *sy, enum symbols_lang lang, const char *src, size_t len,
                    struct symbols_file *out);
void symbols_file_clear(struct symbols_file *f); /* accepts an empty one */

enum symbols_change {
        SYMBOLS_REMOVED,      /* in old only */
        SYMBOLS_SIGNATURE,    /* same name, a signature of old is gone */
        SYMBOLS_BODY,         /* same name and signatures, another body */
        SYMBOLS_ADDED,        /* in new only (or a new overload) */
};

/* Compare two versions by qualified name; cb (may be NULL) is called for
 * each change, in name order.  Symbols sharing a name (overloads,
 * prototype and definition) are paired by signature.  Returns how many
 * changes there were. */
size_t symbols_diff(const struct symbols_file *old, const struct symbols_file *cur,
                    void (*cb)(void *data, enum symbols_change ch, const struct symbol *s),
                    void *data);

#endif
