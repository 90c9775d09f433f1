/* render.c: tables and key/value listings from JSON replies. */
#include "render.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BOLD "\033[1m"
#define PLAIN "\033[0m"

size_t render_width(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			n++;
	return n;
}

static void pad(struct sbuf *out, size_t n)
{
	while (n--)
		sbuf_addc(out, ' ');
}

static void add_number(struct sbuf *out, double v)
{
	char buf[64];
	if (v == floor(v) && fabs(v) < 1e15) {
		snprintf(buf, sizeof buf, "%.0f", v);
	} else {
		/* Rates and the like: two decimals are all a person reads. */
		size_t n;
		snprintf(buf, sizeof buf, "%.2f", v);
		n = strlen(buf);
		while (n > 1 && buf[n - 1] == '0')
			buf[--n] = 0;
		if (buf[n - 1] == '.')
			buf[--n] = 0;
		if (strcmp(buf, "-0") == 0)
			snprintf(buf, sizeof buf, "0");
	}
	sbuf_adds(out, buf);
}

/* Strings go into one cell on one line: control characters are escaped. */
static void add_text(struct sbuf *out, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\n')
			sbuf_adds(out, "\\n");
		else if (c == '\t')
			sbuf_adds(out, "\\t");
		else if (c == '\r')
			sbuf_adds(out, "\\r");
		else if (c < 0x20 || c == 0x7f)
			sbuf_printf(out, "\\x%02x", c);
		else
			sbuf_addc(out, (char)c);
	}
}

void render_json(struct sbuf *out, const struct json *v)
{
	switch (v->type) {
	case JSON_NULL: sbuf_adds(out, "null"); break;
	case JSON_BOOL: sbuf_adds(out, v->b ? "true" : "false"); break;
	case JSON_NUM: add_number(out, v->num); break;
	case JSON_STR: json_quote(out, v->str, v->len); break;
	case JSON_ARR:
	case JSON_OBJ:
		sbuf_addc(out, v->type == JSON_ARR ? '[' : '{');
		for (size_t i = 0; i < v->len; i++) {
			if (i)
				sbuf_addc(out, ',');
			if (v->type == JSON_OBJ) {
				json_quote(out, v->keys[i], strlen(v->keys[i]));
				sbuf_addc(out, ':');
			}
			render_json(out, v->items[i]);
		}
		sbuf_addc(out, v->type == JSON_ARR ? ']' : '}');
		break;
	}
}

static bool all_scalars(const struct json *arr)
{
	for (size_t i = 0; i < arr->len; i++)
		if (arr->items[i]->type == JSON_ARR || arr->items[i]->type == JSON_OBJ)
			return false;
	return true;
}

static bool all_objects(const struct json *arr)
{
	for (size_t i = 0; i < arr->len; i++)
		if (arr->items[i]->type != JSON_OBJ)
			return false;
	return arr->len > 0;
}

void render_scalar(struct sbuf *out, const struct json *v)
{
	if (!v) {
		sbuf_addc(out, '-');
		return;
	}
	switch (v->type) {
	case JSON_NULL: sbuf_addc(out, '-'); break;
	case JSON_BOOL: sbuf_adds(out, v->b ? "true" : "false"); break;
	case JSON_NUM: add_number(out, v->num); break;
	case JSON_STR:
		if (v->len == 0)
			sbuf_addc(out, '-');
		else
			add_text(out, v->str, v->len);
		break;
	case JSON_ARR:
		/* ["/queue/a", "/queue/b"] reads best as a list; anything
		 * deeper stays JSON, still on one line. */
		if (all_scalars(v)) {
			for (size_t i = 0; i < v->len; i++) {
				if (i)
					sbuf_adds(out, ", ");
				render_scalar(out, v->items[i]);
			}
			if (!v->len)
				sbuf_addc(out, '-');
			break;
		}
		/* fall through */
	case JSON_OBJ: {
		struct sbuf j;
		sbuf_init(&j);
		render_json(&j, v);
		add_text(out, j.buf, j.len);
		sbuf_fini(&j);
		break;
	}
	}
}

struct column {
	const char *key;	/* borrowed from the rows */
	size_t width;
};

static size_t find_column(const struct column *cols, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(cols[i].key, key) == 0)
			return i;
	return n;
}

void render_table(struct sbuf *out, const struct json *rows, int indent, bool color)
{
	struct column *cols = NULL;
	size_t ncols = 0;
	char ***cells;		/* [row][column], owned */

	/* Columns: the first row's keys in order, then any key a later row
	 * adds (a queue row has "paused", a pubsub row "children"). */
	for (size_t r = 0; r < rows->len; r++) {
		const struct json *row = rows->items[r];
		for (size_t k = 0; row->type == JSON_OBJ && k < row->len; k++) {
			if (find_column(cols, ncols, row->keys[k]) < ncols)
				continue;
			cols = xrealloc(cols, (ncols + 1) * sizeof *cols);
			cols[ncols].key = row->keys[k];
			cols[ncols].width = render_width(row->keys[k]);
			ncols++;
		}
	}
	cells = xcalloc(rows->len ? rows->len : 1, sizeof *cells);
	for (size_t r = 0; r < rows->len; r++) {
		cells[r] = xcalloc(ncols ? ncols : 1, sizeof **cells);
		for (size_t c = 0; c < ncols; c++) {
			struct sbuf s;
			sbuf_init(&s);
			render_scalar(&s, json_get(rows->items[r], cols[c].key));
			cells[r][c] = sbuf_take(&s);
			cols[c].width = MAX(cols[c].width, render_width(cells[r][c]));
		}
	}
	pad(out, (size_t)indent);
	for (size_t c = 0; c < ncols; c++) {
		if (color)
			sbuf_adds(out, BOLD);
		sbuf_adds(out, cols[c].key);
		if (color)
			sbuf_adds(out, PLAIN);
		/* No padding after the last column: lines carry no trailing blanks. */
		if (c + 1 < ncols)
			pad(out, cols[c].width - render_width(cols[c].key) + 2);
	}
	sbuf_addc(out, '\n');
	for (size_t r = 0; r < rows->len; r++) {
		pad(out, (size_t)indent);
		for (size_t c = 0; c < ncols; c++) {
			sbuf_adds(out, cells[r][c]);
			if (c + 1 < ncols)
				pad(out, cols[c].width - render_width(cells[r][c]) + 2);
			free(cells[r][c]);
		}
		sbuf_addc(out, '\n');
		free(cells[r]);
	}
	free(cells);
	free(cols);
}

/* Shown under its key rather than beside it. */
static bool nested(const struct json *v)
{
	return (v->type == JSON_ARR && all_objects(v)) || (v->type == JSON_OBJ && v->len);
}

void render_object(struct sbuf *out, const struct json *obj, int indent, bool color)
{
	size_t width = 0;

	/* Only keys with a value beside them set the column. */
	for (size_t k = 0; k < obj->len; k++)
		if (!nested(obj->items[k]))
			width = MAX(width, render_width(obj->keys[k]));
	for (size_t k = 0; k < obj->len; k++) {
		const struct json *v = obj->items[k];

		pad(out, (size_t)indent);
		if (color)
			sbuf_adds(out, BOLD);
		sbuf_adds(out, obj->keys[k]);
		if (color)
			sbuf_adds(out, PLAIN);
		if (nested(v)) {
			sbuf_addc(out, '\n');
			if (v->type == JSON_ARR)
				render_table(out, v, indent + 2, color);
			else
				render_object(out, v, indent + 2, color);
			continue;
		}
		pad(out, width - render_width(obj->keys[k]) + 2);
		if (v->type == JSON_ARR && v->len == 0)
			sbuf_adds(out, "(none)");
		else
			render_scalar(out, v);
		sbuf_addc(out, '\n');
	}
}

void render_data(struct sbuf *out, const struct json *data, bool color)
{
	if (!data)
		return;
	if (data->type == JSON_ARR && all_objects(data))
		render_table(out, data, 0, color);
	else if (data->type == JSON_OBJ)
		render_object(out, data, 0, color);
	else if (!(data->type == JSON_ARR && data->len == 0)) {
		render_scalar(out, data);
		sbuf_addc(out, '\n');
	}
}
