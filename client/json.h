/* json.h - msgpack objects to JSON text (outcomectl's --json output and
 * `export`), and JSON text back to msgpack objects (`import`).
 *
 * Printing: strings are escaped per RFC 8259 (\" \\ and control characters as
 * \u00XX); valid UTF-8 passes through and each invalid byte becomes U+FFFD.
 * Floats print in the shortest form that reads back to the same double
 * (at most %.17g) and always look like floats (5.0, not 5); a NaN or an
 * infinity, which the daemon never sends, prints as null.  bin and ext
 * payloads print as base64 strings.  Map keys that are not strings are
 * printed as JSON and then quoted, so the output is always valid JSON.
 */
#ifndef OUTCOMECTL_JSON_H
#define OUTCOMECTL_JSON_H

#include <stddef.h>
#include <stdio.h>

#include <msgpack.h>

/* Print o to f.  Returns 0, or a negative errno when writing failed. */
int json_print(FILE *f, const msgpack_object *o);

/* Print s (len bytes) as a JSON string, quotes included.  0 or -EIO. */
int json_print_string(FILE *f, const char *s, size_t len);

/* Format a double the way json_print() does, into buf (>= 32 bytes). */
void json_format_double(char *buf, size_t len, double d);

/* Reading: a strict RFC 8259 parser into msgpack objects.
 *
 * Exactly one JSON value, with white space around it (and a UTF-8 byte
 * order mark before it) and nothing else.  Objects become maps with str
 * keys in the order written (a key given twice is an error), arrays
 * arrays, strings str (UTF-8 checked, escapes decoded, \u0000 included),
 * true/false/null booleans and nil.  A number without '.' or exponent is
 * an integer: a positive integer when >= 0 (so -0 is 0), a negative one
 * otherwise, and must fit in 64 bits; any other number is a float64 and
 * must be finite.  Nesting deeper than JSON_MAX_DEPTH is refused.
 *
 * Everything is allocated from `zone` (the caller's, freed with it).
 * Returns 0 with *out set, or a negative errno with "LINE:COLUMN: what" in
 * err (both counted from 1; the column counts characters, not bytes):
 * -ERANGE for a number out of range, -ENOMEM when memory ran out, -EINVAL
 * for anything else. */
#define JSON_MAX_DEPTH 64

int json_parse(const char *text, size_t len, msgpack_zone *zone, msgpack_object *out,
               char *err, size_t errlen);

#endif
