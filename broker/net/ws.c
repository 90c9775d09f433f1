/* ws.c: STOMP over WebSocket connections. See ws.h. */
#include "net/ws.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/log.h"
#include "common/util.h"
#include "core/broker.h"
#include "net/lobby.h"
#include "net/readmore.h"
#include "net/ws_codec.h"
#include "net/ws_handshake.h"

/* Socket output above which the broker's STOMP output stays where
 * conn.c counts it (its max_output then pauses deliveries); reading
 * resumes at half. */
#define OUT_HIGH (256 * 1024)
/* STOMP input waiting for conn.c above which the socket is not read. */
#define IN_HIGH (256 * 1024)
/* How long a closing WebSocket may take to flush and hear the peer's
 * close frame. */
#define LINGER_MS 2000

enum ws_state {
	WS_HANDSHAKE,		/* reading the HTTP upgrade request */
	WS_REFUSING,		/* an HTTP refusal written; flushing, then closing */
	WS_OPEN,		/* relaying between the socket and conn.c */
	WS_CLOSING,		/* close frame sent (or the socket gone); flushing, then lingering */
};

static const char *const state_names[] = { "handshake", "refusing", "open", "closing" };

struct ws_conn {
	TAILQ_ENTRY(ws_conn) link;
	struct broker *b;
	enum ws_state state;
	bool tls;
	listener_accept_fn accept;	/* the protocol the STOMP stream goes to */
	struct bufferevent *sock;	/* owned: the TCP or TLS socket */
	struct bufferevent *stomp;	/* owned: our end of the pair; conn.c owns the other */
	struct ws_codec *codec;		/* owned; after the handshake */
	struct event *timer;		/* owned: handshake time-out, idle probe, linger */
	struct sockaddr_storage sa;
	socklen_t salen;
	char name[96];			/* "websocket 127.0.0.1:50122", for log lines */
	uint64_t last_in_ms;		/* anything received, for the idle time-out */
	bool ping_sent;
	bool in_paused;			/* not reading the socket: conn.c has enough */
	bool stomp_ended;		/* we told conn.c its stream ended */
	bool stomp_done;		/* conn.c ended its side: nothing more will come */
	bool sock_done;			/* EOF or error on the socket */
	bool shut;			/* SHUT_WR done */
};

static TAILQ_HEAD(, ws_conn) all = TAILQ_HEAD_INITIALIZER(all);
static int nhandshakes;

#define WS_FMT "%s"
#define WS_ARGS(w) (w)->name

static void sock_read_cb(struct bufferevent *bev, void *arg);
static void sock_write_cb(struct bufferevent *bev, void *arg);
static void sock_event_cb(struct bufferevent *bev, short what, void *arg);
static void stomp_read_cb(struct bufferevent *bev, void *arg);
static void stomp_write_cb(struct bufferevent *bev, void *arg);
static void stomp_event_cb(struct bufferevent *bev, short what, void *arg);
static void timer_cb(evutil_socket_t fd, short what, void *arg);

static void set_state(struct ws_conn *w, enum ws_state s)
{
	if (log_enabled(LOG_DEBUG))
		log_debug(WS_FMT ": %s -> %s", WS_ARGS(w), state_names[w->state], state_names[s]);
	w->state = s;
}

static void arm(struct ws_conn *w, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
	evtimer_add(w->timer, &tv);
}

static void describe_peer(struct ws_conn *w, const struct sockaddr *sa)
{
	char host[64] = "?";
	int port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		evutil_inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
		port = ntohs(in->sin_port);
		snprintf(w->name, sizeof w->name, "websocket %s:%d", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		evutil_inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
		port = ntohs(in6->sin6_port);
		snprintf(w->name, sizeof w->name, "websocket [%s]:%d", host, port);
	} else {
		snprintf(w->name, sizeof w->name, "websocket ?");
	}
}

/* Tells conn.c that its stream has ended, as a TCP EOF would; whatever
 * the peer sent before still reaches it first. */
static void end_stomp(struct ws_conn *w)
{
	if (w->stomp && !w->stomp_ended) {
		w->stomp_ended = true;
		bufferevent_flush(w->stomp, EV_WRITE, BEV_FINISHED);
	}
}

static void ws_free(struct ws_conn *w)
{
	if (w->state == WS_HANDSHAKE || w->state == WS_REFUSING)
		nhandshakes--;
	TAILQ_REMOVE(&all, w, link);
	end_stomp(w);
	if (w->stomp)
		bufferevent_free(w->stomp);
	ws_codec_free(w->codec);
	if (w->sock)
		bufferevent_free(w->sock);
	event_free(w->timer);
	free(w);
}

void ws_admit_handshakes(void)
{
	struct ws_conn *w;
	TAILQ_FOREACH(w, &all, link)
		if (w->state == WS_HANDSHAKE)
			lobby_leave(w->sock);
}

void ws_free_all(void)
{
	struct ws_conn *w;
	while ((w = TAILQ_FIRST(&all)))
		ws_free(w);
}

/* The output is flushed: half-close a plain socket (its FIN follows our
 * close frame or refusal) and wait for the peer to finish, reading and
 * discarding, so that unread data does not turn into a reset that
 * destroys what we sent. Returns true when w was freed. */
static bool flushed(struct ws_conn *w)
{
	evutil_socket_t fd = bufferevent_getfd(w->sock);
	if (!w->tls && !w->shut && fd >= 0) {
		w->shut = true;
		shutdown(fd, SHUT_WR);
	}
	if (w->sock_done || (w->codec && ws_codec_close_received(w->codec) && (w->stomp_done || !w->stomp))) {
		ws_free(w);
		return true;
	}
	bufferevent_enable(w->sock, EV_READ);
	return false;
}

/* Enters WS_CLOSING: conn.c hears the end of its stream, and once the
 * socket's output drains (the close frame included) we linger.
 * Returns true when w was freed. */
static bool start_closing(struct ws_conn *w)
{
	if (w->state == WS_CLOSING)
		return false;
	set_state(w, WS_CLOSING);
	end_stomp(w);
	bufferevent_setwatermark(w->sock, EV_WRITE, 0, 0);
	bufferevent_enable(w->sock, EV_WRITE);
	arm(w, LINGER_MS);
	return evbuffer_get_length(bufferevent_get_output(w->sock)) == 0 && flushed(w);
}

static void refuse(struct ws_conn *w, int status, const char *why)
{
	char buf[640];
	size_t n = ws_handshake_refusal(status, why, buf, sizeof buf);
	log_info(WS_FMT ": handshake refused (%d): %s", WS_ARGS(w), status, why);
	evbuffer_drain(bufferevent_get_input(w->sock), evbuffer_get_length(bufferevent_get_input(w->sock)));
	bufferevent_write(w->sock, buf, n);
	set_state(w, WS_REFUSING);
	bufferevent_setwatermark(w->sock, EV_WRITE, 0, 0);
	arm(w, LINGER_MS);
}

/* ---- from the socket to conn.c ---- */

/* Returns true when w was freed. */
static bool relay_in(struct ws_conn *w)
{
	struct evbuffer *in = bufferevent_get_input(w->sock);
	struct evbuffer *to_stomp = w->state == WS_OPEN && !w->stomp_ended ? bufferevent_get_output(w->stomp) : NULL;
	enum ws_read_status st;

	if (evbuffer_get_length(in) == 0)
		return false;
	w->last_in_ms = mono_ms();
	w->ping_sent = false;
	st = ws_codec_read(w->codec, in, to_stomp, IN_HIGH, bufferevent_get_output(w->sock));
	if (st == WS_READ_CLOSED) {
		if (w->state == WS_OPEN)
			log_info(WS_FMT ": closed by peer (close code %u)", WS_ARGS(w), ws_codec_peer_code(w->codec));
		evbuffer_drain(in, evbuffer_get_length(in));
		if (w->state == WS_CLOSING)	/* the answer to our close frame */
			return evbuffer_get_length(bufferevent_get_output(w->sock)) == 0 && flushed(w);
		return start_closing(w);
	}
	if (st == WS_READ_FAILED) {
		if (w->state == WS_OPEN)
			log_warn(WS_FMT ": closed: %s", WS_ARGS(w), ws_codec_error(w->codec));
		evbuffer_drain(in, evbuffer_get_length(in));
		return start_closing(w);
	}
	if (to_stomp && evbuffer_get_length(to_stomp) >= IN_HIGH) {
		/* conn.c is not keeping up (or paused reading): the rest
		 * waits, and TCP tells the peer to slow down. */
		w->in_paused = true;
		bufferevent_disable(w->sock, EV_READ);
	}
	return false;
}

/* ---- from conn.c to the socket ---- */

static void relay_out(struct ws_conn *w)
{
	struct evbuffer *from = bufferevent_get_input(w->stomp);
	struct evbuffer *out = bufferevent_get_output(w->sock);
	if (w->state != WS_OPEN) {
		/* Too late to send: the close frame is gone. */
		evbuffer_drain(from, evbuffer_get_length(from));
		return;
	}
	ws_codec_write(w->codec, from, out, OUT_HIGH, w->stomp_done);
	/* Over the mark the pair stops moving the broker's output here, so
	 * it piles up in conn.c's buffer, where max_output counts it. */
	if (!w->stomp_done && evbuffer_get_length(out) >= OUT_HIGH)
		bufferevent_disable(w->stomp, EV_READ);
}

static void stomp_read_cb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	relay_out(arg);
}

static void stomp_write_cb(struct bufferevent *bev, void *arg)
{
	struct ws_conn *w = arg;
	/* conn.c took what we had for it: read the socket again. */
	if (w->in_paused && evbuffer_get_length(bufferevent_get_output(bev)) <= IN_HIGH / 2) {
		w->in_paused = false;
		if (w->state == WS_OPEN || w->state == WS_CLOSING) {
			bufferevent_enable(w->sock, EV_READ);
			(void)relay_in(w);
		}
	}
}

static void stomp_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ws_conn *w = arg;
	(void)bev;
	if (!(what & BEV_EVENT_EOF))
		return;
	/* conn.c is done (after its ERROR, if it had one): send what it
	 * wrote, then the close frame. */
	w->stomp_done = true;
	w->stomp_ended = true;	/* nothing to tell a side that has gone */
	if (w->state == WS_OPEN) {
		relay_out(w);
		ws_codec_close(w->codec, 1000, "", bufferevent_get_output(w->sock));
		(void)start_closing(w);
	} else if (w->state == WS_CLOSING && evbuffer_get_length(bufferevent_get_output(w->sock)) == 0) {
		flushed(w);
	}
}

/* ---- the socket ---- */

static void open_stomp(struct ws_conn *w, const struct ws_hs_request *req)
{
	struct broker *b = w->b;
	struct bufferevent *pair[2];
	char resp[256];
	size_t n = ws_handshake_response(req, resp, sizeof resp);

	w->codec = ws_codec_new(b->cfg.ws_binary_frames);
	if (!w->codec || bufferevent_pair_new(b->base, BEV_OPT_DEFER_CALLBACKS, pair) < 0) {
		log_error(WS_FMT ": cannot set up the WebSocket: out of memory", WS_ARGS(w));
		refuse(w, 503, "cannot set up the WebSocket: out of memory");
		return;
	}
	evbuffer_drain(bufferevent_get_input(w->sock), req->length);
	bufferevent_write(w->sock, resp, n);
	nhandshakes--;
	set_state(w, WS_OPEN);
	lobby_leave(w->sock);
	w->stomp = pair[1];
	bufferevent_setcb(w->stomp, stomp_read_cb, stomp_write_cb, stomp_event_cb, w);
	bufferevent_enable(w->stomp, EV_READ | EV_WRITE);
	bufferevent_setwatermark(w->sock, EV_WRITE, OUT_HIGH / 2, 0);
	bufferevent_setcb(w->sock, sock_read_cb, sock_write_cb, sock_event_cb, w);
	w->last_in_ms = mono_ms();
	evtimer_del(w->timer);
	if (b->cfg.ws_idle_timeout_s)
		arm(w, (uint64_t)b->cfg.ws_idle_timeout_s * 1000 / 4);
	/* conn.c logs "accepted over ws" with the same peer address */
	w->accept(b, pair[0], (struct sockaddr *)&w->sa, w->salen, w->tls ? "wss" : "ws");
	log_info(WS_FMT ": WebSocket open: path %s, subprotocol %s%s%s", WS_ARGS(w), req->path,
	         req->protocol[0] ? req->protocol : "(none)", req->has_origin ? ", origin " : "",
	         req->has_origin ? req->origin : "");
	/* Frames a client sent without waiting for the 101 are already here. */
	(void)relay_in(w);
}

static void handshake_read(struct ws_conn *w)
{
	struct broker *b = w->b;
	struct evbuffer *in = bufferevent_get_input(w->sock);
	size_t max = (size_t)b->cfg.ws_max_handshake, len = evbuffer_get_length(in);
	struct ws_hs_request req;
	enum ws_hs_status st;

	st = ws_handshake_parse((const char *)evbuffer_pullup(in, (ev_ssize_t)(len < max ? len : max)),
	                        len < max ? len : max, max, &req);
	if (st == WS_HS_NEED_MORE)
		return;
	if (st == WS_HS_ERROR) {
		refuse(w, req.status, req.error);
		return;
	}
	if (!ws_origin_allowed(b->cfg.ws_origins, &req)) {
		char why[400];
		snprintf(why, sizeof why, "origin '%s' is not allowed (option ws_origins)",
		         req.origin_too_long ? "(too long)" : req.origin);
		refuse(w, 403, why);
		return;
	}
	open_stomp(w, &req);
}

static void sock_read_cb(struct bufferevent *bev, void *arg)
{
	struct ws_conn *w = arg;
	switch (w->state) {
	case WS_HANDSHAKE:
		handshake_read(w);
		return;
	case WS_REFUSING:
		evbuffer_drain(bufferevent_get_input(bev), evbuffer_get_length(bufferevent_get_input(bev)));
		return;
	case WS_OPEN:
	case WS_CLOSING:
		if (!w->tls && w->state == WS_OPEN)
			read_more(bev);	/* libevent's own reads stop at 4 KiB */
		(void)relay_in(w);
		return;
	}
}

static void sock_write_cb(struct bufferevent *bev, void *arg)
{
	struct ws_conn *w = arg;
	size_t len = evbuffer_get_length(bufferevent_get_output(bev));
	switch (w->state) {
	case WS_HANDSHAKE:
		return;
	case WS_REFUSING:
	case WS_CLOSING:
		if (len == 0)
			flushed(w);
		return;
	case WS_OPEN:
		/* Room again: encode what conn.c left with us, and let the
		 * pair move the rest of its output. */
		relay_out(w);
		if (evbuffer_get_length(bufferevent_get_output(bev)) < OUT_HIGH)
			bufferevent_enable(w->stomp, EV_READ);
		return;
	}
}

static void sock_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ws_conn *w = arg;
	(void)bev;
	if (what & BEV_EVENT_CONNECTED)
		return;
	if (!(what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)))
		return;
	w->sock_done = true;
	if (w->state == WS_OPEN) {
		if (what & BEV_EVENT_EOF)
			log_info(WS_FMT ": connection closed by peer without a close frame", WS_ARGS(w));
		else
			log_info(WS_FMT ": socket error: %s", WS_ARGS(w),
			         w->tls ? "TLS or socket failure" : evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	} else if (w->state == WS_HANDSHAKE) {
		log_debug(WS_FMT ": went away during the handshake", WS_ARGS(w));
	}
	/* Nothing more can be written or read: conn.c hears the end, and
	 * this side goes now (the pair's other end lives on with conn.c). */
	ws_free(w);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct ws_conn *w = arg;
	struct broker *b = w->b;
	uint64_t now = mono_ms(), idle_ms = (uint64_t)b->cfg.ws_idle_timeout_s * 1000;
	(void)fd;
	(void)what;
	switch (w->state) {
	case WS_HANDSHAKE: {
		char why[128];
		snprintf(why, sizeof why, "no complete WebSocket handshake within %d seconds (option ws_handshake_timeout)",
		         b->cfg.ws_handshake_timeout_s);
		refuse(w, 408, why);
		return;
	}
	case WS_REFUSING:
	case WS_CLOSING:
		ws_free(w);	/* the peer had its time to read and answer */
		return;
	case WS_OPEN:
		break;
	}
	if (!idle_ms)
		return;
	if (now - w->last_in_ms >= idle_ms) {
		char why[100];
		snprintf(why, sizeof why, "idle: nothing received for %llu s (option ws_idle_timeout)",
		         (unsigned long long)(now - w->last_in_ms) / 1000);
		log_info(WS_FMT ": closed: %s", WS_ARGS(w), why);
		ws_codec_close(w->codec, 1001, why, bufferevent_get_output(w->sock));
		(void)start_closing(w);
		return;
	}
	/* Half the time gone: a ping makes any live client answer. */
	if (!w->ping_sent && now - w->last_in_ms >= idle_ms / 2) {
		w->ping_sent = true;
		ws_codec_ping(w->codec, bufferevent_get_output(w->sock));
	}
	arm(w, MAX(idle_ms / 4, 10));
}

void ws_accept(struct broker *b, struct bufferevent *bev, const struct sockaddr *sa, socklen_t salen, bool tls,
               listener_accept_fn accept)
{
	struct ws_conn *w;

	/* Handshakes in progress are not connections yet; bound them too. */
	if (nhandshakes >= b->cfg.max_connections || b->shutting_down) {
		log_warn("websocket: refused a connection: %s", b->shutting_down ? "shutting down"
		         : "too many WebSocket handshakes in progress (limit: max_connections)");
		bufferevent_free(bev);
		return;
	}
	w = xcalloc(1, sizeof *w);
	w->b = b;
	w->tls = tls;
	w->accept = accept;
	w->sock = bev;
	memcpy(&w->sa, sa, (size_t)salen < sizeof w->sa ? (size_t)salen : sizeof w->sa);
	w->salen = salen;
	describe_peer(w, sa);
	w->timer = evtimer_new(b->base, timer_cb, w);
	TAILQ_INSERT_TAIL(&all, w, link);
	nhandshakes++;
	lobby_enter(b, bev, nhandshakes);
	bufferevent_setcb(bev, sock_read_cb, sock_write_cb, sock_event_cb, w);
	bufferevent_set_max_single_read(bev, 256 * 1024);
	bufferevent_set_max_single_write(bev, 256 * 1024);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	arm(w, (uint64_t)b->cfg.ws_handshake_timeout_s * 1000);
	log_debug(WS_FMT ": accepted%s", WS_ARGS(w), tls ? " over TLS" : "");
}
