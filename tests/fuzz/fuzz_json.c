/* fuzz_json.c: the JSON reader on arbitrary bytes.
 *
 * Whatever parses is written back (strings with json_quote(), numbers
 * with every digit they need) and must parse to the same value. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"

static void write_value(struct sbuf *out, const struct json *j)
{
	switch (j->type) {
	case JSON_NULL: sbuf_adds(out, "null"); break;
	case JSON_BOOL: sbuf_adds(out, j->b ? "true" : "false"); break;
	case JSON_NUM:
		if (isinf(j->num))
			sbuf_adds(out, j->num > 0 ? "1e999" : "-1e999");
		else
			sbuf_printf(out, "%.17g", j->num);
		break;
	case JSON_STR: json_quote(out, j->str, j->len); break;
	case JSON_ARR:
	case JSON_OBJ:
		sbuf_addc(out, j->type == JSON_ARR ? '[' : '{');
		for (size_t i = 0; i < j->len; i++) {
			if (i)
				sbuf_addc(out, ',');
			if (j->type == JSON_OBJ) {
				json_quote(out, j->keys[i], strlen(j->keys[i]));
				sbuf_addc(out, ':');
			}
			write_value(out, j->items[i]);
		}
		sbuf_addc(out, j->type == JSON_ARR ? ']' : '}');
		break;
	}
}

static bool same(const struct json *a, const struct json *b)
{
	if (a->type != b->type || a->len != b->len)
		return false;
	switch (a->type) {
	case JSON_NULL: return true;
	case JSON_BOOL: return a->b == b->b;
	case JSON_NUM: return a->num == b->num;
	case JSON_STR: return memcmp(a->str, b->str, a->len) == 0 && a->str[a->len] == 0;
	case JSON_ARR:
	case JSON_OBJ:
		for (size_t i = 0; i < a->len; i++) {
			if (a->type == JSON_OBJ && strcmp(a->keys[i], b->keys[i]) != 0)
				return false;
			if (!same(a->items[i], b->items[i]))
				return false;
		}
		return true;
	}
	return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[128];
	struct json *j = json_parse((const char *)data, size, err, sizeof err), *k;
	struct sbuf out;

	if (!j) {
		if (!err[0])
			abort();	/* every failure says where */
		return 0;
	}
	sbuf_init(&out);
	write_value(&out, j);
	k = json_parse(out.buf, out.len, err, sizeof err);
	if (!k || !same(j, k))
		abort();
	json_free(k);
	json_free(j);
	sbuf_fini(&out);
	return 0;
}
