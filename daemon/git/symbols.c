/* symbols.c - symbols of a source file with tree-sitter, and their diff.
 *
 * Each language has a query (the .scm text below) whose patterns name
 * what they match with captures:
 *   @def          a symbol's node (function, method, class, struct, ...)
 *   @name         its name
 *   @body         its body, when it is not the node's `body` field
 *   @receiver     Go: a method's receiver type, put before its name
 *   @scope        a node that only qualifies the symbols inside it (Rust
 *                 impl and mod, C++ namespace, TypeScript namespace)
 *   @scope.name   its name; @scope.type: a Rust impl's type (its generic
 *                 arguments dropped; `<Type as Trait>` for a trait impl)
 *   @package      Go: the package name, put before every name
 * A symbol's qualified name is the names of the symbols and scopes whose
 * byte ranges hold it, outermost first; one pass over the captures sorted
 * by position with a stack gives them.  Then for each symbol a tree cursor
 * walks its head (everything but the body) and its body, skipping comments
 * and, in the body, the symbols nested in it.
 *
 * The grammars are the generated C sources of the npm packages listed in
 * grammars/package.json (ABI 14), compiled into the daemon.
 */
#include "symbols.h"
#include "textbuf.h"

#include "grow.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <tree_sitter/api.h>

const TSLanguage *tree_sitter_c(void);
const TSLanguage *tree_sitter_cpp(void);
const TSLanguage *tree_sitter_python(void);
const TSLanguage *tree_sitter_rust(void);
const TSLanguage *tree_sitter_javascript(void);
const TSLanguage *tree_sitter_typescript(void);
const TSLanguage *tree_sitter_tsx(void);
const TSLanguage *tree_sitter_go(void);
const TSLanguage *tree_sitter_java(void);

#define SYMBOLS_PARSE_TIMEOUT_US (5 * 1000 * 1000)

/* ---- the queries ------------------------------------------------------- */

/* A function's declarator, through up to two pointer declarators (C). */
#define Q_C_DECLARATOR(NAME)                                                              \
        "[(function_declarator declarator: " NAME " @name)"                               \
        " (pointer_declarator declarator: (function_declarator declarator: " NAME " @name))" \
        " (pointer_declarator declarator: (pointer_declarator declarator:"                \
        "   (function_declarator declarator: " NAME " @name)))]"

static const char symbols__q_c[] =
        "(function_definition declarator: " Q_C_DECLARATOR("(_)") ") @def\n"
        "(declaration declarator: " Q_C_DECLARATOR("(identifier)") ") @def\n"
        "(struct_specifier name: (_) @name body: (_)) @def\n"
        "(union_specifier name: (_) @name body: (_)) @def\n"
        "(enum_specifier name: (_) @name body: (_)) @def\n"
        "(type_definition type: [(struct_specifier body: (_) @body)"
        "                        (union_specifier body: (_) @body)"
        "                        (enum_specifier body: (_) @body)]"
        "  declarator: (type_identifier) @name) @def\n";

/* C++: also references, qualified names (Class::method), in-class
 * declarations, classes and namespaces. */
#define Q_CPP_DECLARATOR                                                                  \
        "[(function_declarator declarator: (_) @name)"                                    \
        " (pointer_declarator declarator: (function_declarator declarator: (_) @name))"   \
        " (pointer_declarator declarator: (pointer_declarator declarator:"                \
        "   (function_declarator declarator: (_) @name)))"                                \
        " (reference_declarator (function_declarator declarator: (_) @name))]"

static const char symbols__q_cpp[] =
        "(function_definition declarator: " Q_CPP_DECLARATOR ") @def\n"
        "(declaration declarator: " Q_CPP_DECLARATOR ") @def\n"
        "(field_declaration declarator: " Q_CPP_DECLARATOR ") @def\n"
        "(class_specifier name: (_) @name body: (_)) @def\n"
        "(struct_specifier name: (_) @name body: (_)) @def\n"
        "(union_specifier name: (_) @name body: (_)) @def\n"
        "(enum_specifier name: (_) @name body: (_)) @def\n"
        "(namespace_definition name: (_) @scope.name) @scope\n";

static const char symbols__q_python[] =
        "(function_definition name: (identifier) @name) @def\n"
        "(class_definition name: (identifier) @name) @def\n";

static const char symbols__q_rust[] =
        "(function_item name: (_) @name) @def\n"
        "(function_signature_item name: (_) @name) @def\n"
        "(struct_item name: (_) @name) @def\n"
        "(enum_item name: (_) @name) @def\n"
        "(union_item name: (_) @name) @def\n"
        "(trait_item name: (_) @name) @def\n"
        "(type_item name: (_) @name) @def\n"
        "(impl_item type: (_) @scope.type) @scope\n"
        "(mod_item name: (_) @scope.name body: (_)) @scope\n";

/* Functions held by a variable or a class field, in both JavaScript and
 * TypeScript. */
#define Q_JS_FUNCTION_VALUE                                                               \
        "[(arrow_function body: (_) @body)"                                               \
        " (function_expression body: (_) @body)"                                          \
        " (generator_function body: (_) @body)]"

static const char symbols__q_javascript[] =
        "(function_declaration name: (_) @name) @def\n"
        "(generator_function_declaration name: (_) @name) @def\n"
        "(class_declaration name: (_) @name) @def\n"
        "(method_definition name: (_) @name) @def\n"
        "(variable_declarator name: (identifier) @name value: " Q_JS_FUNCTION_VALUE ") @def\n"
        "(field_definition property: (_) @name value: " Q_JS_FUNCTION_VALUE ") @def\n";

/* TypeScript and TSX share it. */
static const char symbols__q_typescript[] =
        "(function_declaration name: (_) @name) @def\n"
        "(generator_function_declaration name: (_) @name) @def\n"
        "(function_signature name: (_) @name) @def\n"
        "(class_declaration name: (_) @name) @def\n"
        "(abstract_class_declaration name: (_) @name) @def\n"
        "(interface_declaration name: (_) @name) @def\n"
        "(enum_declaration name: (_) @name) @def\n"
        "(type_alias_declaration name: (_) @name) @def\n"
        "(method_definition name: (_) @name) @def\n"
        "(method_signature name: (_) @name) @def\n"
        "(abstract_method_signature name: (_) @name) @def\n"
        "(variable_declarator name: (identifier) @name value: " Q_JS_FUNCTION_VALUE ") @def\n"
        "(public_field_definition name: (_) @name value: " Q_JS_FUNCTION_VALUE ") @def\n"
        "(internal_module name: (_) @scope.name) @scope\n"
        "(module name: (_) @scope.name) @scope\n";

static const char symbols__q_go[] =
        "(package_clause (package_identifier) @package)\n"
        "(function_declaration name: (_) @name) @def\n"
        "(method_declaration"
        "  receiver: (parameter_list (parameter_declaration type: ["
        "    (type_identifier) @receiver"
        "    (pointer_type (type_identifier) @receiver)"
        "    (generic_type type: (type_identifier) @receiver)"
        "    (pointer_type (generic_type type: (type_identifier) @receiver))]))"
        "  name: (_) @name) @def\n"
        "(type_spec name: (_) @name type: (_) @body) @def\n"
        "(method_elem name: (_) @name) @def\n";

static const char symbols__q_java[] =
        "(class_declaration name: (_) @name) @def\n"
        "(interface_declaration name: (_) @name) @def\n"
        "(enum_declaration name: (_) @name) @def\n"
        "(record_declaration name: (_) @name) @def\n"
        "(annotation_type_declaration name: (_) @name) @def\n"
        "(method_declaration name: (_) @name) @def\n"
        "(constructor_declaration name: (_) @name) @def\n";

struct symbols__lang {
        const char *name;
        const TSLanguage *(*language)(void);
        const char *query;
        const char *sep; /* between the parts of a qualified name */
};

static const struct symbols__lang symbols__langs[SYMBOLS__COUNT] = {
        [SYMBOLS_C] = { "c", tree_sitter_c, symbols__q_c, "." },
        [SYMBOLS_CPP] = { "cpp", tree_sitter_cpp, symbols__q_cpp, "::" },
        [SYMBOLS_PYTHON] = { "python", tree_sitter_python, symbols__q_python, "." },
        [SYMBOLS_RUST] = { "rust", tree_sitter_rust, symbols__q_rust, "::" },
        [SYMBOLS_JAVASCRIPT] = { "javascript", tree_sitter_javascript, symbols__q_javascript, "." },
        [SYMBOLS_TYPESCRIPT] = { "typescript", tree_sitter_typescript, symbols__q_typescript, "." },
        [SYMBOLS_TSX] = { "tsx", tree_sitter_tsx, symbols__q_typescript, "." },
        [SYMBOLS_GO] = { "go", tree_sitter_go, symbols__q_go, "." },
        [SYMBOLS_JAVA] = { "java", tree_sitter_java, symbols__q_java, "." },
};

static const struct {
        const char *ext;
        enum symbols_lang lang;
} symbols__exts[] = {
        { "c", SYMBOLS_C },         { "h", SYMBOLS_C },         { "cc", SYMBOLS_CPP },
        { "cpp", SYMBOLS_CPP },     { "cxx", SYMBOLS_CPP },     { "c++", SYMBOLS_CPP },
        { "hh", SYMBOLS_CPP },      { "hpp", SYMBOLS_CPP },     { "hxx", SYMBOLS_CPP },
        { "h++", SYMBOLS_CPP },     { "ipp", SYMBOLS_CPP },     { "py", SYMBOLS_PYTHON },
        { "pyi", SYMBOLS_PYTHON },  { "rs", SYMBOLS_RUST },     { "js", SYMBOLS_JAVASCRIPT },
        { "mjs", SYMBOLS_JAVASCRIPT }, { "cjs", SYMBOLS_JAVASCRIPT },
        { "jsx", SYMBOLS_JAVASCRIPT }, { "ts", SYMBOLS_TYPESCRIPT },
        { "mts", SYMBOLS_TYPESCRIPT }, { "cts", SYMBOLS_TYPESCRIPT }, { "tsx", SYMBOLS_TSX },
        { "go", SYMBOLS_GO },       { "java", SYMBOLS_JAVA },
};

enum symbols_lang symbols_lang_of(const char *path)
{
        const char *slash = strrchr(path, '/');
        const char *base = slash ? slash + 1 : path;
        const char *dot = strrchr(base, '.');
        if (!dot || dot == base)
                return SYMBOLS_NONE;
        for (size_t i = 0; i < sizeof(symbols__exts) / sizeof(symbols__exts[0]); i++)
                if (strcmp(dot + 1, symbols__exts[i].ext) == 0)
                        return symbols__exts[i].lang;
        return SYMBOLS_NONE;
}

const char *symbols_lang_name(enum symbols_lang lang)
{
        if (lang <= SYMBOLS_NONE || lang >= SYMBOLS__COUNT)
                return "none";
        return symbols__langs[lang].name;
}

/* ---- the handle -------------------------------------------------------- */

enum symbols__role {
        ROLE_OTHER,
        ROLE_DEF,
        ROLE_NAME,
        ROLE_BODY,
        ROLE_RECEIVER,
        ROLE_SCOPE,
        ROLE_SCOPE_NAME,
        ROLE_SCOPE_TYPE,
        ROLE_PACKAGE,
};

struct symbols__query {
        TSQuery *query;
        uint8_t *roles; /* by capture id */
        bool failed;    /* the grammar or the query does not work here */
};

struct symbols {
        TSParser *parser;
        TSQueryCursor *cursor;
        struct symbols__query q[SYMBOLS__COUNT];
};

int symbols_new(struct symbols **out)
{
        struct symbols *sy = calloc(1, sizeof(*sy));
        if (!sy)
                return -ENOMEM;
        sy->parser = ts_parser_new();
        sy->cursor = ts_query_cursor_new();
        if (!sy->parser || !sy->cursor) {
                symbols_free(sy);
                return -ENOMEM;
        }
        ts_parser_set_timeout_micros(sy->parser, SYMBOLS_PARSE_TIMEOUT_US);
        *out = sy;
        return 0;
}

void symbols_free(struct symbols *sy)
{
        if (!sy)
                return;
        for (int i = 0; i < SYMBOLS__COUNT; i++) {
                if (sy->q[i].query)
                        ts_query_delete(sy->q[i].query);
                free(sy->q[i].roles);
        }
        if (sy->cursor)
                ts_query_cursor_delete(sy->cursor);
        if (sy->parser)
                ts_parser_delete(sy->parser);
        free(sy);
}

void symbols_set_timeout(struct symbols *sy, uint64_t micros)
{
        ts_parser_set_timeout_micros(sy->parser, micros);
}

static enum symbols__role symbols__role_of(const char *name, uint32_t len)
{
        static const struct {
                const char *name;
                enum symbols__role role;
        } roles[] = {
                { "def", ROLE_DEF },           { "name", ROLE_NAME },
                { "body", ROLE_BODY },         { "receiver", ROLE_RECEIVER },
                { "scope", ROLE_SCOPE },       { "scope.name", ROLE_SCOPE_NAME },
                { "scope.type", ROLE_SCOPE_TYPE }, { "package", ROLE_PACKAGE },
        };
        for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
                if (strlen(roles[i].name) == len && memcmp(roles[i].name, name, len) == 0)
                        return roles[i].role;
        return ROLE_OTHER;
}

/* The language's compiled query, made at first use. */
static int symbols__query(struct symbols *sy, enum symbols_lang lang, struct symbols__query **out)
{
        struct symbols__query *q = &sy->q[lang];
        const struct symbols__lang *l = &symbols__langs[lang];
        if (q->failed)
                return -ENOTSUP;
        if (!q->query) {
                const TSLanguage *tl = l->language();
                uint32_t v = ts_language_version(tl);
                if (v < TREE_SITTER_MIN_COMPATIBLE_LANGUAGE_VERSION ||
                    v > TREE_SITTER_LANGUAGE_VERSION) {
                        q->failed = true;
                        return -ENOTSUP;
                }
                uint32_t off;
                TSQueryError qe;
                q->query = ts_query_new(tl, l->query, (uint32_t)strlen(l->query), &off, &qe);
                if (!q->query) {
                        q->failed = true; /* a bug in the query text: see the unit tests */
                        return -ENOTSUP;
                }
                uint32_t n = ts_query_capture_count(q->query);
                q->roles = calloc(n ? n : 1, 1);
                if (!q->roles) {
                        ts_query_delete(q->query);
                        q->query = NULL;
                        return -ENOMEM;
                }
                for (uint32_t i = 0; i < n; i++) {
                        uint32_t len;
                        const char *name = ts_query_capture_name_for_id(q->query, i, &len);
                        q->roles[i] = (uint8_t)symbols__role_of(name, len);
                }
        }
        *out = q;
        return 0;
}

/* ---- names (textbuf.h) ------------------------------------------------------ */

static void symbols__put_name(struct textbuf *b, const char *src, TSNode n)
{
        uint32_t s = ts_node_start_byte(n), e = ts_node_end_byte(n);
        for (uint32_t i = s; i < e; i++) {
                char ch = src[i];
                if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r' && ch != '\f' &&
                    ch != '\v')
                        textbuf_put(b, &ch, 1);
        }
}

/* ---- collecting captures ------------------------------------------------ */

struct symbols__entry {
        uint32_t start, end;
        TSNode node;
        TSNode name;     /* a def's name, or a scope's */
        TSNode body;     /* @body; else the node's body field */
        TSNode receiver; /* Go */
        TSNode impl_type; /* Rust: the impl's type */
        bool def;         /* a symbol; else only a scope */
        char *qual;       /* the qualified name */
        const char *segment; /* what it adds to the names inside it (in qual) */
};

struct symbols__list {
        struct symbols__entry *v;
        size_t n, cap;
};

static struct symbols__entry *symbols__push(struct symbols__list *l)
{
        struct symbols__entry *v = grow_to(l->v, &l->cap, l->n + 1, sizeof(*v), 32);
        if (!v)
                return NULL;
        l->v = v;
        struct symbols__entry *e = &l->v[l->n++];
        memset(e, 0, sizeof(*e));
        return e;
}

/* Outer first: by start, then the longer one, then defs before scopes. */
static int symbols__cmp_entries(const void *a, const void *b)
{
        const struct symbols__entry *x = a, *y = b;
        if (x->start != y->start)
                return x->start < y->start ? -1 : 1;
        if (x->end != y->end)
                return x->end > y->end ? -1 : 1;
        return (int)y->def - (int)x->def;
}

static bool symbols__same(const struct symbols__entry *x, const struct symbols__entry *y)
{
        return x->start == y->start && x->end == y->end && x->def == y->def;
}

/* Run the query; one entry per def or scope node (merged when several
 * patterns match one node).  *package gets Go's package name node. */
static int symbols__collect(struct symbols *sy, struct symbols__query *q, TSNode root,
                            struct symbols__list *l, TSNode *package)
{
        TSQueryMatch m;
        ts_query_cursor_exec(sy->cursor, q->query, root);
        while (ts_query_cursor_next_match(sy->cursor, &m)) {
                struct symbols__entry e;
                memset(&e, 0, sizeof(e));
                bool have = false;
                for (uint16_t i = 0; i < m.capture_count; i++) {
                        TSNode n = m.captures[i].node;
                        switch ((enum symbols__role)q->roles[m.captures[i].index]) {
                        case ROLE_DEF:
                        case ROLE_SCOPE:
                                e.node = n;
                                e.def = q->roles[m.captures[i].index] == ROLE_DEF;
                                have = true;
                                break;
                        case ROLE_NAME:
                        case ROLE_SCOPE_NAME:
                                e.name = n;
                                break;
                        case ROLE_BODY:
                                e.body = n;
                                break;
                        case ROLE_RECEIVER:
                                e.receiver = n;
                                break;
                        case ROLE_SCOPE_TYPE:
                                e.impl_type = n;
                                break;
                        case ROLE_PACKAGE:
                                *package = n;
                                break;
                        case ROLE_OTHER:
                                break;
                        }
                }
                if (!have)
                        continue;
                if (e.def && ts_node_is_null(e.name))
                        continue; /* a symbol needs a name */
                e.start = ts_node_start_byte(e.node);
                e.end = ts_node_end_byte(e.node);
                if (ts_node_is_null(e.body))
                        e.body = ts_node_child_by_field_name(e.node, "body", 4);
                struct symbols__entry *slot = symbols__push(l);
                if (!slot)
                        return -ENOMEM;
                *slot = e;
        }
        if (l->n > 1)
                qsort(l->v, l->n, sizeof(*l->v), symbols__cmp_entries);
        /* Merge the entries of one node: the first keeps what the others
         * found. */
        size_t k = 0;
        for (size_t i = 0; i < l->n; i++) {
                if (k > 0 && symbols__same(&l->v[k - 1], &l->v[i])) {
                        struct symbols__entry *d = &l->v[k - 1], *s = &l->v[i];
                        if (ts_node_is_null(d->name))
                                d->name = s->name;
                        if (ts_node_is_null(d->receiver))
                                d->receiver = s->receiver;
                        if (ts_node_is_null(d->impl_type))
                                d->impl_type = s->impl_type;
                        continue;
                }
                l->v[k++] = l->v[i];
        }
        l->n = k;
        return 0;
}

/* The part a scope adds to the names inside it; "" adds nothing. */
static void symbols__scope_segment(const char *src, const struct symbols__entry *e,
                                   struct textbuf *b)
{
        if (ts_node_is_null(e->impl_type)) {
                if (!ts_node_is_null(e->name))
                        symbols__put_name(b, src, e->name);
                return;
        }
        /* Rust: impl<T> Type<T> -> Type; impl Trait for Type -> <Type as Trait>. */
        TSNode ty = e->impl_type;
        if (strcmp(ts_node_type(ty), "generic_type") == 0) {
                TSNode inner = ts_node_child_by_field_name(ty, "type", 4);
                if (!ts_node_is_null(inner))
                        ty = inner;
        }
        TSNode trait = ts_node_child_by_field_name(e->node, "trait", 5);
        if (ts_node_is_null(trait)) {
                symbols__put_name(b, src, ty);
                return;
        }
        if (strcmp(ts_node_type(trait), "generic_type") == 0) {
                TSNode inner = ts_node_child_by_field_name(trait, "type", 4);
                if (!ts_node_is_null(inner))
                        trait = inner;
        }
        textbuf_puts(b, "<");
        symbols__put_name(b, src, ty);
        textbuf_puts(b, " as ");
        symbols__put_name(b, src, trait);
        textbuf_puts(b, ">");
}

/* Give every entry its qualified name: a stack of the entries whose range
 * holds the current one.  A def's qual is its qualified name; a scope's is
 * the prefix for what is inside it. */
static int symbols__qualify(const char *src, const char *sep, TSNode package,
                            struct symbols__list *l)
{
        size_t *stack = malloc((l->n ? l->n : 1) * sizeof(*stack));
        size_t depth = 0;
        if (!stack)
                return -ENOMEM;
        for (size_t i = 0; i < l->n; i++) {
                struct symbols__entry *e = &l->v[i];
                while (depth && l->v[stack[depth - 1]].end <= e->start)
                        depth--;
                struct textbuf b = { 0 };
                const char *outer = depth ? l->v[stack[depth - 1]].qual : NULL;
                if (outer && *outer) {
                        textbuf_puts(&b, outer);
                } else if (!ts_node_is_null(package)) {
                        symbols__put_name(&b, src, package);
                }
                struct textbuf seg = { 0 };
                if (e->def) {
                        if (!ts_node_is_null(e->receiver)) {
                                symbols__put_name(&seg, src, e->receiver);
                                textbuf_puts(&seg, sep);
                        }
                        symbols__put_name(&seg, src, e->name);
                } else {
                        symbols__scope_segment(src, e, &seg);
                }
                if (seg.len) {
                        if (b.len)
                                textbuf_puts(&b, sep);
                        textbuf_put(&b, seg.p, seg.len);
                }
                bool oom = seg.oom;
                free(seg.p);
                if (!b.p)
                        textbuf_put(&b, "", 0); /* an empty name */
                if (oom || b.oom) {
                        free(b.p);
                        free(stack);
                        return -ENOMEM;
                }
                e->qual = b.p;
                stack[depth++] = i;
        }
        free(stack);
        return 0;
}

/* ---- heads and bodies --------------------------------------------------- */

static bool symbols__is_comment(TSNode n)
{
        return strstr(ts_node_type(n), "comment") != NULL;
}

/* Is n one of the defs (other than `self`)?  Defs are sorted by start. */
static bool symbols__is_nested_def(const struct symbols__list *l, const struct symbols__entry *self,
                                   TSNode n)
{
        uint32_t s = ts_node_start_byte(n), e = ts_node_end_byte(n);
        size_t lo = 0, hi = l->n;
        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (l->v[mid].start < s)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        for (size_t i = lo; i < l->n && l->v[i].start == s; i++)
                if (l->v[i].def && l->v[i].end == e && &l->v[i] != self &&
                    ts_node_eq(l->v[i].node, n))
                        return true;
        return false;
}

#define FNV_OFFSET 1469598103934665603ull
#define FNV_PRIME 1099511628211ull

struct symbols__walk {
        const char *src;
        const struct symbols__list *l;
        const struct symbols__entry *self;
        TSNode skip;             /* a subtree left out (the body, in a head) */
        bool skip_defs;          /* leave nested symbols out */
        struct textbuf *head; /* tokens joined by spaces, or NULL */
        uint64_t hash;           /* FNV-1a of the tokens */
};

static void symbols__walk(struct symbols__walk *w, TSNode root)
{
        TSTreeCursor c = ts_tree_cursor_new(root);
        for (;;) {
                TSNode n = ts_tree_cursor_current_node(&c);
                bool descend = false;
                if (symbols__is_comment(n) ||
                    (!ts_node_is_null(w->skip) && ts_node_eq(n, w->skip)) ||
                    (w->skip_defs && symbols__is_nested_def(w->l, w->self, n))) {
                        /* left out */
                } else if (ts_node_child_count(n) == 0) {
                        uint32_t s = ts_node_start_byte(n), e = ts_node_end_byte(n);
                        if (e > s) {
                                for (uint32_t i = s; i < e; i++) {
                                        w->hash ^= (unsigned char)w->src[i];
                                        w->hash *= FNV_PRIME;
                                }
                                w->hash ^= 0x1f; /* token separator */
                                w->hash *= FNV_PRIME;
                                if (w->head) {
                                        if (w->head->len)
                                                textbuf_put(w->head, " ", 1);
                                        textbuf_put(w->head, w->src + s, e - s);
                                }
                        }
                } else {
                        descend = true;
                }
                if (descend && ts_tree_cursor_goto_first_child(&c))
                        continue;
                bool more = false;
                while (!(more = ts_tree_cursor_goto_next_sibling(&c)))
                        if (!ts_tree_cursor_goto_parent(&c))
                                break;
                if (!more)
                        break;
        }
        ts_tree_cursor_delete(&c);
}

/* Fill s from entry e: name, head, body hash. */
static int symbols__make(const char *src, const struct symbols__list *l,
                         const struct symbols__entry *e, struct symbol *s)
{
        struct textbuf head = { 0 };
        struct symbols__walk w = {
                .src = src, .l = l, .self = e, .skip = e->body, .head = &head,
                .hash = FNV_OFFSET,
        };
        symbols__walk(&w, e->node);
        if (!head.p)
                textbuf_put(&head, "", 0);
        uint64_t body = 0;
        if (!ts_node_is_null(e->body)) {
                struct symbols__walk bw = {
                        .src = src, .l = l, .self = e, .skip_defs = true, .hash = FNV_OFFSET,
                };
                symbols__walk(&bw, e->body);
                body = bw.hash ? bw.hash : 1;
        }
        char *name = strdup(e->qual);
        if (head.oom || !head.p || !name) {
                free(head.p);
                free(name);
                return -ENOMEM;
        }
        s->name = name;
        s->signature = head.p;
        s->body = body;
        return 0;
}

static int symbols__cmp(const void *a, const void *b)
{
        const struct symbol *x = a, *y = b;
        int c = strcmp(x->name, y->name);
        if (c == 0)
                c = strcmp(x->signature, y->signature);
        if (c == 0 && x->body != y->body)
                c = x->body < y->body ? -1 : 1;
        return c;
}

void symbols_file_clear(struct symbols_file *f)
{
        for (size_t i = 0; i < f->n; i++) {
                free(f->v[i].name);
                free(f->v[i].signature);
        }
        free(f->v);
        f->v = NULL;
        f->n = 0;
}

int symbols_extract(struct symbols *sy, enum symbols_lang lang, const char *src, size_t len,
                    struct symbols_file *out)
{
        struct symbols__query *q;
        struct symbols__list l = { 0 };
        struct symbols_file f = { 0 };
        TSTree *tree = NULL;
        TSNode package = { 0 };
        int r;

        if (lang <= SYMBOLS_NONE || lang >= SYMBOLS__COUNT)
                return -EINVAL;
        if (len > UINT32_MAX)
                return -EFBIG;
        r = symbols__query(sy, lang, &q);
        if (r < 0)
                return r;
        if (!ts_parser_set_language(sy->parser, symbols__langs[lang].language())) {
                q->failed = true;
                return -ENOTSUP;
        }
        tree = ts_parser_parse_string(sy->parser, NULL, src ? src : "", (uint32_t)len);
        if (!tree) {
                ts_parser_reset(sy->parser);
                return -ETIMEDOUT;
        }
        r = symbols__collect(sy, q, ts_tree_root_node(tree), &l, &package);
        if (r == 0)
                r = symbols__qualify(src, symbols__langs[lang].sep, package, &l);
        if (r < 0)
                goto out;
        f.v = calloc(l.n ? l.n : 1, sizeof(*f.v));
        if (!f.v) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < l.n; i++) {
                if (!l.v[i].def)
                        continue;
                r = symbols__make(src, &l, &l.v[i], &f.v[f.n]);
                if (r < 0)
                        goto out;
                f.n++;
        }
        if (f.n > 1)
                qsort(f.v, f.n, sizeof(*f.v), symbols__cmp);
        *out = f;
        f = (struct symbols_file){ 0 };
out:
        symbols_file_clear(&f);
        for (size_t i = 0; i < l.n; i++)
                free(l.v[i].qual);
        free(l.v);
        ts_tree_delete(tree);
        return r;
}

/* ---- the diff ----------------------------------------------------------- */

/* The end of the run of symbols named like v[i]. */
static size_t symbols__run(const struct symbols_file *f, size_t i)
{
        size_t j = i + 1;
        while (j < f->n && strcmp(f->v[j].name, f->v[i].name) == 0)
                j++;
        return j;
}

/* One name present in both: old v[a..ae), new w[b..be), each sorted by
 * signature then body. */
static enum symbols_change symbols__compare_runs(const struct symbol *o, size_t no,
                                                 const struct symbol *n, size_t nn, bool *same)
{
        size_t i = 0, j = 0;
        bool lost = false, gained = false, body = false;
        while (i < no || j < nn) {
                int c = i == no ? 1 : j == nn ? -1 : strcmp(o[i].signature, n[j].signature);
                if (c < 0) {
                        lost = true;
                        i++;
                } else if (c > 0) {
                        gained = true;
                        j++;
                } else {
                        body |= o[i].body != n[j].body;
                        i++;
                        j++;
                }
        }
        *same = !lost && !gained && !body;
        return lost ? SYMBOLS_SIGNATURE : gained ? SYMBOLS_ADDED : SYMBOLS_BODY;
}

size_t symbols_diff(const struct symbols_file *old, const struct symbols_file *cur,
                    void (*cb)(void *data, enum symbols_change ch, const struct symbol *s),
                    void *data)
{
        size_t i = 0, j = 0, changes = 0;
        while (i < old->n || j < cur->n) {
                int c = i == old->n ? 1 : j == cur->n ? -1 : strcmp(old->v[i].name, cur->v[j].name);
                if (c < 0) {
                        size_t ie = symbols__run(old, i);
                        if (cb)
                                cb(data, SYMBOLS_REMOVED, &old->v[i]);
                        changes++;
                        i = ie;
                } else if (c > 0) {
                        size_t je = symbols__run(cur, j);
                        if (cb)
                                cb(data, SYMBOLS_ADDED, &cur->v[j]);
                        changes++;
                        j = je;
                } else {
                        size_t ie = symbols__run(old, i), je = symbols__run(cur, j);
                        bool same;
                        enum symbols_change ch = symbols__compare_runs(&old->v[i], ie - i,
                                                                       &cur->v[j], je - j, &same);
                        if (!same) {
                                if (cb)
                                        cb(data, ch, &cur->v[j]);
                                changes++;
                        }
                        i = ie;
                        j = je;
                }
        }
        return changes;
}
