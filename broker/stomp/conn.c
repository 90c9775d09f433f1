/* conn.c: one client connection on a bufferevent. */
#include "stomp/conn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/broker.h"
#include "core/dest.h"
#include "core/msg.h"
#include "stomp/stomp.h"
#include "core/store.h"
#include "core/sub.h"
#include "stomp/txn.h"
#include "common/util.h"

/* Frames handled per read callback before yielding to other connections. */
#define FRAMES_PER_TURN 512
/* How long a closing connection may take to read its ERROR. */
#define CLOSE_GRACE_MS 2000
/* How long a new connection may take to send CONNECT. */
#define HANDSHAKE_TIMEOUT_MS 30000

struct pending_receipt {
	TAILQ_ENTRY(pending_receipt) link;
	uint64_t seq;			/* journal sequence to wait for; 0 = none */
	char id[];
};

static const char *state_names[] = { "handshake", "open", "closing", "closed" };

const char *conn_state_name(enum conn_state s)
{
	return (unsigned)s < ARRAY_LEN(state_names) ? state_names[s] : "?";
}

static void set_state(struct conn *c, enum conn_state s)
{
	if (log_enabled(LOG_DEBUG))
		log_debug(CONN_FMT ": %s -> %s", CONN_ARGS(c), conn_state_name(c->state), conn_state_name(s));
	c->state = s;
}

static void describe_peer(struct conn *c, const struct sockaddr *sa)
{
	char host[INET6_ADDRSTRLEN] = "?";
	int port = 0;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
		port = ntohs(in->sin_port);
		c->loopback = (ntohl(in->sin_addr.s_addr) >> 24) == 127;
		snprintf(c->peer, sizeof c->peer, "%s:%d", host, port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
		inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
		port = ntohs(in6->sin6_port);
		c->loopback = IN6_IS_ADDR_LOOPBACK(&in6->sin6_addr) ||
		              (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr) && in6->sin6_addr.s6_addr[12] == 127);
		snprintf(c->peer, sizeof c->peer, "[%s]:%d", host, port);
	} else if (sa->sa_family == AF_UNIX) {
		snprintf(c->peer, sizeof c->peer, "unix");
		c->loopback = true;
	}
}

static void to_graveyard(struct conn *c)
{
	struct broker *b = c->b;
	if (c->state == CONN_CLOSED)
		return;
	set_state(c, CONN_CLOSED);
	TAILQ_REMOVE(&b->conns, c, link);
	TAILQ_INSERT_TAIL(&b->graveyard, c, link);
	u64map_del(&b->conns_by_id, c->id);
	bufferevent_disable(c->bev, EV_READ | EV_WRITE);
	event_active(b->reap_ev, EV_TIMEOUT, 0);
}

/* After the output drained: half-close and keep discarding what the peer
 * still sends, so that the kernel does not answer unread data with a reset
 * that would destroy the ERROR frame before the peer reads it. */
static void start_linger(struct conn *c)
{
	evutil_socket_t fd = bufferevent_getfd(c->bev);
	if (fd >= 0 && strcmp(c->transport, "tcp") == 0 && shutdown(fd, SHUT_WR) == 0) {
		bufferevent_enable(c->bev, EV_READ);
		return;
	}
	to_graveyard(c);
}

static void read_cb(struct bufferevent *bev, void *arg);
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

struct conn *conn_new(struct broker *b, struct bufferevent *bev,
                      const struct sockaddr *sa, socklen_t salen, const char *transport)
{
	struct conn *c = xcalloc(1, sizeof *c);
	(void)salen;
	c->b = b;
	c->id = ++b->next_conn_id;
	c->bev = bev;
	c->transport = transport;
	c->version = STOMP_1_0;
	c->vhost = b->default_vhost;
	c->connected_ms = wall_ms();
	c->last_read_ms = c->last_write_ms = mono_ms();
	describe_peer(c, sa);
	TAILQ_INIT(&c->receipts);
	TAILQ_INSERT_TAIL(&b->conns, c, link);
	u64map_put(&b->conns_by_id, c->id, c);
	b->nconns++;
	b->stats.connections_total++;
	b->last_activity_ms = mono_ms();

	bufferevent_setcb(bev, read_cb, write_cb, event_cb, c);
	/* libevent 2.1 reads 4 KiB at a time unless told otherwise: far too
	 * little for a producer pushing hundreds of thousands of frames/s. */
	bufferevent_set_max_single_read(bev, 256 * 1024);
	bufferevent_set_max_single_write(bev, 256 * 1024);

	if (b->nconns > b->cfg.max_connections || b->shutting_down) {
		b->stats.connections_refused++;
		log_warn(CONN_FMT ": refused: %s", CONN_ARGS(c),
		         b->shutting_down ? "shutting down" : "too many connections");
		if (b->shutting_down)
			conn_close(c, NULL, "the broker is shutting down");
		else
			conn_close(c, NULL, "too many connections: %d open (limit %d, option -n)",
			           b->nconns - 1, b->cfg.max_connections);
		return c;
	}
	log_info(CONN_FMT ": accepted over %s", CONN_ARGS(c), transport);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	arm_timer(c, HANDSHAKE_TIMEOUT_MS);
	return c;
}

/* Abandon every transaction, subscription and temporary queue. */
static void release_state(struct conn *c)
{
	size_t it = 0;
	void *v;
	struct sub **subs;
	size_t n, i;

	txn_abort_all(c);
	/* sub_free edits c->subs, so collect first. */
	n = c->subs.count;
	subs = xcalloc(n ? n : 1, sizeof *subs);
	for (i = 0; strmap_next(&c->subs, &it, NULL, &v);)
		subs[i++] = v;
	for (i = 0; i < n; i++)
		sub_free(subs[i]);
	free(subs);
	stomp_release_temp_queues(c);
}

static void close_common(struct conn *c, const char *reason)
{
	struct broker *b = c->b;
	bool was_open = c->state == CONN_OPEN;
	snprintf(c->close_reason, sizeof c->close_reason, "%s", reason);
	set_state(c, CONN_CLOSING);
	release_state(c);
	b->nconns--;
	if (was_open) {
		const char *fields[] = { "id", NULL, "peer", c->peer, "login", c->login ? c->login : "",
		                         "reason", reason, NULL };
		char id[24];
		u64_to_dec(c->id, id);
		fields[1] = id;
		broker_event(b, "client-disconnected", fields);
	}
	log_info(CONN_FMT ": closing: %s", CONN_ARGS(c), reason);
	bufferevent_disable(c->bev, EV_READ);
	if (evbuffer_get_length(bufferevent_get_output(c->bev)) == 0) {
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
	close_common(c, msg);
}

void conn_close_quiet(struct conn *c, const char *reason)
{
	if (c->state >= CONN_CLOSING) {
		if (c->state == CONN_CLOSING)
			to_graveyard(c);	/* the peer went away while we lingered */
		return;
	}
	close_common(c, reason);
	/* The peer is gone or said goodbye: what we still had for it is
	 * written if the socket takes it; nothing waits for acknowledgement. */
}

void conn_free(struct conn *c)
{
	struct pending_receipt *r;
	if (!c)
		return;
	while ((r = TAILQ_FIRST(&c->receipts))) {
		TAILQ_REMOVE(&c->receipts, r, link);
		free(r);
	}
	if (c->hb_timer)
		event_free(c->hb_timer);
	bufferevent_free(c->bev);
	strmap_fini(&c->subs);
	u64map_fini(&c->unacked);
	strmap_fini(&c->txns);
	strmap_fini(&c->temp_queues);
	free(c->login);
	free(c->client_id);
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
	if (!c->out_blocked && len >= c->b->cfg.max_output) {
		c->out_blocked = true;
		/* Wake up when half of it has gone out. */
		bufferevent_setwatermark(c->bev, EV_WRITE, c->b->cfg.max_output / 2, 0);
		log_info(CONN_FMT ": slow consumer: %zu bytes waiting (max_output %llu), deliveries paused",
		         CONN_ARGS(c), len, (unsigned long long)c->b->cfg.max_output);
		{
			char id[24], bytes[24];
			const char *fields[] = { "id", id, "peer", c->peer, "pending_bytes", bytes, NULL };
			u64_to_dec(c->id, id);
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

void conn_kick(struct conn *c)
{
	size_t it = 0;
	void *v;
	/* queue_dispatch never frees subscriptions, so iterating is safe. */
	while (c->state == CONN_OPEN && strmap_next(&c->subs, &it, NULL, &v)) {
		struct sub *s = v;
		if (s->dest->type == DEST_QUEUE)
			queue_dispatch(s->dest);
	}
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	struct broker *b = c->b;
	struct evbuffer *in = bufferevent_get_input(bev);
	char err[512];
	int budget = FRAMES_PER_TURN;
	size_t before = evbuffer_get_length(in);

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
	while ((c->state == CONN_HANDSHAKE || c->state == CONN_OPEN) && !c->read_paused) {
		enum frame_status st;
		if (budget-- == 0) {
			/* Come back after the others had their turn. */
			bufferevent_trigger(bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
			break;
		}
		st = frame_parse(in, &c->scan, &b->frame, &b->limits,
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
		stomp_handle(c, &b->frame);
		frame_consume(in, &c->scan, &b->frame);
	}
	if (c->state == CONN_CLOSING)
		evbuffer_drain(in, evbuffer_get_length(in));
	{
		size_t after = evbuffer_get_length(in);
		size_t n = before > after ? before - after : 0;
		c->bytes_in += n;
		b->stats.bytes_in += n;
	}
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;
	size_t len = evbuffer_get_length(bufferevent_get_output(bev));
	if (c->state == CONN_CLOSING) {
		if (len == 0)
			start_linger(c);
		return;
	}
	if (c->out_blocked && len <= c->b->cfg.max_output / 2) {
		c->out_blocked = false;
		bufferevent_setwatermark(bev, EV_WRITE, 0, 0);
		conn_kick(c);
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

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint64_t now = mono_ms();
	(void)fd;
	(void)what;
	switch (c->state) {
	case CONN_HANDSHAKE:
		conn_close(c, NULL, "no CONNECT frame within %d seconds", HANDSHAKE_TIMEOUT_MS / 1000);
		return;
	case CONN_CLOSING:
		to_graveyard(c);
		return;
	case CONN_CLOSED:
		return;
	case CONN_OPEN:
		break;
	}
	if (c->hb_recv_ms && !c->read_paused) {
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

void conn_receipt(struct conn *c, const char *receipt_id, uint64_t durable_seq)
{
	struct pending_receipt *r;
	if (!receipt_id)
		return;
	if (durable_seq <= store_durable_seq(c->b) && TAILQ_EMPTY(&c->receipts)) {
		stomp_write_receipt(c, receipt_id);
		return;
	}
	/* Keep receipts in frame order: a later one waits behind an earlier
	 * one that is still waiting for the journal. */
	r = xmalloc(sizeof *r + strlen(receipt_id) + 1);
	r->seq = durable_seq;
	strcpy(r->id, receipt_id);
	TAILQ_INSERT_TAIL(&c->receipts, r, link);
}

void conn_journal_progress(struct conn *c, uint64_t seq, uint64_t first_failed, int err)
{
	struct pending_receipt *r;
	while ((r = TAILQ_FIRST(&c->receipts)) && r->seq <= seq) {
		TAILQ_REMOVE(&c->receipts, r, link);
		if (err && r->seq >= first_failed) {
			conn_close(c, r->id, "message not stored: journal write failed: %s", strerror(err));
			free(r);
			continue;
		}
		if (c->state == CONN_OPEN)
			stomp_write_receipt(c, r->id);
		free(r);
	}
}

/* ---- the delivery index: message id -> pending deliveries ---- */

void conn_track_delivery(struct conn *c, struct delivery *d)
{
	struct delivery *head = u64map_get(&c->unacked, d->m->id);
	if (!head) {
		u64map_put(&c->unacked, d->m->id, d);
		return;
	}
	/* The same message on two subscriptions of one connection (two
	 * subscriptions to one topic): chain them, oldest first. */
	while (head->same_id)
		head = head->same_id;
	head->same_id = d;
}

void conn_untrack_delivery(struct conn *c, struct delivery *d)
{
	struct delivery *head = u64map_get(&c->unacked, d->m->id), *p;
	if (head == d) {
		if (d->same_id)
			u64map_put(&c->unacked, d->m->id, d->same_id);
		else
			u64map_del(&c->unacked, d->m->id);
		return;
	}
	for (p = head; p && p->same_id != d; p = p->same_id)
		;
	if (p)
		p->same_id = d->same_id;
}

struct delivery *conn_find_delivery(struct conn *c, const char *id, const char *sub_id)
{
	uint64_t mid;
	struct delivery *d;
	if (!parse_u64(id, 0, UINT64_MAX, &mid))
		return NULL;
	for (d = u64map_get(&c->unacked, mid); d; d = d->same_id)
		if (!sub_id || strcmp(d->sub->id, sub_id) == 0)
			return d;
	return NULL;
}
