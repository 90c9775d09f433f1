/* console.c: the web console's routes: the page, logins and sessions,
 * admin commands from the page, the live stream. */
#include "http/console.h"

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>

#include <openssl/crypto.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "admin/cmd.h"
#include "common/json.h"
#include "common/log.h"
#include "common/util.h"
#include "core/auth.h"
#include "core/broker.h"
#include "http/console_assets.h"
#include "http/console_session.h"
#include "http/console_stream.h"

#define COOKIE_NAME "mq_console"
#define SESSION_IDLE_MS (30u * 60 * 1000)	/* no request, no open console: logged out */
#define SESSION_MAX_AGE_MS (12u * 3600 * 1000)	/* logged out whatever happens */
#define MAX_SESSIONS 256
#define MAX_BODY (1u << 20)			/* a POST to the console's API */
#define MAX_ARGS 128				/* words of one command */
#define MAX_CREDENTIAL 512			/* bytes of a login or a password */

/* Every console response: no framing by other sites, no guessing of
 * types, scripts and styles from this server only. */
static const char *const security_headers[][2] = {
	{ "Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
	                             "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'" },
	{ "X-Frame-Options", "DENY" },
	{ "X-Content-Type-Options", "nosniff" },
	{ "Referrer-Policy", "same-origin" },
};

struct console {
	struct broker *b;
	struct console_sessions *sessions;	/* owned */
	struct console_streams *streams;	/* owned */
	char (*etags)[24];			/* owned: one per asset */
	TAILQ_HEAD(, pending_login) logins;	/* passwords being checked */
};

/* What a request to the API comes with, once checked. */
struct api_req {
	struct console *c;
	struct evhttp_request *req;
	char peer[64];			/* as principal.peer holds it */
	struct console_session *session;	/* borrowed; NULL before login */
	struct principal who;			/* the session's user */
};

/* ---- replies ---- */

static void add_headers(struct evhttp_request *req)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	for (size_t i = 0; i < ARRAY_LEN(security_headers); i++)
		evhttp_add_header(h, security_headers[i][0], security_headers[i][1]);
}

static void reply(struct evhttp_request *req, int code, const char *ctype, const char *body, size_t len)
{
	struct evbuffer *out = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	add_headers(req);
	evhttp_add_header(h, "Content-Type", ctype);
	if (!evhttp_find_header(h, "Cache-Control"))
		evhttp_add_header(h, "Cache-Control", "no-store");
	evbuffer_add(out, body, len);
	evhttp_send_reply(req, code, NULL, out);
	evbuffer_free(out);
}

static void reply_json(struct evhttp_request *req, int code, const struct sbuf *json)
{
	reply(req, code, "application/json", json->buf ? json->buf : "{}", json->buf ? json->len : 2);
}

/* Errors have the shape of an admin command's reply, so that the page
 * reads every answer the same way: {"status":..,"ok":false,"message":..}. */
static void reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void reply_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
	char msg[600];
	struct sbuf json;
	struct jw w;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	sbuf_init(&json);
	jw_init(&w, &json);
	jw_obj_begin(&w);
	jw_kint(&w, "status", code);
	jw_kbool(&w, "ok", false);
	jw_kstr(&w, "message", msg);
	jw_obj_end(&w);
	reply_json(req, code, &json);
	sbuf_fini(&json);
}

/* ---- the page ---- */

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
	uint64_t h = 14695981039346656037ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static void serve_asset(struct console *c, struct evhttp_request *req, const char *name)
{
	for (size_t i = 0; i < console_nassets; i++) {
		const struct console_asset *a = &console_assets[i];
		const char *match;
		struct evkeyvalq *h;
		if (strcmp(a->name, name) != 0)
			continue;
		h = evhttp_request_get_output_headers(req);
		/* The page is part of the binary: an upgraded broker serves a
		 * new one, which the browser must notice. */
		evhttp_add_header(h, "Cache-Control", "no-cache");
		evhttp_add_header(h, "ETag", c->etags[i]);
		match = evhttp_find_header(evhttp_request_get_input_headers(req), "If-None-Match");
		if (match && strcmp(match, c->etags[i]) == 0) {
			add_headers(req);
			evhttp_send_reply(req, 304, NULL, NULL);
			return;
		}
		reply(req, 200, a->content_type, (const char *)a->data, a->len);
		return;
	}
	reply(req, 404, "text/plain; charset=utf-8", "no such page: the console is at /\n", 35);
}

/* ---- who is asking ---- */

static void peer_of(struct evhttp_request *req, char *peer, size_t len)
{
	char *host = NULL;
	ev_uint16_t port = 0;
	evhttp_connection_get_peer(evhttp_request_get_connection(req), &host, &port);
	if (host && strchr(host, ':'))
		snprintf(peer, len, "[%s]:%u", host, port);
	else
		snprintf(peer, len, "%s:%u", host ? host : "?", port);
}

/* The session cookie's value, copied out of the Cookie header. */
static bool cookie_value(struct evhttp_request *req, char *out, size_t len)
{
	const char *h = evhttp_find_header(evhttp_request_get_input_headers(req), "Cookie");
	size_t nlen = strlen(COOKIE_NAME);
	while (h && *h) {
		size_t n;
		h += strspn(h, " ;");
		n = strcspn(h, ";");
		if (n > nlen && strncmp(h, COOKIE_NAME "=", nlen + 1) == 0) {
			size_t v = n - nlen - 1;
			if (v >= len)
				return false;
			memcpy(out, h + nlen + 1, v);
			out[v] = 0;
			return true;
		}
		h += n;
	}
	return false;
}

/* A change must come from the console's own page: the browser says where
 * a request comes from in Origin (or, from older ones, Referer), and a
 * page of another site cannot make it say this server. */
static bool same_origin(struct evhttp_request *req, char *err, size_t errlen)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	const char *host = evhttp_find_header(in, "Host");
	const char *origin = evhttp_find_header(in, "Origin");
	const char *referer = evhttp_find_header(in, "Referer");
	char expected[300];
	size_t n;
	if (!host || !*host) {
		snprintf(err, errlen, "refused: the request has no Host header");
		return false;
	}
	n = (size_t)snprintf(expected, sizeof expected, "http://%s", host);
	if (n >= sizeof expected) {
		snprintf(err, errlen, "refused: the Host header is too long");
		return false;
	}
	if (origin) {
		if (strcasecmp(origin, expected) == 0)
			return true;
		snprintf(err, errlen, "cross-origin request refused: Origin %.200s is not %.200s", origin, expected);
		return false;
	}
	if (referer) {
		if (strncasecmp(referer, expected, n) == 0 && (referer[n] == '/' || referer[n] == 0))
			return true;
		snprintf(err, errlen, "cross-origin request refused: Referer %.200s is not on %.200s", referer, expected);
		return false;
	}
	snprintf(err, errlen, "refused: a request that changes anything must come from the console's page "
	         "(it has no Origin header)");
	return false;
}

static void principal_of(struct api_req *a)
{
	memset(&a->who, 0, sizeof a->who);
	principal_set_login(&a->who, a->session->login);
	a->who.vhost = a->c->b->default_vhost;
	snprintf(a->who.peer, sizeof a->who.peer, "%s", a->peer);
	/* Over HTTP a user acts as that user, from wherever: loopback grants
	 * nothing here (a page of any site runs on a loopback browser). */
	a->who.loopback = false;
	a->who.authenticated = true;
	a->who.admin = a->session->admin;
}

static bool may_act(struct api_req *a)
{
	char err[256];
	return auth_allow(a->c->b, &a->who, AUTHZ_ADMIN, NULL, err, sizeof err);
}

static void session_json(struct api_req *a, struct jw *w)
{
	jw_obj_begin(w);
	jw_kint(w, "status", 200);
	jw_kbool(w, "ok", true);
	jw_kstr(w, "message", a->session->login);
	jw_key(w, "data");
	jw_obj_begin(w);
	jw_kstr(w, "login", a->session->login);
	jw_kbool(w, "admin", may_act(a));
	jw_kstr(w, "token", a->session->token);
	jw_kuint(w, "idle_timeout_s", SESSION_IDLE_MS / 1000);
	jw_kstr(w, "version", MQ_VERSION);
	jw_obj_end(w);
	jw_obj_end(w);
}

/* ---- the API ---- */

/* The body as one parsed JSON object; NULL after replying with why not. */
static struct json *json_body(struct api_req *a)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(a->req);
	size_t len = evbuffer_get_length(in);
	char err[200];
	struct json *j;
	if (len == 0) {
		reply_error(a->req, 400, "empty request body: expected a JSON object");
		return NULL;
	}
	j = json_parse((const char *)evbuffer_pullup(in, (ev_ssize_t)len), len, err, sizeof err);
	if (!j) {
		reply_error(a->req, 400, "malformed JSON: %s", err);
		return NULL;
	}
	if (j->type != JSON_OBJ) {
		json_free(j);
		reply_error(a->req, 400, "malformed request: expected a JSON object");
		return NULL;
	}
	return j;
}

static const char *credential(const struct json *j, const char *key, char *err, size_t errlen)
{
	const struct json *v = json_get(j, key);
	if (!v || v->type != JSON_STR) {
		snprintf(err, errlen, "malformed login: \"%s\" must be a string", key);
		return NULL;
	}
	if (v->len > MAX_CREDENTIAL || strlen(v->str) != v->len) {
		snprintf(err, errlen, "malformed login: \"%s\" is longer than %u bytes or holds a NUL", key,
		         MAX_CREDENTIAL);
		return NULL;
	}
	return v->str;
}

/* A login whose password the verifier is checking off the loop. */
struct pending_login {
	TAILQ_ENTRY(pending_login) link;
	struct console *c;
	struct evhttp_request *req;		/* borrowed: dropped if its connection closes */
	struct evhttp_connection *hc;
	char peer[64];
	struct principal p;			/* filled in by the check */
	struct auth_wait *wait;
};

static void pending_free(struct pending_login *pl)
{
	TAILQ_REMOVE(&pl->c->logins, pl, link);
	auth_wait_cancel(pl->c->b, pl->wait);
	principal_fini(&pl->p);
	free(pl);
}

/* The password was checked: a session, or why not. */
static void login_finish(struct pending_login *pl, int rc, const char *err)
{
	struct broker *b = pl->c->b;
	struct api_req a = { .c = pl->c, .req = pl->req };
	char cookie[200];
	struct sbuf out;
	struct jw w;

	snprintf(a.peer, sizeof a.peer, "%s", pl->peer);
	if (rc < 0) {
		/* The log says why; the browser learns no more than that it
		 * failed, unless the broker is only too busy to check. */
		log_warn("web console: login refused from %s: %s", pl->peer, err);
		if (strstr(err, "busy"))
			reply_error(pl->req, 503, "%s", err);
		else
			reply_error(pl->req, 401, "login failed: wrong login or password");
		return;
	}
	if (!auth_may_view(b, &pl->p)) {
		log_warn("web console: %s from %s may not view the console", pl->p.login, pl->peer);
		reply_error(pl->req, 403, "%s may not use the console: viewing needs consume rights or admin", pl->p.login);
		return;
	}
	a.session = console_session_create(pl->c->sessions, pl->p.login, pl->p.admin, mono_ms());
	if (!a.session) {
		reply_error(pl->req, 500, "no session: the system's random number generator failed");
		return;
	}
	principal_of(&a);
	log_info("web console: %s logged in from %s", a.session->login, pl->peer);
	snprintf(cookie, sizeof cookie, COOKIE_NAME "=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%u",
	         a.session->id, SESSION_MAX_AGE_MS / 1000);
	evhttp_add_header(evhttp_request_get_output_headers(pl->req), "Set-Cookie", cookie);
	sbuf_init(&out);
	jw_init(&w, &out);
	session_json(&a, &w);
	reply_json(pl->req, 200, &out);
	sbuf_fini(&out);
	principal_fini(&a.who);
}

static void login_checked(int rc, const char *err, void *arg)
{
	struct pending_login *pl = arg;
	pl->wait = NULL;
	login_finish(pl, rc, err);
	pending_free(pl);
}

static void api_login(struct api_req *a)
{
	struct broker *b = a->c->b;
	struct json *j = json_body(a);
	const char *login, *password;
	struct pending_login *pl;
	char err[512];
	int rc;

	if (!j)
		return;
	if (!(login = credential(j, "login", err, sizeof err)) || !(password = credential(j, "password", err, sizeof err))) {
		json_free(j);
		reply_error(a->req, 400, "%s", err);
		return;
	}
	if (!*login) {
		json_free(j);
		reply_error(a->req, 400, "malformed login: the login is empty");
		return;
	}
	pl = xcalloc(1, sizeof *pl);
	pl->c = a->c;
	pl->req = a->req;
	pl->hc = evhttp_request_get_connection(a->req);
	snprintf(pl->peer, sizeof pl->peer, "%s", a->peer);
	/* As over HTTP Basic: a user, judged as that user from wherever. */
	snprintf(pl->p.peer, sizeof pl->p.peer, "%s", a->peer);
	pl->p.vhost = b->default_vhost;
	TAILQ_INSERT_TAIL(&a->c->logins, pl, link);
	rc = auth_check_user(b, &pl->p, login, password, login_checked, pl, &pl->wait, err, sizeof err);
	if (rc != AUTH_PENDING) {
		login_finish(pl, rc, err);
		pending_free(pl);
	}
	{
		/* the password does not linger in freed memory */
		const struct json *pw = json_get(j, "password");
		OPENSSL_cleanse(pw->str, pw->len);
	}
	json_free(j);
}

static void api_session(struct api_req *a)
{
	struct sbuf out;
	struct jw w;
	sbuf_init(&out);
	jw_init(&w, &out);
	session_json(a, &w);
	reply_json(a->req, 200, &out);
	sbuf_fini(&out);
}

static void api_logout(struct api_req *a)
{
	struct sbuf out;
	struct jw w;
	char id[CONSOLE_SESSION_ID_LEN + 1];
	log_info("web console: %s logged out from %s", a->session->login, a->peer);
	snprintf(id, sizeof id, "%s", a->session->id);
	console_session_end(a->c->sessions, id);
	a->session = NULL;
	console_streams_session_ended(a->c->streams, id, "logged out");
	evhttp_add_header(evhttp_request_get_output_headers(a->req), "Set-Cookie",
	                  COOKIE_NAME "=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
	sbuf_init(&out);
	jw_init(&w, &out);
	jw_obj_begin(&w);
	jw_kint(&w, "status", 200);
	jw_kbool(&w, "ok", true);
	jw_kstr(&w, "message", "logged out");
	jw_obj_end(&w);
	reply_json(a->req, 200, &out);
	sbuf_fini(&out);
}

/* One admin command, from the table every way in shares: the page offers
 * nothing else. */
static void api_command(struct api_req *a)
{
	struct broker *b = a->c->b;
	struct json *j = json_body(a);
	const struct json *args;
	char *argv[MAX_ARGS], who[200];
	struct cmd_reply r;
	struct sbuf out;
	const struct cmd_info *info;

	if (!j)
		return;
	args = json_get(j, "args");
	if (!args || args->type != JSON_ARR || args->len == 0) {
		json_free(j);
		reply_error(a->req, 400, "malformed command: expected {\"args\": [\"COMMAND\", \"ARGUMENT\", ...]}");
		return;
	}
	if (args->len > MAX_ARGS) {
		json_free(j);
		reply_error(a->req, 400, "malformed command: %zu words (at most %d)", args->len, MAX_ARGS);
		return;
	}
	for (size_t i = 0; i < args->len; i++) {
		const struct json *v = args->items[i];
		if (v->type != JSON_STR || strlen(v->str) != v->len) {
			json_free(j);
			reply_error(a->req, 400, "malformed command: args[%zu] must be a string without NUL", i);
			return;
		}
		argv[i] = v->str;
	}
	info = cmd_lookup(argv[0]);
	if (info && (info->flags & CMD_STREAM)) {
		reply_error(a->req, 400, "%s streams: the console's stream (/console/api/stream) carries events", info->name);
		json_free(j);
		return;
	}
	snprintf(who, sizeof who, "web console %s login=%s", a->peer, a->session->login);
	{
		struct cmd_ctx ctx = { b, may_act(a), who, &a->who };
		cmd_reply_init(&r);
		cmd_exec(&ctx, (int)args->len, argv, &r);
	}
	json_free(j);
	sbuf_init(&out);
	cmd_reply_json(&r, &out);
	reply_json(a->req, r.status, &out);
	sbuf_fini(&out);
	if (r.shutdown)
		broker_shutdown(b, "shutdown command from the web console");
	cmd_reply_fini(&r);
}

static void api_stream(struct api_req *a)
{
	console_stream_open(a->c->streams, a->req, a->session->id);
}

static void api_history(struct api_req *a)
{
	const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(a->req));
	struct evkeyvalq params;
	const char *name, *vhost;
	struct sbuf out;

	TAILQ_INIT(&params);
	if (!query || evhttp_parse_query_str(query, &params) < 0 || !(name = evhttp_find_header(&params, "name"))) {
		evhttp_clear_headers(&params);
		reply_error(a->req, 400, "history: expected ?name=DESTINATION[&vhost=V]");
		return;
	}
	vhost = evhttp_find_header(&params, "vhost");
	if (!vhost)
		vhost = "/";
	sbuf_init(&out);
	if (console_history_json(a->c->streams, vhost, name, &out))
		reply_json(a->req, 200, &out);
	else
		reply_error(a->req, 404, "no figures recorded for %.300s in virtual host %.100s", name, vhost);
	sbuf_fini(&out);
	evhttp_clear_headers(&params);
}

enum { GET = 1, POST = 2 };

static const struct route {
	const char *name;
	int method;
	bool session;		/* needs a logged-in session */
	void (*fn)(struct api_req *a);
} routes[] = {
	{ "login", POST, false, api_login },
	{ "session", GET, true, api_session },
	{ "logout", POST, true, api_logout },
	{ "command", POST, true, api_command },
	{ "stream", GET, true, api_stream },
	{ "history", GET, true, api_history },
};

static void api(struct console *c, struct evhttp_request *req, const char *name)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	int method = m == EVHTTP_REQ_POST ? POST : m == EVHTTP_REQ_GET ? GET : 0;
	const struct route *rt = NULL;
	struct api_req a = { .c = c, .req = req };
	char err[600], sid[CONSOLE_SESSION_ID_LEN + 8];

	for (size_t i = 0; i < ARRAY_LEN(routes); i++)
		if (strcmp(routes[i].name, name) == 0)
			rt = &routes[i];
	if (!rt) {
		reply_error(req, 404, "no such console API '%.100s' (known: login, session, logout, command, stream, "
		            "history)", name);
		return;
	}
	if (method != rt->method) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", rt->method == POST ? "POST" : "GET");
		reply_error(req, 405, "%s takes %s", name, rt->method == POST ? "POST" : "GET");
		return;
	}
	peer_of(req, a.peer, sizeof a.peer);
	if (method == POST) {
		size_t len = evbuffer_get_length(evhttp_request_get_input_buffer(req));
		if (!same_origin(req, err, sizeof err)) {
			log_warn("web console: %s from %s: %s", name, a.peer, err);
			reply_error(req, 403, "%s", err);
			return;
		}
		if (len > MAX_BODY) {
			reply_error(req, 413, "request body too large: %zu bytes (the console takes at most %u)", len,
			            MAX_BODY);
			return;
		}
	}
	if (rt->session) {
		if (!cookie_value(req, sid, sizeof sid) ||
		    !(a.session = console_session_find(c->sessions, sid, mono_ms()))) {
			reply_error(req, 401, "not logged in, or the session expired: log in again");
			return;
		}
		principal_of(&a);
		if (!auth_may_view(c->b, &a.who)) {
			principal_fini(&a.who);
			reply_error(req, 403, "%s may no longer use the console", a.session->login);
			return;
		}
		if (method == POST) {
			const char *token = evhttp_find_header(evhttp_request_get_input_headers(req), "X-CSRF-Token");
			if (!console_session_token_ok(a.session, token)) {
				principal_fini(&a.who);
				log_warn("web console: %s from %s login=%s: %s CSRF token", name, a.peer, a.session->login,
				         token ? "wrong" : "no");
				reply_error(req, 403, "%s CSRF token: send the X-CSRF-Token header the session gave at login",
				            token ? "wrong" : "missing");
				return;
			}
		}
	}
	rt->fn(&a);
	principal_fini(&a.who);
}

/* ---- the face ---- */

bool console_owns(const char *path)
{
	return strcmp(path, "/") == 0 || strncmp(path, "/console/", 9) == 0;
}

void console_request(struct console *c, struct evhttp_request *req, const char *path)
{
	enum evhttp_cmd_type m = evhttp_request_get_command(req);
	if (strncmp(path, "/console/api/", 13) == 0) {
		api(c, req, path + 13);
		return;
	}
	if (m != EVHTTP_REQ_GET && m != EVHTTP_REQ_HEAD) {
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", "GET, HEAD");
		reply(req, 405, "text/plain; charset=utf-8", "the console's pages take GET\n", 29);
		return;
	}
	serve_asset(c, req, strcmp(path, "/") == 0 ? "index.html" : path + 9);
}

void console_conn_closed(struct console *c, struct evhttp_connection *hc)
{
	struct pending_login *pl, *next;
	for (pl = TAILQ_FIRST(&c->logins); pl; pl = next) {
		next = TAILQ_NEXT(pl, link);
		if (pl->hc == hc)
			pending_free(pl);
	}
	console_streams_conn_closed(c->streams, hc);
}

bool console_events_listening(const struct console *c)
{
	return console_streams_listening(c->streams);
}

void console_event(struct console *c, const char *json, size_t len)
{
	console_streams_event(c->streams, json, len);
}

struct console *console_new(struct broker *b)
{
	struct console *c = xcalloc(1, sizeof *c);
	c->b = b;
	TAILQ_INIT(&c->logins);
	c->sessions = console_sessions_new(MAX_SESSIONS, SESSION_IDLE_MS, SESSION_MAX_AGE_MS);
	c->streams = console_streams_new(b, c->sessions);
	c->etags = xcalloc(console_nassets ? console_nassets : 1, sizeof *c->etags);
	for (size_t i = 0; i < console_nassets; i++)
		snprintf(c->etags[i], sizeof c->etags[i], "\"%016llx\"",
		         (unsigned long long)fnv1a(console_assets[i].data, console_assets[i].len));
	return c;
}

void console_free(struct console *c)
{
	if (!c)
		return;
	while (!TAILQ_EMPTY(&c->logins))
		pending_free(TAILQ_FIRST(&c->logins));
	console_streams_free(c->streams);
	console_sessions_free(c->sessions);
	free(c->etags);
	free(c);
}
