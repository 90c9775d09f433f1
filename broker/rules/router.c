/* router.c: the Lua state behind the configuration file and the routing,
 * authorization and event rules it defines.
 *
 * One lua_State per loaded file. Scripts see a sandbox built from an
 * allow-list (no io, no os.execute/exit, no debug, no binary chunks, and
 * require() only under lua/). Every call into Lua, the configuration chunk
 * included, goes through call(): a traceback message handler, an
 * instruction budget enforced by a count hook, and a memory ceiling
 * enforced by the allocator. What the script did comes back as an outcome
 * (enum call_status), never as a crash or a longjmp into the broker.
 *
 * Reading the globals the file set into a struct config is the job of
 * router_config.c. */
#include "rules/router.h"

#include <assert.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "common/log.h"
#include "common/util.h"

/* router_config.c. Declared here rather than in a header because only the
 * router's own files may see lua_State. Both are lua_CFunctions. */
int router_config_read(lua_State *L);
int router_config_newindex(lua_State *L);

/* Limits on what one route() call may hand back to the broker. Lua's own
 * memory is capped by lua_memory; these cap the C copies we make of it. */
#define MAX_FANOUT 1024		/* destinations in one returned list */
#define MAX_EDITS 256		/* header edits in one call */
#define MAX_DEST_LEN 1024	/* bytes in a destination name */
#define MAX_HDR_NAME 256	/* bytes in a header name */
#define MAX_HDR_VALUE 65536	/* bytes in a header value */

/* The count hook fires every HOOK_STEP instructions at most; the budget is
 * counted in those steps. Small enough that a budget is kept to within a
 * few microseconds, large enough that the hook costs nothing measurable. */
#define HOOK_STEP 1000

/* Script errors are logged, but a rule that fails on every message must
 * not flood the log: at most LOG_BURST lines a second, then a summary. */
#define LOG_BURST 10

struct router {
	lua_State *L;			/* owned; NULL when the file defines no function */
	char *path;			/* owned; the configuration file, as given */
	char *dirs[2];			/* owned; where require() looks, NULL-padded */

	uint64_t budget;		/* instructions per call */
	size_t mem_used;		/* bytes the Lua state holds */
	size_t mem_limit;		/* allocations past this are refused */

	int ref_env;			/* the scripts' _ENV */
	int ref_loaded;			/* modules require() has run */
	int ref_msg;			/* the one msg userdata, reused by every route() */
	int ref_headers;		/* msg.headers, likewise */
	int ref_req;			/* authorize()'s 4th argument, likewise */
	int ref_route, ref_authorize, ref_on_event;	/* LUA_NOREF when undefined */
	bool has_route, has_authorize, has_on_event;
	char route_where[128];		/* "file:line" where route() is defined */
	char authorize_where[128];

	/* The call in progress. */
	uint64_t used;			/* instructions counted by the hook */
	bool spent;			/* budget gone: the hook raises at every instruction */
	bool mem_error;			/* a memory error was raised: nothing may catch it */
	const struct route_msg *msg;	/* borrowed; set only during route() */
	struct route_result *res;	/* borrowed; set only during route() */
	const struct authz_req *req;	/* borrowed; set only during authorize() */
	bool body_pushed;		/* msg.body was read: drop the copy after the call */
	char reject[sizeof ((struct route_result *)0)->error];	/* error()'s text, no position */

	uint64_t log_window_ms;
	unsigned log_lines;
	uint64_t log_suppressed;

	struct router_stats stats;
};

/* Registry slot holding the value the last error() call raised (false when
 * none), so that a rejection can be told from any other error however it
 * travelled. Created at load, so that setting it never allocates. */
static const char reject_key;
/* Marks a module whose chunk is running, to catch require() loops. */
static const char loading_key;

static struct router *get_router(lua_State *L)
{
	return *(struct router **)lua_getextraspace(L);
}

/* ---- limits: allocator and count hook ---- */

/* The Lua state's allocator: counts what the state holds and refuses to
 * grow past mem_limit. Shrinking never fails (Lua relies on that). */
static void *counting_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	struct router *r = ud;
	size_t old = ptr ? osize : 0;	/* without ptr, osize is a type tag */
	void *p;

	if (nsize == 0) {
		free(ptr);
		r->mem_used -= old;
		return NULL;
	}
	if (nsize > old && nsize - old > r->mem_limit - MIN(r->mem_limit, r->mem_used))
		return NULL;
	p = realloc(ptr, nsize);
	if (!p)
		return nsize < old ? ptr : NULL;	/* a shrink may keep the bigger block */
	r->mem_used = r->mem_used - old + nsize;
	return p;
}

static int hook_step(const struct router *r)
{
	return r->budget < HOOK_STEP ? (int)MAX(r->budget, 1) : HOOK_STEP;
}

static void count_hook(lua_State *L, lua_Debug *ar)
{
	struct router *r = get_router(L);
	if (!r->spent) {
		r->used += (uint64_t)hook_step(r);
		if (r->used < r->budget)
			return;
		r->spent = true;
		/* From now on every instruction raises, so a script that pcall()s
		 * around the error gets nowhere (Redis re-arms its hook for the
		 * same reason); the sandbox's pcall also refuses to catch it. */
		lua_sethook(L, count_hook, LUA_MASKCOUNT, 1);
	}
	lua_getinfo(L, "Sl", ar);
	lua_pushfstring(L, "%s:%d: instruction budget of %I exhausted", ar->short_src,
	                ar->currentline, (lua_Integer)MIN(r->budget, (uint64_t)LUA_MAXINTEGER));
	lua_error(L);
}

static int panic(lua_State *L)
{
	/* Only reachable through a bug of ours: every call is protected. */
	log_error("lua: unprotected error: %s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
	abort();
}

/* ---- the one call wrapper ---- */

enum call_status {
	CALL_OK,	/* returned; results on the stack */
	CALL_REJECT,	/* the script called error("text"): r->reject holds the text */
	CALL_BUDGET,	/* the instruction budget ran out */
	CALL_NOMEM,	/* an allocation past lua_memory was refused */
	CALL_ERROR,	/* any other error */
};

/* Message handler: adds a traceback to real errors. Rejections and memory
 * errors pass through untouched: the first is a deliberate answer, and the
 * second has no memory left to describe itself with. */
static int msghandler(lua_State *L)
{
	struct router *r = get_router(L);
	const char *msg;
	bool reject;

	if (r->mem_error)
		return 1;
	lua_rawgetp(L, LUA_REGISTRYINDEX, &reject_key);
	reject = lua_rawequal(L, 1, -1);
	lua_pop(L, 1);
	if (reject)
		return 1;
	msg = lua_tostring(L, 1);
	if (!msg) {
		if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
			return 1;
		msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	}
	luaL_traceback(L, L, msg, 1);
	return 1;
}

static void log_script(struct router *r, const char *what, const char *text)
{
	uint64_t now = mono_ms();
	if (now - r->log_window_ms >= 1000) {
		if (r->log_suppressed)
			log_error("%s: %" PRIu64 " more Lua errors not logged in the last second",
			          r->path, r->log_suppressed);
		r->log_window_ms = now;
		r->log_lines = 0;
		r->log_suppressed = 0;
	}
	if (r->log_lines++ < LOG_BURST)
		log_error("%s (in %s)", text, what);
	else
		r->log_suppressed++;
}

/* Copies the first line of the value at idx into buf. */
static void first_line(lua_State *L, int idx, char *buf, size_t len)
{
	size_t n;
	const char *s = lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, &n) : NULL;
	const char *nl;
	if (!s) {
		snprintf(buf, len, "(error object is a %s value)", luaL_typename(L, idx));
		return;
	}
	nl = memchr(s, '\n', n);
	if (nl)
		n = (size_t)(nl - s);
	snprintf(buf, len, "%.*s", (int)MIN(n, (size_t)INT_MAX), s);
}

/* Calls the function below the nargs arguments on top of the stack, under
 * the budget and the memory ceiling, with the traceback handler. On CALL_OK
 * the nres results replace function and arguments; otherwise both are gone
 * and `text` holds the error's first line ("file:line: what"). Failures
 * other than rejections are counted and, unless quiet, logged. */
static enum call_status call(struct router *r, const char *what, int nargs, int nres,
                             bool quiet, char *text, size_t textlen)
{
	lua_State *L = r->L;
	int base = lua_gettop(L) - nargs;	/* where the function is */
	enum call_status cs;
	int st;

	lua_pushcfunction(L, msghandler);
	lua_insert(L, base);
	lua_pushboolean(L, 0);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &reject_key);
	r->used = 0;
	r->spent = false;
	r->mem_error = false;
	r->reject[0] = 0;
	lua_sethook(L, count_hook, LUA_MASKCOUNT, hook_step(r));

	st = lua_pcall(L, nargs, nres, base);
	lua_remove(L, base);
	if (st == LUA_OK && !r->spent && !r->mem_error)
		return CALL_OK;
	if (st == LUA_OK) {
		/* Cannot happen (nothing may catch these), but never trust it. */
		lua_pop(L, nres);
		lua_pushnil(L);
	}

	if (r->spent) {
		cs = CALL_BUDGET;
		r->stats.budget_exceeded++;
		first_line(L, -1, text, textlen);
	} else if (st == LUA_ERRMEM || r->mem_error) {
		char lim[32];
		cs = CALL_NOMEM;
		r->stats.memory_exceeded++;
		snprintf(text, textlen, "%s: Lua memory limit of %s reached", r->path,
		         fmt_bytes(r->mem_limit, lim, sizeof lim));
	} else {
		lua_rawgetp(L, LUA_REGISTRYINDEX, &reject_key);
		cs = lua_rawequal(L, -1, -2) ? CALL_REJECT : CALL_ERROR;
		lua_pop(L, 1);
		first_line(L, -1, text, textlen);
		if (cs == CALL_ERROR)
			r->stats.errors++;
	}
	if (cs != CALL_REJECT && !quiet) {
		log_script(r, what, text);
		if (log_enabled(LOG_DEBUG) && lua_type(L, -1) == LUA_TSTRING)
			log_debug("%s", lua_tostring(L, -1));
	}
	lua_pop(L, 1);
	lua_pushboolean(L, 0);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &reject_key);
	if (cs == CALL_NOMEM)
		lua_gc(L, LUA_GCCOLLECT);	/* give the next call its memory back */
	return cs;
}

/* ---- the sandbox ---- */

/* error(): as Lua's, but remembers the text so that route() can hand it
 * to the sender without the file:line the position adds. */
static int sandbox_error(lua_State *L)
{
	struct router *r = get_router(L);
	int level = (int)luaL_optinteger(L, 2, 1);
	lua_settop(L, 1);
	if (lua_type(L, 1) == LUA_TSTRING) {
		snprintf(r->reject, sizeof r->reject, "%s", lua_tostring(L, 1));
		if (level > 0) {
			luaL_where(L, level);
			lua_pushvalue(L, 1);
			lua_concat(L, 2);
		}
		lua_pushvalue(L, -1);
		lua_rawsetp(L, LUA_REGISTRYINDEX, &reject_key);
	}
	return lua_error(L);
}

/* pcall() and xpcall() that cannot catch a spent budget or a memory error:
 * those end the whole call, whatever the script wraps around them. */
static int finish_pcall(lua_State *L, int st, int extra)
{
	struct router *r = get_router(L);
	if (st == LUA_ERRMEM)
		r->mem_error = true;
	if (r->spent || r->mem_error)
		return lua_error(L);
	if (st != LUA_OK) {
		lua_pushboolean(L, 0);
		lua_pushvalue(L, -2);
		return 2;
	}
	return lua_gettop(L) - extra;
}

static int sandbox_pcall(lua_State *L)
{
	luaL_checkany(L, 1);
	lua_pushboolean(L, 1);		/* first result when all goes well */
	lua_insert(L, 1);
	return finish_pcall(L, lua_pcall(L, lua_gettop(L) - 2, LUA_MULTRET, 0), 0);
}

/* Stands in for xpcall()'s handler. An error raised by the count hook
 * leaves hooks off until the enclosing pcall has unwound, so a Lua handler
 * run for it would run unmetered (and `function(e) while true do end end`
 * would never return): once the budget is spent, or memory is gone, the
 * script's handler is skipped. */
static int xpcall_handler(lua_State *L)
{
	struct router *r = get_router(L);
	if (r->spent || r->mem_error)
		return 1;
	lua_pushvalue(L, lua_upvalueindex(1));
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

static int sandbox_xpcall(lua_State *L)
{
	int n = lua_gettop(L);
	luaL_checktype(L, 2, LUA_TFUNCTION);
	lua_pushvalue(L, 2);
	lua_pushcclosure(L, xpcall_handler, 1);
	lua_replace(L, 2);
	lua_pushboolean(L, 1);
	lua_pushvalue(L, 1);
	lua_rotate(L, 3, 2);		/* 1 f, 2 handler, 3 true, 4 f, 5.. args */
	return finish_pcall(L, lua_pcall(L, n - 2, LUA_MULTRET, 2), 2);
}

/* load(): text chunks given as strings only, run in the sandbox's _ENV
 * unless another table is given. */
static int sandbox_load(lua_State *L)
{
	struct router *r = get_router(L);
	size_t len;
	const char *s, *name;
	int st;

	if (lua_type(L, 1) != LUA_TSTRING)
		return luaL_error(L, "load: only a string chunk can be loaded in the sandbox");
	s = lua_tolstring(L, 1, &len);
	name = luaL_optstring(L, 2, s);
	st = luaL_loadbufferx(L, s, len, name, "t");
	if (st == LUA_ERRMEM) {
		r->mem_error = true;
		return lua_error(L);
	}
	if (st != LUA_OK) {
		lua_pushnil(L);
		lua_insert(L, -2);
		return 2;
	}
	if (!lua_isnone(L, 4))
		lua_pushvalue(L, 4);
	else
		lua_rawgeti(L, LUA_REGISTRYINDEX, r->ref_env);
	if (!lua_setupvalue(L, -2, 1))
		lua_pop(L, 1);
	return 1;
}

/* print(): to the broker's log, at info level, with the caller's place. */
static int sandbox_print(lua_State *L)
{
	int n = lua_gettop(L);
	luaL_Buffer b;
	luaL_where(L, 1);
	luaL_buffinit(L, &b);
	for (int i = 1; i <= n; i++) {
		if (i > 1)
			luaL_addchar(&b, '\t');
		luaL_tolstring(L, i, NULL);
		luaL_addvalue(&b);
	}
	luaL_pushresult(&b);
	log_info("%s %s", lua_tostring(L, -2), lua_tostring(L, -1));
	return 0;
}

/* collectgarbage(): "count" only. The other options steer the collector,
 * which is the broker's business, not a rule's. */
static int sandbox_collectgarbage(lua_State *L)
{
	const char *opt = luaL_optstring(L, 1, "collect");
	if (strcmp(opt, "count") != 0)
		return luaL_error(L, "collectgarbage: only 'count' is available in the sandbox, not '%s'", opt);
	lua_pushnumber(L, (lua_Number)lua_gc(L, LUA_GCCOUNT) + (lua_Number)lua_gc(L, LUA_GCCOUNTB) / 1024);
	return 1;
}

/* setmetatable(): refuses __gc. A finalizer would run Lua code at whatever
 * moment the collector picks, outside any call and its accounting. */
static int sandbox_setmetatable(lua_State *L)
{
	if (lua_type(L, 2) == LUA_TTABLE) {
		lua_pushliteral(L, "__gc");
		if (lua_rawget(L, 2) != LUA_TNIL)
			return luaL_error(L, "setmetatable: __gc metamethods are not available in the sandbox");
		lua_pop(L, 1);
	}
	lua_pushvalue(L, lua_upvalueindex(1));	/* Lua's own setmetatable */
	lua_insert(L, 1);
	lua_call(L, lua_gettop(L) - 1, 1);
	return 1;
}

static bool module_name_ok(const char *s)
{
	/* a, a.b, a_b.c2: no slash, no "..", nothing a path could escape with */
	bool start = true;
	for (; *s; s++) {
		if (*s == '.') {
			if (start)
				return false;
			start = true;
		} else if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_' ||
		           (!start && *s >= '0' && *s <= '9')) {
			start = false;
		} else {
			return false;
		}
	}
	return !start;
}

/* require(name): name.lua (dots become directories) from the lua/
 * directories found at load, run once in the sandbox's _ENV and cached. */
static int sandbox_require(lua_State *L)
{
	struct router *r = get_router(L);
	const char *name = luaL_checkstring(L, 1);
	char path[4096], rel[512];
	const char *found = NULL;
	int loaded, st;

	if (strlen(name) >= sizeof rel - 8 || !module_name_ok(name))
		return luaL_error(L, "require: module name '%s' is not allowed: modules are named "
		                  "like 'acl' or 'lib.acl' and are files under lua/", name);
	lua_settop(L, 1);
	lua_rawgeti(L, LUA_REGISTRYINDEX, r->ref_loaded);
	loaded = lua_gettop(L);
	lua_pushvalue(L, 1);
	if (lua_rawget(L, loaded) != LUA_TNIL) {
		if (lua_touserdata(L, -1) == &loading_key)
			return luaL_error(L, "require: module '%s' requires itself", name);
		return 1;
	}
	lua_pop(L, 1);

	snprintf(rel, sizeof rel, "%s.lua", name);
	for (char *p = rel; *p && p < rel + strlen(name); p++)
		if (*p == '.')
			*p = '/';
	for (size_t i = 0; i < ARRAY_LEN(r->dirs) && r->dirs[i] && !found; i++) {
		snprintf(path, sizeof path, "%s/%s", r->dirs[i], rel);
		if (access(path, R_OK) == 0)
			found = path;
	}
	if (!found)
		return luaL_error(L, "require: module '%s' not found (looked for %s in %s%s%s)", name, rel,
		                  r->dirs[0] ? r->dirs[0] : "(no lua/ directory)",
		                  r->dirs[1] ? " and " : "", r->dirs[1] ? r->dirs[1] : "");

	lua_pushvalue(L, 1);
	lua_pushlightuserdata(L, (void *)&loading_key);
	lua_rawset(L, loaded);
	st = luaL_loadfilex(L, found, "t");
	if (st == LUA_OK) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, r->ref_env);
		if (!lua_setupvalue(L, -2, 1))
			lua_pop(L, 1);
		lua_pushvalue(L, 1);
		lua_pushstring(L, found);
		st = lua_pcall(L, 2, 1, 0);
	}
	/* Forget the marker whatever happened, so a later require can retry. */
	lua_pushvalue(L, 1);
	lua_pushnil(L);
	lua_rawset(L, loaded);
	if (st == LUA_ERRMEM)
		r->mem_error = true;
	if (st != LUA_OK)
		return lua_error(L);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		lua_pushboolean(L, 1);
	}
	lua_pushvalue(L, 1);
	lua_pushvalue(L, -2);
	lua_rawset(L, loaded);
	return 1;
}

/* ---- msg, msg.headers and authorize()'s info ---- */

static const struct route_hdr_edit *find_edit(const struct route_result *res, const char *name)
{
	/* The last edit of a name is the one in force. */
	for (size_t i = res->nedits; i-- > 0;)
		if (strcmp(res->edits[i].name, name) == 0)
			return &res->edits[i];
	return NULL;
}

static struct router *in_route(lua_State *L)
{
	struct router *r = get_router(L);
	if (!r->msg)
		luaL_error(L, "msg is only valid during the route() call that received it");
	return r;
}

static int msg_index(lua_State *L)
{
	struct router *r = in_route(L);
	const struct route_msg *m = r->msg;
	const char *k;

	if (lua_type(L, 2) != LUA_TSTRING)
		return luaL_error(L, "msg has no field of type %s", luaL_typename(L, 2));
	k = lua_tostring(L, 2);
	if (strcmp(k, "destination") == 0) {
		lua_pushstring(L, m->destination);
	} else if (strcmp(k, "headers") == 0) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, r->ref_headers);
	} else if (strcmp(k, "body") == 0) {
		/* The one place a body enters Lua, and only when asked for;
		 * kept for the rest of the call so it is copied once. */
		if (lua_getiuservalue(L, 1, 1) == LUA_TNIL) {
			lua_pop(L, 1);
			lua_pushlstring(L, m->body ? m->body : "", m->body ? m->body_len : 0);
			lua_pushvalue(L, -1);
			lua_setiuservalue(L, 1, 1);
			r->body_pushed = true;
			r->stats.body_reads++;
		}
	} else if (strcmp(k, "login") == 0) {
		if (m->login)
			lua_pushstring(L, m->login);
		else
			lua_pushnil(L);
	} else if (strcmp(k, "vhost") == 0) {
		if (m->vhost)
			lua_pushstring(L, m->vhost);
		else
			lua_pushnil(L);
	} else if (strcmp(k, "conn_id") == 0) {
		lua_pushinteger(L, (lua_Integer)m->conn_id);
	} else {
		return luaL_error(L, "msg has no field '%s' (fields: destination, headers, body, login, "
		                  "vhost, conn_id)", k);
	}
	return 1;
}

static int msg_newindex(lua_State *L)
{
	const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
	in_route(L);
	if (k && strcmp(k, "destination") == 0)
		return luaL_error(L, "msg.destination is read-only: return the new destination from route()");
	if (k && strcmp(k, "headers") == 0)
		return luaL_error(L, "msg.headers cannot be replaced: set msg.headers[name] instead");
	return luaL_error(L, "msg.%s is read-only", k ? k : "?");
}

static int headers_index(lua_State *L)
{
	struct router *r = in_route(L);
	const struct route_msg *m = r->msg;
	const struct route_hdr_edit *e;
	const char *name;

	if (lua_type(L, 2) != LUA_TSTRING)
		return 0;
	name = lua_tostring(L, 2);
	e = find_edit(r->res, name);
	if (e) {
		if (e->value)
			lua_pushstring(L, e->value);
		else
			lua_pushnil(L);
		return 1;
	}
	for (unsigned i = 0; i < m->nhdrs; i++) {	/* the first occurrence wins */
		if (strcmp(m->hdrs[i].name, name) == 0) {
			lua_pushlstring(L, m->hdrs[i].value, m->hdrs[i].value_len);
			return 1;
		}
	}
	return 0;
}

static bool bad_header_bytes(const char *s, size_t n, bool name)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] == '\0' || s[i] == '\n' || s[i] == '\r' || (name && s[i] == ':'))
			return true;
	return false;
}

/* Headers the broker itself writes or acts on: a rule sets them through
 * its return value (destination) or not at all. */
static const char *const broker_headers[] = {
	"destination", "content-length", "message-id", "subscription", "ack", "receipt", "transaction",
};

static int headers_newindex(lua_State *L)
{
	struct router *r = in_route(L);
	struct route_result *res = r->res;
	struct route_hdr_edit *e;
	size_t nlen, vlen = 0;
	const char *name, *value = NULL;

	if (lua_type(L, 2) != LUA_TSTRING)
		return luaL_error(L, "msg.headers: a header name is a string, not a %s", luaL_typename(L, 2));
	name = lua_tolstring(L, 2, &nlen);
	if (nlen == 0 || nlen > MAX_HDR_NAME || bad_header_bytes(name, nlen, true))
		return luaL_error(L, "msg.headers: invalid header name '%s'", name);
	for (size_t i = 0; i < ARRAY_LEN(broker_headers); i++)
		if (strcmp(name, broker_headers[i]) == 0)
			return luaL_error(L, "msg.headers: '%s' is set by the broker%s", name,
			                  i == 0 ? "; return the new destination from route()" : "");
	if (!lua_isnil(L, 3)) {
		if (lua_type(L, 3) != LUA_TSTRING && lua_type(L, 3) != LUA_TNUMBER)
			return luaL_error(L, "msg.headers.%s: expected a string or nil, got a %s", name,
			                  luaL_typename(L, 3));
		value = lua_tolstring(L, 3, &vlen);
		if (vlen > MAX_HDR_VALUE || bad_header_bytes(value, vlen, false))
			return luaL_error(L, "msg.headers.%s: value longer than %d bytes or with NUL, CR or LF",
			                  name, MAX_HDR_VALUE);
	}
	if (res->nedits >= MAX_EDITS)
		return luaL_error(L, "msg.headers: more than %d header edits in one call", MAX_EDITS);
	res->edits = xrealloc(res->edits, (res->nedits + 1) * sizeof *res->edits);
	e = &res->edits[res->nedits++];
	e->name = xstrndup(name, nlen);
	e->value = value ? xstrndup(value, vlen) : NULL;
	return 0;
}

/* pairs(msg.headers): the headers as they stand, edits applied. Builds a
 * table, which only a script that iterates pays for. */
static int headers_pairs(lua_State *L)
{
	struct router *r = in_route(L);
	const struct route_msg *m = r->msg;
	lua_getglobal(L, "next");	/* the real globals: not reachable by scripts */
	lua_createtable(L, 0, (int)m->nhdrs);
	for (unsigned i = 0; i < m->nhdrs; i++) {
		lua_pushlstring(L, m->hdrs[i].name, m->hdrs[i].name_len);
		lua_pushvalue(L, -1);
		if (lua_rawget(L, -3) != LUA_TNIL) {	/* a repeat: the first wins */
			lua_pop(L, 2);
			continue;
		}
		lua_pop(L, 1);
		lua_pushlstring(L, m->hdrs[i].value, m->hdrs[i].value_len);
		lua_rawset(L, -3);
	}
	for (size_t i = 0; i < r->res->nedits; i++) {
		lua_pushstring(L, r->res->edits[i].name);
		if (r->res->edits[i].value)
			lua_pushstring(L, r->res->edits[i].value);
		else
			lua_pushnil(L);
		lua_rawset(L, -3);
	}
	lua_pushnil(L);
	return 3;
}

static int req_index(lua_State *L)
{
	struct router *r = get_router(L);
	const struct authz_req *q = r->req;
	static const char *const actions[] = { "connect", "send", "subscribe", "admin", "configure" };
	const char *k;

	if (!q)
		return luaL_error(L, "authorize()'s info is only valid during that call");
	if (lua_type(L, 2) != LUA_TSTRING)
		return 0;
	k = lua_tostring(L, 2);
	if (strcmp(k, "login") == 0 || strcmp(k, "destination") == 0 || strcmp(k, "vhost") == 0 ||
	    strcmp(k, "peer") == 0) {
		const char *v = k[0] == 'l' ? q->login : k[0] == 'd' ? q->destination : k[0] == 'v' ? q->vhost : q->peer;
		if (v)
			lua_pushstring(L, v);
		else
			lua_pushnil(L);
	} else if (strcmp(k, "action") == 0) {
		lua_pushstring(L, (unsigned)q->action < ARRAY_LEN(actions) ? actions[q->action] : "?");
	} else if (strcmp(k, "loopback") == 0) {
		lua_pushboolean(L, q->loopback);
	} else if (strcmp(k, "authenticated") == 0) {
		lua_pushboolean(L, q->authenticated);
	} else if (strcmp(k, "admin_user") == 0) {
		lua_pushboolean(L, q->admin_user);
	} else {
		return luaL_error(L, "info has no field '%s' (fields: login, action, destination, vhost, "
		                  "peer, loopback, authenticated, admin_user)", k);
	}
	return 1;
}

static int read_only(lua_State *L)
{
	return luaL_error(L, "this object is read-only");
}

/* A userdata with the given metamethods, kept in the registry. */
static int new_object(lua_State *L, int nuv, const char *tname, const luaL_Reg *meta)
{
	lua_newuserdatauv(L, 0, nuv);
	lua_newtable(L);
	luaL_setfuncs(L, meta, 0);
	lua_pushstring(L, tname);
	lua_setfield(L, -2, "__metatable");	/* getmetatable() shows only the name */
	lua_setmetatable(L, -2);
	return luaL_ref(L, LUA_REGISTRYINDEX);
}

static void copy_field(lua_State *L, int from, int to, const char *name)
{
	lua_getfield(L, from, name);
	lua_setfield(L, to, name);
}

/* Builds the sandbox in protected mode (it allocates). Leaves nothing on
 * the stack; the pieces go into the registry. */
static int build_sandbox(lua_State *L)
{
	static const char *const base_fns[] = {
		"assert", "getmetatable", "ipairs", "next", "pairs", "rawequal", "rawget", "rawlen",
		"rawset", "select", "tonumber", "tostring", "type", "_VERSION",
	};
	static const luaL_Reg own_fns[] = {
		{ "error", sandbox_error }, { "pcall", sandbox_pcall }, { "xpcall", sandbox_xpcall },
		{ "load", sandbox_load }, { "print", sandbox_print },
		{ "collectgarbage", sandbox_collectgarbage }, { "require", sandbox_require },
		{ NULL, NULL },
	};
	static const luaL_Reg msg_meta[] = {
		{ "__index", msg_index }, { "__newindex", msg_newindex }, { NULL, NULL },
	};
	static const luaL_Reg headers_meta[] = {
		{ "__index", headers_index }, { "__newindex", headers_newindex },
		{ "__pairs", headers_pairs }, { NULL, NULL },
	};
	static const luaL_Reg req_meta[] = {
		{ "__index", req_index }, { "__newindex", read_only }, { NULL, NULL },
	};
	struct router *r = get_router(L);
	int G, lib, B, E;

	/* The real globals hold the whole base library; scripts never see
	 * them (load and require set the sandbox's _ENV), and the dangerous
	 * entries are removed anyway. */
	luaL_requiref(L, LUA_GNAME, luaopen_base, 1);
	G = lua_gettop(L);
	lua_pushnil(L);
	lua_setfield(L, G, "dofile");
	lua_pushnil(L);
	lua_setfield(L, G, "loadfile");
	lua_pushnil(L);
	lua_setfield(L, G, "load");

	lua_newtable(L);
	B = lua_gettop(L);
	for (size_t i = 0; i < ARRAY_LEN(base_fns); i++)
		copy_field(L, G, B, base_fns[i]);
	luaL_setfuncs(L, own_fns, 0);
	lua_getfield(L, G, "setmetatable");
	lua_pushcclosure(L, sandbox_setmetatable, 1);
	lua_setfield(L, B, "setmetatable");

	/* string is also every string's __index, so dump goes from the
	 * library itself: no binary chunk can be made, let alone loaded. */
	luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 0);
	lua_pushnil(L);
	lua_setfield(L, -2, "dump");
	lua_setfield(L, B, LUA_STRLIBNAME);
	luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 0);
	lua_setfield(L, B, LUA_TABLIBNAME);
	luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 0);
	lua_setfield(L, B, LUA_MATHLIBNAME);
	luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 0);
	lua_setfield(L, B, LUA_UTF8LIBNAME);
	luaL_requiref(L, LUA_OSLIBNAME, luaopen_os, 0);
	lib = lua_gettop(L);
	lua_createtable(L, 0, 4);
	copy_field(L, lib, lib + 1, "time");
	copy_field(L, lib, lib + 1, "clock");
	copy_field(L, lib, lib + 1, "date");
	copy_field(L, lib, lib + 1, "getenv");
	lua_setfield(L, B, LUA_OSLIBNAME);
	lua_pop(L, 1);

	/* _ENV: the file's globals, falling back on the allow-list. While the
	 * file runs, __newindex records where each global was set. */
	lua_newtable(L);
	E = lua_gettop(L);
	lua_pushvalue(L, E);
	lua_setfield(L, B, "_G");
	lua_pushvalue(L, E);
	r->ref_env = luaL_ref(L, LUA_REGISTRYINDEX);	/* for load() and require() */
	lua_createtable(L, 0, 3);
	lua_pushvalue(L, B);
	lua_setfield(L, -2, "__index");
	lua_newtable(L);			/* lines: name -> { source, line } */
	lua_pushvalue(L, -1);
	lua_insert(L, E + 1);			/* keep it for router_load */
	lua_pushcclosure(L, router_config_newindex, 1);
	lua_setfield(L, -2, "__newindex");
	lua_pushboolean(L, 0);
	lua_setfield(L, -2, "__metatable");	/* getmetatable(_ENV) is false */
	lua_setmetatable(L, E);

	r->ref_msg = new_object(L, 1, "msg", msg_meta);
	r->ref_headers = new_object(L, 0, "headers", headers_meta);
	r->ref_req = new_object(L, 0, "info", req_meta);
	lua_newtable(L);
	r->ref_loaded = luaL_ref(L, LUA_REGISTRYINDEX);
	lua_pushboolean(L, 0);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &reject_key);

	/* Stack: G, B, E, lines. Return E and lines. */
	return 2;
}

/* ---- load ---- */

static void set_module_dirs(struct router *r, const char *path)
{
	char *real = realpath(path, NULL);
	char *dir = real ? real : xstrdup(path);
	char *slash = strrchr(dir, '/');
	char buf[4096];
	size_t n = 0;

	if (slash)
		*slash = 0;
	else
		snprintf(dir, strlen(dir) + 1, ".");
	/* lua/ beside the file ... */
	snprintf(buf, sizeof buf, "%s/lua", dir);
	r->dirs[n++] = xstrdup(buf);
	/* ... and the nearest directory called lua that holds the file, the
	 * project's own lua/ when the file is lua/broker.lua or lua/examples/x.lua. */
	for (char *p = dir; *p;) {
		char *last = strrchr(p, '/');
		const char *base = last ? last + 1 : p;
		if (strcmp(base, "lua") == 0) {
			r->dirs[n++] = xstrdup(p);
			break;
		}
		if (!last || last == p)
			break;
		*last = 0;
	}
	free(dir);
}

/* "file:line" of the function at idx, for errors about what it returned. */
static void where_defined(lua_State *L, int idx, char *buf, size_t len)
{
	lua_Debug ar;
	lua_pushvalue(L, idx);
	if (lua_getinfo(L, ">S", &ar))
		snprintf(buf, len, "%s:%d", ar.short_src, ar.linedefined);
	else
		snprintf(buf, len, "?");
}

/* Loads the file (argument 1, a C string) as a text chunk, a binary one
 * being refused before it is looked at, with _ENV (argument 2) as its
 * environment. Protected: building the chunk name allocates. */
static int load_chunk(lua_State *L)
{
	const char *path = lua_touserdata(L, 1);
	int st = luaL_loadfilex(L, path, "t");
	if (st == LUA_ERRMEM)
		get_router(L)->mem_error = true;
	if (st != LUA_OK) {
		/* Most of Lua's load errors start with the chunk's name; a few
		 * ("C stack overflow", a binary chunk refused) do not. */
		const char *msg = lua_tostring(L, -1);
		if (msg && strncmp(msg, path, strlen(path)) != 0 && strstr(msg, path) == NULL)
			lua_pushfstring(L, "%s: %s", path, msg);
		return lua_error(L);
	}
	lua_pushvalue(L, 2);
	lua_setupvalue(L, -2, 1);
	return 1;
}

static int take_function(lua_State *L, int env, const char *name, bool *has, char *where, size_t wlen)
{
	lua_pushstring(L, name);
	if (lua_rawget(L, env) != LUA_TFUNCTION) {
		lua_pop(L, 1);
		*has = false;
		return LUA_NOREF;
	}
	if (where)
		where_defined(L, -1, where, wlen);
	*has = true;
	return luaL_ref(L, LUA_REGISTRYINDEX);
}

/* After the file ran and its globals were read: keep the functions the
 * broker calls, and stop recording global assignments. Protected. */
static int finish_load(lua_State *L)
{
	struct router *r = get_router(L);
	r->ref_route = take_function(L, 1, "route", &r->has_route, r->route_where, sizeof r->route_where);
	r->ref_authorize = take_function(L, 1, "authorize", &r->has_authorize,
	                                 r->authorize_where, sizeof r->authorize_where);
	r->ref_on_event = take_function(L, 1, "on_event", &r->has_on_event, NULL, 0);
	lua_getmetatable(L, 1);
	lua_pushnil(L);
	lua_setfield(L, -2, "__newindex");
	return 0;
}

struct router *router_load(const char *path, struct config *cfg, char *err, size_t errlen)
{
	struct router *r = xcalloc(1, sizeof *r);
	char text[1024];
	lua_State *L;
	enum { ENV = 1, LINES = 2 };	/* stack slots while loading */

	r->path = xstrdup(path);
	r->budget = cfg->lua_budget;
	r->mem_limit = (size_t)MIN(cfg->lua_memory, (uint64_t)SIZE_MAX);
	r->ref_env = r->ref_loaded = r->ref_msg = r->ref_headers = r->ref_req = LUA_NOREF;
	r->ref_route = r->ref_authorize = r->ref_on_event = LUA_NOREF;
	set_module_dirs(r, path);

	L = r->L = lua_newstate(counting_alloc, r);
	if (!L) {
		snprintf(err, errlen, "%s: cannot create a Lua state (lua_memory %" PRIu64 ")", path, cfg->lua_memory);
		goto fail;
	}
	*(struct router **)lua_getextraspace(L) = r;
	lua_atpanic(L, panic);
	/* The rejection slot, before the first call() resets it. The state
	 * is fresh, far below any ceiling, so this cannot fail. */
	lua_pushboolean(L, 0);
	lua_rawsetp(L, LUA_REGISTRYINDEX, &reject_key);

	/* Every step is a protected call under the budget: the file is
	 * anybody's code, and even building the sandbox allocates. */
	lua_pushcfunction(L, build_sandbox);
	if (call(r, "load", 0, 2, true, text, sizeof text) != CALL_OK) {
		snprintf(err, errlen, "%s: cannot set up the Lua sandbox: %s", path, text);
		goto fail;
	}
	lua_pushcfunction(L, load_chunk);
	lua_pushlightuserdata(L, (void *)path);
	lua_pushvalue(L, ENV);
	if (call(r, "load", 2, 1, true, text, sizeof text) != CALL_OK ||
	    call(r, "load", 0, 0, true, text, sizeof text) != CALL_OK) {
		snprintf(err, errlen, "%s", text);
		goto fail;
	}

	lua_pushcfunction(L, router_config_read);
	lua_pushlightuserdata(L, cfg);
	lua_pushvalue(L, ENV);
	lua_pushvalue(L, LINES);
	lua_pushlightuserdata(L, (void *)path);
	if (call(r, "load", 4, 1, true, text, sizeof text) != CALL_OK) {
		snprintf(err, errlen, "%s", text);
		goto fail;
	}
	if (!lua_isnil(L, -1)) {
		snprintf(err, errlen, "%s", lua_tostring(L, -1));
		goto fail;
	}
	lua_pop(L, 1);

	lua_pushcfunction(L, finish_load);
	lua_pushvalue(L, ENV);
	if (call(r, "load", 1, 0, true, text, sizeof text) != CALL_OK) {
		snprintf(err, errlen, "%s", text);
		goto fail;
	}
	lua_settop(L, 0);
	lua_gc(L, LUA_GCCOLLECT);

	/* The file's own limits apply from the first call on. */
	r->budget = cfg->lua_budget;
	r->mem_limit = (size_t)MIN(cfg->lua_memory, (uint64_t)SIZE_MAX);
	if (r->mem_used > r->mem_limit) {
		char a[32], b[32];
		snprintf(err, errlen, "%s: lua_memory: %s is less than the %s the configuration already uses",
		         path, fmt_bytes(r->mem_limit, a, sizeof a), fmt_bytes(r->mem_used, b, sizeof b));
		goto fail;
	}
	free(cfg->path);
	cfg->path = xstrdup(path);

	/* Nothing to call: no reason to keep the state. */
	if (!r->has_route && !r->has_authorize && !r->has_on_event) {
		lua_close(L);
		r->L = NULL;
		r->mem_used = 0;
	}
	return r;
fail:
	router_free(r);
	return NULL;
}

void router_free(struct router *r)
{
	if (!r)
		return;
	if (r->L)
		lua_close(r->L);
	for (size_t i = 0; i < ARRAY_LEN(r->dirs); i++)
		free(r->dirs[i]);
	free(r->path);
	free(r);
}

void router_set_limits(struct router *r, uint64_t budget, uint64_t memory)
{
	if (!r)
		return;
	if (budget)
		r->budget = budget;
	if (memory)
		r->mem_limit = (size_t)MIN(memory, (uint64_t)SIZE_MAX);
}

/* ---- route ---- */

bool router_has_route(const struct router *r)
{
	return r && r->has_route;
}

static bool dest_ok(const char *s, size_t n)
{
	return n > 0 && n <= MAX_DEST_LEN && !bad_header_bytes(s, n, false);
}

static void free_dests(struct route_result *res)
{
	for (size_t i = 0; i < res->ndests; i++)
		free(res->dests[i]);
	free(res->dests);
	res->dests = NULL;
	res->ndests = 0;
}

static void free_edits(struct route_result *res)
{
	for (size_t i = 0; i < res->nedits; i++) {
		free(res->edits[i].name);
		free(res->edits[i].value);
	}
	free(res->edits);
	res->edits = NULL;
	res->nedits = 0;
}

void route_result_fini(struct route_result *res)
{
	if (!res)
		return;
	free_dests(res);
	free_edits(res);
}

/* What route() returned, at the top of the stack. Reads raw and makes
 * C copies only: nothing here can raise a Lua error. */
static enum route_outcome take_result(struct router *r, struct route_result *res)
{
	lua_State *L = r->L;
	size_t n, len;
	const char *s;

	switch (lua_type(L, -1)) {
	case LUA_TNIL:
		return ROUTE_DELIVER;
	case LUA_TBOOLEAN:
		if (lua_toboolean(L, -1))
			return ROUTE_DELIVER;
		r->stats.drops++;
		return ROUTE_DROP;
	case LUA_TSTRING:
		s = lua_tolstring(L, -1, &len);
		if (!dest_ok(s, len)) {
			snprintf(res->error, sizeof res->error, "%s: route() returned an invalid destination "
			         "(empty, longer than %d bytes, or with NUL, CR or LF)", r->route_where, MAX_DEST_LEN);
			break;
		}
		res->dests = xmalloc(sizeof *res->dests);
		res->dests[0] = xstrndup(s, len);
		res->ndests = 1;
		return ROUTE_REWRITE;
	case LUA_TTABLE:
		n = (size_t)lua_rawlen(L, -1);
		if (n == 0) {
			r->stats.drops++;
			return ROUTE_DROP;	/* a list that names nowhere */
		}
		if (n > MAX_FANOUT) {
			snprintf(res->error, sizeof res->error, "%s: route() returned %zu destinations (at most %d)",
			         r->route_where, n, MAX_FANOUT);
			break;
		}
		res->dests = xcalloc(n, sizeof *res->dests);
		for (size_t i = 0; i < n; i++) {
			int t = lua_rawgeti(L, -1, (lua_Integer)i + 1);
			s = t == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
			if (!s || !dest_ok(s, len)) {
				snprintf(res->error, sizeof res->error, "%s: route() returned a list whose item %zu is %s",
				         r->route_where, i + 1, s ? "not a valid destination" : lua_typename(L, t));
				lua_pop(L, 1);
				free_dests(res);
				goto bad;
			}
			res->dests[res->ndests++] = xstrndup(s, len);
			lua_pop(L, 1);
		}
		return ROUTE_FANOUT;
	default:
		snprintf(res->error, sizeof res->error, "%s: route() returned a %s; expected nothing, "
		         "false, a destination or a list of destinations", r->route_where, luaL_typename(L, -1));
		break;
	}
bad:
	r->stats.errors++;
	log_script(r, "route", res->error);
	return ROUTE_ERROR;
}

enum route_outcome router_route(struct router *r, const struct route_msg *m, struct route_result *res)
{
	lua_State *L;
	enum call_status cs;
	int top;

	memset(res, 0, sizeof *res);
	res->outcome = ROUTE_DELIVER;
	if (!r || !r->has_route)
		return ROUTE_DELIVER;
	L = r->L;
	top = lua_gettop(L);
	/* No allocation here: both come from the registry. */
	lua_rawgeti(L, LUA_REGISTRYINDEX, r->ref_route);
	lua_rawgeti(L, LUA_REGISTRYINDEX, r->ref_msg);
	r->msg = m;
	r->res = res;
	r->body_pushed = false;
	r->stats.calls++;
	cs = call(r, "route", 1, 1, false, res->error, sizeof res->error);
	r->msg = NULL;
	r->res = NULL;
	if (r->body_pushed) {
		/* Let the collector have the body copy. */
		lua_rawgeti(L, LUA_REGISTRYINDEX, r->ref_msg);
		lua_pushnil(L);
		lua_setiuservalue(L, -2, 1);
		lua_pop(L, 1);
	}
	switch (cs) {
	case CALL_OK:
		res->outcome = take_result(r, res);
		lua_pop(L, 1);
		break;
	case CALL_REJECT:
		res->outcome = ROUTE_REJECT;
		snprintf(res->error, sizeof res->error, "%s", r->reject[0] ? r->reject : "rejected by route()");
		r->stats.rejects++;
		break;
	case CALL_BUDGET:
		res->outcome = ROUTE_BUDGET;
		break;
	case CALL_NOMEM:
		res->outcome = ROUTE_NOMEM;
		break;
	case CALL_ERROR:
		res->outcome = ROUTE_ERROR;
		break;
	}
	/* Edits only mean something for a message that is delivered. */
	if (res->outcome != ROUTE_DELIVER && res->outcome != ROUTE_REWRITE && res->outcome != ROUTE_FANOUT)
		free_edits(res);
	assert(lua_gettop(L) == top);	/* the stack is as we found it */
	(void)top;
	return res->outcome;
}

/* ---- authorize ---- */

bool router_has_authorize(const struct router *r)
{
	return r && r->has_authorize;
}

static int push_or_nil(lua_State *L, const char *s)
{
	if (s)
		lua_pushstring(L, s);
	else
		lua_pushnil(L);
	return 1;
}

/* Runs in protected mode: pushing the strings allocates. */
static int authorize_tramp(lua_State *L)
{
	struct router *r = get_router(L);
	static const char *const actions[] = { "connect", "send", "subscribe", "admin", "configure" };
	const struct authz_req *q = r->req;
	lua_rawgeti(L, LUA_REGISTRYINDEX, r->ref_authorize);
	push_or_nil(L, q->login);
	lua_pushstring(L, (unsigned)q->action < ARRAY_LEN(actions) ? actions[q->action] : "?");
	push_or_nil(L, q->destination);
	lua_rawgeti(L, LUA_REGISTRYINDEX, r->ref_req);
	lua_call(L, 4, 2);
	return 2;
}

static void default_reason(const struct authz_req *q, char *reason, size_t len)
{
	switch (q->action) {
	case AUTHZ_CONNECT: snprintf(reason, len, "not authorized to connect"); break;
	case AUTHZ_SEND: snprintf(reason, len, "not authorized to send to %s", q->destination ? q->destination : "?"); break;
	case AUTHZ_SUBSCRIBE: snprintf(reason, len, "not authorized to subscribe to %s", q->destination ? q->destination : "?"); break;
	case AUTHZ_ADMIN: snprintf(reason, len, "not authorized for admin commands"); break;
	case AUTHZ_CONFIGURE: snprintf(reason, len, "not authorized to create or delete %s", q->destination ? q->destination : "?"); break;
	}
}

enum authz_result router_authorize(struct router *r, const struct authz_req *req,
                                   char *reason, size_t reasonlen)
{
	char text[512];
	enum authz_result ar = AUTHZ_DENY;
	enum call_status cs;
	lua_State *L;
	int top;

	if (reasonlen)
		reason[0] = 0;
	if (!r || !r->has_authorize)
		return AUTHZ_NO_RULE;
	L = r->L;
	top = lua_gettop(L);
	r->req = req;
	lua_pushcfunction(L, authorize_tramp);
	r->stats.calls++;
	cs = call(r, "authorize", 0, 2, false, text, sizeof text);
	r->req = NULL;
	if (cs == CALL_OK) {
		int t = lua_type(L, -2);
		if (t == LUA_TBOOLEAN && lua_toboolean(L, -2)) {
			ar = AUTHZ_ALLOW;
		} else if (t == LUA_TBOOLEAN) {
			if (lua_type(L, -1) == LUA_TSTRING)
				snprintf(reason, reasonlen, "%s", lua_tostring(L, -1));
			else
				default_reason(req, reason, reasonlen);
		} else {
			/* Fail closed: a rule that answers nothing or nonsense denies. */
			snprintf(text, sizeof text, "%s: authorize() returned %s; expected true or false[, reason]",
			         r->authorize_where, t == LUA_TNIL ? "nothing" : luaL_typename(L, -2));
			r->stats.errors++;
			log_script(r, "authorize", text);
			default_reason(req, reason, reasonlen);
		}
		lua_pop(L, 2);
	} else if (cs == CALL_REJECT) {
		snprintf(reason, reasonlen, "%s", r->reject[0] ? r->reject : "denied by authorize()");
	} else {
		/* The details are in the log, not for the client. */
		snprintf(reason, reasonlen, "authorization rule failed");
	}
	assert(lua_gettop(L) == top);	/* the stack is as we found it */
	(void)top;
	return ar;
}

/* ---- events ---- */

static int event_tramp(lua_State *L)
{
	struct router *r = get_router(L);
	const char *name = lua_touserdata(L, 1);
	const char *const *fields = lua_touserdata(L, 2);
	lua_settop(L, 0);
	lua_rawgeti(L, LUA_REGISTRYINDEX, r->ref_on_event);
	lua_pushstring(L, name);
	lua_newtable(L);
	for (size_t i = 0; fields && fields[i] && fields[i + 1]; i += 2) {
		lua_pushstring(L, fields[i + 1]);
		lua_setfield(L, -2, fields[i]);
	}
	lua_call(L, 2, 0);
	return 0;
}

void router_event(struct router *r, const char *name, const char *const *fields)
{
	char text[512];
	lua_State *L;
	int top;

	if (!r || !r->has_on_event)
		return;
	L = r->L;
	top = lua_gettop(L);
	lua_pushcfunction(L, event_tramp);
	lua_pushlightuserdata(L, (void *)name);
	lua_pushlightuserdata(L, (void *)fields);
	r->stats.calls++;
	/* error("...") has no one to go back to here: it is just an error. */
	if (call(r, "on_event", 2, 0, false, text, sizeof text) == CALL_REJECT) {
		r->stats.errors++;
		log_script(r, "on_event", text);
	}
	assert(lua_gettop(L) == top);	/* the stack is as we found it */
	(void)top;
}

/* ---- figures ---- */

void router_get_stats(const struct router *r, struct router_stats *st)
{
	memset(st, 0, sizeof *st);
	if (!r)
		return;
	*st = r->stats;
	st->memory_bytes = r->mem_used;
}
