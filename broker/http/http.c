/* http.c: the HTTP endpoint of -w PORT MAXCONN URLPATH, on libevent's evhttp.
 *
 *   POST /URLPATH/<destination>   publish the body (X-Mq-* headers become
 *                                 message headers); 201 on success
 *   POST /URLPATH                 publish to /queue/URLPATH
 *   GET  /health                  200 while the broker serves
 *   GET  /metrics                 Prometheus text format
 *   GET  /api/<command>[/<arg>...][?arg=...]   read-only admin commands, JSON
 *   POST /api/<command>           any admin command, arguments in the body;
 *                                 needs an admin user (HTTP Basic)
 *
 * Jobs without a STOMP client report results with curl. */
#include "http/http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "admin/cmd.h"
#include "admin/metrics.h"
#include "common/cmdline.h"
#include "common/log.h"
#include "common/util.h"
#include "core/auth.h"
#include "core/broker.h"
#include "core/dest.h"
#include "core/msg.h"
#include "core/publish.h"
#include "core/store.h"

/* A reply to a persistent POST, held until the journal has the message. */
struct held_reply {
	TAILQ_ENTRY(held_reply) link;
	struct completion durable;		/* the store calls back through it */
	struct http_server *hs;
	struct evhttp_request *req;		/* borrowed: dropped if its connection closes */
	struct evhttp_connection *hc;
	char *json;				/* owned */
};

/* What a request does once its sender is known (identify). */
typedef void (*identified_fn)(struct http_server *hs, struct evhttp_request *req, struct principal *p,
                              const char *arg);

/* A request whose HTTP Basic password is being checked. */
struct http_wait {
	TAILQ_ENTRY(http_wait) link;
	struct http_server *hs;
	struct evhttp_request *req;		/* borrowed: dropped if its connection closes */
	struct evhttp_connection *hc;
	struct principal p;
	struct auth_wait *auth;
	identified_fn then;
	char *arg;				/* owned */
};

struct http_server {
	struct broker *b;
	struct evhttp *http;		/* owned */
	struct u64map conns;		/* evhttp_connection pointer -> itself: connections seen */
	char *path;			/* owned; URLPATH without slashes */
	TAILQ_HEAD(, held_reply) held;
	TAILQ_HEAD(, http_wait) waits;
};

static void http_wait_free(struct http_wait *w)
{
	TAILQ_REMOVE(&w->hs->waits, w, link);
	auth_wait_cancel(w->hs->b, w->auth);
	principal_fini(&w->p);
	free(w->arg);
	free(w);
}

static void send_text(struct evhttp_request *req, int code, const char *reason, const char *ctype,
                      const char *body, size_t len)
{
	struct evbuffer *out = evbuffer_new();
	evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", ctype);
	evbuffer_add(out, body, len);
	evhttp_send_reply(req, code, reason, out);
	evbuffer_free(out);
}

/* Errors are one line of text, as the issue of every bad input asks. */
static void send_error(struct evhttp_request *req, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void send_error(struct evhttp_request *req, int code, const char *fmt, ...)
{
	char line[600];
	va_list ap;
	int n;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if ((size_t)n > sizeof line - 2)
		n = sizeof line - 2;
	line[n++] = '\n';
	send_text(req, code, NULL, "text/plain; charset=utf-8", line, (size_t)n);
}

static void send_json(struct evhttp_request *req, int code, const struct sbuf *json)
{
	send_text(req, code, NULL, "application/json", json->buf ? json->buf : "{}", json->len ? json->len : 2);
}

static void conn_closed(struct evhttp_connection *hc, void *arg)
{
	struct http_server *hs = arg;
	struct held_reply *h, *next;
	struct http_wait *w, *wnext;
	u64map_del(&hs->conns, (uint64_t)(uintptr_t)hc);
	for (w = TAILQ_FIRST(&hs->waits); w; w = wnext) {
		wnext = TAILQ_NEXT(w, link);
		if (w->hc == hc)
			http_wait_free(w);
	}
	for (h = TAILQ_FIRST(&hs->held); h; h = next) {
		next = TAILQ_NEXT(h, link);
		if (h->hc == hc) {
			TAILQ_REMOVE(&hs->held, h, link);
			store_cancel(hs->b, &h->durable);
			free(h->json);
			free(h);
		}
	}
}

/* The journal has the message (or failed to write it): 201, or 503. */
static void reply_durable(struct completion *done, int err)
{
	struct held_reply *h = (struct held_reply *)((char *)done - offsetof(struct held_reply, durable));
	TAILQ_REMOVE(&h->hs->held, h, link);
	if (err) {
		send_error(h->req, 503, "message not stored: journal write failed: %s", strerror(err));
	} else {
		struct sbuf json = { h->json, strlen(h->json), strlen(h->json) + 1 };
		send_json(h->req, 201, &json);
	}
	free(h->json);
	free(h);
}

static void unauthorized(struct evhttp_request *req, const char *err)
{
	evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate", "Basic realm=\"mqbroker\"");
	send_error(req, 401, "%s", err);
}

/* The password of a request that waited was checked. */
static void identified(int rc, const char *err, void *arg)
{
	struct http_wait *w = arg;
	w->auth = NULL;
	if (rc < 0)
		unauthorized(w->req, err);
	else
		w->then(w->hs, w->req, &w->p, w->arg);
	http_wait_free(w);
}

/* Who sent the request: the peer address and, with HTTP Basic, a user
 * whose password is checked off the loop (core/auth.h). Then calls
 * then(arg) with the principal, at once or once the check is done; a
 * wrong password is answered 401 here. */
static void identify(struct http_server *hs, struct evhttp_request *req, identified_fn then, const char *arg)
{
	struct evhttp_connection *hc = evhttp_request_get_connection(req);
	const char *auth = evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	char *host = NULL, err[512];
	ev_uint16_t port = 0;
	struct http_wait *w = xcalloc(1, sizeof *w);
	struct principal *p = &w->p;
	int rc = 0;

	w->hs = hs;
	w->req = req;
	w->hc = hc;
	w->then = then;
	w->arg = xstrdup(arg ? arg : "");
	TAILQ_INSERT_TAIL(&hs->waits, w, link);
	evhttp_connection_get_peer(hc, &host, &port);
	snprintf(p->peer, sizeof p->peer, "%s:%u", host ? host : "?", port);
	if (host) {
		struct in_addr a4;
		struct in6_addr a6;
		if (inet_pton(AF_INET, host, &a4) == 1)
			p->loopback = (ntohl(a4.s_addr) >> 24) == 127;
		else if (inet_pton(AF_INET6, host, &a6) == 1)
			p->loopback = IN6_IS_ADDR_LOOPBACK(&a6);
	}
	p->vhost = hs->b->default_vhost;
	if (auth && strncasecmp(auth, "Basic ", 6) == 0) {
		unsigned char decoded[512];
		const char *b64 = auth + 6;
		size_t len = strlen(b64);
		int n;
		char *colon;
		if (len > 600 || (n = EVP_DecodeBlock(decoded, (const unsigned char *)b64, (int)len)) < 0) {
			unauthorized(req, "malformed Authorization header: expected Basic base64(login:passcode)");
			http_wait_free(w);
			return;
		}
		/* EVP_DecodeBlock counts the padding as data */
		while (n > 0 && len > 0 && b64[len - 1] == '=') {
			n--;
			len--;
		}
		decoded[n] = 0;
		colon = strchr((char *)decoded, ':');
		if (!colon) {
			unauthorized(req, "malformed Authorization header: no ':' between login and passcode");
			http_wait_free(w);
			return;
		}
		*colon = 0;
		rc = auth_check_user(hs->b, p, (char *)decoded, colon + 1, identified, w, &w->auth, err, sizeof err);
		OPENSSL_cleanse(decoded, sizeof decoded);
		if (rc == AUTH_PENDING)
			return;
	}
	if (rc < 0)
		unauthorized(req, err);
	else
		then(hs, req, p, w->arg);
	http_wait_free(w);
}

/* A POST's message headers: X-Mq-Foo: bar becomes foo:bar (and
 * Content-Type is kept), as 1.2-escaped lines for the message and as
 * decoded pairs for route(). */
struct post_headers {
	struct sbuf lines;
	struct frame_hdr *hdrs;		/* owned, with their strings */
	unsigned n;
};

static const char *post_header(const struct post_headers *ph, const char *name)
{
	for (unsigned i = 0; i < ph->n; i++)
		if (strcmp(ph->hdrs[i].name, name) == 0)
			return ph->hdrs[i].value;	/* the first wins, as in a frame */
	return NULL;
}

static void post_headers_fini(struct post_headers *ph)
{
	for (unsigned i = 0; i < ph->n; i++) {
		free(ph->hdrs[i].name);
		free(ph->hdrs[i].value);
	}
	free(ph->hdrs);
	sbuf_fini(&ph->lines);
}

static void collect_headers(struct evhttp_request *req, struct post_headers *ph)
{
	struct evkeyvalq *in = evhttp_request_get_input_headers(req);
	struct evkeyval *kv;
	sbuf_init(&ph->lines);
	ph->hdrs = NULL;
	ph->n = 0;
	for (kv = in->tqh_first; kv; kv = kv->next.tqe_next) {
		const char *name = NULL;
		char lower[256], esc[1024];
		size_t n;
		if (strncasecmp(kv->key, "X-Mq-", 5) == 0)
			name = kv->key + 5;
		else if (strcasecmp(kv->key, "Content-Type") == 0)
			name = kv->key;
		if (!name || !*name || strlen(name) >= sizeof lower || strlen(kv->value) > 400)
			continue;
		for (n = 0; name[n]; n++)
			lower[n] = (char)tolower((unsigned char)name[n]);
		lower[n] = 0;
		if (msg_is_control_header(lower, n))
			continue;
		ph->hdrs = xrealloc(ph->hdrs, (ph->n + 1) * sizeof *ph->hdrs);
		ph->hdrs[ph->n++] = (struct frame_hdr){ xstrdup(lower), xstrdup(kv->value), (uint32_t)n,
		                                        (uint32_t)strlen(kv->value) };
		n = frame_escape(esc, lower, strlen(lower), STOMP_1_2);
		sbuf_add(&ph->lines, esc, n);
		sbuf_addc(&ph->lines, ':');
		n = frame_escape(esc, kv->value, strlen(kv->value), STOMP_1_2);
		sbuf_add(&ph->lines, esc, n);
		sbuf_addc(&ph->lines, '\n');
	}
}


static int refusal_status(enum publish_refusal why)
{
	switch (why) {
	case REFUSED_BAD_REQUEST: return 400;
	case REFUSED_FORBIDDEN: return 403;
	case REFUSED_UNAVAILABLE: return 503;
	case REFUSED_INTERNAL: return 500;
	}
	return 500;
}

/* POST /URLPATH/<destination>, once the sender is known. */
static void publish_as(struct http_server *hs, struct evhttp_request *req, struct principal *p,
                       const char *dest_name)
{
	struct broker *b = hs->b;
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const void *body = len ? evbuffer_pullup(in, (ssize_t)len) : (const unsigned char *)"";
	struct post_headers ph;
	struct publish_result r;
	struct publication pub;
	struct draft d;
	struct sbuf json;
	struct jw w;

	if (config_dest_type(&b->cfg, dest_name, NULL) == DEST_COMMAND) {
		send_error(req, 403, "%s is a command destination: use POST /api/<command>", dest_name);
		return;
	}
	collect_headers(req, &ph);
	d = (struct draft){
		.dest = dest_name,
		.hdrs = ph.hdrs,
		.nhdrs = ph.n,
		.body = body,
		.body_len = len,
		.expires = post_header(&ph, "expires"),
		.ttl = post_header(&ph, "expiration"),
		.persistent = post_header(&ph, "persistent"),
	};
	if (!d.ttl)
		d.ttl = post_header(&ph, "x-message-ttl");
	/* No sink: an HTTP request owns no temporary queues. */
	if (publish_prepare(b, p, NULL, &d, &pub, &r) == PUBLISH_OK)
		publish_commit(b, &pub, &r);
	if (r.status == PUBLISH_REFUSED) {
		send_error(req, refusal_status(r.refusal), "%s", r.err);
		goto out;
	}
	sbuf_init(&json);
	jw_init(&w, &json);
	jw_obj_begin(&w);
	jw_kstr(&w, "destination", dest_name);
	if (r.msg_id) {
		char id[24];
		u64_to_dec(r.msg_id, id);
		jw_kstr(&w, "message_id", id);
	}
	jw_kstr(&w, "status", r.status == PUBLISH_DROPPED ? "dropped" : "accepted");
	if (r.rerouted && pub.m) {
		jw_key(&w, "routed_to");
		jw_arr_begin(&w);
		for (size_t i = 0; i < pub.ndests; i++)
			jw_str(&w, pub.dests[i]->name);
		jw_arr_end(&w);
	}
	jw_obj_end(&w);
	{
		/* 201 means stored: a persistent message waits for the journal. */
		struct held_reply *h = xcalloc(1, sizeof *h);
		h->hs = hs;
		h->req = req;
		h->hc = evhttp_request_get_connection(req);
		h->durable.done = reply_durable;
		h->json = sbuf_take(&json);
		if (store_when_durable(b, &h->durable, r.seq)) {
			TAILQ_INSERT_TAIL(&hs->held, h, link);
		} else {
			struct sbuf now = { h->json, strlen(h->json), strlen(h->json) + 1 };
			send_json(req, 201, &now);
			free(h->json);
			free(h);
		}
	}
	sbuf_fini(&json);
out:
	publication_fini(&pub);
	post_headers_fini(&ph);
}

static void publish_post(struct http_server *hs, struct evhttp_request *req, const char *dest_name)
{
	identify(hs, req, publish_as, dest_name);
}

/* The command an /api/ path names, or NULL after answering 404. */
static const struct cmd_info *api_command(struct evhttp_request *req, const char *rest, char *name, size_t namelen,
                                          size_t *n)
{
	const struct cmd_info *info;
	*n = strcspn(rest, "/");
	if (*n == 0 || *n >= namelen) {
		send_error(req, 404, "no such API: try GET /api/help");
		return NULL;
	}
	memcpy(name, rest, *n);
	name[*n] = 0;
	info = cmd_lookup(name);
	if (!info)
		send_error(req, 404, "unknown command '%s': try GET /api/help", name);
	return info;
}

/* /api/<command>, once the sender is known. */
static void api_as(struct http_server *hs, struct evhttp_request *req, struct principal *p, const char *rest)
{
	struct broker *b = hs->b;
	bool post = evhttp_request_get_command(req) == EVHTTP_REQ_POST;
	struct sbuf line, json;
	struct cmd_reply r;
	char name[64], err[512];
	size_t n;

	if (!api_command(req, rest, name, sizeof name, &n))
		return;
	if (!post && !p->loopback && !p->authenticated) {
		/* Listings and settings are not for anyone who can reach the
		 * port: reads from another machine need a user too. */
		char why[200];
		snprintf(why, sizeof why, "%s from %s: log in as a configured user (HTTP Basic)", name, p->peer);
		unauthorized(req, why);
		return;
	}
	if (post) {
		/* Writes over HTTP need credentials, even from loopback. */
		p->loopback = false;
		if (!p->authenticated) {
			char why[200];
			snprintf(why, sizeof why, "%s: admin credentials needed (HTTP Basic)", name);
			unauthorized(req, why);
			return;
		}
		if (!auth_allow(b, p, AUTHZ_ADMIN, NULL, err, sizeof err)) {
			send_error(req, 403, "%s", err);
			return;
		}
	}
	sbuf_init(&line);
	sbuf_adds(&line, name);
	for (const char *s = rest + n; *s == '/';) {
		size_t m = strcspn(s + 1, "/");
		char *word = m ? evhttp_uridecode(s + 1, 0, NULL) : NULL;
		if (word) {
			sbuf_addc(&line, ' ');
			cmdline_quote(&line, word);
			free(word);
		}
		s += 1 + m;
	}
	{
		const char *query = evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req));
		struct evkeyvalq params;
		struct evkeyval *kv;
		TAILQ_INIT(&params);
		if (query && evhttp_parse_query_str(query, &params) == 0) {
			for (kv = params.tqh_first; kv; kv = kv->next.tqe_next) {
				if (strcmp(kv->key, "arg") != 0)
					continue;
				sbuf_addc(&line, ' ');
				cmdline_quote(&line, kv->value);
			}
		}
		evhttp_clear_headers(&params);
	}
	if (post) {
		struct evbuffer *body = evhttp_request_get_input_buffer(req);
		size_t blen = evbuffer_get_length(body);
		if (blen) {
			sbuf_addc(&line, ' ');
			sbuf_add(&line, evbuffer_pullup(body, (ssize_t)blen), blen);
		}
	}
	cmd_reply_init(&r);
	{
		char who[300];
		struct cmd_ctx ctx = { b, post, who, p };
		snprintf(who, sizeof who, "HTTP %s login=%s", p->peer, p->login ? p->login : "-");
		cmd_exec_line(&ctx, line.buf, &r);
	}
	sbuf_fini(&line);
	sbuf_init(&json);
	cmd_reply_json(&r, &json);
	send_json(req, r.status, &json);
	sbuf_fini(&json);
	if (r.shutdown)
		broker_shutdown(b, "shutdown command over HTTP");
	cmd_reply_fini(&r);
}

/* Path segments after /api/ become the command's words; ?arg=... adds more. */
static void api(struct http_server *hs, struct evhttp_request *req, const char *rest)
{
	bool post = evhttp_request_get_command(req) == EVHTTP_REQ_POST;
	const struct cmd_info *info;
	char name[64];
	size_t n;

	if (!(info = api_command(req, rest, name, sizeof name, &n)))
		return;
	if (info->flags & CMD_STREAM) {
		send_error(req, 400, "%s streams: use the control socket or SUBSCRIBE /command/events", name);
		return;
	}
	if (!post && !(info->flags & CMD_READ)) {
		send_error(req, 405, "%s changes the broker: use POST /api/%s with admin credentials", name, name);
		return;
	}
	identify(hs, req, api_as, rest);
}

/* GET /health and /metrics. */
static void serve_probe(struct http_server *hs, struct evhttp_request *req, const char *path)
{
	struct broker *b = hs->b;
	if (strcmp(path, "/health") == 0) {
		char body[128];
		int n = snprintf(body, sizeof body, "{\"status\":\"ok\",\"uptime_s\":%" PRIu64 ",\"connections\":%d}",
		                 (mono_ms() - b->started_mono_ms) / 1000, b->nsinks);
		send_text(req, 200, "OK", "application/json", body, (size_t)n);
	} else {
		struct sbuf text;
		sbuf_init(&text);
		metrics_render(b, &text);
		send_text(req, 200, "OK", "text/plain; version=0.0.4", text.buf, text.len);
		sbuf_fini(&text);
	}
}

/* /health and /metrics when they are not public: loopback or a user. */
static void probe_as(struct http_server *hs, struct evhttp_request *req, struct principal *p, const char *path)
{
	char why[200];
	if (p->loopback || p->authenticated) {
		serve_probe(hs, req, path);
		return;
	}
	snprintf(why, sizeof why, "%s: log in as a configured user (HTTP Basic), or set http_public_metrics", path);
	unauthorized(req, why);
}

static void on_request(struct evhttp_request *req, void *arg)
{
	struct http_server *hs = arg;
	struct broker *b = hs->b;
	struct evhttp_connection *hc = evhttp_request_get_connection(req);
	const char *raw = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	char *path;
	size_t plen = strlen(hs->path);

	b->last_activity_ms = mono_ms();
	if (!u64map_get(&hs->conns, (uint64_t)(uintptr_t)hc)) {
		if ((int)hs->conns.count >= b->cfg.http_max_connections) {
			evhttp_add_header(evhttp_request_get_output_headers(req), "Connection", "close");
			send_error(req, 503, "too many HTTP connections: %zu open (limit %d)", hs->conns.count,
			           b->cfg.http_max_connections);
			return;
		}
		u64map_put(&hs->conns, (uint64_t)(uintptr_t)hc, hc);
		evhttp_connection_set_closecb(hc, conn_closed, hs);
	}
	if (!raw || !*raw)
		raw = "/";
	{
		size_t decoded_len = 0;
		path = evhttp_uridecode(raw, 0, &decoded_len);
		if (!path) {
			send_error(req, 400, "malformed URL path");
			return;
		}
		if (strlen(path) != decoded_len) {	/* %00 would cut the name short */
			free(path);
			send_error(req, 400, "malformed URL path: it contains %%00");
			return;
		}
	}
	if (b->shutting_down) {
		send_error(req, 503, "the broker is shutting down");
	} else if (method == EVHTTP_REQ_POST && plen &&
	           strncmp(path + 1, hs->path, plen) == 0 && (path[1 + plen] == 0 || path[1 + plen] == '/')) {
		const char *rest = path + 1 + plen;
		while (rest[0] == '/' && rest[1] == '/')
			rest++;	/* /mq//queue/x is /mq/queue/x */
		if (*rest == 0 || strcmp(rest, "/") == 0) {
			char dflt[600];
			snprintf(dflt, sizeof dflt, "/queue/%s", hs->path);
			publish_post(hs, req, dflt);
		} else {
			publish_post(hs, req, rest);
		}
	} else if (strncmp(path, "/api/", 5) == 0 && (method == EVHTTP_REQ_GET || method == EVHTTP_REQ_POST)) {
		/* raw, so that encoded slashes inside one argument survive */
		const char *r = strncmp(raw, "/api/", 5) == 0 ? raw + 5 : path + 5;
		api(hs, req, r);
	} else if ((strcmp(path, "/health") == 0 || strcmp(path, "/metrics") == 0) && method == EVHTTP_REQ_GET) {
		if (b->cfg.http_public_metrics)
			serve_probe(hs, req, path);
		else
			identify(hs, req, probe_as, path);
	} else if (method == EVHTTP_REQ_POST && plen) {
		send_error(req, 404, "no such path: POST messages to /%s/<destination>", hs->path);
	} else {
		send_error(req, 404, "no such path: try /health, /metrics, /api/help%s%s%s",
		           plen ? " or POST /" : "", plen ? hs->path : "", plen ? "/<destination>" : "");
	}
	free(path);
}

int http_open(struct broker *b, char *err, size_t errlen)
{
	struct http_server *hs;
	struct evhttp_bound_socket *sock;
	const char *addr = "0.0.0.0";
	const char *p;
	size_t len;

	if (!b->cfg.http_port && !b->cfg.http_any_port)
		return 0;
	for (size_t i = 0; i < b->cfg.nlisteners; i++) {
		if (!b->cfg.listeners[i].tls && b->cfg.listeners[i].address && *b->cfg.listeners[i].address) {
			addr = b->cfg.listeners[i].address;
			break;
		}
	}
	hs = xcalloc(1, sizeof *hs);
	hs->b = b;
	/* URLPATH without leading or trailing slashes */
	p = b->cfg.http_path ? b->cfg.http_path : "";
	while (*p == '/')
		p++;
	len = strlen(p);
	while (len && p[len - 1] == '/')
		len--;
	hs->path = xstrndup(p, len);
	TAILQ_INIT(&hs->held);
	TAILQ_INIT(&hs->waits);
	hs->http = evhttp_new(b->base);
	evhttp_set_max_body_size(hs->http, (ev_ssize_t)b->cfg.max_frame);
	evhttp_set_max_headers_size(hs->http, 64 * 1024);
	evhttp_set_timeout(hs->http, 30);
	evhttp_set_allowed_methods(hs->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD);
	evhttp_set_gencb(hs->http, on_request, hs);
	sock = evhttp_bind_socket_with_handle(hs->http, addr, (ev_uint16_t)b->cfg.http_port);
	if (!sock) {
		snprintf(err, errlen, "cannot listen for HTTP on %s:%d: %s", addr, b->cfg.http_port,
		         evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		evhttp_free(hs->http);
		free(hs->path);
		free(hs);
		return -1;
	}
	{
		struct sockaddr_storage ss;
		socklen_t sl = sizeof ss;
		b->http_port_bound = b->cfg.http_port;
		if (getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&ss, &sl) == 0)
			b->http_port_bound = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
			                                                     : ((struct sockaddr_in *)&ss)->sin_port);
	}
	b->http = hs;
	log_info("listening for HTTP on %s:%d (POST /%s/<destination>, /health, /metrics, /api)", addr,
	         b->http_port_bound, hs->path);
	return 0;
}

void http_free(struct broker *b)
{
	struct http_server *hs = b->http;
	if (!hs)
		return;
	/* evhttp_free closes the connections; their close callbacks must not
	 * touch our map afterwards. */
	{
		size_t it = 0;
		uint64_t key;
		void *v;
		while (u64map_next(&hs->conns, &it, &key, &v))
			evhttp_connection_set_closecb(v, NULL, NULL);
	}
	while (!TAILQ_EMPTY(&hs->waits))
		http_wait_free(TAILQ_FIRST(&hs->waits));
	evhttp_free(hs->http);
	while (!TAILQ_EMPTY(&hs->held)) {
		struct held_reply *h = TAILQ_FIRST(&hs->held);
		TAILQ_REMOVE(&hs->held, h, link);
		free(h->json);
		free(h);
	}
	u64map_fini(&hs->conns);
	free(hs->path);
	free(hs);
	b->http = NULL;
}

int http_accept_on(struct broker *b, int listen_fd)
{
	if (!b->http)
		return -1;
	return evhttp_accept_socket(b->http->http, listen_fd);
}
