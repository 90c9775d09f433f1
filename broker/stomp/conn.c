/* conn.c: one STOMP connection on a bufferevent. See conn.h. */
#include "stomp/conn.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/json.h"
#include "common/util.h"
#include "core/broker.h"
#include "core/dest.h"
#include "core/sub.h"
#include "net/lobby.h"
#include "net/readmore.h"
#include "net/sockprobe.h"
#include "stomp/handlers.h"
#include "stomp/stomp.h"
#include "stomp/txn.h"

/* Frames handled per read callback before yielding to other connections. */
#define FRAMES_PER_TURN 512
/* ... and at most this long (checked every 16 frames): a connection
 * whose frames are costly (SENDs into a transaction, through Lua
 * routing) yields before the others wait a millisecond for it. */
#define READ_SLICE_US 200
/* How long a closing connection may take to read its ERROR. */
#define CLOSE_GRACE_MS 2000
/* Unread bytes the kernel holds for a paused connection past which its
 * peer is taken to be blocked by us, not silent. */
#define PAUSED_PEER_BLOCKED (64 * 1024)
/* Operations of discarded transactions freed a loop turn (txn_reap). */
#define TXN_REAP_PER_TURN 128

struct pending_receipt {
	TAILQ_ENTRY(pending_receipt) link;
	struct completion durable;	/* while the journal has not synced what it covers */
	struct conn *c;
	bool ready;			/* may go out once every earlier one has */
	int err;			/* the journal failed: an ERROR instead */
	char id[];
};

static const struct sink_ops conn_sink_ops;

static const char *state_names[] = { "handshake", "open", "closing", "closed" };

const char *conn_state_name(enum conn_state s)
{
	return (unsigned)s < ARRAY_LEN(state_names) ? state_names[s] : "?";
}

/* The core reads `full` on every dispatch: keep it true whenever no
 * delivery may be written. */
static void update_full(struct conn *c)
{
	c->sink.full = c->state != CONN_OPEN || c->out_blocked;
}

static void set_out_blocked(struct conn *c, bool on)
{
	if (c->out_blocked == on)
		return;
	c->out_blocked = on;
	c->b->conns->nout_blocked += on ? 1 : -1;
	update_full(c);
}

static void set_state(struct conn *c, enum conn_state s)
{
	if (log_enabled(LOG_DEBUG))
		log_debug(CONN_FMT ": %s -> %s", CONN_ARGS(c), conn_state_name(c->state), conn_state_name(s));
	c->state = s;
	update_full(c);
}

/* ---- the connections of a broker ---- */

static void reap_cb(evutil_socket_t fd, short what, void *arg);
static void free_conn(struct conn *c);

void conns_init(struct broker *b)
{
	struct conns *cs = xcalloc(1, sizeof *cs);
	cs->b = b;
	TAILQ_INIT(&cs->live);
	TAILQ_INIT(&cs->graveyard);
	cs->reap_ev = event_new(b->base, -1, 0, reap_cb, cs);
	frame_init(&cs->frame);
	b->conns = cs;
}

int conns_count(const struct broker *b)
{
	return b->conns ? b->conns->nlive : 0;
}

void conns_check_done(struct broker *b)
{
	if (b->conns)
		event_active(b->conns->reap_ev, EV_TIMEOUT, 0);
	else if (b->shutting_down)
		event_base_loopexit(b->base, NULL);
}

static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conns *cs = arg;
	struct conn *c;
	(void)fd;
	(void)what;
	while ((c = TAILQ_FIRST(&cs->graveyard))) {
		TAILQ_REMOVE(&cs->graveyard, c, link);
		free_conn(c);
	}
	if (txn_reap(cs, TXN_REAP_PER_TURN))
		event_active(cs->reap_ev, 0, 0);
	if (cs->b->shutting_down && TAILQ_EMPTY(&cs->live))
		event_base_loopexit(cs->b->base, NULL);
}

void conns_free(struct broker *b)
{
	struct conns *cs = b->conns;
	struct conn *c;
	if (!cs)
		return;
	/* Whatever is still connected goes away now. */
	while ((c = TAILQ_FIRST(&cs->live))) {
		conn_close_quiet(c, "broker stopped");
		if (c->state != CONN_CLOSED) {
			TAILQ_REMOVE(&cs->live, c, link);
			TAILQ_INSERT_TAIL(&cs->graveyard, c, link);
			c->state = CONN_CLOSED;
		}
	}
	while ((c = TAILQ_FIRST(&cs->graveyard))) {
		TAILQ_REMOVE(&cs->graveyard, c, link);
		free_conn(c);
	}
	txn_reap(cs, SIZE_MAX);
	if (cs->reap_ev)
		event_free(cs->reap_ev);
	frame_fini(&cs->frame);
	{
		size_t it = 0;
		void *v;
		while (strmap_next(&cs->handshakes, &it, NULL, &v))
			free(v);
	}
	strmap_fini(&cs->handshakes);
	free(cs);
	b->conns = NULL;
}

/* ---- one connection ---- */

static void to_graveyard(struct conn *c)
{
	struct conns *cs = c->b->conns;
	if (c->state == CONN_CLOSED)
		return;
	set_state(c, CONN_CLOSED);
	TAILQ_REMOVE(&cs->live, c, link);
	TAILQ_INSERT_TAIL(&cs->graveyard, c, link);
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	/* WebSocket (net/ws.c): a bufferevent pair, no socket of ours. Ending
	 * our side tells the far end to send what we wrote (the ERROR), then
	 * its close frame, and to close the socket its own way. */
	if (bufferevent_getfd(c->bev) < 0)
		bufferevent_flush(c->bev, EV_WRITE, BEV_FINISHED);
	event_active(cs->reap_ev, EV_TIMEOUT, 0);
}

/* After the output drained: half-close and keep discarding what the peer
 * still sends, so that the kernel does not answer unread data with a reset
 * that would destroy the ERROR frame before the peer reads it. */
static void start_linger(struct conn *c)
{
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	if (fd >= 0 && strcmp(c->sink.transport, "tcp") == 0 && shutdown(fd, SHUT_WR) == 0) {
		bufferevent_enable(c->bev, EV_READ);
		return;
	}
	to_graveyard(c);
}

static void read_cb(struct bufferevent *bev, void *arg);
static void more_cb(evutil_socket_t fd, short what, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);
static void timer_cb(evutil_socket_t fd, short what, void *arg);

static void arm_timer(struct conn *c, uint64_t ms)
{
	struct timeval tv = { (time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000) };
	if (!c->hb_timer)
		c->hb_timer = evtimer_new(c->b->base, timer_cb, c);
	evtimer_add(c->hb_timer, &tv);
}

/* The peer's host, without the port: what the per-address cap counts. */
static void host_of(const struct conn *c, char *buf, size_t len)
{
	const char *peer = c->sink.who.peer, *colon = strrchr(peer, ':');
	size_t n = colon ? (size_t)(colon - peer) : strlen(peer);
	snprintf(buf, len, "%.*s", (int)MIN(n, len - 1), peer);
}

/* Connections from one host still before CONNECT; the map's key is
 * the host inside it. */
struct host_count {
	size_t n;
	char host[];
};

static size_t handshakes_from(struct conns *cs, const char *host)
{
	struct host_count *hc = strmap_get(&cs->handshakes, host);
	return hc ? hc->n : 0;
}

static void count_handshake(struct conn *c, int delta)
{
	struct conns *cs = c->b->conns;
	char host[80];
	struct host_count *hc;
	host_of(c, host, sizeof host);
	if (!(hc = strmap_get(&cs->handshakes, host))) {
		hc = xcalloc(1, sizeof *hc + strlen(host) + 1);
		strcpy(hc->host, host);
		strmap_put(&cs->handshakes, hc->host, hc);
	}
	hc->n += (size_t)delta;
	cs->nhandshakes += delta;
	if (!hc->n) {
		strmap_del(&cs->handshakes, hc->host);
		free(hc);
	}
	c->counted_handshake = delta > 0;
}

/* The connection that has waited longest for its CONNECT (from `host`
 * only, when given), other than `not`. */
static struct conn *oldest_handshake(struct conns *cs, const char *host, const struct conn *not)
{
	struct conn *c;
	char h[80];
	TAILQ_FOREACH(c, &cs->live, link) {
		if (c == not || c->state != CONN_HANDSHAKE)
			continue;
		if (host) {
			host_of(c, h, sizeof h);
			if (strcmp(h, host) != 0)
				continue;
		}
		return c;
	}
	return NULL;
}

struct conn *conn_new(struct broker *b, struct bufferevent *bev,
                      const struct sockaddr *sa, socklen_t salen, const char *transport)
{
	struct conns *cs = b->conns;
	struct conn *c = xcalloc(1, sizeof *c);
	(void)salen;
	c->b = b;
	c->bev = bev;
	c->version = STOMP_1_0;
	c->last_read_ms = c->last_write_ms = mono_ms();
	sink_attach(&c->sink, b, &conn_sink_ops, transport);
	c->sink.who.vhost = b->default_vhost;
	principal_set_peer(&c->sink.who, sa);
	TAILQ_INIT(&c->receipts);
	TAILQ_INSERT_TAIL(&cs->live, c, link);
	cs->nlive++;
	set_state(c, CONN_HANDSHAKE);
	b->stats.connections_total++;
	b->last_activity_ms = mono_ms();

	bufferevent_setcb(bev, read_cb, write_cb, event_cb, c);
	/* libevent 2.1 writes 16 KiB at a time unless told otherwise. Its
	 * reads stop at 4 KiB whatever this says: read_cb takes the rest
	 * (read_more) when the socket is a plain one. */
	bufferevent_set_max_single_read(bev, READ_INPUT_MAX);
	bufferevent_set_max_single_write(bev, 256 * 1024);
	c->plain_socket = strcmp(transport, "tcp") == 0;

	count_handshake(c, +1);
	if (cs->nlive > b->cfg.max_connections && !b->shutting_down) {
		/* Sockets that never send CONNECT must not lock real clients
		 * out: one that has waited longest gives way, from this
		 * address when it holds more than its share of them. */
		char host[80];
		struct conn *old = NULL;
		host_of(c, host, sizeof host);
		if (handshakes_from(cs, host) > (size_t)b->cfg.max_handshakes_per_address)
			old = oldest_handshake(cs, host, c);
		if (!old)
			old = oldest_handshake(cs, NULL, c);
		if (old) {
			b->stats.connections_refused++;
			conn_close(old, NULL, "too many connections (limit %d, option -n): this one had not sent CONNECT "
			           "and gives way to a newer one", b->cfg.max_connections);
		}
	}
	if (cs->nlive > b->cfg.max_connections || b->shutting_down) {
		b->stats.connections_refused++;
		log_warn(CONN_FMT ": refused: %s", CONN_ARGS(c),
		         b->shutting_down ? "shutting down" : "too many connections");
		if (b->shutting_down)
			conn_close(c, NULL, "the broker is shutting down");
		else
			conn_close(c, NULL, "too many connections: %d open (limit %d, option -n)",
			           cs->nlive - 1, b->cfg.max_connections);
		return c;
	}
	lobby_enter(b, bev, cs->nhandshakes);
	log_info(CONN_FMT ": accepted over %s", CONN_ARGS(c), transport);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	arm_timer(c, (uint64_t)b->cfg.handshake_timeout_ms);
	return c;
}

void conn_opened(struct conn *c)
{
	if (c->counted_handshake)
		count_handshake(c, -1);
	set_state(c, CONN_OPEN);
	lobby_leave(c->bev);
}

void conns_admit_handshakes(struct broker *b)
{
	struct conn *c;
	TAILQ_FOREACH(c, &b->conns->live, link)
		if (c->state == CONN_HANDSHAKE)
			lobby_leave(c->bev);
}

/* Receipts still waiting when the connection goes: nobody will read them. */
static void drop_receipts(struct conn *c)
{
	struct pending_receipt *r;
	while ((r = TAILQ_FIRST(&c->receipts))) {
		TAILQ_REMOVE(&c->receipts, r, link);
		store_cancel(c->b, &r->durable);
		free(r);
	}
}

static bool receipts_pending(const struct conn *c)
{
	return !TAILQ_EMPTY(&c->receipts);
}

static void close_common(struct conn *c, const char *reason, bool keep_receipts)
{
	struct broker *b = c->b;
	bool was_open = c->state == CONN_OPEN;
	snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
	if (c->counted_handshake)
		count_handshake(c, -1);
	set_state(c, CONN_CLOSING);
	stomp_connect_abandon(c);
	b->conns->nlive--;	/* a closing connection no longer counts against -n */
	/* Abandon every transaction, subscription and temporary queue. */
	txn_abort_all(c);
	sink_detach(&c->sink);
	if (!keep_receipts)
		drop_receipts(c);
	if (was_open) {
		const char *fields[] = { "id", NULL, "peer", c->sink.who.peer, "login",
		                         c->sink.who.login ? c->sink.who.login : "", "reason", reason, NULL };
		char id[24];
		u64_to_dec(c->sink.id, id);
		fields[1] = id;
		broker_event(b, "client-disconnected", fields);
	}
	log_info(CONN_FMT ": closing: %s", CONN_ARGS(c), reason);
	bufferevent_disable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0 && !receipts_pending(c)) {
		start_linger(c);
	} else {
		bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
		bufferevent_enable(c->bev, EV_WRITE);
	}
	arm_timer(c, CLOSE_GRACE_MS);
}

void conn_close(struct conn *c, const char *receipt_id, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	if (c->state >= CONN_CLOSING)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	stomp_write_error(c, receipt_id, msg, NULL);
	close_common(c, msg, false);
}

void conn_close_quiet(struct conn *c, const char *reason)
{
	if (c->state >= CONN_CLOSING) {
		if (c->state == CONN_CLOSING)
			to_graveyard(c);	/* the peer went away while we lingered */
		return;
	}
	/* A DISCONNECT still gets the receipts it is owed, the journal's
	 * included (bounded by the close grace); a peer that is gone, none. */
	close_common(c, reason, strcmp(reason, "client sent DISCONNECT") == 0);
}

static void free_conn(struct conn *c)
{
	if (c->out_blocked)
		c->b->conns->nout_blocked--;
	stomp_connect_abandon(c);
	drop_receipts(c);
	if (c->hb_timer)
		event_free(c->hb_timer);
	if (c->more_ev)
		event_free(c->more_ev);
	bufferevent_free(c->bev);
	strmap_fini(&c->txns);
	stomp_browse_free_all(c);
	sink_fini(&c->sink);
	free(c);
}

struct evbuffer *conn_output(struct conn *c)
{
	return bufferevent_get_output(c->bev);
}

void conn_wrote(struct conn *c)
{
	size_t len = evbuffer_get_length(bufferevent_get_output(c->bev));
	c->last_write_ms = c->last_read_ms;	/* coarse: the loop's current turn */
	if (len > c->b->cfg.max_output_hard && !c->sink.doomed) {
		char why[200];
		/* From the loop: a delivery may be writing this very frame. */
		snprintf(why, sizeof why, "too much output waiting: %zu bytes unread by the client (limit %llu, option "
		         "max_output_hard)", len, (unsigned long long)c->b->cfg.max_output_hard);
		sink_close_later(&c->sink, why);
	}
	if (!c->out_blocked && len >= c->b->cfg.max_output) {
		struct sock_probe p;
		set_out_blocked(c, true);
		c->out_moved_ms = c->sink.moved_ms = mono_ms();
		c->quiet_told = false;
		c->out_len_seen = len;
		if (sock_probe(bufferevent_getfd(c->bev), &p))
			c->acked_seen = p.acked;
		/* Wake up when half of it has gone out. */
		bufferevent_setwatermark(c->bev, EV_WRITE, c->b->cfg.max_output / 2, 0);
		log_info(CONN_FMT ": slow consumer: %zu bytes waiting (max_output %llu), deliveries paused",
		         CONN_ARGS(c), len, (unsigned long long)c->b->cfg.max_output);
		{
			char id[24], bytes[24];
			const char *fields[] = { "id", id, "peer", c->sink.who.peer, "pending_bytes", bytes, NULL };
			u64_to_dec(c->sink.id, id);
			u64_to_dec(len, bytes);
			broker_event(c->b, "slow-consumer", fields);
		}
	}
}

/* The configuration option behind a codec limit, so that the ERROR tells
 * the operator what to raise. */
static const char *limit_option(const char *err)
{
	if (strncmp(err, "frame too large", 15) == 0)
		return "max_frame";
	if (strstr(err, "line too long"))
		return "max_header_line";
	if (strncmp(err, "too many headers", 16) == 0)
		return "max_headers";
	return NULL;
}

/* Deliveries may flow again: dispatch every queue this connection consumes. */
static void kick(struct conn *c)
{
	size_t it = 0;
	void *v;
	if (c->browses.count)
		stomp_browse_pump(c);
	/* queue_dispatch never frees subscriptions, so iterating is safe. */
	while (c->state == CONN_OPEN && strmap_next(&c->sink.subs, &it, NULL, &v)) {
		struct sub *s = v;
		if (s->dest->type == DEST_QUEUE)
			queue_dispatch(s->dest);
	}
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct broker *b = c->b;
	struct conns *cs = b->conns;
	struct evbuffer *in = bufferevent_get_input(bev);
	char err[512];
	int budget = FRAMES_PER_TURN;
	uint64_t started_us = mono_us();
	size_t before;

	/* Reading on past libevent's 4 KiB is for when the broker keeps up
	 * with its consumers. While some consumer's output is over
	 * max_output, a producer read at the old pace waits for them instead
	 * of filling queues faster than they drain. */
	if (c->plain_socket && c->state != CONN_CLOSING && !c->read_paused && cs->nout_blocked == 0)
		read_more(bev);
	before = evbuffer_get_length(in);

	c->last_read_ms = mono_ms();
	b->last_activity_ms = c->last_read_ms;
	if (c->state == CONN_CLOSING) {
		evbuffer_drain(in, before);	/* lingering: discard */
		return;
	}
	{
		/* A client that sends but never reads would make us hold its
		 * receipts and replies forever: cut it off at the hard limit. */
		size_t pending = evbuffer_get_length(bufferevent_get_output(bev));
		if (pending > b->cfg.max_output_hard) {
			log_warn(CONN_FMT ": closed: %zu bytes waiting to be written (max_output_hard %llu)",
			         CONN_ARGS(c), pending, (unsigned long long)b->cfg.max_output_hard);
			conn_close(c, NULL, "too much output waiting: %zu bytes unread by the client (limit %llu)",
			           pending, (unsigned long long)b->cfg.max_output_hard);
		}
	}
	while ((c->state == CONN_HANDSHAKE || c->state == CONN_OPEN) && !c->read_paused && !c->connect_wait) {
		enum frame_status st;
		if (budget-- == 0 || ((budget & 15) == 0 && mono_us() - started_us >= READ_SLICE_US)) {
			/* Come back after the others had their turn: a timer
			 * that is already due runs after the next poll, so every
			 * socket that became readable meanwhile goes first.
			 * (libevent runs a deferred callback in the same turn.) */
			static const struct timeval now_tv = { 0, 0 };
			if (!c->more_ev)
				c->more_ev = evtimer_new(b->base, more_cb, c);
			evtimer_add(c->more_ev, &now_tv);
			break;
		}
		st = frame_parse(in, &c->scan, &cs->frame, &b->limits,
		                 c->state == CONN_OPEN ? c->version : STOMP_1_0, err, sizeof err);
		if (st == FRAME_NEED_MORE)
			break;
		if (st == FRAME_ERROR) {
			const char *opt = limit_option(err);
			if (opt)
				conn_close(c, NULL, "%s (option %s)", err, opt);
			else
				conn_close(c, NULL, "%s", err);
			break;
		}
		c->frames_in++;
		b->stats.frames_in++;
		c->frame_started_ms = 0;
		stomp_handle(c, &cs->frame);
		frame_consume(in, &c->scan, &cs->frame);
	}
	if (c->state == CONN_CLOSING)
		evbuffer_drain(in, evbuffer_get_length(in));
	else if (evbuffer_get_length(in) == 0 || c->read_paused || c->connect_wait)
		c->frame_started_ms = 0;	/* nothing half-arrived, or the wait is ours */
	else if (!c->frame_started_ms)
		c->frame_started_ms = c->last_read_ms;
	{
		size_t after = evbuffer_get_length(in);
		size_t n = before > after ? before - after : 0;
		c->bytes_in += n;
		b->stats.bytes_in += n;
	}
}

static void more_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	(void)fd;
	(void)what;
	read_cb(c->bev, c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	size_t len = evbuffer_get_length(bufferevent_get_output(bev));
	if (c->state == CONN_CLOSING) {
		if (len == 0 && !receipts_pending(c))
			start_linger(c);
		return;
	}
	if (c->out_blocked && len <= c->b->cfg.max_output / 2) {
		set_out_blocked(c, false);
		c->sink.stalled = false;
		bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
		sink_room_freed(c->b);
		kick(c);
	}
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;
	char reason[160];
	(void)bev;
	if (what & BEV_EVENT_EOF)
		snprintf(reason, sizeof reason, "connection closed by peer");
	else if (what & BEV_EVENT_ERROR)
		snprintf(reason, sizeof reason, "socket error: %s",
		         evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
	else
		return;
	if (c->state == CONN_CLOSING)
		to_graveyard(c);
	else
		conn_close_quiet(c, reason);
	if (c->state == CONN_CLOSING)
		to_graveyard(c);	/* nothing more can be written to a dead socket */
}

/* A connection we are not reading (backpressure, the memory
 * high-watermark): its peer may have left, or still be sending (its
 * heart-beats sit unread in the kernel). False when it was closed. */
static bool probe_paused(struct conn *c, uint64_t now)
{
	struct sock_probe p;
	if (!sock_probe(bufferevent_getfd(c->bev), &p))
		return true;
	if (p.peer_closed) {
		conn_close_quiet(c, "connection closed by peer (seen while not reading it)");
		return false;
	}
	if (p.received != c->received_seen) {
		c->received_seen = p.received;
		c->last_read_ms = now;
	} else if (p.unread >= PAUSED_PEER_BLOCKED) {
		/* Nothing came, and so much waits that its sends are blocked
		 * by us: a live peer, or one that died with data still queued,
		 * whose FIN waits behind that data for as long as we do not
		 * read. A heart-beat tells them apart: a live peer takes it,
		 * a dead one's kernel answers it with a reset, which the next
		 * look sees. */
		c->last_read_ms = now;
		if (c->version >= STOMP_1_1 && evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
			evbuffer_add(bufferevent_get_output(c->bev), "\n", 1);
			c->last_write_ms = now;
		}
	}
	return true;
}

/* A consumer over max_output: has it taken anything lately? */
static void check_output(struct conn *c, uint64_t now)
{
	struct sock_probe p;
	bool moved;
	if (sock_probe(bufferevent_getfd(c->bev), &p)) {
		moved = p.acked != c->acked_seen;
		c->acked_seen = p.acked;
	} else {
		size_t len = evbuffer_get_length(bufferevent_get_output(c->bev));
		moved = len < c->out_len_seen;
		c->out_len_seen = len;
	}
	if (moved) {
		c->out_moved_ms = c->sink.moved_ms = now;
		c->sink.stalled = false;
		c->quiet_told = false;
		return;
	}
	if (!c->quiet_told && now - c->out_moved_ms >= QUEUE_MOVING_MS) {
		/* Queues stop waiting for a consumer that has not moved for a
		 * second (queue_wants_slowdown): their producers go on. (A
		 * topic's producer resumed with them is paused again by its
		 * next message while this consumer is still full.) */
		c->quiet_told = true;
		sink_room_freed(c->b);
	}
	if (!c->sink.stalled && now - c->out_moved_ms >= (uint64_t)c->b->cfg.slow_consumer_timeout_ms) {
		char id[24], ms[24];
		const char *fields[] = { "id", id, "peer", c->sink.who.peer, "stalled_ms", ms, NULL };
		c->sink.stalled = true;
		log_warn(CONN_FMT ": slow consumer: took nothing for %llu ms with %zu bytes waiting; topics no longer "
		         "wait for it", CONN_ARGS(c), (unsigned long long)(now - c->out_moved_ms),
		         evbuffer_get_length(bufferevent_get_output(c->bev)));
		u64_to_dec(c->sink.id, id);
		u64_to_dec(now - c->out_moved_ms, ms);
		broker_event(c->b, "slow-consumer-stalled", fields);
		sink_room_freed(c->b);
	}
}

void conns_tick(struct broker *b)
{
	struct conns *cs = b->conns;
	struct conn *c, *next;
	uint64_t now = mono_ms();
	if (!cs)
		return;
	for (c = TAILQ_FIRST(&cs->live); c; c = next) {
		next = TAILQ_NEXT(c, link);
		if (c->state != CONN_OPEN && c->state != CONN_HANDSHAKE)
			continue;
		if (c->frame_started_ms && now - c->frame_started_ms > (uint64_t)b->cfg.frame_timeout_ms) {
			conn_close(c, NULL, "frame not complete after %llu ms (option frame_timeout)",
			           (unsigned long long)(now - c->frame_started_ms));
			continue;
		}
		if (c->read_paused && !probe_paused(c, now))
			continue;
		if (c->out_blocked)
			check_output(c, now);
	}
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint64_t now = mono_ms();
	(void)fd;
	(void)what;
	switch (c->state) {
	case CONN_HANDSHAKE:
		if (c->connect_wait) {
			/* CONNECT came: the wait for its answer is ours, bounded
			 * by the verifier's queue and the slowdown's ceiling. */
			arm_timer(c, 1000);
			return;
		}
		conn_close(c, NULL, "no CONNECT frame within %d ms (option handshake_timeout)",
		           c->b->cfg.handshake_timeout_ms);
		return;
	case CONN_CLOSING:
		to_graveyard(c);
		return;
	case CONN_CLOSED:
		return;
	case CONN_OPEN:
		break;
	}
	if (c->read_paused && !probe_paused(c, now))
		return;
	if (c->hb_recv_ms) {
		uint64_t allowed = (uint64_t)c->hb_recv_ms * (100 + (uint64_t)c->b->cfg.heartbeat_grace_pct) / 100;
		if (now - c->last_read_ms > allowed) {
			c->b->stats.heartbeat_timeouts++;
			conn_close(c, NULL, "heart-beat timeout: nothing received for %llu ms (agreed interval %u ms)",
			           (unsigned long long)(now - c->last_read_ms), c->hb_recv_ms);
			return;
		}
	}
	if (c->hb_send_ms && now - c->last_write_ms >= c->hb_send_ms / 2) {
		struct evbuffer *out = bufferevent_get_output(c->bev);
		if (evbuffer_get_length(out) == 0) {
			evbuffer_add(out, "\n", 1);
			c->last_write_ms = now;
		}
	}
	{
		uint32_t tick = 0;
		if (c->hb_send_ms)
			tick = c->hb_send_ms / 2;
		if (c->hb_recv_ms && (!tick || c->hb_recv_ms / 2 < tick))
			tick = c->hb_recv_ms / 2;
		if (tick)
			arm_timer(c, MAX(tick, 10u));
	}
}

void conn_set_heartbeat(struct conn *c, uint32_t send_ms, uint32_t recv_ms)
{
	c->hb_send_ms = send_ms;
	c->hb_recv_ms = recv_ms;
	if (c->hb_timer)
		evtimer_del(c->hb_timer);
	if (send_ms || recv_ms) {
		uint32_t tick = send_ms ? send_ms / 2 : recv_ms / 2;
		if (recv_ms && recv_ms / 2 < tick)
			tick = recv_ms / 2;
		arm_timer(c, MAX(tick, 10u));
	}
}

void conn_pause_reading(struct conn *c, bool pause)
{
	if (c->state != CONN_OPEN || c->read_paused == pause)
		return;
	c->read_paused = pause;
	if (pause) {
		bufferevent_disable(c->bev, EV_READ);
	} else {
		/* Its silence was ours: do not count it against heart-beats. */
		c->last_read_ms = mono_ms();
		bufferevent_enable(c->bev, EV_READ);
		/* Frames that arrived while paused are already buffered. */
		if (evbuffer_get_length(bufferevent_get_input(c->bev)))
			bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
	}
}

/* ---- receipts ---- */

/* Writes every receipt at the head of the line that may go. */
static void flush_receipts(struct conn *c)
{
	struct pending_receipt *r;
	while ((r = TAILQ_FIRST(&c->receipts)) && r->ready) {
		TAILQ_REMOVE(&c->receipts, r, link);
		if (r->err)
			conn_close(c, r->id, "message not stored: journal write failed: %s", strerror(r->err));
		else if (c->state == CONN_OPEN || c->state == CONN_CLOSING)
			stomp_write_receipt(c, r->id);
		free(r);
	}
	if (c->state == CONN_CLOSING && !receipts_pending(c) &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		start_linger(c);
}

static void receipt_durable(struct completion *done, int err)
{
	struct pending_receipt *r = (struct pending_receipt *)((char *)done - offsetof(struct pending_receipt, durable));
	r->ready = true;
	r->err = err;
	flush_receipts(r->c);
}

void conn_receipt(struct conn *c, const char *receipt_id, uint64_t durable_seq)
{
	struct pending_receipt *r;
	if (!receipt_id)
		return;
	if (TAILQ_EMPTY(&c->receipts) && (!durable_seq || durable_seq <= store_durable_seq(c->b))) {
		stomp_write_receipt(c, receipt_id);
		return;
	}
	/* Keep receipts in frame order: a later one waits behind an earlier
	 * one that is still waiting for the journal. */
	r = xcalloc(1, sizeof *r + strlen(receipt_id) + 1);
	r->c = c;
	strcpy(r->id, receipt_id);
	r->durable.done = receipt_durable;
	r->ready = !store_when_durable(c->b, &r->durable, durable_seq);
	TAILQ_INSERT_TAIL(&c->receipts, r, link);
	if (r->ready && TAILQ_FIRST(&c->receipts) == r)
		flush_receipts(c);
}

/* ---- the sink the core sees ---- */

static void sink_deliver(struct sink *k, struct sub *s, struct msg *m, uint32_t deliveries)
{
	stomp_write_message(conn_of(k), s, m, deliveries);
}

static void sink_close(struct sink *k, const char *reason)
{
	conn_close(conn_of(k), NULL, "%s", reason);
}

static void sink_resume(struct sink *k)
{
	conn_pause_reading(conn_of(k), false);
}

static const struct conn *const_conn_of(const struct sink *k)
{
	return (const struct conn *)((const char *)k - offsetof(struct conn, sink));
}

static const char *sink_version(const struct sink *k)
{
	const struct conn *c = const_conn_of(k);
	return c->state == CONN_HANDSHAKE ? "" : c->version == STOMP_1_2 ? "1.2" : c->version == STOMP_1_1 ? "1.1" : "1.0";
}

static const char *sink_state(const struct sink *k)
{
	return conn_state_name(const_conn_of(k)->state);
}

static void sink_describe(const struct sink *k, struct jw *w)
{
	const struct conn *c = const_conn_of(k);
	jw_kuint(w, "frames_in", c->frames_in);
	jw_kuint(w, "frames_out", c->frames_out);
	jw_kuint(w, "bytes_in", c->bytes_in);
	jw_kuint(w, "bytes_out", c->bytes_out);
	jw_kuint(w, "heartbeat_send_ms", c->hb_send_ms);
	jw_kuint(w, "heartbeat_recv_ms", c->hb_recv_ms);
	jw_kbool(w, "slow", c->out_blocked);
}

static const struct sink_ops conn_sink_ops = {
	.deliver = sink_deliver,
	.close = sink_close,
	.resume = sink_resume,
	.version = sink_version,
	.state = sink_state,
	.describe = sink_describe,
};
