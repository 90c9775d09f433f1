/* render.h: admin replies for people.
 *
 * An array of objects becomes an aligned table (columns in the key order
 * of the first row, keys that only later rows have appended); an object
 * becomes a key/value listing, with nested arrays of objects as indented
 * sub-tables. Everything is written into an sbuf so that the tests can
 * compare it byte for byte. `--json` does not come here: the reply is
 * printed as the broker sent it. */
#ifndef MQSH_RENDER_H
#define MQSH_RENDER_H

#include <stdbool.h>
#include <stddef.h>

#include "common/json.h"
#include "common/util.h"

/* A reply's `data`, whatever its shape. color: bold headers and keys (for
 * a terminal only). */
void render_data(struct sbuf *out, const struct json *data, bool color);
void render_table(struct sbuf *out, const struct json *rows, int indent, bool color);
void render_object(struct sbuf *out, const struct json *obj, int indent, bool color);
/* One value as text for a cell: strings as they are (control characters
 * escaped), integers without decimals, null and "" as "-". */
void render_scalar(struct sbuf *out, const struct json *v);
/* Columns a UTF-8 string takes on a terminal (one per character). */
size_t render_width(const char *s);
/* The value as compact JSON, for what a cell cannot hold otherwise. */
void render_json(struct sbuf *out, const struct json *v);

#endif
