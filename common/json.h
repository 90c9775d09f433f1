/* json.h: a streaming JSON writer and a small DOM parser.
 *
 * The writer serves every machine-readable reply (control socket, HTTP
 * API, connection file, scenario reports); the parser serves mqsh and the
 * tests' C side, which read those replies back. */
#ifndef MQ_JSON_H
#define MQ_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/util.h"

#define JW_MAX_DEPTH 32

struct jw {
	struct sbuf *out;		/* borrowed */
	int depth;
	bool need_comma[JW_MAX_DEPTH];
	bool after_key;
};

void jw_init(struct jw *w, struct sbuf *out);
void jw_obj_begin(struct jw *w);
void jw_obj_end(struct jw *w);
void jw_arr_begin(struct jw *w);
void jw_arr_end(struct jw *w);
void jw_key(struct jw *w, const char *key);
void jw_str(struct jw *w, const char *s);		/* NULL writes null */
void jw_strn(struct jw *w, const char *s, size_t n);
void jw_int(struct jw *w, int64_t v);
void jw_uint(struct jw *w, uint64_t v);
void jw_double(struct jw *w, double v);
void jw_bool(struct jw *w, bool v);
void jw_null(struct jw *w);
void jw_raw(struct jw *w, const char *json);		/* already-encoded value */
/* key + value in one call */
void jw_kstr(struct jw *w, const char *key, const char *s);
void jw_kint(struct jw *w, const char *key, int64_t v);
void jw_kuint(struct jw *w, const char *key, uint64_t v);
void jw_kdouble(struct jw *w, const char *key, double v);
void jw_kbool(struct jw *w, const char *key, bool v);
/* Appends s as a JSON string literal, quotes included. */
void json_quote(struct sbuf *out, const char *s, size_t n);

enum json_type { JSON_NULL, JSON_BOOL, JSON_NUM, JSON_STR, JSON_ARR, JSON_OBJ };

struct json {
	enum json_type type;
	bool b;
	double num;
	char *str;		/* JSON_STR: owned, NUL-terminated (may hold NULs: see len) */
	size_t len;		/* JSON_STR: bytes; JSON_ARR/OBJ: members */
	struct json **items;	/* JSON_ARR/OBJ: owned */
	char **keys;		/* JSON_OBJ: owned, parallel to items */
};

/* Parses exactly one value (surrounding whitespace allowed). NULL on error,
 * with the reason and byte offset in err. */
struct json *json_parse(const char *s, size_t len, char *err, size_t errlen);
void json_free(struct json *j);
const struct json *json_get(const struct json *obj, const char *key);	/* borrowed */
const char *json_get_str(const struct json *obj, const char *key);	/* NULL unless a string */
double json_get_num(const struct json *obj, const char *key, double dflt);

#endif
