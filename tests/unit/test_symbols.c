/* test_symbols.c - symbols of source files with tree-sitter: for each
 * language the functions, methods and types with their qualified names and
 * signatures; the diff between two versions (signature, body, added,
 * removed; comments and white space are no change); and garbage of every
 * kind, which must give some answer and never crash.
 */
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "symbols.h"

static struct symbols *sy;

static void setup(void)
{
        ck_assert_int_eq(symbols_new(&sy), 0);
}

static void teardown(void)
{
        symbols_free(sy);
        sy = NULL;
}

static struct symbols_file extract(enum symbols_lang lang, const char *src)
{
        struct symbols_file f = { 0 };
        int r = symbols_extract(sy, lang, src, strlen(src), &f);
        ck_assert_msg(r == 0, "%s: symbols_extract: %s", symbols_lang_name(lang), strerror(-r));
        return f;
}

static const struct symbol *find(const struct symbols_file *f, const char *name)
{
        for (size_t i = 0; i < f->n; i++)
                if (strcmp(f->v[i].name, name) == 0)
                        return &f->v[i];
        return NULL;
}

static void dump(const struct symbols_file *f)
{
        for (size_t i = 0; i < f->n; i++)
                fprintf(stderr, "  %s | %s\n", f->v[i].name, f->v[i].signature);
}

/* The symbol must be there, with that signature (NULL: any). */
static void expect(const struct symbols_file *f, const char *name, const char *sig)
{
        const struct symbol *s = find(f, name);
        if (!s)
                dump(f);
        ck_assert_msg(s != NULL, "no symbol %s", name);
        if (sig)
                ck_assert_msg(strcmp(s->signature, sig) == 0, "%s: signature '%s', want '%s'", name,
                              s->signature, sig);
}

static void expect_none(const struct symbols_file *f, const char *name)
{
        ck_assert_msg(find(f, name) == NULL, "unexpected symbol %s", name);
}

/* The changes between two versions, as a bit set of enum symbols_change. */
static void on_change(void *data, enum symbols_change ch, const struct symbol *s)
{
        *(unsigned *)data |= 1u << ch;
}

static unsigned changes(enum symbols_lang lang, const char *old, const char *cur)
{
        struct symbols_file a = extract(lang, old), b = extract(lang, cur);
        unsigned bits = 0;
        size_t n = symbols_diff(&a, &b, on_change, &bits);
        ck_assert_int_eq(n == 0, bits == 0);
        symbols_file_clear(&a);
        symbols_file_clear(&b);
        return bits;
}

#define SIG (1u << SYMBOLS_SIGNATURE)
#define BODY (1u << SYMBOLS_BODY)
#define ADDED (1u << SYMBOLS_ADDED)
#define REMOVED (1u << SYMBOLS_REMOVED)

/* ---- languages by path ---------------------------------------------------- */

START_TEST(test_lang_of)
{
        ck_assert_int_eq(symbols_lang_of("a.c"), SYMBOLS_C);
        ck_assert_int_eq(symbols_lang_of("src/x.h"), SYMBOLS_C);
        ck_assert_int_eq(symbols_lang_of("x.cpp"), SYMBOLS_CPP);
        ck_assert_int_eq(symbols_lang_of("x.hpp"), SYMBOLS_CPP);
        ck_assert_int_eq(symbols_lang_of("pkg/x.py"), SYMBOLS_PYTHON);
        ck_assert_int_eq(symbols_lang_of("lib.rs"), SYMBOLS_RUST);
        ck_assert_int_eq(symbols_lang_of("a.js"), SYMBOLS_JAVASCRIPT);
        ck_assert_int_eq(symbols_lang_of("a.mjs"), SYMBOLS_JAVASCRIPT);
        ck_assert_int_eq(symbols_lang_of("a.ts"), SYMBOLS_TYPESCRIPT);
        ck_assert_int_eq(symbols_lang_of("a.tsx"), SYMBOLS_TSX);
        ck_assert_int_eq(symbols_lang_of("main.go"), SYMBOLS_GO);
        ck_assert_int_eq(symbols_lang_of("A.java"), SYMBOLS_JAVA);
        ck_assert_int_eq(symbols_lang_of("README.md"), SYMBOLS_NONE);
        ck_assert_int_eq(symbols_lang_of("Makefile"), SYMBOLS_NONE);
        ck_assert_int_eq(symbols_lang_of(".py"), SYMBOLS_NONE);  /* a dot file */
        ck_assert_int_eq(symbols_lang_of("dir.py/x"), SYMBOLS_NONE);
        struct symbols_file f;
        ck_assert_int_eq(symbols_extract(sy, SYMBOLS_NONE, "x", 1, &f), -EINVAL);
}
END_TEST

/* ---- each language -------------------------------------------------------- */

START_TEST(test_c)
{
        struct symbols_file f = extract(SYMBOLS_C,
                "#include <stdio.h>\n"
                "static char **split(const char *s, int sep);\n"
                "int add(int a, int b) { return a + b; }\n"
                "static const char *name(void)\n{\n        return \"x\"; /* c */\n}\n"
                "struct point { int x; int y; };\n"
                "typedef struct { int a; } pair_t;\n"
                "enum color { RED, GREEN };\n"
                "union u { int i; float f; };\n");
        expect(&f, "add", "int add ( int a , int b )");
        expect(&f, "name", "static const char * name ( void )");
        expect(&f, "split", "static char * * split ( const char * s , int sep ) ;");
        expect(&f, "point", "struct point");
        expect(&f, "pair_t", NULL);
        expect(&f, "color", "enum color");
        expect(&f, "u", "union u");
        ck_assert_int_eq(f.n, 7);
        ck_assert(find(&f, "split")->body == 0);   /* a prototype: no body */
        ck_assert(find(&f, "add")->body != 0);
        symbols_file_clear(&f);
}
END_TEST

START_TEST(test_cpp)
{
        struct symbols_file f = extract(SYMBOLS_CPP,
                "namespace ns {\n"
                "class Foo : public Bar {\n"
                "public:\n"
                "    int get() const { return x_; }\n"
                "    void set(int v);\n"
                "private:\n"
                "    int x_;\n"
                "};\n"
                "void Foo::set(int v) { x_ = v; }\n"
                "template <typename T> T twice(T v) { return v + v; }\n"
                "struct S { int a; };\n"
                "}\n"
                "int main() { return 0; }\n");
        expect(&f, "ns::Foo", "class Foo : public Bar");
        expect(&f, "ns::Foo::get", "int get ( ) const");
        expect(&f, "ns::twice", "T twice ( T v )");
        expect(&f, "ns::S", "struct S");
        expect(&f, "main", "int main ( )");
        /* The declaration in the class and the definition out of it share
         * the qualified name. */
        size_t sets = 0;
        for (size_t i = 0; i < f.n; i++)
                sets += strcmp(f.v[i].name, "ns::Foo::set") == 0;
        ck_assert_int_eq(sets, 2);
        symbols_file_clear(&f);
}
END_TEST

START_TEST(test_python)
{
        struct symbols_file f = extract(SYMBOLS_PYTHON,
                "import os\n"
                "def top(a, b=1) -> int:\n"
                "    # comment\n"
                "    return a + b\n"
                "\n"
                "class Foo(Base):\n"
                "    x = 1\n"
                "    def method(self, y):\n"
                "        def inner():\n"
                "            pass\n"
                "        return y\n"
                "    @property\n"
                "    def prop(self):\n"
                "        return 1\n");
        expect(&f, "top", "def top ( a , b = 1 ) -> int :");
        expect(&f, "Foo", "class Foo ( Base ) :");
        expect(&f, "Foo.method", "def method ( self , y ) :");
        expect(&f, "Foo.method.inner", "def inner ( ) :");
        expect(&f, "Foo.prop", "def prop ( self ) :");
        ck_assert_int_eq(f.n, 5);
        symbols_file_clear(&f);
}
END_TEST

START_TEST(test_rust)
{
        struct symbols_file f = extract(SYMBOLS_RUST,
                "pub struct Point { x: i32, y: i32 }\n"
                "enum E { A, B }\n"
                "trait Shape { fn area(&self) -> f64; fn name(&self) -> String { \"s\".into() } }\n"
                "impl Point { pub fn new(x: i32, y: i32) -> Self { Point { x, y } } }\n"
                "impl<T> Wrapper<T> { fn get(&self) -> &T { &self.0 } }\n"
                "impl Shape for Point { fn area(&self) -> f64 { 0.0 } }\n"
                "mod inner { pub fn helper() {} }\n"
                "type Id = u64;\n"
                "fn main() { let p = Point::new(1, 2); }\n");
        expect(&f, "Point", "pub struct Point");
        expect(&f, "E", "enum E");
        expect(&f, "Shape", "trait Shape");
        expect(&f, "Shape::area", "fn area ( & self ) -> f64 ;");
        expect(&f, "Shape::name", "fn name ( & self ) -> String");
        expect(&f, "Point::new", "pub fn new ( x : i32 , y : i32 ) -> Self");
        expect(&f, "Wrapper::get", "fn get ( & self ) -> & T");
        expect(&f, "<Point as Shape>::area", "fn area ( & self ) -> f64");
        expect(&f, "inner::helper", "pub fn helper ( )");
        expect(&f, "Id", NULL);
        expect(&f, "main", "fn main ( )");
        symbols_file_clear(&f);
}
END_TEST

START_TEST(test_javascript)
{
        struct symbols_file f = extract(SYMBOLS_JAVASCRIPT,
                "function top(a, b) { return a + b; }\n"
                "class Foo extends Bar {\n"
                "  constructor(x) { super(); this.x = x; }\n"
                "  get value() { return this.x; }\n"
                "  method(a) { return a * 2; }\n"
                "  handler = (e) => { console.log(e); }\n"
                "}\n"
                "const arrow = (x) => x + 1;\n"
                "const fe = function (y) { return y; };\n"
                "function* gen() { yield 1; }\n"
                "const notAFunction = 42;\n");
        expect(&f, "top", "function top ( a , b )");
        expect(&f, "Foo", "class Foo extends Bar");
        expect(&f, "Foo.constructor", "constructor ( x )");
        expect(&f, "Foo.value", "get value ( )");
        expect(&f, "Foo.method", "method ( a )");
        expect(&f, "Foo.handler", "handler = ( e ) =>");
        expect(&f, "arrow", "arrow = ( x ) =>");
        expect(&f, "fe", "fe = function ( y )");
        expect(&f, "gen", "function * gen ( )");
        expect_none(&f, "notAFunction");
        symbols_file_clear(&f);
}
END_TEST

static const char ts_source[] =
        "export interface Shape { area(): number; name: string; }\n"
        "export class Circle implements Shape {\n"
        "  constructor(private r: number) {}\n"
        "  area(): number { return Math.PI * this.r ** 2; }\n"
        "}\n"
        "export function make(r: number): Circle { return new Circle(r); }\n"
        "type Id = string | number;\n"
        "enum Dir { Up, Down }\n"
        "namespace Geo { export function dist(a: number, b: number): number { return a - b; } }\n"
        "abstract class Base { abstract run(): void; }\n"
        "declare function ext(x: number): void;\n"
        "const f = (a: number): number => a;\n";

static void check_ts(enum symbols_lang lang, const char *extra)
{
        char src[2048];
        snprintf(src, sizeof(src), "%s%s", ts_source, extra);
        struct symbols_file f = extract(lang, src);
        expect(&f, "Shape", "interface Shape");
        expect(&f, "Shape.area", "area ( ) : number");
        expect(&f, "Circle", "class Circle implements Shape");
        expect(&f, "Circle.constructor", "constructor ( private r : number )");
        expect(&f, "Circle.area", "area ( ) : number");
        expect(&f, "make", "function make ( r : number ) : Circle");
        expect(&f, "Id", "type Id = string | number ;");
        expect(&f, "Dir", "enum Dir");
        expect(&f, "Geo.dist", "function dist ( a : number , b : number ) : number");
        expect(&f, "Base", "abstract class Base");
        expect(&f, "Base.run", "abstract run ( ) : void");
        expect(&f, "ext", "function ext ( x : number ) : void ;");
        expect(&f, "f", "f = ( a : number ) : number =>");
        if (lang == SYMBOLS_TSX)
                expect(&f, "App", "App = ( ) =>");
        symbols_file_clear(&f);
}

START_TEST(test_typescript)
{
        check_ts(SYMBOLS_TYPESCRIPT, "");
}
END_TEST

START_TEST(test_tsx)
{
        check_ts(SYMBOLS_TSX, "const App = () => <div className=\"x\">hi</div>;\n");
}
END_TEST

START_TEST(test_go)
{
        struct symbols_file f = extract(SYMBOLS_GO,
                "package geo\n"
                "\n"
                "type Point struct { X, Y int }\n"
                "type Shape interface { Area() float64 }\n"
                "func New(x, y int) *Point { return &Point{x, y} }\n"
                "func (p *Point) Move(dx int) { p.X += dx }\n"
                "func (p Point) Area() float64 { return 0 }\n"
                "func (l *List[T]) Push(v T) {}\n");
        expect(&f, "geo.Point", "Point");
        expect(&f, "geo.Shape", "Shape");
        expect(&f, "geo.Shape.Area", "Area ( ) float64");
        expect(&f, "geo.New", "func New ( x , y int ) * Point");
        expect(&f, "geo.Point.Move", "func ( p * Point ) Move ( dx int )");
        expect(&f, "geo.Point.Area", "func ( p Point ) Area ( ) float64");
        expect(&f, "geo.List.Push", "func ( l * List [ T ] ) Push ( v T )");
        symbols_file_clear(&f);
}
END_TEST

START_TEST(test_java)
{
        struct symbols_file f = extract(SYMBOLS_JAVA,
                "package com.example;\n"
                "public class A extends B implements C {\n"
                "    private int x;\n"
                "    public A(int x) { this.x = x; }\n"
                "    public int getX() { return x; }\n"
                "    static class Inner { void run() {} }\n"
                "    interface I { void m(int a); }\n"
                "    enum E { ONE, TWO }\n"
                "}\n"
                "record R(int a) {}\n");
        expect(&f, "A", "public class A extends B implements C");
        expect(&f, "A.A", "public A ( int x )");
        expect(&f, "A.getX", "public int getX ( )");
        expect(&f, "A.Inner", "static class Inner");
        expect(&f, "A.Inner.run", "void run ( )");
        expect(&f, "A.I", "interface I");
        expect(&f, "A.I.m", "void m ( int a ) ;");
        expect(&f, "A.E", "enum E");
        expect(&f, "R", "record R ( int a )");
        symbols_file_clear(&f);
}
END_TEST

/* ---- diffs --------------------------------------------------------------- */

START_TEST(test_diff_python)
{
        const char *base = "class K:\n    def m(self, a):\n        return a\n\ndef f(x):\n    return x\n";
        /* the same, reformatted and commented: nothing */
        ck_assert_uint_eq(changes(SYMBOLS_PYTHON, base,
                                  "class K:\n    def m(self,   a):   # why\n        return a\n\n"
                                  "def f(x):\n    # note\n    return x\n"),
                          0);
        ck_assert_uint_eq(changes(SYMBOLS_PYTHON, base,
                                  "class K:\n    def m(self, a, b):\n        return a\n\n"
                                  "def f(x):\n    return x\n"),
                          SIG);
        ck_assert_uint_eq(changes(SYMBOLS_PYTHON, base,
                                  "class K:\n    def m(self, a):\n        return a + 1\n\n"
                                  "def f(x):\n    return x\n"),
                          BODY);
        /* a new method changes the class's own body not at all */
        ck_assert_uint_eq(changes(SYMBOLS_PYTHON, base,
                                  "class K:\n    def m(self, a):\n        return a\n"
                                  "    def n(self):\n        return 2\n\n"
                                  "def f(x):\n    return x\n"),
                          ADDED);
        ck_assert_uint_eq(changes(SYMBOLS_PYTHON, base, "class K:\n    def m(self, a):\n"
                                                        "        return a\n"),
                          REMOVED);
        /* a field of the class is its own body */
        ck_assert_uint_eq(changes(SYMBOLS_PYTHON, base,
                                  "class K:\n    z = 3\n    def m(self, a):\n        return a\n\n"
                                  "def f(x):\n    return x\n"),
                          BODY);
}
END_TEST

START_TEST(test_diff_each_language)
{
        static const struct {
                enum symbols_lang lang;
                const char *base, *sig, *body, *added;
        } cases[] = {
                { SYMBOLS_C, "int f(int a) { return a; }\n", "int f(long a) { return a; }\n",
                  "int f(int a) { return a + 1; }\n",
                  "int f(int a) { return a; }\nint g(void) { return 0; }\n" },
                { SYMBOLS_CPP, "class C { int f(int a) { return a; } };\n",
                  "class C { int f(int a, int b) { return a; } };\n",
                  "class C { int f(int a) { return -a; } };\n",
                  "class C { int f(int a) { return a; } void g() {} };\n" },
                { SYMBOLS_RUST, "impl S { fn f(&self) -> u8 { 1 } }\n",
                  "impl S { fn f(&self) -> u16 { 1 } }\n", "impl S { fn f(&self) -> u8 { 2 } }\n",
                  "impl S { fn f(&self) -> u8 { 1 } fn g() {} }\n" },
                { SYMBOLS_JAVASCRIPT, "class C { f(a) { return a; } }\n",
                  "class C { f(a, b) { return a; } }\n", "class C { f(a) { return a * 2; } }\n",
                  "class C { f(a) { return a; } g() {} }\n" },
                { SYMBOLS_TYPESCRIPT, "function f(a: number): number { return a; }\n",
                  "function f(a: number): string { return a; }\n",
                  "function f(a: number): number { return a + 1; }\n",
                  "function f(a: number): number { return a; }\nfunction g(): void {}\n" },
                { SYMBOLS_TSX, "const C = (p: P) => <div>{p.a}</div>;\n",
                  "const C = (p: Q) => <div>{p.a}</div>;\n", "const C = (p: P) => <span>{p.a}</span>;\n",
                  "const C = (p: P) => <div>{p.a}</div>;\nconst D = () => <p/>;\n" },
                { SYMBOLS_GO, "package p\nfunc F(a int) int { return a }\n",
                  "package p\nfunc F(a int, b int) int { return a }\n",
                  "package p\nfunc F(a int) int { return a * 2 }\n",
                  "package p\nfunc F(a int) int { return a }\nfunc G() {}\n" },
                { SYMBOLS_JAVA, "class C { int f(int a) { return a; } }\n",
                  "class C { long f(int a) { return a; } }\n",
                  "class C { int f(int a) { return a + 1; } }\n",
                  "class C { int f(int a) { return a; } void g() {} }\n" },
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                const char *l = symbols_lang_name(cases[i].lang);
                unsigned s = changes(cases[i].lang, cases[i].base, cases[i].sig);
                unsigned b = changes(cases[i].lang, cases[i].base, cases[i].body);
                unsigned a = changes(cases[i].lang, cases[i].base, cases[i].added);
                ck_assert_msg(s & SIG, "%s: signature change seen as %#x", l, s);
                ck_assert_msg(b == BODY, "%s: body change seen as %#x", l, b);
                ck_assert_msg(a == ADDED, "%s: addition seen as %#x", l, a);
                ck_assert_msg(changes(cases[i].lang, cases[i].base, cases[i].base) == 0,
                              "%s: no change seen as one", l);
        }
}
END_TEST

START_TEST(test_diff_overloads)
{
        const char *base = "class C { void f(int a) {} void f(String s) {} }\n";
        ck_assert_uint_eq(changes(SYMBOLS_JAVA, base,
                                  "class C { void f(String s) {} void f(int a) {} }\n"), 0);
        ck_assert_uint_eq(changes(SYMBOLS_JAVA, base,
                                  "class C { void f(int a) {} void f(String s) {} void f() {} }\n"),
                          ADDED);
        ck_assert_uint_eq(changes(SYMBOLS_JAVA, base, "class C { void f(int a) {} }\n"), SIG);
        ck_assert_uint_eq(changes(SYMBOLS_JAVA, base,
                                  "class C { void f(int a) { g(); } void f(String s) {} }\n"),
                          BODY);
}
END_TEST

/* ---- robustness ---------------------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

START_TEST(test_garbage)
{
        static const char *const pieces[] = {
                "{", "}", "(", ")", "[", "]", "<", ">", ";", ",", ":", "::", ".", "=", "=>",
                "->", "\"", "'", "`", "/*", "*/", "//", "#", "\n", " ", "\t", "class", "def",
                "fn", "func", "function", "impl", "struct", "enum", "interface", "namespace",
                "package", "template", "return", "x", "Foo", "0", "\xff", "\xc3\xa9", "\0",
                "@", "\\", "$", "%",
        };
        char buf[2048];
        size_t timeouts = 0, parses = 0;
        /* Error recovery on some garbage is very slow: a parse that takes
         * too long is given up, which is an answer too. */
        symbols_set_timeout(sy, 100 * 1000);
        for (int round = 0; round < 150; round++) {
                size_t len = 0, want = (size_t)(rng() % (sizeof(buf) - 16));
                while (len < want) {
                        const char *p = pieces[rng() % (sizeof(pieces) / sizeof(pieces[0]))];
                        size_t n = p[0] ? strlen(p) : 1;
                        if (len + n > sizeof(buf))
                                break;
                        memcpy(buf + len, p, n);
                        len += n;
                }
                for (int lang = SYMBOLS_NONE + 1; lang < SYMBOLS__COUNT; lang++) {
                        struct symbols_file f = { 0 };
                        int r = symbols_extract(sy, (enum symbols_lang)lang, buf, len, &f);
                        parses++;
                        if (r == -ETIMEDOUT) {
                                fprintf(stderr, "garbage: %s gave up after 100 ms (%zu bytes)\n",
                                        symbols_lang_name((enum symbols_lang)lang), len);
                                timeouts++;
                                continue;
                        }
                        ck_assert_msg(r == 0, "%s: %s", symbols_lang_name((enum symbols_lang)lang),
                                      strerror(-r));
                        for (size_t i = 0; i < f.n; i++)
                                ck_assert(f.v[i].name && f.v[i].signature);
                        struct symbols_file e = { 0 };
                        symbols_diff(&f, &e, NULL, NULL);
                        symbols_diff(&e, &f, NULL, NULL);
                        symbols_file_clear(&f);
                }
        }
        /* Raw bytes, and nothing at all. */
        for (int round = 0; round < 30; round++) {
                for (size_t i = 0; i < sizeof(buf); i++)
                        buf[i] = (char)rng();
                for (int lang = SYMBOLS_NONE + 1; lang < SYMBOLS__COUNT; lang++) {
                        struct symbols_file f = { 0 };
                        int r = symbols_extract(sy, (enum symbols_lang)lang, buf, sizeof(buf), &f);
                        parses++;
                        ck_assert(r == 0 || r == -ETIMEDOUT);
                        timeouts += r == -ETIMEDOUT;
                        symbols_file_clear(&f);
                }
        }
        /* Most of it parses. */
        ck_assert_msg(timeouts * 10 < parses, "%zu of %zu parses timed out", timeouts, parses);
        for (int lang = SYMBOLS_NONE + 1; lang < SYMBOLS__COUNT; lang++) {
                struct symbols_file f = { 0 };
                ck_assert_int_eq(symbols_extract(sy, (enum symbols_lang)lang, "", 0, &f), 0);
                ck_assert_uint_eq(f.n, 0);
                symbols_file_clear(&f);
        }
}
END_TEST

/* Deep nesting must not exhaust a stack. */
START_TEST(test_deep_nesting)
{
        size_t depth = 20000, len = 0;
        char *buf = malloc(depth * 2 + 64);
        ck_assert_ptr_nonnull(buf);
        len += (size_t)sprintf(buf, "int f(void) ");
        for (size_t i = 0; i < depth; i++)
                buf[len++] = '{';
        for (size_t i = 0; i < depth; i++)
                buf[len++] = '}';
        struct symbols_file f = { 0 };
        ck_assert_int_eq(symbols_extract(sy, SYMBOLS_C, buf, len, &f), 0);
        expect(&f, "f", "int f ( void )");
        symbols_file_clear(&f);
        free(buf);
}
END_TEST

static Suite *symbols_suite(void)
{
        Suite *s = suite_create("symbols");
        TCase *tc = tcase_create("languages");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_lang_of);
        tcase_add_test(tc, test_c);
        tcase_add_test(tc, test_cpp);
        tcase_add_test(tc, test_python);
        tcase_add_test(tc, test_rust);
        tcase_add_test(tc, test_javascript);
        tcase_add_test(tc, test_typescript);
        tcase_add_test(tc, test_tsx);
        tcase_add_test(tc, test_go);
        tcase_add_test(tc, test_java);
        suite_add_tcase(s, tc);
        tc = tcase_create("diff");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_add_test(tc, test_diff_python);
        tcase_add_test(tc, test_diff_each_language);
        tcase_add_test(tc, test_diff_overloads);
        suite_add_tcase(s, tc);
        tc = tcase_create("robustness");
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_garbage);
        tcase_add_test(tc, test_deep_nesting);
        suite_add_tcase(s, tc);
        return s;
}

int main(void)
{
        SRunner *sr = srunner_create(symbols_suite());
        srunner_run_all(sr, CK_NORMAL);
        int failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
