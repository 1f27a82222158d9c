/* json.h - print a msgpack object as JSON (outcomectl's --json output).
 *
 * Strings are escaped per RFC 8259 (\" \\ and control characters as
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

/* Print o to f.  Returns 0, or -1 when writing failed. */
int json_print(FILE *f, const msgpack_object *o);

/* Print s (len bytes) as a JSON string, quotes included. */
int json_print_string(FILE *f, const char *s, size_t len);

/* Format a double the way json_print() does, into buf (>= 32 bytes). */
void json_format_double(char *buf, size_t len, double d);

#endif
