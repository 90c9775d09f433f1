/* scenario_lua.c: the Lua API of scenarios (docs/scenarios.md).
 *
 * Lua describes and checks; it never carries a message. Constructors
 * (broker, attach, producers, consumers) check every field, refuse the
 * ones they do not know (a typo must not pass silently as a default), and
 * hand C a plain struct. The objects they return are userdata holding a
 * pointer to what the run owns; their fields read live C counters.
 *
 * Outcomes: a script error (syntax, a bad argument, a broker that cannot
 * be started) is an ordinary Lua error, exit status 2. A failed check is
 * recorded in the run first and then raised as a unique light userdata,
 * exit status 1; recording it first means a script that pcall()s around
 * expect() still fails. */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "common/json.h"
#include "scenario_int.h"

#define RUN_KEY "mq.scenario.run"
#define MT_BROKER "mq.scenario.broker"
#define MT_PRODUCERS "mq.scenario.producers"
#define MT_CONSUMERS "mq.scenario.consumers"
#define MT_LINK "mq.scenario.link"
#define SLICE_NS 5000000u		/* wait_for and run{} look again every 5 ms */
#define HOOK_COUNT 1000000		/* instructions between looks at Ctrl-C */
#define MAX_CONNECTIONS 100000
#define MAX_FANOUT 254			/* a sink counts arrivals in a byte */

/* The error object of a failed check: its address is its identity. */
static const char failure_marker;

struct ud {
	void *p;	/* borrowed: the run owns it */
};

static struct scn_run *run_of(lua_State *L)
{
	struct scn_run *r;
	lua_getfield(L, LUA_REGISTRYINDEX, RUN_KEY);
	r = lua_touserdata(L, -1);
	lua_pop(L, 1);
	return r;
}

/* ---- failing ---- */

static int raise_failure(lua_State *L)
{
	lua_pushlightuserdata(L, (void *)&failure_marker);
	return lua_error(L);
}

/* "file:line: " of the innermost line of the script: luaL_where(L, 1)
 * would name pcall when a script calls expect through it. */
static void where(lua_State *L, char *buf, size_t len)
{
	lua_Debug ar;
	*buf = 0;
	for (int level = 1; lua_getstack(L, level, &ar); level++) {
		lua_getinfo(L, "Sl", &ar);
		if (ar.currentline > 0) {
			snprintf(buf, len, "%s:%d: ", ar.short_src, ar.currentline);
			return;
		}
	}
}

/* Records a failed check at the calling line of the script and raises. */
static int fail_here(lua_State *L, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail_here(lua_State *L, const char *fmt, ...)
{
	struct scn_run *r = run_of(L);
	char msg[2048], at[LUA_IDSIZE + 32];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	where(L, at, sizeof at);
	scn_fail(r, "%s%s", at, msg);
	return raise_failure(L);
}

/* Runs the loop until deadline; a run aborted meanwhile (Ctrl-C, a broker
 * that died) fails here, at the line that was waiting. */
static void loop_until(lua_State *L, uint64_t deadline)
{
	struct scn_run *r = run_of(L);
	if (scn_loop_until(r, deadline) < 0)
		fail_here(L, "%s", r->fatal);
}

/* ---- argument checking ---- */

static const char *type_of(lua_State *L, int i)
{
	if (luaL_testudata(L, i, MT_BROKER))
		return "a broker";
	if (luaL_testudata(L, i, MT_PRODUCERS))
		return "producers";
	if (luaL_testudata(L, i, MT_CONSUMERS))
		return "consumers";
	if (luaL_testudata(L, i, MT_LINK))
		return "a link";
	return luaL_typename(L, i);
}

/* Rejects fields a constructor does not know, listing the ones it does. */
static void check_fields(lua_State *L, int t, const char *fn, const char *const *known, bool positional)
{
	lua_pushnil(L);
	while (lua_next(L, t)) {
		lua_pop(L, 1);
		if (lua_type(L, -1) == LUA_TNUMBER && positional)
			continue;
		if (lua_type(L, -1) != LUA_TSTRING) {
			luaL_error(L, "%s: unexpected %s key (fields are named: %s = ...)", fn, luaL_typename(L, -1),
			           known[0]);
		} else {
			const char *k = lua_tostring(L, -1);
			size_t i;
			for (i = 0; known[i]; i++)
				if (strcmp(known[i], k) == 0)
					break;
			if (!known[i]) {
				luaL_Buffer b;
				luaL_buffinit(L, &b);
				for (i = 0; known[i]; i++) {
					if (i)
						luaL_addstring(&b, ", ");
					luaL_addstring(&b, known[i]);
				}
				luaL_pushresult(&b);
				luaL_error(L, "%s: unknown field '%s' (known: %s)", fn, k, lua_tostring(L, -1));
			}
		}
	}
}

/* Pushes t[k]; false (nothing pushed) when nil. */
static bool get_field(lua_State *L, int t, const char *k)
{
	if (lua_getfield(L, t, k) == LUA_TNIL) {
		lua_pop(L, 1);
		return false;
	}
	return true;
}

static int bad_value(lua_State *L, const char *fn, const char *k, const char *expected)
{
	const char *got = luaL_tolstring(L, -1, NULL);
	return luaL_error(L, "%s: %s: expected %s, got %s%s%s", fn, k, expected,
	                  lua_type(L, -2) == LUA_TSTRING ? "\"" : "", got, lua_type(L, -2) == LUA_TSTRING ? "\"" : "");
}

static long long opt_int(lua_State *L, int t, const char *fn, const char *k, long long dflt, long long min,
                         long long max)
{
	lua_Integer v;
	int isnum;
	if (!get_field(L, t, k))
		return dflt;
	v = lua_type(L, -1) == LUA_TNUMBER ? lua_tointegerx(L, -1, &isnum) : (isnum = 0);
	if (!isnum || v < min || v > max) {
		char what[96];
		snprintf(what, sizeof what, "an integer %lld..%lld", min, max);
		bad_value(L, fn, k, what);
	}
	lua_pop(L, 1);
	return (long long)v;
}

static double opt_num(lua_State *L, int t, const char *fn, const char *k, double dflt, double min, double max)
{
	double v;
	if (!get_field(L, t, k))
		return dflt;
	v = lua_type(L, -1) == LUA_TNUMBER ? lua_tonumber(L, -1) : NAN;
	if (!(v >= min && v <= max)) {
		char what[96];
		snprintf(what, sizeof what, "a number %g..%g", min, max);
		bad_value(L, fn, k, what);
	}
	lua_pop(L, 1);
	return v;
}

/* The string stays valid while the table holds it: the call's duration. */
static const char *opt_str(lua_State *L, int t, const char *fn, const char *k, const char *dflt)
{
	const char *s;
	if (!get_field(L, t, k))
		return dflt;
	if (lua_type(L, -1) != LUA_TSTRING)
		bad_value(L, fn, k, "a string");
	s = lua_tostring(L, -1);
	lua_pop(L, 1);
	return s;
}

static bool opt_bool(lua_State *L, int t, const char *fn, const char *k, bool dflt)
{
	bool v;
	if (!get_field(L, t, k))
		return dflt;
	if (lua_type(L, -1) != LUA_TBOOLEAN)
		bad_value(L, fn, k, "true or false");
	v = lua_toboolean(L, -1);
	lua_pop(L, 1);
	return v;
}

static struct scn_broker *check_broker(lua_State *L, int i, const char *fn)
{
	struct ud *u = luaL_testudata(L, i, MT_BROKER);
	if (!u)
		luaL_error(L, "%s: expected a broker (from broker{} or attach{}), got %s", fn, type_of(L, i));
	return u->p;
}

static struct scn_broker *field_broker(lua_State *L, int t, const char *fn)
{
	struct scn_broker *b;
	if (!get_field(L, t, "broker"))
		luaL_error(L, "%s: broker: missing (broker = b, from broker{} or attach{})", fn);
	b = check_broker(L, -1, fn);
	lua_pop(L, 1);
	return b;
}

/* headers = { name = value, ... }: copies, freed with free_headers. */
static struct mq_header *field_headers(lua_State *L, int t, const char *fn, size_t *n, const char *const *reserved)
{
	struct mq_header *h = NULL;
	size_t cap = 0;
	*n = 0;
	if (!get_field(L, t, "headers"))
		return NULL;
	if (lua_type(L, -1) != LUA_TTABLE)
		bad_value(L, fn, "headers", "a table { name = value, ... }");
	lua_pushnil(L);
	while (lua_next(L, -2)) {
		const char *name, *value;
		if (lua_type(L, -2) != LUA_TSTRING || !(lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)) {
			luaL_error(L, "%s: headers: expected name = value strings, got a %s key and a %s value", fn,
			           luaL_typename(L, -2), luaL_typename(L, -1));
		}
		name = lua_tostring(L, -2);
		lua_pushvalue(L, -1);
		value = lua_tostring(L, -1);	/* a copy: converting in place would upset lua_next */
		for (size_t i = 0; reserved[i]; i++)
			if (strcmp(name, reserved[i]) == 0)
				luaL_error(L, "%s: headers: '%s' is written by the runner or the library", fn, name);
		if (!*name || strchr(name, ':') || strchr(name, '\n') || strchr(value, '\n'))
			luaL_error(L, "%s: headers: '%s' is not a valid header name or value", fn, name);
		if (*n == cap) {
			cap = cap ? cap * 2 : 8;
			h = xrealloc(h, cap * sizeof *h);
		}
		h[*n].name = xstrdup(name);
		h[*n].value = xstrdup(value);
		(*n)++;
		lua_pop(L, 2);
	}
	lua_pop(L, 1);
	return h;
}

static void free_headers(struct mq_header *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((char *)h[i].name);
		free((char *)h[i].value);
	}
	free(h);
}

static void push_ud(lua_State *L, void *p, const char *mt)
{
	struct ud *u = lua_newuserdatauv(L, sizeof *u, 0);
	u->p = p;
	luaL_setmetatable(L, mt);
}

/* ---- JSON replies as Lua tables ---- */

static void push_json(lua_State *L, const struct json *j)
{
	luaL_checkstack(L, 4, "JSON nested too deeply");
	switch (j->type) {
	case JSON_NULL:
		lua_pushnil(L);
		break;
	case JSON_BOOL:
		lua_pushboolean(L, j->b);
		break;
	case JSON_NUM:
		if (j->num == floor(j->num) && fabs(j->num) < 9007199254740992.0)
			lua_pushinteger(L, (lua_Integer)j->num);
		else
			lua_pushnumber(L, j->num);
		break;
	case JSON_STR:
		lua_pushlstring(L, j->str, j->len);
		break;
	case JSON_ARR:
		lua_createtable(L, (int)j->len, 0);
		for (size_t i = 0; i < j->len; i++) {
			push_json(L, j->items[i]);
			lua_rawseti(L, -2, (lua_Integer)i + 1);
		}
		break;
	case JSON_OBJ:
		lua_createtable(L, 0, (int)j->len);
		for (size_t i = 0; i < j->len; i++) {
			push_json(L, j->items[i]);
			lua_setfield(L, -2, j->keys[i]);
		}
		break;
	}
}

/* ---- brokers ---- */

static bool executable(const char *path)
{
	return access(path, X_OK) == 0;
}

/* opts->mqbroker, else next to this program, else $PATH. */
static int find_mqbroker(struct scn_run *r, char *out, size_t len)
{
	char self[PATH_MAX];
	ssize_t n;
	const char *path;

	if (r->opts->mqbroker && *r->opts->mqbroker) {
		snprintf(out, len, "%s", r->opts->mqbroker);
		return 0;
	}
	n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0) {
		char *slash;
		self[n] = 0;
		if ((slash = strrchr(self, '/'))) {
			*slash = 0;
			if (snprintf(out, len, "%s/mqbroker", self) < (int)len && executable(out))
				return 0;
		}
	}
	path = getenv("PATH");
	while (path && *path) {
		const char *end = strchr(path, ':');
		size_t dl = end ? (size_t)(end - path) : strlen(path);
		if (dl && snprintf(out, len, "%.*s/mqbroker", (int)dl, path) < (int)len && executable(out))
			return 0;
		path = end ? end + 1 : NULL;
	}
	return -1;
}

static void add_broker(struct scn_run *r, struct scn_broker *b)
{
	r->brokers = xrealloc(r->brokers, (r->nbrokers + 1) * sizeof *r->brokers);
	r->brokers[r->nbrokers++] = b;
	b->index = (unsigned)r->nbrokers;
}

static void broker_defaults(lua_State *L, int t, const char *fn, struct scn_broker *b)
{
	const char *s;
	if ((s = opt_str(L, t, fn, "login", NULL)))
		b->login = xstrdup(s);
	if ((s = opt_str(L, t, fn, "passcode", NULL)))
		b->passcode = xstrdup(s);
	if ((s = opt_str(L, t, fn, "vhost", NULL)))
		b->vhost = xstrdup(s);
}

static int l_broker(lua_State *L)
{
	static const char *const known[] = { "args", "config", "login", "passcode", "vhost", "start", NULL };
	struct scn_run *r = run_of(L);
	char exe[PATH_MAX], err[2048];
	const char *config;
	char **args = NULL;
	size_t nargs = 0;
	struct scn_broker *b;
	bool start;

	if (lua_isnoneornil(L, 1)) {
		lua_settop(L, 0);
		lua_newtable(L);
	}
	luaL_checktype(L, 1, LUA_TTABLE);
	check_fields(L, 1, "broker{}", known, false);
	if (find_mqbroker(r, exe, sizeof exe) < 0)
		return luaL_error(L, "broker{}: cannot find the mqbroker program (not next to this program, not in "
		                  "$PATH)");
	config = opt_str(L, 1, "broker{}", "config", NULL);
	start = opt_bool(L, 1, "broker{}", "start", true);
	if (get_field(L, 1, "args")) {
		if (lua_type(L, -1) != LUA_TTABLE)
			bad_value(L, "broker{}", "args", "a list of strings, e.g. { \"-n\", \"5000\" }");
		nargs = lua_rawlen(L, -1);
		args = xcalloc(nargs + 1, sizeof *args);
		for (size_t i = 0; i < nargs; i++) {
			lua_rawgeti(L, -1, (lua_Integer)i + 1);
			if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) {
				for (size_t k = 0; k < i; k++)
					free(args[k]);
				free(args);
				return luaL_error(L, "broker{}: args[%d]: expected a string, got %s", (int)i + 1,
				                  luaL_typename(L, -1));
			}
			args[i] = xstrdup(lua_tostring(L, -1));
			lua_pop(L, 1);
		}
		lua_pop(L, 1);
	}
	b = scn_broker_new_owned(r, exe, args, config, err, sizeof err);
	for (size_t i = 0; i < nargs; i++)
		free(args[i]);
	free(args);
	if (!b)
		return luaL_error(L, "broker{}: %s", err);
	add_broker(r, b);
	broker_defaults(L, 1, "broker{}", b);
	if (start && scn_broker_start(b, err, sizeof err) < 0)
		return luaL_error(L, "broker{}: cannot start %s: %s", exe, err);
	push_ud(L, b, MT_BROKER);
	return 1;
}

static int l_attach(lua_State *L)
{
	static const char *const known[] = { "host", "port", "control_socket", "connection_file", "login",
		                             "passcode", "vhost", NULL };
	struct scn_run *r = run_of(L);
	const char *host, *ctl, *file;
	long long port;
	struct scn_broker *b;

	if (lua_isnoneornil(L, 1)) {
		lua_settop(L, 0);
		lua_newtable(L);
	}
	luaL_checktype(L, 1, LUA_TTABLE);
	check_fields(L, 1, "attach{}", known, false);
	host = opt_str(L, 1, "attach{}", "host", NULL);
	port = opt_int(L, 1, "attach{}", "port", 0, 1, 65535);
	ctl = opt_str(L, 1, "attach{}", "control_socket", NULL);
	file = opt_str(L, 1, "attach{}", "connection_file", NULL);
	if (file) {
		/* mqbroker's connection file (-c) says all three. */
		char why[128];
		struct json *j;
		struct sbuf text;
		FILE *f = fopen(file, "r");
		char buf[4096];
		size_t n;
		if (!f)
			return luaL_error(L, "attach{}: connection_file: cannot read %s: %s", file, strerror(errno));
		sbuf_init(&text);
		while ((n = fread(buf, 1, sizeof buf, f)) > 0)
			sbuf_add(&text, buf, n);
		fclose(f);
		j = json_parse(sbuf_str(&text), text.len, why, sizeof why);
		sbuf_fini(&text);
		if (!j)
			return luaL_error(L, "attach{}: connection_file %s: %s", file, why);
		b = scn_broker_new_attached(r, host ? host : json_get_str(j, "host"),
		                            (uint16_t)(port ? port : (long long)json_get_num(j, "port", 61613)),
		                            ctl ? ctl : json_get_str(j, "control_socket"));
		json_free(j);
	} else {
		/* attach{} alone is mqsh's own broker, when mqsh has one. */
		if (!host && !port && !ctl)
			ctl = r->opts->control_socket;
		b = scn_broker_new_attached(r, host, (uint16_t)(port ? port : 61613), ctl);
	}
	add_broker(r, b);
	broker_defaults(L, 1, "attach{}", b);
	push_ud(L, b, MT_BROKER);
	return 1;
}

static int b_start(lua_State *L)
{
	struct scn_broker *b = check_broker(L, 1, "b:start()");
	char err[2048], name[96];
	bool first = b->port == 0;
	if (!b->owned)
		return luaL_error(L, "b:start(): %s is attached: only brokers from broker{} can be started",
		                  scn_broker_name(b, name, sizeof name));
	if (b->pid > 0)
		return luaL_error(L, "b:start(): %s is already running", scn_broker_name(b, name, sizeof name));
	if (scn_broker_start(b, err, sizeof err) < 0) {
		/* The first start is set-up; a start after a stop or a kill is
		 * what the scenario tests (recovery, say). */
		if (first)
			return luaL_error(L, "b:start(): %s", err);
		return fail_here(L, "%s did not start again: %s", scn_broker_name(b, name, sizeof name), err);
	}
	return 0;
}

static int b_stop(lua_State *L)
{
	struct scn_broker *b = check_broker(L, 1, "b:stop()");
	char err[2048], name[96];
	if (!b->owned)
		return luaL_error(L, "b:stop(): %s is attached: only brokers from broker{} can be stopped",
		                  scn_broker_name(b, name, sizeof name));
	if (scn_broker_stop(b, err, sizeof err) < 0)
		return fail_here(L, "%s", err);
	return 0;
}

static int b_kill(lua_State *L)
{
	struct scn_broker *b = check_broker(L, 1, "b:kill()");
	char name[96];
	if (!b->owned)
		return luaL_error(L, "b:kill(): %s is attached: only brokers from broker{} can be killed",
		                  scn_broker_name(b, name, sizeof name));
	scn_broker_kill(b);
	return 0;
}

static int b_restart(lua_State *L)
{
	struct scn_broker *b = check_broker(L, 1, "b:restart()");
	char err[2048], name[96];
	if (!b->owned)
		return luaL_error(L, "b:restart(): %s is attached: only brokers from broker{} can be restarted",
		                  scn_broker_name(b, name, sizeof name));
	if (b->pid > 0 && scn_broker_stop(b, err, sizeof err) < 0)
		return fail_here(L, "%s", err);
	if (scn_broker_start(b, err, sizeof err) < 0)
		return fail_here(L, "%s did not start again: %s", scn_broker_name(b, name, sizeof name), err);
	return 0;
}

static int b_admin(lua_State *L)
{
	struct scn_broker *b = check_broker(L, 1, "b:admin()");
	const char *line = luaL_checkstring(L, 2);
	char err[1024];
	struct json *j = scn_broker_admin(b, line, err, sizeof err);
	if (!j)
		return luaL_error(L, "%s", err);
	push_json(L, j);
	json_free(j);
	return 1;
}

static int b_stats(lua_State *L)
{
	struct scn_broker *b = check_broker(L, 1, "b:stats()");
	char err[1024];
	struct json *j = scn_broker_admin(b, "stats", err, sizeof err);
	const struct json *data;
	if (!j)
		return luaL_error(L, "%s", err);
	if (!(data = json_get(j, "data")) || data->type != JSON_OBJ) {
		lua_pushstring(L, json_get_str(j, "message") ? json_get_str(j, "message") : "no data");
		json_free(j);
		return luaL_error(L, "b:stats(): the broker answered: %s", lua_tostring(L, -1));
	}
	push_json(L, data);
	json_free(j);
	return 1;
}

/* b:bridge(name): the bridge as `show bridge` has it, or nil when b has
 * no bridge of that name. */
static int b_bridge(lua_State *L)
{
	struct scn_broker *b = check_broker(L, 1, "b:bridge(name)");
	const char *name = luaL_checkstring(L, 2);
	char err[1024], line[256];
	struct json *j;
	const struct json *data;
	if (strpbrk(name, " \t\"'\n"))
		return luaL_error(L, "b:bridge(name): '%s' is not a bridge name", name);
	snprintf(line, sizeof line, "show bridge %s", name);
	if (!(j = scn_broker_admin(b, line, err, sizeof err)))
		return luaL_error(L, "%s", err);
	if ((data = json_get(j, "data")) && data->type == JSON_OBJ)
		push_json(L, data);
	else
		lua_pushnil(L);
	json_free(j);
	return 1;
}

static int broker_index(lua_State *L)
{
	struct scn_broker *b = check_broker(L, 1, "broker");
	const char *k = luaL_checkstring(L, 2);
	if (lua_getfield(L, lua_upvalueindex(1), k) != LUA_TNIL)
		return 1;
	if (strcmp(k, "host") == 0)
		lua_pushstring(L, b->host);
	else if (strcmp(k, "port") == 0)
		lua_pushinteger(L, b->port);
	else if (strcmp(k, "control_socket") == 0)
		lua_pushstring(L, b->control_socket);
	else if (strcmp(k, "pid") == 0)
		lua_pushinteger(L, b->pid);
	else if (strcmp(k, "running") == 0)
		lua_pushboolean(L, !b->owned || b->pid > 0);
	else if (strcmp(k, "owned") == 0)
		lua_pushboolean(L, b->owned);
	else if (strcmp(k, "log") == 0)
		lua_pushstring(L, b->log_path);
	else if (strcmp(k, "data_dir") == 0)
		lua_pushstring(L, b->data_dir);
	else
		return luaL_error(L, "broker has no field '%s'", k);
	return 1;
}

static int broker_tostring(lua_State *L)
{
	char name[96];
	lua_pushstring(L, scn_broker_name(check_broker(L, 1, "broker"), name, sizeof name));
	return 1;
}

/* ---- producers and consumers ---- */

static struct scn_pgroup *check_pgroup(lua_State *L, int i, const char *fn)
{
	struct ud *u = luaL_testudata(L, i, MT_PRODUCERS);
	if (!u)
		luaL_error(L, "%s: expected producers, got %s", fn, type_of(L, i));
	return u->p;
}

static struct scn_cgroup *check_cgroup(lua_State *L, int i, const char *fn)
{
	struct ud *u = luaL_testudata(L, i, MT_CONSUMERS);
	if (!u)
		luaL_error(L, "%s: expected consumers, got %s", fn, type_of(L, i));
	return u->p;
}

static int l_producers(lua_State *L)
{
	static const char *const known[] = { "broker", "destination", "n", "count", "duration", "rate", "size",
		                             "headers", "persistent", "receipts", "reconnect", "reconnect_ms",
		                             "login", "passcode", "vhost", "start", NULL };
	static const char *const reserved[] = { "destination", "receipt", "content-length", "persistent",
		                                SCN_STAMP_HEADER, NULL };
	const char *fn = "producers{}";
	struct scn_run *r = run_of(L);
	struct scn_pgroup_opts o = { 0 };
	struct scn_pgroup *g;
	bool start;

	luaL_checktype(L, 1, LUA_TTABLE);
	check_fields(L, 1, fn, known, false);
	o.broker = field_broker(L, 1, fn);
	o.dest = opt_str(L, 1, fn, "destination", NULL);
	if (!o.dest || !*o.dest)
		return luaL_error(L, "%s: destination: missing (destination = \"/queue/name\")", fn);
	o.n = (unsigned)opt_int(L, 1, fn, "n", 1, 1, MAX_CONNECTIONS);
	o.count = (uint64_t)opt_int(L, 1, fn, "count", 0, 0, (long long)1e12);
	o.duration_s = opt_num(L, 1, fn, "duration", 0, 0, 1e6);
	if (!o.count && o.duration_s <= 0)
		return luaL_error(L, "%s: give count (messages in all) or duration (seconds)", fn);
	if (o.count && o.duration_s > 0)
		return luaL_error(L, "%s: give count or duration, not both", fn);
	o.rate = opt_num(L, 1, fn, "rate", 0, 0, 1e9);
	o.size = (size_t)opt_int(L, 1, fn, "size", 100, 0, 64 << 20);
	o.persistent = opt_bool(L, 1, fn, "persistent", false);
	o.receipts = (unsigned)opt_int(L, 1, fn, "receipts", 0, 0, 1000000);
	o.reconnect = opt_bool(L, 1, fn, "reconnect", true);
	o.reconnect_ms = (unsigned)opt_int(L, 1, fn, "reconnect_ms", 100, 1, 600000);
	o.login = opt_str(L, 1, fn, "login", NULL);
	o.passcode = opt_str(L, 1, fn, "passcode", NULL);
	o.vhost = opt_str(L, 1, fn, "vhost", NULL);
	start = opt_bool(L, 1, fn, "start", true);
	o.headers = field_headers(L, 1, fn, &o.nheaders, reserved);

	g = scn_pgroup_new(r, &o);
	free_headers((struct mq_header *)o.headers, o.nheaders);
	r->pgroups = xrealloc(r->pgroups, (r->npgroups + 1) * sizeof *r->pgroups);
	r->pgroups[r->npgroups++] = g;
	if (start)
		scn_pgroup_start(g);
	push_ud(L, g, MT_PRODUCERS);
	return 1;
}

static bool is_queue_name(const char *d)
{
	return strncmp(d, "/queue/", 7) == 0 || strncmp(d, "/amq/queue/", 11) == 0;
}

static int l_consumers(lua_State *L)
{
	static const char *const known[] = { "broker", "destination", "n", "ack", "max_unconfirmed",
		                             "max_unconfirmed_bytes", "priority", "selector", "delay",
		                             "disconnect_after", "fanout", "headers", "reconnect", "reconnect_ms",
		                             "login", "passcode", "vhost", "start", NULL };
	static const char *const reserved[] = { "id", "destination", "ack", "receipt", NULL };
	const char *fn = "consumers{}";
	struct scn_run *r = run_of(L);
	struct scn_cgroup_opts o = { 0 };
	struct scn_cgroup *g;
	const char *ack;
	bool start;

	luaL_checktype(L, 1, LUA_TTABLE);
	check_fields(L, 1, fn, known, false);
	o.broker = field_broker(L, 1, fn);
	o.dest = opt_str(L, 1, fn, "destination", NULL);
	if (!o.dest || !*o.dest)
		return luaL_error(L, "%s: destination: missing (destination = \"/queue/name\")", fn);
	o.n = (unsigned)opt_int(L, 1, fn, "n", 1, 1, MAX_CONNECTIONS);
	ack = opt_str(L, 1, fn, "ack", "auto");
	if (strcmp(ack, "auto") == 0)
		o.ack = MQ_ACK_AUTO;
	else if (strcmp(ack, "client") == 0)
		o.ack = MQ_ACK_CLIENT;
	else if (strcmp(ack, "client-individual") == 0)
		o.ack = MQ_ACK_CLIENT_INDIVIDUAL;
	else
		return luaL_error(L, "%s: ack: expected \"auto\", \"client\" or \"client-individual\", got \"%s\"", fn, ack);
	o.max_unconfirmed = (uint32_t)opt_int(L, 1, fn, "max_unconfirmed", 0, 0, UINT32_MAX);
	o.max_unconfirmed_bytes = (uint64_t)opt_int(L, 1, fn, "max_unconfirmed_bytes", 0, 0, LLONG_MAX);
	o.priority = (int32_t)opt_int(L, 1, fn, "priority", 0, INT32_MIN, INT32_MAX);
	o.selector = opt_str(L, 1, fn, "selector", NULL);
	o.delay_ms = (unsigned)opt_int(L, 1, fn, "delay", 0, 0, 3600000);
	o.disconnect_after = (uint64_t)opt_int(L, 1, fn, "disconnect_after", 0, 0, LLONG_MAX);
	o.fanout = opt_bool(L, 1, fn, "fanout", !is_queue_name(o.dest));
	if (o.fanout && o.n > MAX_FANOUT)
		return luaL_error(L, "%s: n: a fan-out group holds at most %d connections, got %u (make several groups)",
		                  fn, MAX_FANOUT, o.n);
	o.reconnect = opt_bool(L, 1, fn, "reconnect", true);
	o.reconnect_ms = (unsigned)opt_int(L, 1, fn, "reconnect_ms", 100, 1, 600000);
	o.login = opt_str(L, 1, fn, "login", NULL);
	o.passcode = opt_str(L, 1, fn, "passcode", NULL);
	o.vhost = opt_str(L, 1, fn, "vhost", NULL);
	start = opt_bool(L, 1, fn, "start", true);
	o.headers = field_headers(L, 1, fn, &o.nheaders, reserved);

	g = scn_cgroup_new(r, &o);
	free_headers((struct mq_header *)o.headers, o.nheaders);
	r->cgroups = xrealloc(r->cgroups, (r->ncgroups + 1) * sizeof *r->cgroups);
	r->cgroups[r->ncgroups++] = g;
	if (start)
		scn_cgroup_start(g);
	push_ud(L, g, MT_CONSUMERS);
	return 1;
}

static int p_start(lua_State *L)
{
	scn_pgroup_start(check_pgroup(L, 1, "p:start()"));
	return 0;
}

static int p_stop(lua_State *L)
{
	scn_pgroup_stop(check_pgroup(L, 1, "p:stop()"));
	return 0;
}

static int p_client_ids(lua_State *L)
{
	struct scn_pgroup *g = check_pgroup(L, 1, "p:client_ids()");
	lua_createtable(L, (int)scn_pgroup_n(g), 0);
	for (unsigned i = 0; i < scn_pgroup_n(g); i++) {
		lua_pushstring(L, scn_pgroup_client_id(g, i));
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

static int pgroup_index(lua_State *L)
{
	struct scn_pgroup *g = check_pgroup(L, 1, "producers");
	const char *k = luaL_checkstring(L, 2);
	struct scn_pstats s;
	if (lua_getfield(L, lua_upvalueindex(1), k) != LUA_TNIL)
		return 1;
	scn_pgroup_stats(g, &s);
#define INT_FIELD(name, v)                     \
	if (strcmp(k, name) == 0) {            \
		lua_pushinteger(L, (lua_Integer)(v)); \
		return 1;                      \
	}
	INT_FIELD("n", scn_pgroup_n(g))
	INT_FIELD("sent", s.sent)
	INT_FIELD("acked", s.acked)
	INT_FIELD("failed", s.failed)
	INT_FIELD("connected", s.connected)
	INT_FIELD("finished", s.finished)
	INT_FIELD("closed", s.closed)
	INT_FIELD("reconnects", s.reconnects)
	INT_FIELD("drops", s.drops)
	if (strcmp(k, "done") == 0) {
		lua_pushboolean(L, scn_pgroup_done(g));
		return 1;
	}
	if (strcmp(k, "destination") == 0) {
		lua_pushstring(L, scn_pgroup_dest(g));
		return 1;
	}
	if (strcmp(k, "error") == 0) {
		lua_pushstring(L, scn_pgroup_error(g));
		return 1;
	}
	return luaL_error(L, "producers have no field '%s'", k);
}

static int pgroup_tostring(lua_State *L)
{
	struct scn_pgroup *g = check_pgroup(L, 1, "producers");
	lua_pushfstring(L, "producers %d (%d on %s)", (int)scn_pgroup_index(g), (int)scn_pgroup_n(g), scn_pgroup_dest(g));
	return 1;
}

static int c_start(lua_State *L)
{
	scn_cgroup_start(check_cgroup(L, 1, "c:start()"));
	return 0;
}

static int c_stop(lua_State *L)
{
	scn_cgroup_stop(check_cgroup(L, 1, "c:stop()"));
	return 0;
}

static int c_client_ids(lua_State *L)
{
	struct scn_cgroup *g = check_cgroup(L, 1, "c:client_ids()");
	lua_createtable(L, (int)scn_cgroup_n(g), 0);
	for (unsigned i = 0; i < scn_cgroup_n(g); i++) {
		lua_pushstring(L, scn_cgroup_client_id(g, i));
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

static int c_received_by(lua_State *L)
{
	struct scn_cgroup *g = check_cgroup(L, 1, "c:received_by()");
	lua_createtable(L, (int)scn_cgroup_n(g), 0);
	for (unsigned i = 0; i < scn_cgroup_n(g); i++) {
		lua_pushinteger(L, (lua_Integer)scn_cgroup_received_by(g, i));
		lua_rawseti(L, -2, i + 1);
	}
	return 1;
}

static int c_latency(lua_State *L)
{
	struct scn_cgroup *g = check_cgroup(L, 1, "c:latency()");
	double p = luaL_optnumber(L, 2, 50);
	if (!(p > 0 && p <= 100))
		return luaL_error(L, "c:latency(): percentile: expected 0 < p <= 100, got %f", p);
	lua_pushnumber(L, (double)scn_hist_percentile(scn_cgroup_latency(g), p) / 1e6);
	return 1;
}

static int cgroup_index(lua_State *L)
{
	struct scn_cgroup *g = check_cgroup(L, 1, "consumers");
	const char *k = luaL_checkstring(L, 2);
	struct scn_cstats s;
	if (lua_getfield(L, lua_upvalueindex(1), k) != LUA_TNIL)
		return 1;
	scn_cgroup_stats(g, &s);
	INT_FIELD("n", scn_cgroup_n(g))
	INT_FIELD("delivered", s.delivered)
	INT_FIELD("received", s.received)
	INT_FIELD("redelivered", s.redelivered)
	INT_FIELD("abandoned", s.abandoned)
	INT_FIELD("foreign", s.foreign)
	INT_FIELD("out_of_order", s.out_of_order)
	INT_FIELD("unconfirmed", s.unconfirmed)
	INT_FIELD("peak_unconfirmed", s.peak_unconfirmed)
	INT_FIELD("confirm_failed", s.confirm_failed)
	INT_FIELD("connected", s.connected)
	INT_FIELD("ready", s.ready)
	INT_FIELD("closed", s.closed)
	INT_FIELD("reconnects", s.reconnects)
	INT_FIELD("drops", s.drops)
	INT_FIELD("errors", s.errors)
#undef INT_FIELD
	if (strcmp(k, "destination") == 0) {
		lua_pushstring(L, scn_cgroup_dest(g));
		return 1;
	}
	if (strcmp(k, "error") == 0) {
		lua_pushstring(L, scn_cgroup_error(g));
		return 1;
	}
	return luaL_error(L, "consumers have no field '%s'", k);
}

static int cgroup_tostring(lua_State *L)
{
	struct scn_cgroup *g = check_cgroup(L, 1, "consumers");
	lua_pushfstring(L, "consumers %d (%d on %s)", (int)scn_cgroup_index(g), (int)scn_cgroup_n(g), scn_cgroup_dest(g));
	return 1;
}

/* ---- lists of groups ---- */

/* Groups one call can name: a scenario of a thousand queues, each with its
 * own producers and consumers, lists a thousand of each. */
#define GROUPS_MAX 2048

struct groups {
	struct scn_pgroup *p[GROUPS_MAX];
	size_t np;
	struct scn_cgroup *c[GROUPS_MAX];
	size_t nc;
};

/* Argument i: one group, or a list of them, of the kinds allowed. */
static void collect(lua_State *L, int i, const char *fn, bool want_p, bool want_c, struct groups *out)
{
	struct ud *u;
	if ((u = luaL_testudata(L, i, MT_PRODUCERS)) && want_p) {
		if (out->np == ARRAY_LEN(out->p))
			luaL_error(L, "%s: more than %d producers groups", fn, (int)ARRAY_LEN(out->p));
		out->p[out->np++] = u->p;
		return;
	}
	if ((u = luaL_testudata(L, i, MT_CONSUMERS)) && want_c) {
		if (out->nc == ARRAY_LEN(out->c))
			luaL_error(L, "%s: more than %d consumers groups", fn, (int)ARRAY_LEN(out->c));
		out->c[out->nc++] = u->p;
		return;
	}
	if (lua_type(L, i) == LUA_TTABLE) {
		size_t n = lua_rawlen(L, i);
		int t = lua_absindex(L, i);
		for (size_t k = 1; k <= n; k++) {
			lua_rawgeti(L, t, (lua_Integer)k);
			collect(L, -1, fn, want_p, want_c, out);
			lua_pop(L, 1);
		}
		if (n)
			return;
	}
	luaL_error(L, "%s: expected %s, got %s", fn,
	           want_p && want_c ? "producers or consumers" : want_p ? "producers (or a list of them)"
	                                                               : "consumers (or a list of them)",
	           type_of(L, i));
}

/* The distinct sinks of some consumers groups. */
static size_t sinks_of(const struct groups *g, struct scn_sink **out)
{
	size_t n = 0;
	for (size_t i = 0; i < g->nc; i++) {
		struct scn_sink *k = scn_cgroup_sink(g->c[i]);
		size_t j;
		for (j = 0; j < n && out[j] != k; j++)
			;
		if (j == n)
			out[n++] = k;
	}
	return n;
}

static void tally(const struct groups *g, enum scn_scope scope, struct scn_tally *t)
{
	struct scn_sink *sinks[GROUPS_MAX];
	size_t nk = sinks_of(g, sinks);
	memset(t, 0, sizeof *t);
	for (size_t k = 0; k < nk; k++)
		for (size_t i = 0; i < g->np; i++)
			for (unsigned c = 0; c < scn_pgroup_n(g->p[i]); c++)
				scn_tally_add(t, sinks[k], scn_pgroup_source(g->p[i], c), scope);
}

static int check_result(lua_State *L, enum scn_check c, const struct scn_tally *t)
{
	char buf[512];
	bool ok = scn_check(c, t, buf, sizeof buf);
	lua_pushboolean(L, ok);
	lua_pushstring(L, buf);
	return 2;
}

static int l_exactly_once(lua_State *L)
{
	struct groups g = { 0 };
	struct scn_tally t;
	collect(L, 1, "exactly_once(producers, consumers)", true, false, &g);
	collect(L, 2, "exactly_once(producers, consumers)", false, true, &g);
	tally(&g, SCN_ALL_SENT, &t);
	return check_result(L, SCN_EXACTLY_ONCE, &t);
}

static int l_at_least_once(lua_State *L)
{
	static const char *const known[] = { "acked", NULL };
	struct groups g = { 0 };
	struct scn_tally t;
	bool acked = false;
	collect(L, 1, "at_least_once(producers, consumers)", true, false, &g);
	collect(L, 2, "at_least_once(producers, consumers)", false, true, &g);
	if (!lua_isnoneornil(L, 3)) {
		luaL_checktype(L, 3, LUA_TTABLE);
		check_fields(L, 3, "at_least_once()", known, false);
		acked = opt_bool(L, 3, "at_least_once()", "acked", false);
	}
	tally(&g, acked ? SCN_ACKED_ONLY : SCN_ALL_SENT, &t);
	return check_result(L, SCN_AT_LEAST_ONCE, &t);
}

static int l_in_order(lua_State *L)
{
	struct groups g = { 0 };
	struct scn_tally t;
	collect(L, 1, "in_order(producers, consumers)", true, false, &g);
	collect(L, 2, "in_order(producers, consumers)", false, true, &g);
	tally(&g, SCN_ALL_SENT, &t);
	return check_result(L, SCN_IN_ORDER, &t);
}

static int l_nothing_delivered(lua_State *L)
{
	struct groups g = { 0 };
	uint64_t total = 0;
	char buf[256];
	collect(L, 1, "nothing_delivered(consumers)", false, true, &g);
	for (size_t i = 0; i < g.nc; i++) {
		struct scn_cstats s;
		scn_cgroup_stats(g.c[i], &s);
		total += s.delivered;
	}
	if (total)
		snprintf(buf, sizeof buf, "%llu message%s delivered to %s (%s), expected none", (unsigned long long)total,
		         total == 1 ? "" : "s", g.nc == 1 ? "consumers" : "those consumers", scn_cgroup_dest(g.c[0]));
	else
		snprintf(buf, sizeof buf, "nothing delivered");
	lua_pushboolean(L, total == 0);
	lua_pushstring(L, buf);
	return 2;
}

static uint64_t seq_arg(lua_State *L, int i, const char *fn)
{
	double v = luaL_checknumber(L, i);
	if (v < 0 || v != v)
		luaL_error(L, "%s: expected a sequence number >= 0, got %f", fn, v);
	return v >= 1.8e19 ? UINT64_MAX : (uint64_t)v;
}

static int l_received_between(lua_State *L)
{
	const char *fn = "received_between(consumers, producers, first, last)";
	struct groups g = { 0 };
	struct scn_sink *sinks[GROUPS_MAX];
	uint64_t first, last, n = 0;
	size_t nk;
	collect(L, 1, fn, false, true, &g);
	collect(L, 2, fn, true, false, &g);
	first = seq_arg(L, 3, fn);
	last = seq_arg(L, 4, fn);
	nk = sinks_of(&g, sinks);
	for (size_t k = 0; k < nk; k++)
		for (size_t i = 0; i < g.np; i++)
			for (unsigned c = 0; c < scn_pgroup_n(g.p[i]); c++)
				n += scn_sink_distinct(sinks[k], scn_pgroup_source(g.p[i], c)->id, first, last);
	lua_pushinteger(L, (lua_Integer)n);
	return 1;
}

static int l_latency(lua_State *L)
{
	struct scn_run *r = run_of(L);
	const struct scn_hist *h = r->latency;
	double p;
	if (lua_type(L, 1) == LUA_TNUMBER) {
		p = lua_tonumber(L, 1);
	} else {
		if (!lua_isnoneornil(L, 1))
			h = scn_cgroup_latency(check_cgroup(L, 1, "latency([consumers,] percentile)"));
		p = luaL_optnumber(L, 2, 50);
	}
	if (!(p > 0 && p <= 100))
		return luaL_error(L, "latency(): percentile: expected 0 < p <= 100, got %f", p);
	lua_pushnumber(L, (double)scn_hist_percentile(h, p) / 1e6);
	return 1;
}

static int l_report(lua_State *L)
{
	struct scn_report rep;
	scn_report_compute(run_of(L), &rep);
	lua_createtable(L, 0, 24);
#define I(name) (lua_pushinteger(L, (lua_Integer)rep.name), lua_setfield(L, -2, #name))
#define D(name) (lua_pushnumber(L, rep.name), lua_setfield(L, -2, #name))
	I(sent);
	I(received);
	I(lost);
	I(duplicated);
	I(redelivered);
	I(delivered);
	I(acked);
	I(failed);
	I(abandoned);
	I(out_of_order);
	D(msgs_per_s);
	D(sent_per_s);
	D(duration_s);
	D(elapsed_s);
	I(latency_count);
	D(latency_p50_ms);
	D(latency_p99_ms);
	D(latency_p999_ms);
	D(latency_max_ms);
	D(latency_mean_ms);
#undef I
#undef D
	return 1;
}

/* ---- running ---- */

static int l_wait(lua_State *L)
{
	double s = luaL_checknumber(L, 1);
	if (!(s >= 0 && s <= 1e6))
		return luaL_error(L, "wait(seconds): expected 0..1e6 seconds, got %f", s);
	loop_until(L, scn_now_ns() + (uint64_t)(s * 1e9));
	return 0;
}

static int l_sleep(lua_State *L)
{
	double ms = luaL_checknumber(L, 1);
	if (!(ms >= 0 && ms <= 1e9))
		return luaL_error(L, "sleep(ms): expected 0..1e9 milliseconds, got %f", ms);
	loop_until(L, scn_now_ns() + (uint64_t)(ms * 1e6));
	return 0;
}

static int l_wait_for(lua_State *L)
{
	double timeout = luaL_optnumber(L, 2, 10);
	uint64_t deadline;
	luaL_checktype(L, 1, LUA_TFUNCTION);
	if (!(timeout >= 0 && timeout <= 1e6))
		return luaL_error(L, "wait_for(fn, timeout): expected 0..1e6 seconds, got %f", timeout);
	deadline = scn_now_ns() + (uint64_t)(timeout * 1e9);
	for (;;) {
		uint64_t now;
		bool ok;
		lua_pushvalue(L, 1);
		lua_call(L, 0, 1);
		ok = lua_toboolean(L, -1);
		lua_pop(L, 1);
		if (ok) {
			lua_pushboolean(L, 1);
			return 1;
		}
		now = scn_now_ns();
		if (now >= deadline) {
			lua_pushboolean(L, 0);
			return 1;
		}
		loop_until(L, deadline - now < SLICE_NS ? deadline : now + SLICE_NS);
	}
}

/* run{}: every listed producers group done, and every listed consumers
 * group holding everything those producers sent (or, with no producers
 * listed, everything sent to their destination). */
static bool run_done(struct scn_run *r, const struct groups *g, struct sbuf *why)
{
	struct scn_sink *sinks[GROUPS_MAX];
	size_t nk = sinks_of(g, sinks);
	for (size_t i = 0; i < g->np; i++) {
		if (!scn_pgroup_done(g->p[i])) {
			if (why) {
				struct scn_pstats s;
				scn_pgroup_stats(g->p[i], &s);
				sbuf_printf(why, "producers %u not done (%llu sent, %u of %u connections finished%s%s); ",
				            scn_pgroup_index(g->p[i]), (unsigned long long)s.sent, s.finished,
				            scn_pgroup_n(g->p[i]), *scn_pgroup_error(g->p[i]) ? ", last error: " : "",
				            scn_pgroup_error(g->p[i]));
			}
			return false;
		}
	}
	for (size_t k = 0; k < nk; k++) {
		if (g->np) {
			for (size_t i = 0; i < g->np; i++)
				for (unsigned c = 0; c < scn_pgroup_n(g->p[i]); c++)
					if (!scn_sink_drained(sinks[k], scn_pgroup_source(g->p[i], c)))
						goto missing;
		} else {
			for (size_t i = 0; i < r->nsources; i++)
				if (scn_sink_fed_by(sinks[k], r->sources[i]) && !scn_sink_drained(sinks[k], r->sources[i]))
					goto missing;
		}
		continue;
	missing:
		if (why)
			sbuf_printf(why, "%s (%s) still missing messages; ", sinks[k]->name, sinks[k]->dest);
		return false;
	}
	return true;
}

static int l_run(lua_State *L)
{
	static const char *const known[] = { "timeout", NULL };
	struct scn_run *r = run_of(L);
	struct groups g = { 0 };
	double timeout;
	uint64_t deadline;
	size_t n;

	luaL_checktype(L, 1, LUA_TTABLE);
	check_fields(L, 1, "run{}", known, true);
	timeout = opt_num(L, 1, "run{}", "timeout", 60, 0, 1e6);
	n = lua_rawlen(L, 1);
	for (size_t i = 1; i <= n; i++) {
		lua_rawgeti(L, 1, (lua_Integer)i);
		collect(L, -1, "run{}", true, true, &g);
		lua_pop(L, 1);
	}
	if (!g.np && !g.nc)
		return luaL_error(L, "run{}: list the producers and consumers to run, e.g. run{ p, c, timeout = 30 }");
	deadline = scn_now_ns() + (uint64_t)(timeout * 1e9);
	for (;;) {
		uint64_t now;
		if (run_done(r, &g, NULL)) {
			lua_pushboolean(L, 1);
			return 1;
		}
		now = scn_now_ns();
		if (now >= deadline) {
			struct sbuf why;
			sbuf_init(&why);
			sbuf_printf(&why, "run{} gave up after %g s: ", timeout);
			run_done(r, &g, &why);
			if (why.len >= 2)
				why.buf[why.len -= 2] = 0;
			lua_pushboolean(L, 0);
			lua_pushstring(L, why.buf);
			sbuf_fini(&why);
			return 2;
		}
		loop_until(L, deadline - now < SLICE_NS ? deadline : now + SLICE_NS);
	}
}

/* ---- faults ---- */

static int l_drop(lua_State *L)
{
	lua_Integer n = luaL_optinteger(L, 2, 1);
	struct ud *u;
	if (n < 0)
		return luaL_error(L, "drop(group, n): n: expected >= 0, got %d", (int)n);
	if ((u = luaL_testudata(L, 1, MT_PRODUCERS)))
		lua_pushinteger(L, scn_pgroup_drop(u->p, (unsigned)n));
	else if ((u = luaL_testudata(L, 1, MT_CONSUMERS)))
		lua_pushinteger(L, scn_cgroup_drop(u->p, (unsigned)n));
	else
		return luaL_error(L, "drop(group, n): expected producers or consumers, got %s", type_of(L, 1));
	return 1;
}

static int l_stall(lua_State *L)
{
	struct scn_cgroup *g = check_cgroup(L, 1, "stall(consumers, seconds)");
	double s = luaL_checknumber(L, 2);
	if (!(s >= 0 && s <= 1e6))
		return luaL_error(L, "stall(consumers, seconds): expected 0..1e6 seconds, got %f", s);
	scn_cgroup_stall(g, s);
	return 0;
}

/* fill(b, destination, count[, size]): posts count messages on one
 * connection as fast as it goes, and returns once the broker answered the
 * DISCONNECT that follows them: it has processed every one. */
static int l_fill(lua_State *L)
{
	struct scn_run *r = run_of(L);
	struct scn_pgroup_opts o = { 0 };
	struct scn_pgroup *g;
	struct scn_pstats s;
	uint64_t deadline;
	double timeout;

	o.broker = check_broker(L, 1, "fill(broker, destination, count, size)");
	o.dest = luaL_checkstring(L, 2);
	o.n = 1;
	o.count = (uint64_t)luaL_checkinteger(L, 3);
	o.size = (size_t)luaL_optinteger(L, 4, 100);
	o.reconnect = true;
	o.reconnect_ms = 100;
	if (!*o.dest || o.count < 1 || o.size > (64u << 20))
		return luaL_error(L, "fill(broker, destination, count, size): expected a destination, count >= 1 and "
		                  "size <= 64 MiB");
	g = scn_pgroup_new(r, &o);
	r->pgroups = xrealloc(r->pgroups, (r->npgroups + 1) * sizeof *r->pgroups);
	r->pgroups[r->npgroups++] = g;
	scn_pgroup_start(g);
	timeout = 60 + (double)o.count / 20000;
	deadline = scn_now_ns() + (uint64_t)(timeout * 1e9);
	for (;;) {
		uint64_t now = scn_now_ns();
		scn_pgroup_stats(g, &s);
		if (s.closed == 1 && s.finished == 1)
			break;
		if (now >= deadline)
			return fail_here(L, "fill: %llu of %llu messages sent to %s within %.0f s%s%s", (unsigned long long)s.sent,
			                 (unsigned long long)o.count, o.dest, timeout, *scn_pgroup_error(g) ? ": " : "",
			                 scn_pgroup_error(g));
		loop_until(L, deadline - now < SLICE_NS ? deadline : now + SLICE_NS);
	}
	push_ud(L, g, MT_PRODUCERS);
	return 1;
}

/* ---- checks ---- */

static int l_expect(lua_State *L)
{
	if (lua_toboolean(L, 1)) {
		lua_pushboolean(L, 1);
		return 1;
	}
	luaL_checkany(L, 1);
	if (lua_isnoneornil(L, 2))
		return fail_here(L, "expectation failed");
	return fail_here(L, "%s", luaL_tolstring(L, 2, NULL));
}

static int l_now(lua_State *L)
{
	lua_pushnumber(L, (double)(scn_now_ns() - run_of(L)->t0_ns) / 1e9);
	return 1;
}

/* print(), with the progress line out of the way first. */
static int l_print(lua_State *L)
{
	scn_progress_clear(run_of(L));
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 0);
	fflush(stdout);
	return 0;
}

/* ---- the state ---- */

static void hook(lua_State *L, lua_Debug *ar)
{
	struct scn_run *r = run_of(L);
	(void)ar;
	if (r->opts->interrupted && *r->opts->interrupted) {
		r->aborted = r->interrupted = true;
		snprintf(r->fatal, sizeof r->fatal, "interrupted");
		fail_here(L, "interrupted");
	}
}

/* ---- links ---- */

static struct scn_link *check_link(lua_State *L, int i, const char *fn)
{
	struct ud *u = luaL_testudata(L, i, MT_LINK);
	if (!u)
		luaL_error(L, "%s: expected a link (from link{}), got %s", fn, type_of(L, i));
	return u->p;
}

/* link{ to = b } or link{ host = "127.0.0.1", port = N } */
static int l_link(lua_State *L)
{
	static const char *const known[] = { "to", "host", "port", NULL };
	struct scn_run *r = run_of(L);
	const char *host;
	long long port;
	char err[256];
	struct scn_link *l;
	luaL_checktype(L, 1, LUA_TTABLE);
	check_fields(L, 1, "link{}", known, false);
	if (get_field(L, 1, "to")) {
		struct scn_broker *b = check_broker(L, lua_gettop(L), "link{}: to");
		lua_pop(L, 1);
		if (get_field(L, 1, "host") || get_field(L, 1, "port"))
			return luaL_error(L, "link{}: give to = broker, or host and port, not both");
		host = b->host;
		port = b->port;
	} else {
		host = opt_str(L, 1, "link{}", "host", "127.0.0.1");
		port = opt_int(L, 1, "link{}", "port", 0, 1, 65535);
		if (!port)
			return luaL_error(L, "link{}: port: missing (or give to = broker)");
	}
	if (!(l = scn_link_new(r, host, (uint16_t)port, err, sizeof err)))
		return luaL_error(L, "%s", err);
	push_ud(L, l, MT_LINK);
	return 1;
}

static int k_cut(lua_State *L)
{
	scn_link_cut(check_link(L, 1, "l:cut()"));
	return 0;
}

static int k_restore(lua_State *L)
{
	scn_link_restore(check_link(L, 1, "l:restore()"));
	return 0;
}

static int k_drop(lua_State *L)
{
	lua_pushinteger(L, scn_link_drop(check_link(L, 1, "l:drop()")));
	return 1;
}

static int link_index(lua_State *L)
{
	struct scn_link_info i;
	const char *k = luaL_checkstring(L, 2);
	scn_link_get(check_link(L, 1, "link"), &i);
	if (lua_getfield(L, lua_upvalueindex(1), k) != LUA_TNIL)
		return 1;
	if (strcmp(k, "host") == 0)
		lua_pushstring(L, "127.0.0.1");
	else if (strcmp(k, "port") == 0)
		lua_pushinteger(L, i.port);
	else if (strcmp(k, "address") == 0)
		lua_pushfstring(L, "127.0.0.1:%d", (int)i.port);
	else if (strcmp(k, "cut") == 0)
		lua_pushboolean(L, i.cut);
	else if (strcmp(k, "connections") == 0)
		lua_pushinteger(L, i.connections);
	else if (strcmp(k, "accepted") == 0)
		lua_pushinteger(L, (lua_Integer)i.accepted);
	else if (strcmp(k, "bytes") == 0)
		lua_pushinteger(L, (lua_Integer)i.bytes);
	else if (strcmp(k, "dropped_bytes") == 0)
		lua_pushinteger(L, (lua_Integer)i.dropped_bytes);
	else
		return luaL_error(L, "link has no field '%s'", k);
	return 1;
}

static int link_tostring(lua_State *L)
{
	struct scn_link_info i;
	scn_link_get(check_link(L, 1, "link"), &i);
	lua_pushfstring(L, "link %d (127.0.0.1:%d -> %s:%d%s)", (int)i.index, (int)i.port, i.target_host,
	                (int)i.target_port, i.cut ? ", cut" : "");
	return 1;
}

static int msgh(lua_State *L)
{
	if (lua_touserdata(L, 1) == (void *)&failure_marker)
		return 1;
	luaL_traceback(L, L, luaL_tolstring(L, 1, NULL), 1);
	return 1;
}

static void new_type(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction index,
                     lua_CFunction tostring)
{
	luaL_newmetatable(L, name);
	lua_newtable(L);
	luaL_setfuncs(L, methods, 0);
	lua_pushcclosure(L, index, 1);
	lua_setfield(L, -2, "__index");
	lua_pushcfunction(L, tostring);
	lua_setfield(L, -2, "__tostring");
	lua_pop(L, 1);
}

static void register_api(lua_State *L)
{
	static const luaL_Reg broker_methods[] = {
		{ "start", b_start }, { "stop", b_stop }, { "kill", b_kill }, { "restart", b_restart },
		{ "admin", b_admin }, { "stats", b_stats }, { "bridge", b_bridge }, { NULL, NULL },
	};
	static const luaL_Reg link_methods[] = {
		{ "cut", k_cut }, { "restore", k_restore }, { "drop", k_drop }, { NULL, NULL },
	};
	static const luaL_Reg producer_methods[] = {
		{ "start", p_start }, { "stop", p_stop }, { "client_ids", p_client_ids }, { NULL, NULL },
	};
	static const luaL_Reg consumer_methods[] = {
		{ "start", c_start }, { "stop", c_stop }, { "client_ids", c_client_ids },
		{ "received_by", c_received_by }, { "latency", c_latency }, { NULL, NULL },
	};
	static const luaL_Reg globals[] = {
		{ "broker", l_broker },
		{ "attach", l_attach },
		{ "producers", l_producers },
		{ "consumers", l_consumers },
		{ "link", l_link },
		{ "run", l_run },
		{ "wait", l_wait },
		{ "sleep", l_sleep },
		{ "wait_for", l_wait_for },
		{ "drop", l_drop },
		{ "stall", l_stall },
		{ "fill", l_fill },
		{ "expect", l_expect },
		{ "exactly_once", l_exactly_once },
		{ "at_least_once", l_at_least_once },
		{ "in_order", l_in_order },
		{ "nothing_delivered", l_nothing_delivered },
		{ "received_between", l_received_between },
		{ "latency", l_latency },
		{ "report", l_report },
		{ "now", l_now },
		{ NULL, NULL },
	};

	new_type(L, MT_BROKER, broker_methods, broker_index, broker_tostring);
	new_type(L, MT_PRODUCERS, producer_methods, pgroup_index, pgroup_tostring);
	new_type(L, MT_CONSUMERS, consumer_methods, cgroup_index, cgroup_tostring);
	new_type(L, MT_LINK, link_methods, link_index, link_tostring);
	lua_pushglobaltable(L);
	luaL_setfuncs(L, globals, 0);
	lua_getfield(L, -1, "print");
	lua_pushcclosure(L, l_print, 1);
	lua_setfield(L, -2, "print");
	lua_pop(L, 1);
}

int scn_lua_run(struct scn_run *r)
{
	lua_State *L = luaL_newstate();
	int rc, h;

	if (!L) {
		snprintf(r->error, sizeof r->error, "cannot create a Lua state: out of memory");
		return 2;
	}
	luaL_openlibs(L);
	lua_pushlightuserdata(L, r);
	lua_setfield(L, LUA_REGISTRYINDEX, RUN_KEY);
	register_api(L);
	/* Ctrl-C must stop a script that loops in Lua, not only one waiting
	 * on the event loop. */
	lua_sethook(L, hook, LUA_MASKCOUNT, HOOK_COUNT);

	lua_pushcfunction(L, msgh);
	h = lua_gettop(L);
	if (luaL_loadfilex(L, r->path, "t") != LUA_OK) {
		snprintf(r->error, sizeof r->error, "%s", lua_tostring(L, -1));
		rc = 2;
	} else if (lua_pcall(L, 0, 0, h) == LUA_OK) {
		rc = r->failed ? 1 : 0;
	} else if (lua_touserdata(L, -1) == (void *)&failure_marker || r->failed) {
		rc = 1;
	} else {
		snprintf(r->error, sizeof r->error, "%s", lua_tostring(L, -1));
		rc = 2;
	}
	lua_close(L);
	return rc;
}
