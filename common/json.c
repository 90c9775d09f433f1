/* json.c: the JSON writer and the small DOM parser. */
#include "common/json.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- writer ---- */

void jw_init(struct jw *w, struct sbuf *out)
{
	memset(w, 0, sizeof *w);
	w->out = out;
}

static void before_value(struct jw *w)
{
	if (w->after_key) {
		w->after_key = false;
		return;
	}
	if (w->depth > 0) {
		if (w->need_comma[w->depth])
			sbuf_addc(w->out, ',');
		w->need_comma[w->depth] = true;
	}
}

static void open_nested(struct jw *w, char c)
{
	before_value(w);
	sbuf_addc(w->out, c);
	if (w->depth + 1 < JW_MAX_DEPTH)
		w->depth++;
	w->need_comma[w->depth] = false;
}

void jw_obj_begin(struct jw *w) { open_nested(w, '{'); }
void jw_arr_begin(struct jw *w) { open_nested(w, '['); }

void jw_obj_end(struct jw *w)
{
	sbuf_addc(w->out, '}');
	if (w->depth > 0)
		w->depth--;
}

void jw_arr_end(struct jw *w)
{
	sbuf_addc(w->out, ']');
	if (w->depth > 0)
		w->depth--;
}

void json_quote(struct sbuf *out, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	sbuf_addc(out, '"');
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		switch (c) {
		case '"': sbuf_add(out, "\\\"", 2); break;
		case '\\': sbuf_add(out, "\\\\", 2); break;
		case '\n': sbuf_add(out, "\\n", 2); break;
		case '\r': sbuf_add(out, "\\r", 2); break;
		case '\t': sbuf_add(out, "\\t", 2); break;
		default:
			if (c < 0x20 || c == 0x7f) {
				char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
				sbuf_add(out, u, 6);
			} else {
				sbuf_addc(out, (char)c);
			}
		}
	}
	sbuf_addc(out, '"');
}

void jw_key(struct jw *w, const char *key)
{
	before_value(w);
	json_quote(w->out, key, strlen(key));
	sbuf_addc(w->out, ':');
	w->after_key = true;
}

void jw_strn(struct jw *w, const char *s, size_t n)
{
	before_value(w);
	json_quote(w->out, s, n);
}

void jw_str(struct jw *w, const char *s)
{
	if (!s) {
		jw_null(w);
		return;
	}
	jw_strn(w, s, strlen(s));
}

void jw_int(struct jw *w, int64_t v)
{
	before_value(w);
	sbuf_printf(w->out, "%" PRId64, v);
}

void jw_uint(struct jw *w, uint64_t v)
{
	before_value(w);
	sbuf_printf(w->out, "%" PRIu64, v);
}

void jw_double(struct jw *w, double v)
{
	before_value(w);
	if (!isfinite(v))
		sbuf_adds(w->out, "null");
	else if (v == (double)(int64_t)v && fabs(v) < 1e15)
		sbuf_printf(w->out, "%" PRId64, (int64_t)v);
	else
		sbuf_printf(w->out, "%.6g", v);
}

void jw_bool(struct jw *w, bool v)
{
	before_value(w);
	sbuf_adds(w->out, v ? "true" : "false");
}

void jw_null(struct jw *w)
{
	before_value(w);
	sbuf_adds(w->out, "null");
}

void jw_raw(struct jw *w, const char *json)
{
	before_value(w);
	sbuf_adds(w->out, json);
}

void jw_kstr(struct jw *w, const char *k, const char *s) { jw_key(w, k); jw_str(w, s); }
void jw_kint(struct jw *w, const char *k, int64_t v) { jw_key(w, k); jw_int(w, v); }
void jw_kuint(struct jw *w, const char *k, uint64_t v) { jw_key(w, k); jw_uint(w, v); }
void jw_kdouble(struct jw *w, const char *k, double v) { jw_key(w, k); jw_double(w, v); }
void jw_kbool(struct jw *w, const char *k, bool v) { jw_key(w, k); jw_bool(w, v); }

/* ---- parser ---- */

struct jp {
	const char *s, *end, *start;
	char *err;
	size_t errlen;
	int depth;
};

static struct json *parse_value(struct jp *p);

static void fail(struct jp *p, const char *what)
{
	if (p->err && !p->err[0])
		snprintf(p->err, p->errlen, "%s at byte %zu", what, (size_t)(p->s - p->start));
}

static void skip_ws(struct jp *p)
{
	while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r'))
		p->s++;
}

static struct json *new_node(enum json_type t)
{
	struct json *j = xcalloc(1, sizeof *j);
	j->type = t;
	return j;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

static void add_utf8(struct sbuf *b, unsigned cp)
{
	if (cp < 0x80) {
		sbuf_addc(b, (char)cp);
	} else if (cp < 0x800) {
		sbuf_addc(b, (char)(0xc0 | (cp >> 6)));
		sbuf_addc(b, (char)(0x80 | (cp & 0x3f)));
	} else if (cp < 0x10000) {
		sbuf_addc(b, (char)(0xe0 | (cp >> 12)));
		sbuf_addc(b, (char)(0x80 | ((cp >> 6) & 0x3f)));
		sbuf_addc(b, (char)(0x80 | (cp & 0x3f)));
	} else {
		sbuf_addc(b, (char)(0xf0 | (cp >> 18)));
		sbuf_addc(b, (char)(0x80 | ((cp >> 12) & 0x3f)));
		sbuf_addc(b, (char)(0x80 | ((cp >> 6) & 0x3f)));
		sbuf_addc(b, (char)(0x80 | (cp & 0x3f)));
	}
}

static int parse_hex4(struct jp *p, unsigned *out)
{
	unsigned v = 0;
	if (p->end - p->s < 4)
		return -1;
	for (int i = 0; i < 4; i++) {
		int h = hexval(p->s[i]);
		if (h < 0)
			return -1;
		v = v * 16 + (unsigned)h;
	}
	p->s += 4;
	*out = v;
	return 0;
}

static char *parse_string_raw(struct jp *p, size_t *len)
{
	struct sbuf b;
	sbuf_init(&b);
	p->s++;	/* opening quote */
	while (p->s < p->end) {
		char c = *p->s++;
		if (c == '"') {
			*len = b.len;
			return sbuf_take(&b);
		}
		if ((unsigned char)c < 0x20) {
			p->s--;
			fail(p, "control character in string");
			goto bad;
		}
		if (c != '\\') {
			sbuf_addc(&b, c);
			continue;
		}
		if (p->s >= p->end)
			break;
		c = *p->s++;
		switch (c) {
		case '"': sbuf_addc(&b, '"'); break;
		case '\\': sbuf_addc(&b, '\\'); break;
		case '/': sbuf_addc(&b, '/'); break;
		case 'b': sbuf_addc(&b, '\b'); break;
		case 'f': sbuf_addc(&b, '\f'); break;
		case 'n': sbuf_addc(&b, '\n'); break;
		case 'r': sbuf_addc(&b, '\r'); break;
		case 't': sbuf_addc(&b, '\t'); break;
		case 'u': {
			unsigned cp;
			if (parse_hex4(p, &cp) < 0) {
				fail(p, "bad \\u escape");
				goto bad;
			}
			if (cp >= 0xd800 && cp < 0xdc00 && p->end - p->s >= 6 && p->s[0] == '\\' && p->s[1] == 'u') {
				unsigned lo;
				p->s += 2;
				if (parse_hex4(p, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff) {
					fail(p, "bad surrogate pair");
					goto bad;
				}
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			add_utf8(&b, cp);
			break;
		}
		default:
			fail(p, "bad escape in string");
			goto bad;
		}
	}
	fail(p, "unterminated string");
bad:
	sbuf_fini(&b);
	return NULL;
}

static void push_item(struct json *j, struct json *item, char *key)
{
	if ((j->len & (j->len - 1)) == 0) {	/* grow at powers of two */
		size_t cap = j->len ? j->len * 2 : 4;
		j->items = xrealloc(j->items, cap * sizeof *j->items);
		if (j->type == JSON_OBJ)
			j->keys = xrealloc(j->keys, cap * sizeof *j->keys);
	}
	j->items[j->len] = item;
	if (j->type == JSON_OBJ)
		j->keys[j->len] = key;
	j->len++;
}

static struct json *parse_container(struct jp *p, char close)
{
	struct json *j = new_node(close == '}' ? JSON_OBJ : JSON_ARR);
	if (++p->depth > 64) {
		fail(p, "nesting too deep");
		goto bad;
	}
	p->s++;
	skip_ws(p);
	if (p->s < p->end && *p->s == close) {
		p->s++;
		p->depth--;
		return j;
	}
	for (;;) {
		char *key = NULL;
		struct json *v;
		skip_ws(p);
		if (close == '}') {
			size_t klen;
			if (p->s >= p->end || *p->s != '"') {
				fail(p, "expected a string key");
				goto bad;
			}
			key = parse_string_raw(p, &klen);
			if (!key)
				goto bad;
			skip_ws(p);
			if (p->s >= p->end || *p->s != ':') {
				free(key);
				fail(p, "expected ':'");
				goto bad;
			}
			p->s++;
		}
		v = parse_value(p);
		if (!v) {
			free(key);
			goto bad;
		}
		push_item(j, v, key);
		skip_ws(p);
		if (p->s < p->end && *p->s == ',') {
			p->s++;
			continue;
		}
		if (p->s < p->end && *p->s == close) {
			p->s++;
			p->depth--;
			return j;
		}
		fail(p, close == '}' ? "expected ',' or '}'" : "expected ',' or ']'");
		goto bad;
	}
bad:
	json_free(j);
	return NULL;
}

static struct json *parse_value(struct jp *p)
{
	skip_ws(p);
	if (p->s >= p->end) {
		fail(p, "unexpected end of input");
		return NULL;
	}
	switch (*p->s) {
	case '{': return parse_container(p, '}');
	case '[': return parse_container(p, ']');
	case '"': {
		size_t len;
		char *s = parse_string_raw(p, &len);
		struct json *j;
		if (!s)
			return NULL;
		j = new_node(JSON_STR);
		j->str = s;
		j->len = len;
		return j;
	}
	case 't':
		if (p->end - p->s >= 4 && memcmp(p->s, "true", 4) == 0) {
			struct json *j = new_node(JSON_BOOL);
			j->b = true;
			p->s += 4;
			return j;
		}
		break;
	case 'f':
		if (p->end - p->s >= 5 && memcmp(p->s, "false", 5) == 0) {
			p->s += 5;
			return new_node(JSON_BOOL);
		}
		break;
	case 'n':
		if (p->end - p->s >= 4 && memcmp(p->s, "null", 4) == 0) {
			p->s += 4;
			return new_node(JSON_NULL);
		}
		break;
	default:
		if (*p->s == '-' || (*p->s >= '0' && *p->s <= '9')) {
			char buf[64];
			size_t n = 0;
			char *end;
			struct json *j;
			while (p->s + n < p->end && n < sizeof buf - 1 && strchr("+-0123456789.eE", p->s[n]))
				n++;
			memcpy(buf, p->s, n);
			buf[n] = 0;
			j = new_node(JSON_NUM);
			j->num = strtod(buf, &end);
			if (end != buf + n) {
				json_free(j);
				fail(p, "bad number");
				return NULL;
			}
			p->s += n;
			return j;
		}
	}
	fail(p, "unexpected character");
	return NULL;
}

struct json *json_parse(const char *s, size_t len, char *err, size_t errlen)
{
	struct jp p = { s, s + len, s, err, errlen, 0 };
	struct json *j;
	if (err && errlen)
		err[0] = 0;
	j = parse_value(&p);
	if (!j)
		return NULL;
	skip_ws(&p);
	if (p.s != p.end) {
		fail(&p, "trailing characters");
		json_free(j);
		return NULL;
	}
	return j;
}

void json_free(struct json *j)
{
	if (!j)
		return;
	for (size_t i = 0; i < j->len && j->items; i++) {
		json_free(j->items[i]);
		if (j->keys)
			free(j->keys[i]);
	}
	free(j->items);
	free(j->keys);
	free(j->str);
	free(j);
}

const struct json *json_get(const struct json *obj, const char *key)
{
	if (!obj || obj->type != JSON_OBJ)
		return NULL;
	for (size_t i = 0; i < obj->len; i++)
		if (strcmp(obj->keys[i], key) == 0)
			return obj->items[i];
	return NULL;
}

const char *json_get_str(const struct json *obj, const char *key)
{
	const struct json *v = json_get(obj, key);
	return v && v->type == JSON_STR ? v->str : NULL;
}

double json_get_num(const struct json *obj, const char *key, double dflt)
{
	const struct json *v = json_get(obj, key);
	return v && v->type == JSON_NUM ? v->num : dflt;
}
