/* router_config.c: the globals a configuration file set, read into a
 * struct config.
 *
 * router.c runs the file, then calls router_config_read() in protected
 * mode with the file's _ENV and the table where router_config_newindex()
 * recorded the line of every global assignment. Scalar options go through
 * config_set() and queue options through queue_opts_set(), so that the
 * file, the command line and the admin commands share validation and
 * wording; this file adds the place ("broker.lua:42: listeners[2].port:")
 * and the checks only a file needs: unknown names, wrong types, lists
 * written without their inner braces.
 *
 * Every read is raw (lua_rawget, lua_next, lua_rawlen): what is read is
 * what the file wrote, and no metamethod a file attached can run here.
 * Nothing malloc'd is held across a call that can raise a Lua error, so
 * an error thrown midway (out of Lua memory) leaks nothing: whatever was
 * added to the config is the config's, which the caller then discards. */
#include <glob.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "config/config.h"
#include "common/util.h"

/* Called from router.c; see there. */
int router_config_read(lua_State *L);
int router_config_newindex(lua_State *L);

/* Globals with a shape of their own, besides config.c's scalar options. */
static const char *const structured[] = {
	"listeners", "tls", "vhosts", "users", "queue_defaults", "types", "destinations", "bridges",
};
/* Globals the broker calls. Any other function is a helper and ignored. */
static const char *const functions[] = { "route", "authorize", "on_event" };

struct rd {
	lua_State *L;
	struct config *cfg;
	int env;			/* the file's _ENV */
	int lines;			/* name -> { source, line } */
	const char *path;		/* the file loaded */
	/* the global being read, for error messages */
	const char *name;
	char src[4096];
	int line;
	char err[5120];
};

/* __newindex of _ENV while the file runs: (t, k, v). Records where the
 * global k was set, then sets it. Upvalue 1: the lines table. */
int router_config_newindex(lua_State *L)
{
	lua_Debug ar;
	if (lua_type(L, 2) == LUA_TSTRING) {
		const char *src = "?";
		int line = 0;
		/* Level 1: the function doing the assignment. */
		if (lua_getstack(L, 1, &ar) && lua_getinfo(L, "Sl", &ar)) {
			/* The whole path, not Lua's shortened one: errors name the
			 * file, and statement_start() has to open it. */
			src = ar.source[0] == '@' ? ar.source + 1 : ar.short_src;
			line = ar.currentline;
		}
		lua_pushvalue(L, 2);
		lua_createtable(L, 2, 0);
		lua_pushstring(L, src);
		lua_rawseti(L, -2, 1);
		lua_pushinteger(L, line);
		lua_rawseti(L, -2, 2);
		lua_rawset(L, lua_upvalueindex(1));
	}
	lua_settop(L, 3);
	lua_rawset(L, 1);
	return 0;
}

/* Lua places an assignment at the line where its statement ends, the
 * closing brace of a table; a person looks for where it starts. Finds the
 * nearest line at or before `end` that starts with `name =`, else `end`.
 * Only used to word an error, so the file is read then and only then. */
static int statement_start(const char *src, const char *name, int end)
{
	FILE *f = fopen(src, "r");
	size_t nlen = strlen(name), cap = 0;
	char *buf = NULL;
	int no = 0, found = end;

	if (!f)
		return end;
	while (no < end && getline(&buf, &cap, f) >= 0) {
		const char *p = buf;
		no++;
		while (*p == ' ' || *p == '\t')
			p++;
		if (strncmp(p, name, nlen) != 0)
			continue;
		p += nlen;
		while (*p == ' ' || *p == '\t')
			p++;
		if (p[0] == '=' && p[1] != '=')
			found = no;
	}
	free(buf);
	fclose(f);
	return found;
}

static int fail(struct rd *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct rd *c, const char *fmt, ...)
{
	va_list ap;
	int line = c->line > 0 && c->name ? statement_start(c->src, c->name, c->line) : c->line;
	int n = line > 0 ? snprintf(c->err, sizeof c->err, "%s:%d: ", c->src, line)
	                 : snprintf(c->err, sizeof c->err, "%s: ", c->src);
	if (n < 0 || (size_t)n >= sizeof c->err)
		return -1;
	va_start(ap, fmt);
	vsnprintf(c->err + n, sizeof c->err - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

/* Sets c->src and c->line to where global `name` was assigned. */
static void locate(struct rd *c, const char *name)
{
	lua_State *L = c->L;
	c->name = name;
	c->line = 0;
	snprintf(c->src, sizeof c->src, "%s", c->path);
	lua_pushstring(L, name);
	if (lua_rawget(L, c->lines) == LUA_TTABLE) {
		lua_rawgeti(L, -1, 1);
		lua_rawgeti(L, -2, 2);
		if (lua_type(L, -2) == LUA_TSTRING)
			snprintf(c->src, sizeof c->src, "%s", lua_tostring(L, -2));
		c->line = (int)lua_tointeger(L, -1);
		lua_pop(L, 2);
	}
	lua_pop(L, 1);
}

/* A value as an error message shows it: "abc" quoted, 42, true, a table. */
static const char *describe(lua_State *L, int idx, char *buf, size_t len)
{
	size_t n;
	const char *s;
	switch (lua_type(L, idx)) {
	case LUA_TSTRING:
		s = lua_tolstring(L, idx, &n);
		snprintf(buf, len, "\"%.*s%s\"", (int)MIN(n, 60), s, n > 60 ? "..." : "");
		break;
	case LUA_TNUMBER:
		if (lua_isinteger(L, idx))
			snprintf(buf, len, "%lld", (long long)lua_tointeger(L, idx));
		else
			snprintf(buf, len, "%.14g", (double)lua_tonumber(L, idx));
		break;
	case LUA_TBOOLEAN:
		snprintf(buf, len, "%s", lua_toboolean(L, idx) ? "true" : "false");
		break;
	case LUA_TNIL:
		snprintf(buf, len, "nil");
		break;
	default:
		snprintf(buf, len, "a %s", luaL_typename(L, idx));
		break;
	}
	return buf;
}

#define GOT(c, idx) describe((c)->L, (idx), got, sizeof got)

/* Pushes the global `name` (raw) and returns its type; when it is set,
 * errors from now on name its place. */
static int global(struct rd *c, const char *name)
{
	int t;
	lua_pushstring(c->L, name);
	t = lua_rawget(c->L, c->env);
	if (t != LUA_TNIL)
		locate(c, name);
	return t;
}

/* Pushes t[name] (raw), t an absolute index, and returns its type. */
static int field(lua_State *L, int t, const char *name)
{
	lua_pushstring(L, name);
	return lua_rawget(L, t);
}

static bool in_list(const char *s, const char *const *list, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(s, list[i]) == 0)
			return true;
	return false;
}

/* Text form of a number: integers as such, integral floats (1e6) too;
 * anything else as written, for config_set() to refuse with its own words. */
static void number_text(lua_State *L, int idx, char *buf, size_t len)
{
	lua_Number d;
	if (lua_isinteger(L, idx)) {
		snprintf(buf, len, "%lld", (long long)lua_tointeger(L, idx));
		return;
	}
	d = lua_tonumber(L, idx);
	/* In range before the cast: converting 1e100 (or NaN) is undefined. */
	if (d > -9.2e18 && d < 9.2e18 && d == (lua_Number)(long long)d)
		snprintf(buf, len, "%lld", (long long)d);
	else
		snprintf(buf, len, "%.17g", (double)d);
}

static bool has_nul(lua_State *L, int idx)
{
	size_t n;
	const char *s = lua_tolstring(L, idx, &n);
	return strlen(s) != n;
}

/* ---- shapes ---- */

static int want_table(struct rd *c, int idx, const char *what, const char *shape)
{
	char got[96];
	if (lua_type(c->L, idx) != LUA_TTABLE)
		return fail(c, "%s: expected %s, got %s", what, shape, GOT(c, idx));
	return 0;
}

/* A list: keys 1..n and nothing else. Catches `listeners = { port = 1 }`,
 * a list written without its inner braces. */
static int want_list(struct rd *c, int t, const char *what, const char *shape)
{
	lua_State *L = c->L;
	lua_Integer n;
	if (want_table(c, t, what, shape) < 0)
		return -1;
	n = (lua_Integer)lua_rawlen(L, t);
	lua_pushnil(L);
	while (lua_next(L, t)) {
		lua_pop(L, 1);
		if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1 && lua_tointeger(L, -1) <= n)
			continue;
		if (lua_type(L, -1) == LUA_TSTRING)
			return fail(c, "%s: expected %s, found the key '%s' (missing inner braces?)", what, shape,
			            lua_tostring(L, -1));
		return fail(c, "%s: expected %s, found a key that is not 1..%lld", what, shape, (long long)n);
	}
	return 0;
}

/* Fields of a table entry: positional 1..npos, then the named ones. */
static int want_fields(struct rd *c, int t, const char *what, int npos, const char *const *names, size_t nnames)
{
	lua_State *L = c->L;
	lua_pushnil(L);
	while (lua_next(L, t)) {
		lua_pop(L, 1);
		if (lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1 && lua_tointeger(L, -1) <= npos)
			continue;
		if (lua_type(L, -1) == LUA_TSTRING && in_list(lua_tostring(L, -1), names, nnames))
			continue;
		{
			char known[256] = "", got[96];
			size_t k = 0;
			for (size_t i = 0; i < nnames; i++)
				k += (size_t)snprintf(known + k, k < sizeof known ? sizeof known - k : 0, "%s%s",
				                      i ? ", " : "", names[i]);
			if (lua_type(L, -1) == LUA_TSTRING)
				return fail(c, "%s: unknown field '%s' (known: %s)", what, lua_tostring(L, -1), known);
			return fail(c, "%s: unexpected key %s (known: %s)", what, GOT(c, -1), known);
		}
	}
	return 0;
}

/* t[name] or t[pos] (one of them, not both) as a string. *out is NULL
 * when neither is given; the string stays valid while t is on the stack. */
static int get_string2(struct rd *c, int t, const char *what, int pos, const char *name,
                       bool required, const char **out)
{
	lua_State *L = c->L;
	char got[96];
	int tp, tn;

	*out = NULL;
	if (pos)
		lua_rawgeti(L, t, pos);
	else
		lua_pushnil(L);
	tp = lua_type(L, -1);
	tn = field(L, t, name);
	if (tp != LUA_TNIL && tn != LUA_TNIL)
		return fail(c, "%s: %s given twice, as [%d] and as %s", what, name, pos, name);
	if (tn == LUA_TNIL)
		lua_pop(L, 1);		/* keep the positional value */
	else
		lua_remove(L, -2);	/* keep the named one */
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return required ? fail(c, "%s: %s is missing", what, name) : 0;
	}
	if (lua_type(L, -1) != LUA_TSTRING || lua_rawlen(L, -1) == 0 || has_nul(L, -1))
		return fail(c, "%s.%s: expected a non-empty string, got %s", what, name, GOT(c, -1));
	*out = lua_tostring(L, -1);
	lua_pop(L, 1);
	return 0;
}

static int get_string(struct rd *c, int t, const char *what, const char *name, bool required, const char **out)
{
	return get_string2(c, t, what, 0, name, required, out);
}

static int get_int(struct rd *c, int t, const char *what, const char *name, lua_Integer min,
                   lua_Integer max, bool required, lua_Integer *out)
{
	lua_State *L = c->L;
	char got[96];
	int isint = 0;
	lua_Integer v;
	if (field(L, t, name) == LUA_TNIL) {
		lua_pop(L, 1);
		return required ? fail(c, "%s: %s is missing", what, name) : 0;
	}
	v = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isint) : 0;
	if (!isint || v < min || v > max)
		return fail(c, "%s.%s: expected an integer %lld..%lld, got %s", what, name, (long long)min,
		            (long long)max, GOT(c, -1));
	*out = v;
	lua_pop(L, 1);
	return 0;
}

static int get_bool(struct rd *c, int t, const char *what, const char *name, bool *out)
{
	lua_State *L = c->L;
	char got[96];
	int tp = field(L, t, name);
	if (tp != LUA_TNIL && tp != LUA_TBOOLEAN)
		return fail(c, "%s.%s: expected true or false, got %s", what, name, GOT(c, -1));
	if (tp == LUA_TBOOLEAN)
		*out = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return 0;
}

/* Calls fn(c, arg, what, s) for each string of a list (or a lone string
 * when lone_ok) at absolute index t. */
typedef int (*string_fn)(struct rd *c, void *arg, const char *what, const char *s);

static int each_string(struct rd *c, int t, const char *what, bool lone_ok, string_fn fn, void *arg)
{
	lua_State *L = c->L;
	char item[160], got[96];
	lua_Integer n;
	if (lone_ok && lua_type(L, t) == LUA_TSTRING)
		return fn(c, arg, what, lua_tostring(L, t));
	if (want_list(c, t, what, "a list of strings") < 0)
		return -1;
	n = (lua_Integer)lua_rawlen(L, t);
	for (lua_Integer i = 1; i <= n; i++) {
		snprintf(item, sizeof item, "%.120s[%lld]", what, (long long)i);
		lua_rawgeti(L, t, i);
		if (lua_type(L, -1) != LUA_TSTRING || lua_rawlen(L, -1) == 0 || has_nul(L, -1))
			return fail(c, "%s: expected a non-empty string, got %s", item, GOT(c, -1));
		if (fn(c, arg, item, lua_tostring(L, -1)) < 0)
			return -1;
		lua_pop(L, 1);
	}
	return 0;
}

/* ---- names ---- */

static bool known_name(const char *s)
{
	return config_option_find(s) || in_list(s, structured, ARRAY_LEN(structured)) ||
	       in_list(s, functions, ARRAY_LEN(functions));
}

static const char *nearest_name(const char *s)
{
	size_t n, best = 3;	/* at most two edits away */
	const struct config_option *opts = config_options(&n);
	const char *found = NULL;
	for (size_t i = 0; i < n + ARRAY_LEN(structured) + ARRAY_LEN(functions); i++) {
		const char *cand = i < n ? opts[i].name : i < n + ARRAY_LEN(structured)
		                 ? structured[i - n] : functions[i - n - ARRAY_LEN(structured)];
		size_t d = edit_distance(s, cand);
		if (d < best) {
			best = d;
			found = cand;
		}
	}
	return found;
}

/* Every global must be an option, a rule, or a function: a typo such as
 * max_fram would otherwise be silently ignored. The earliest offender in
 * the file is reported, so the message does not depend on hash order. */
static int check_names(struct rd *c)
{
	lua_State *L = c->L;
	char first[128] = "";
	int first_line = INT32_MAX;
	const char *near;

	lua_pushnil(L);
	while (lua_next(L, c->env)) {
		const char *name;
		if (lua_type(L, -2) != LUA_TSTRING) {
			char got[96];
			locate(c, "");
			return fail(c, "a global whose name is %s: only named options can be set", GOT(c, -2));
		}
		name = lua_tostring(L, -2);
		if (!known_name(name) && lua_type(L, -1) != LUA_TFUNCTION) {
			locate(c, name);
			if (c->line < first_line || !first[0]) {
				first_line = c->line;
				snprintf(first, sizeof first, "%s", name);
			}
		}
		lua_pop(L, 1);
	}
	if (!first[0])
		return 0;
	locate(c, first);
	near = nearest_name(first);
	if (near)
		return fail(c, "unknown option '%s' (did you mean %s?)", first, near);
	return fail(c, "unknown option '%s' (not a broker option: make your own variables local)", first);
}

/* ---- scalar options ---- */

static int read_scalars(struct rd *c)
{
	lua_State *L = c->L;
	size_t n;
	const struct config_option *opts = config_options(&n);

	for (size_t i = 0; i < n; i++) {
		const struct config_option *o = &opts[i];
		char text[64], why[512], got[96];
		const char *v = text;
		int t = global(c, o->name);

		if (t == LUA_TNIL) {
			lua_pop(L, 1);
			continue;
		}
		switch (o->type) {
		case CONFIG_STRING:
		case CONFIG_FSYNC:
		case CONFIG_OVERFLOW:
			if (t != LUA_TSTRING)
				return fail(c, "%s: expected a string, got %s", o->name, GOT(c, -1));
			break;
		case CONFIG_BOOL:
			if (t != LUA_TBOOLEAN && t != LUA_TSTRING)
				return fail(c, "%s: expected true or false, got %s", o->name, GOT(c, -1));
			break;
		case CONFIG_SIZE:
			if (t != LUA_TNUMBER && t != LUA_TSTRING)
				return fail(c, "%s: expected a size such as 16MiB or a number of bytes, got %s",
				            o->name, GOT(c, -1));
			break;
		case CONFIG_INT:
		case CONFIG_U64:
			if (t != LUA_TNUMBER && t != LUA_TSTRING)
				return fail(c, "%s: expected a number, got %s", o->name, GOT(c, -1));
			break;
		}
		if (t == LUA_TSTRING) {
			if (has_nul(L, -1))
				return fail(c, "%s: the string contains a NUL byte", o->name);
			v = lua_tostring(L, -1);
		} else if (t == LUA_TBOOLEAN) {
			v = lua_toboolean(L, -1) ? "true" : "false";
		} else {
			number_text(L, -1, text, sizeof text);
		}
		if (config_set(c->cfg, o->name, v, why, sizeof why) < 0)
			return fail(c, "%s", why);
		lua_pop(L, 1);
	}
	return 0;
}

/* ---- tls ---- */

static int add_ca(struct rd *c, void *arg, const char *what, const char *pattern)
{
	struct config *cfg = c->cfg;
	glob_t g;
	int rc = glob(pattern, 0, NULL, &g);
	(void)arg;
	if (rc == GLOB_NOMATCH) {
		globfree(&g);
		return fail(c, "%s: no file matches '%s'", what, pattern);
	}
	if (rc != 0) {
		globfree(&g);
		return fail(c, "%s: cannot expand '%s': %s", what, pattern,
		            rc == GLOB_NOSPACE ? "out of memory" : "read error");
	}
	for (size_t i = 0; i < g.gl_pathc; i++) {
		cfg->ca_chains = xrealloc(cfg->ca_chains, (cfg->nca_chains + 1) * sizeof *cfg->ca_chains);
		cfg->ca_chains[cfg->nca_chains++] = xstrdup(g.gl_pathv[i]);
	}
	globfree(&g);
	return 0;
}

/* Also set by its flat twin? Two places for one setting is a mistake. */
static int twin_set(struct rd *c, const char *flat)
{
	int t;
	lua_pushstring(c->L, flat);
	t = lua_rawget(c->L, c->env);
	lua_pop(c->L, 1);
	return t != LUA_TNIL;
}

static int read_tls(struct rd *c)
{
	static const char *const names[] = { "cert_key", "port", "ca_chains" };
	lua_State *L = c->L;
	const char *cert;
	lua_Integer port = -1;
	char why[512], text[32];
	int t;

	if (global(c, "tls") == LUA_TNIL)
		return lua_pop(L, 1), 0;
	t = lua_gettop(L);
	if (want_table(c, t, "tls", "a table { cert_key = ..., port = ..., ca_chains = { ... } }") < 0 ||
	    want_fields(c, t, "tls", 0, names, ARRAY_LEN(names)) < 0 ||
	    get_string(c, t, "tls", "cert_key", false, &cert) < 0 ||
	    get_int(c, t, "tls", "port", 0, 65535, false, &port) < 0)
		return -1;
	if (cert) {
		if (twin_set(c, "tls_cert_key"))
			return fail(c, "tls.cert_key: tls_cert_key is set too; keep one of them");
		if (config_set(c->cfg, "tls_cert_key", cert, why, sizeof why) < 0)
			return fail(c, "tls.%s", why);
	}
	if (port >= 0) {
		if (twin_set(c, "tls_port"))
			return fail(c, "tls.port: tls_port is set too; keep one of them");
		snprintf(text, sizeof text, "%lld", (long long)port);
		if (config_set(c->cfg, "tls_port", text, why, sizeof why) < 0)
			return fail(c, "tls.%s", why);
	}
	if (field(L, t, "ca_chains") != LUA_TNIL) {
		struct config *cfg = c->cfg;
		for (size_t i = 0; i < cfg->nca_chains; i++)
			free(cfg->ca_chains[i]);
		free(cfg->ca_chains);
		cfg->ca_chains = NULL;
		cfg->nca_chains = 0;
		if (each_string(c, lua_gettop(L), "tls.ca_chains", true, add_ca, NULL) < 0)
			return -1;
	}
	lua_settop(L, t - 1);
	return 0;
}

/* ---- listeners, vhosts, users ---- */

static int read_listeners(struct rd *c)
{
	static const char *const names[] = { "address", "port", "tls" };
	lua_State *L = c->L;
	struct config *cfg = c->cfg;
	lua_Integer n;
	int t;

	if (global(c, "listeners") == LUA_TNIL)
		return lua_pop(L, 1), 0;
	t = lua_gettop(L);
	if (want_list(c, t, "listeners", "a list of { address = ..., port = ..., tls = ... } tables") < 0)
		return -1;
	/* The file's list replaces the built-in listener, and its ports are
	 * bound exactly, as -p's is: only the built-in default scans. */
	cfg->port_given = true;
	for (size_t i = 0; i < cfg->nlisteners; i++)
		free(cfg->listeners[i].address);
	free(cfg->listeners);
	cfg->listeners = NULL;
	cfg->nlisteners = 0;

	n = (lua_Integer)lua_rawlen(L, t);
	for (lua_Integer i = 1; i <= n; i++) {
		char what[64];
		const char *address;
		lua_Integer port = 0;
		bool tls = false;
		snprintf(what, sizeof what, "listeners[%lld]", (long long)i);
		lua_rawgeti(L, t, i);
		if (want_table(c, -1, what, "a table { address = ..., port = ..., tls = ... }") < 0 ||
		    want_fields(c, lua_gettop(L), what, 0, names, ARRAY_LEN(names)) < 0 ||
		    get_string(c, lua_gettop(L), what, "address", false, &address) < 0 ||
		    get_int(c, lua_gettop(L), what, "port", 0, 65535, true, &port) < 0 ||
		    get_bool(c, lua_gettop(L), what, "tls", &tls) < 0)
			return -1;
		config_add_listener(cfg, address, (int)port, tls);
		lua_pop(L, 1);
	}
	lua_settop(L, t - 1);
	return 0;
}

static int add_vhost(struct rd *c, void *arg, const char *what, const char *name)
{
	(void)arg;
	for (size_t i = 0; i < c->cfg->nvhosts; i++)
		if (strcmp(c->cfg->vhosts[i].name, name) == 0)
			return fail(c, "%s: virtual host '%s' is listed twice", what, name);
	config_add_vhost(c->cfg, name);
	return 0;
}

static int read_vhosts(struct rd *c)
{
	int t;
	if (global(c, "vhosts") == LUA_TNIL)
		return lua_pop(c->L, 1), 0;
	t = lua_gettop(c->L);
	if (each_string(c, t, "vhosts", false, add_vhost, NULL) < 0)
		return -1;
	lua_settop(c->L, t - 1);
	return 0;
}

static int read_users(struct rd *c)
{
	static const char *const names[] = { "login", "passcode", "admin" };
	lua_State *L = c->L;
	lua_Integer n;
	int t;

	if (global(c, "users") == LUA_TNIL)
		return lua_pop(L, 1), 0;
	t = lua_gettop(L);
	if (want_list(c, t, "users", "a list of { login = ..., passcode = ..., admin = ... } tables") < 0)
		return -1;
	n = (lua_Integer)lua_rawlen(L, t);
	for (lua_Integer i = 1; i <= n; i++) {
		char what[64];
		const char *login, *passcode;
		bool admin = false;
		int u;
		snprintf(what, sizeof what, "users[%lld]", (long long)i);
		lua_rawgeti(L, t, i);
		u = lua_gettop(L);
		if (want_table(c, u, what, "a table { login = ..., passcode = ..., admin = ... }") < 0 ||
		    want_fields(c, u, what, 0, names, ARRAY_LEN(names)) < 0 ||
		    get_string(c, u, what, "login", true, &login) < 0 ||
		    get_bool(c, u, what, "admin", &admin) < 0)
			return -1;
		/* An empty passcode is a passcode; only nil means none. */
		if (field(L, u, "passcode") == LUA_TSTRING) {
			passcode = lua_tostring(L, -1);
		} else if (lua_isnil(L, -1)) {
			passcode = NULL;
		} else {
			char got[96];
			return fail(c, "%s.passcode: expected a string, got %s", what, GOT(c, -1));
		}
		lua_pop(L, 1);
		for (size_t j = 0; j < c->cfg->nusers; j++)
			if (strcmp(c->cfg->users[j].login, login) == 0)
				return fail(c, "%s: login '%s' is listed twice", what, login);
		config_add_user(c->cfg, login, passcode, admin);
		lua_pop(L, 1);
	}
	lua_settop(L, t - 1);
	return 0;
}

/* ---- queue options ---- */

/* One queue option, the key at -2 and the value at -1, into o. */
static int queue_option(struct rd *c, struct queue_opts *o, const char *what)
{
	lua_State *L = c->L;
	const char *key = lua_tostring(L, -2), *v = NULL;
	char text[64], why[512], got[96];
	size_t klen = strlen(key);

	switch (lua_type(L, -1)) {
	case LUA_TBOOLEAN:
		/* dead_letter = false: no dead-letter queue, drop instead */
		if (!lua_toboolean(L, -1) && (strcmp(key, "dead_letter") == 0 || strcmp(key, "dlq") == 0))
			v = "none";
		else
			v = lua_toboolean(L, -1) ? "true" : "false";
		break;
	case LUA_TNUMBER:
		number_text(L, -1, text, sizeof text);
		v = text;
		break;
	case LUA_TSTRING:
		if (has_nul(L, -1))
			return fail(c, "%s.%s: the string contains a NUL byte", what, key);
		v = lua_tostring(L, -1);
		break;
	default:
		return fail(c, "%s.%s: expected a string, number or boolean, got %s", what, key, GOT(c, -1));
	}
	if (queue_opts_set(o, key, v, why, sizeof why) == 0)
		return 0;
	/* queue_opts_set() names the option first when it knows it. */
	if (strncmp(why, key, klen) == 0 && why[klen] == ':')
		return fail(c, "%s.%s", what, why);
	return fail(c, "%s: %s", what, why);
}

static int read_queue_defaults(struct rd *c)
{
	lua_State *L = c->L;
	int t;
	if (global(c, "queue_defaults") == LUA_TNIL)
		return lua_pop(L, 1), 0;
	t = lua_gettop(L);
	if (want_table(c, t, "queue_defaults", "a table { persistent = ..., max_length = ..., ... }") < 0)
		return -1;
	lua_pushnil(L);
	while (lua_next(L, t)) {
		if (lua_type(L, -2) != LUA_TSTRING) {
			char got[96];
			return fail(c, "queue_defaults: unexpected key %s", GOT(c, -2));
		}
		if (queue_option(c, &c->cfg->queue_defaults, "queue_defaults") < 0)
			return -1;
		lua_pop(L, 1);
	}
	lua_settop(L, t - 1);
	return 0;
}

/* ---- types and destinations ---- */

static int read_type(struct rd *c, const char *what, const char *s, bool command_ok)
{
	int type = s ? dest_type_from(s) : -1;
	if (type < 0 || (type == DEST_COMMAND && !command_ok))
		return fail(c, "%s: unknown destination type '%s' (known: queue, topic, pubsub%s)", what,
		            s ? s : "", command_ok ? ", command" : "");
	return type;
}

static int add_rule_child(struct rd *c, void *arg, const char *what, const char *s)
{
	(void)c;
	(void)what;
	type_rule_add_child(arg, s);
	return 0;
}

static int add_dest_child(struct rd *c, void *arg, const char *what, const char *s)
{
	(void)c;
	(void)what;
	dest_cfg_add_child(arg, s);
	return 0;
}

static int read_types(struct rd *c)
{
	static const char *const names[] = { "pattern", "type", "children" };
	lua_State *L = c->L;
	lua_Integer n;
	int t, line;

	if (global(c, "types") == LUA_TNIL)
		return lua_pop(L, 1), 0;
	t = lua_gettop(L);
	if (want_list(c, t, "types", "a list of { \"regex\", \"type\", children = { ... } } rules") < 0)
		return -1;
	line = c->line > 0 ? statement_start(c->src, "types", c->line) : 0;
	n = (lua_Integer)lua_rawlen(L, t);
	for (lua_Integer i = 1; i <= n; i++) {
		char what[64], why[512];
		const char *pattern, *type_name;
		struct type_rule *rule;
		int type, e;
		snprintf(what, sizeof what, "types[%lld]", (long long)i);
		lua_rawgeti(L, t, i);
		e = lua_gettop(L);
		if (want_table(c, e, what, "a rule { \"regex\", \"type\", children = { ... } }") < 0 ||
		    want_fields(c, e, what, 2, names, ARRAY_LEN(names)) < 0 ||
		    get_string2(c, e, what, 1, "pattern", true, &pattern) < 0 ||
		    get_string2(c, e, what, 2, "type", true, &type_name) < 0)
			return -1;
		snprintf(why, sizeof why, "%s.type", what);
		if ((type = read_type(c, why, type_name, true)) < 0)
			return -1;
		rule = config_add_rule(c->cfg, pattern, (enum dest_type)type, line, why, sizeof why);
		if (!rule)
			return fail(c, "%s: %s", what, why);
		if (field(L, e, "children") != LUA_TNIL) {
			snprintf(why, sizeof why, "%s.children", what);
			if (type != DEST_PUBSUB)
				return fail(c, "%s: only pubsub rules have children", why);
			if (each_string(c, lua_gettop(L), why, false, add_rule_child, rule) < 0)
				return -1;
		}
		lua_settop(L, t);
	}
	lua_settop(L, t - 1);
	return 0;
}

static bool vhost_known(const struct config *cfg, const char *name)
{
	if (cfg->default_vhost && strcmp(cfg->default_vhost, name) == 0)
		return true;
	for (size_t i = 0; i < cfg->nvhosts; i++)
		if (strcmp(cfg->vhosts[i].name, name) == 0)
			return true;
	return false;
}

static bool same_vhost(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int read_destinations(struct rd *c)
{
	static const char *const fixed[] = { "name", "type", "vhost", "children" };
	lua_State *L = c->L;
	struct config *cfg = c->cfg;
	lua_Integer n;
	int t;

	if (global(c, "destinations") == LUA_TNIL)
		return lua_pop(L, 1), 0;
	t = lua_gettop(L);
	if (want_list(c, t, "destinations", "a list of { \"name\", \"type\", option = value, ... } tables") < 0)
		return -1;
	n = (lua_Integer)lua_rawlen(L, t);
	for (lua_Integer i = 1; i <= n; i++) {
		char what[64], sub[96];
		const char *name, *type_name, *vhost;
		const struct type_rule *rule = NULL;
		struct dest_cfg *d;
		int type, e;

		snprintf(what, sizeof what, "destinations[%lld]", (long long)i);
		lua_rawgeti(L, t, i);
		e = lua_gettop(L);
		if (want_table(c, e, what, "a table { \"name\", \"type\", option = value, ... }") < 0 ||
		    get_string2(c, e, what, 1, "name", true, &name) < 0 ||
		    get_string2(c, e, what, 2, "type", false, &type_name) < 0 ||
		    get_string(c, e, what, "vhost", false, &vhost) < 0)
			return -1;
		if (type_name) {
			snprintf(sub, sizeof sub, "%s.type", what);
			if ((type = read_type(c, sub, type_name, false)) < 0)
				return -1;
		} else {
			/* The type the broker would give it: rules, then prefixes. */
			type = (int)config_dest_type(cfg, name, &rule);
			if (type == DEST_COMMAND)
				return fail(c, "%s: '%s' is a command destination; those are built in", what, name);
		}
		if (vhost && !vhost_known(cfg, vhost))
			return fail(c, "%s.vhost: unknown virtual host '%s' (list it in vhosts)", what, vhost);
		if (strncmp(name, "/durable/", 9) == 0 || strncmp(name, "/temp-queue/", 12) == 0)
			return fail(c, "%s: '%s' cannot be configured: %s", what, name,
			            name[1] == 'd' ? "/durable/ queues are made by durable topic subscriptions"
			                           : "temporary queues are made by their connection");
		for (size_t j = 0; j < cfg->ndests; j++)
			if (strcmp(cfg->dests[j].name, name) == 0 && same_vhost(cfg->dests[j].vhost, vhost))
				return fail(c, "%s: '%s' is listed twice", what, name);

		d = config_add_dest(cfg, name, (enum dest_type)type);
		d->vhost = vhost ? xstrdup(vhost) : NULL;

		/* Every other key is a queue option, or a mistake. */
		lua_pushnil(L);
		while (lua_next(L, e)) {
			const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
			if (!key) {
				if (lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1 && lua_tointeger(L, -2) <= 2) {
					lua_pop(L, 1);
					continue;
				}
				char got[96];
				return fail(c, "%s: unexpected key %s", what, GOT(c, -2));
			}
			if (in_list(key, fixed, ARRAY_LEN(fixed))) {
				lua_pop(L, 1);
				continue;
			}
			if (type != DEST_QUEUE)
				return fail(c, "%s.%s: only queues take queue options ('%s' is a %s)", what, key,
				            name, dest_type_name((enum dest_type)type));
			if (queue_option(c, &d->opts, what) < 0)
				return -1;
			lua_pop(L, 1);
		}

		if (field(L, e, "children") != LUA_TNIL) {
			snprintf(sub, sizeof sub, "%s.children", what);
			if (type != DEST_PUBSUB)
				return fail(c, "%s: only a pubsub has children ('%s' is a %s)", sub, name,
				            dest_type_name((enum dest_type)type));
			if (each_string(c, lua_gettop(L), sub, false, add_dest_child, d) < 0)
				return -1;
		} else if (rule && type == DEST_PUBSUB) {
			/* None listed: the matching rule's children apply, as they
			 * would to a pubsub created at run time. */
			for (size_t j = 0; j < rule->nchildren; j++)
				dest_cfg_add_child(d, rule->children[j]);
		}
		lua_settop(L, t);
	}
	lua_settop(L, t - 1);
	return 0;
}

/* ---- bridges ---- */

/* One scalar value of a bridge entry as the text bridge_spec_set takes. */
static int bridge_text(struct rd *c, const char *what, const char *key, char *buf, size_t len, const char **out)
{
	lua_State *L = c->L;
	char got[96];
	switch (lua_type(L, -1)) {
	case LUA_TBOOLEAN:
		*out = lua_toboolean(L, -1) ? "true" : "false";
		return 0;
	case LUA_TNUMBER:
		number_text(L, -1, buf, len);
		*out = buf;
		return 0;
	case LUA_TSTRING:
		if (has_nul(L, -1))
			return fail(c, "%s.%s: the string contains a NUL byte", what, key);
		*out = lua_tostring(L, -1);
		return 0;
	}
	return fail(c, "%s.%s: expected a string, number or boolean, got %s", what, key, GOT(c, -1));
}

static int bridge_set(struct rd *c, struct bridge_spec *b, const char *what, const char *key, const char *v)
{
	char why[512];
	if (bridge_spec_set(b, key, v, why, sizeof why) == 0)
		return 0;
	return fail(c, "%s.%s", what, why);
}

/* hosts = { "a:61613", "b:61613" } or "a:61613,b:61613" */
static int add_bridge_host(struct rd *c, void *arg, const char *what, const char *s)
{
	struct sbuf *hosts = arg;
	(void)c;
	(void)what;
	if (hosts->len)
		sbuf_addc(hosts, ',');
	sbuf_adds(hosts, s);
	return 0;
}

/* send_headers = { ["x-queue-type"] = "quorum" }: each NAME:VALUE. */
static int bridge_headers(struct rd *c, struct bridge_spec *b, const char *what, const char *key, int t)
{
	lua_State *L = c->L;
	const char *word = strcmp(key, "send_headers") == 0 ? "send-header" : "subscribe-header";
	char sub[128];
	snprintf(sub, sizeof sub, "%s.%s", what, key);
	if (want_table(c, t, sub, "a table { [\"name\"] = \"value\", ... }") < 0)
		return -1;
	lua_pushnil(L);
	while (lua_next(L, t)) {
		char buf[64];
		const char *v;
		struct sbuf hv;
		int rc;
		if (lua_type(L, -2) != LUA_TSTRING) {
			char got[96];
			return fail(c, "%s: expected header names as keys, got %s", sub, GOT(c, -2));
		}
		if (bridge_text(c, sub, lua_tostring(L, -2), buf, sizeof buf, &v) < 0)
			return -1;
		sbuf_init(&hv);
		sbuf_printf(&hv, "%s:%s", lua_tostring(L, -2), v);
		rc = bridge_set(c, b, what, word, hv.buf);
		sbuf_fini(&hv);
		if (rc < 0)
			return -1;
		lua_pop(L, 1);
	}
	return 0;
}

static int read_bridges(struct rd *c)
{
	lua_State *L = c->L;
	struct config *cfg = c->cfg;
	lua_Integer n;
	int t;

	if (global(c, "bridges") == LUA_TNIL)
		return lua_pop(L, 1), 0;
	t = lua_gettop(L);
	if (want_list(c, t, "bridges", "a list of { name = ..., direction = ..., from = ..., hosts = ..., ... } tables") < 0)
		return -1;
	n = (lua_Integer)lua_rawlen(L, t);
	for (lua_Integer i = 1; i <= n; i++) {
		char what[64], why[512];
		const char *name;
		struct bridge_spec *b;
		int e;

		snprintf(what, sizeof what, "bridges[%lld]", (long long)i);
		lua_rawgeti(L, t, i);
		e = lua_gettop(L);
		if (want_table(c, e, what, "a table { name = ..., direction = ..., from = ..., hosts = ..., ... }") < 0 ||
		    get_string2(c, e, what, 1, "name", true, &name) < 0)
			return -1;
		if (!bridge_name_ok(name, why, sizeof why))
			return fail(c, "%s.name: %s", what, why);
		for (size_t j = 0; j < cfg->nbridges; j++)
			if (strcmp(cfg->bridges[j].name, name) == 0)
				return fail(c, "%s: bridge '%s' is listed twice", what, name);
		b = config_add_bridge(cfg, name);
		lua_pushnil(L);
		while (lua_next(L, e)) {
			const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
			char buf[64];
			const char *v;
			if (!key) {
				if (lua_isinteger(L, -2) && lua_tointeger(L, -2) == 1) {
					lua_pop(L, 1);
					continue;
				}
				char got[96];
				return fail(c, "%s: unexpected key %s", what, GOT(c, -2));
			}
			if (strcmp(key, "name") == 0) {
				lua_pop(L, 1);
				continue;
			}
			if (strcmp(key, "send_headers") == 0 || strcmp(key, "subscribe_headers") == 0) {
				if (bridge_headers(c, b, what, key, lua_gettop(L)) < 0)
					return -1;
			} else if (strcmp(key, "hosts") == 0 && lua_type(L, -1) == LUA_TTABLE) {
				struct sbuf hosts;
				char sub[96];
				int rc;
				snprintf(sub, sizeof sub, "%s.hosts", what);
				sbuf_init(&hosts);
				rc = each_string(c, lua_gettop(L), sub, false, add_bridge_host, &hosts);
				if (rc == 0)
					rc = bridge_set(c, b, what, "hosts", sbuf_str(&hosts));
				sbuf_fini(&hosts);
				if (rc < 0)
					return -1;
			} else {
				if (bridge_text(c, what, key, buf, sizeof buf, &v) < 0 || bridge_set(c, b, what, key, v) < 0)
					return -1;
			}
			lua_pop(L, 1);
		}
		if (bridge_spec_check(b, why, sizeof why) < 0)
			return fail(c, "%s: %s", what, why);
		if (b->vhost && !vhost_known(cfg, b->vhost))
			return fail(c, "%s.vhost: unknown virtual host '%s' (list it in vhosts)", what, b->vhost);
		lua_settop(L, t);
	}
	lua_settop(L, t - 1);
	return 0;
}

/* A child is a queue: configured as one, or named like one. */
/* Why a pubsub child cannot be one, or NULL. */
static const char *child_problem(const struct config *cfg, const char *child, const char *vhost, char *buf,
                                 size_t len)
{
	enum dest_type t = config_dest_type(cfg, child, NULL);
	if (strncmp(child, "/temp-queue/", 12) == 0)
		return "is a temporary queue, which belongs to the connection that makes it";
	if (strncmp(child, "/durable/", 9) == 0)
		return "is a durable subscription's queue, which only its topic feeds";
	for (size_t i = 0; i < cfg->ndests; i++)
		if (strcmp(cfg->dests[i].name, child) == 0 && same_vhost(cfg->dests[i].vhost, vhost))
			t = cfg->dests[i].type;
	if (t == DEST_QUEUE)
		return NULL;
	snprintf(buf, len, "is not a queue (it would be a %s)", dest_type_name(t));
	return buf;
}

static int check_children(struct rd *c)
{
	const struct config *cfg = c->cfg;
	const char *bad;
	char buf[64];
	for (size_t i = 0; i < cfg->nrules; i++) {
		for (size_t j = 0; j < cfg->rules[i].nchildren; j++) {
			if (!(bad = child_problem(cfg, cfg->rules[i].children[j], NULL, buf, sizeof buf)))
				continue;
			locate(c, "types");
			return fail(c, "types[%zu].children[%zu]: '%s' %s", i + 1, j + 1, cfg->rules[i].children[j], bad);
		}
	}
	for (size_t i = 0; i < cfg->ndests; i++) {
		const struct dest_cfg *d = &cfg->dests[i];
		for (size_t j = 0; j < d->nchildren; j++) {
			if (!(bad = child_problem(cfg, d->children[j], d->vhost, buf, sizeof buf)))
				continue;
			locate(c, "destinations");
			return fail(c, "destinations[%zu].children[%zu]: '%s' %s", i + 1, j + 1, d->children[j], bad);
		}
	}
	return 0;
}

static int check_functions(struct rd *c)
{
	for (size_t i = 0; i < ARRAY_LEN(functions); i++) {
		char got[96];
		int t = global(c, functions[i]);
		if (t != LUA_TNIL && t != LUA_TFUNCTION)
			return fail(c, "%s: expected a function, got %s", functions[i], GOT(c, -1));
		lua_pop(c->L, 1);
	}
	return 0;
}

/* (cfg, env, lines, path) -> nil, or the text of the first error. The
 * order matters: vhosts before the destinations that name them, queue
 * defaults before the destinations that copy them, and types before the
 * destinations whose type they decide. */
int router_config_read(lua_State *L)
{
	struct rd c;
	memset(&c, 0, sizeof c);
	c.L = L;
	c.cfg = lua_touserdata(L, 1);
	c.env = 2;
	c.lines = 3;
	c.path = lua_touserdata(L, 4);
	luaL_checkstack(L, 32, "reading the configuration");
	if (check_names(&c) < 0 || read_scalars(&c) < 0 || read_tls(&c) < 0 ||
	    read_listeners(&c) < 0 || read_vhosts(&c) < 0 || read_users(&c) < 0 ||
	    read_queue_defaults(&c) < 0 || read_types(&c) < 0 || read_destinations(&c) < 0 ||
	    read_bridges(&c) < 0 ||
	    check_children(&c) < 0 || check_functions(&c) < 0) {
		lua_pushstring(L, c.err);
		return 1;
	}
	lua_pushnil(L);
	return 1;
}
