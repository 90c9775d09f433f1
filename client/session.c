/* session.c: one connection to a broker: the host list, connect, CONNECT,
 * the read loop and its handlers, receipts, heart-beats, the one close
 * path, and what follows a lost connection (back-off, reconnection, the
 * restore of queues and posts), and host health. */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/util.h>

#include <openssl/ssl.h>

#include "client_int.h"
#include "common/log.h"
#include "common/util.h"

#define DEFAULT_HOST "127.0.0.1"
#define DEFAULT_PORT 61613
#define DEFAULT_TLS_PORT 61614
#define DEFAULT_TIMEOUT_MS 10000
#define DEFAULT_OUT_HIGH (4u << 20)
#define DEFAULT_OUT_LOW (256u << 10)
#define DEFAULT_RECONNECT_MIN_MS 100
#define DEFAULT_RECONNECT_MAX_MS 10000
/* libevent 2.1 reads 4096 bytes at a time unless told otherwise; at high
 * message rates that is one callback per few dozen messages. */
#define MAX_SINGLE_IO (256u << 10)

static unsigned session_serial;

static void close_conn(struct mq_session *s, bool requested, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ---- small helpers ---- */

void client_set_err(struct mq_session *s, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(s->err, sizeof s->err, fmt, ap);
	va_end(ap);
}

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

static const char *version_text(enum stomp_version v)
{
	switch (v) {
	case STOMP_1_0: return "1.0";
	case STOMP_1_1: return "1.1";
	case STOMP_1_2: return "1.2";
	}
	return "?";
}

const char *mq_session_state_name(enum mq_session_state st)
{
	switch (st) {
	case MQ_SESSION_IDLE: return "idle";
	case MQ_SESSION_CONNECTING: return "connecting";
	case MQ_SESSION_LOGIN: return "login";
	case MQ_SESSION_CONNECTED: return "connected";
	case MQ_SESSION_CLOSING: return "closing";
	case MQ_SESSION_RECONNECTING: return "reconnecting";
	}
	return "?";
}

static void set_state(struct mq_session *s, enum mq_session_state st)
{
	if (log_enabled(LOG_DEBUG))
		log_debug("session %u %s: %s -> %s", s->serial, s->addr,
		          mq_session_state_name(s->state), mq_session_state_name(st));
	s->state = st;
}

static void emit(struct mq_session *s, const struct mq_event *ev)
{
	if (s->on_event && !s->free_requested)
		s->on_event(s, ev, s->arg);
}

void client_emit(struct mq_session *s, const struct mq_event *ev) { emit(s, ev); }

static void emit_simple(struct mq_session *s, enum mq_event_type type, const char *text)
{
	struct mq_event ev = { .type = type, .text = text };
	emit(s, &ev);
}

void client_emit_queue(struct mq_session *s, enum mq_event_type type, struct mq_queue *q, const char *text)
{
	struct mq_event ev = { .type = type, .text = text, .queue = q };
	emit(s, &ev);
}

bool client_reconnecting(const struct mq_session *s)
{
	return s->lost && s->repost == MQ_REPOST_RESEND &&
	       (s->state == MQ_SESSION_RECONNECTING || s->state == MQ_SESSION_CONNECTING ||
	        s->state == MQ_SESSION_LOGIN);
}

struct evbuffer *client_out(struct mq_session *s) { return bufferevent_get_output(s->bev); }

void client_check_high_water(struct mq_session *s)
{
	if (!s->out_above_high && evbuffer_get_length(bufferevent_get_output(s->bev)) > s->out_high)
		s->out_above_high = true;
}

/* ---- reentrancy ---- */

static void destroy(struct mq_session *s);

void client_enter(struct mq_session *s) { s->busy++; }

/* Frees what was closed while callbacks could still be using it. */
static void sweep(struct mq_session *s)
{
	for (size_t i = 0; i < s->ndead_bevs; i++)
		bufferevent_free(s->dead_bevs[i]);
	free(s->dead_bevs);
	s->dead_bevs = NULL;
	s->ndead_bevs = 0;
	while (s->dead_queues) {
		struct mq_queue *q = s->dead_queues;
		s->dead_queues = q->next;
		client_messages_detach_queue(s, q);
		client_queue_free(q);
	}
}

bool client_leave(struct mq_session *s)
{
	if (--s->busy > 0)
		return false;
	sweep(s);
	if (s->free_requested && s->running == 0) {
		destroy(s);
		return true;
	}
	return false;
}

/* ---- receipts ---- */

struct pending *client_pending_new(struct mq_session *s, enum pend_kind kind)
{
	struct pending *p = s->free_pend;
	if (p)
		s->free_pend = p->next_free;
	else
		p = xmalloc(sizeof *p);
	memset(p, 0, sizeof *p);
	p->id = ++s->next_receipt;
	p->kind = kind;
	u64map_put(&s->pending, p->id, p);
	if (kind == PEND_POST)
		s->stats.acks_pending++;
	return p;
}

static void pending_recycle(struct mq_session *s, struct pending *p)
{
	p->next_free = s->free_pend;
	s->free_pend = p;
}

static void restored_check(struct mq_session *s)
{
	if (s->state == MQ_SESSION_CONNECTED && s->restoring == 0 && !s->lost) {
		/* Only a connection that took its queues back counts as good:
		 * one that a broker closes right after CONNECTED keeps the
		 * back-off growing. */
		s->attempts = 0;
		log_info("session %u %s: state restored", s->serial, s->addr);
		emit_simple(s, MQ_EVENT_STATE_RESTORED, "state restored: queues reopened, posts sent again");
	}
}

static void health_restored_check(struct mq_session *s)
{
	if (s->healthy && s->resuming == 0)
		emit_simple(s, MQ_EVENT_HOST_HEALTH_RESTORED, "host health restored");
}

/* Settles one receipt, already out of the map: the callback or event it
 * carries runs here. Events are reported only for receipts answered on
 * a live connection; a close reports its own. */
void client_settle(struct mq_session *s, struct pending *p, enum mq_ack_status st,
                   enum mq_ack_reason reason, const char *text)
{
	struct mq_ack ack = { .status = st, .text = text ? text : "", .receipt = p->id,
	                      .reason = st == MQ_ACK_OK ? MQ_ACK_NONE : reason };
	struct pending copy = *p;
	struct mq_queue *q = p->q;
	bool live = s->state == MQ_SESSION_CONNECTED || s->state == MQ_SESSION_CLOSING;

	/* Recycled before the callback, which may post and reuse it. */
	pending_recycle(s, p);
	switch (copy.kind) {
	case PEND_POST:
		s->stats.acks_pending--;
		if (st == MQ_ACK_OK)
			s->stats.acked++;
		else
			s->stats.ack_failed++;
		client_post_copy_free(copy.copy);
		if (q && q->acks_pending)
			q->acks_pending--;
		if (copy.cb)
			copy.cb(s, &ack, copy.arg);
		if (q && q->closing)
			client_close_check(q);
		break;
	case PEND_TX:
		if (copy.cb)
			copy.cb(s, &ack, copy.arg);
		break;
	case PEND_SUBSCRIBE:
		if (!q)
			break;
		if (st != MQ_ACK_OK && reason == MQ_ACK_REFUSED) {
			q->refused = true;
			q->subscribed = false;
		}
		if (copy.why == WHY_OPEN || copy.why == WHY_REOPEN)
			if (q->on_ready || q->waiter)
				client_queue_done(q, st, ack.text);
		if (copy.why == WHY_REOPEN && s->restoring) {
			s->restoring--;
			if (live && !q->dead) {
				char t[600];
				snprintf(t, sizeof t, "%s %s%s%s", st == MQ_ACK_OK ? "reopened" : "cannot reopen",
				         q->dest, st == MQ_ACK_OK ? "" : ": ", ack.text);
				client_emit_queue(s, st == MQ_ACK_OK ? MQ_EVENT_QUEUE_REOPENED : MQ_EVENT_QUEUE_REOPEN_FAILED,
				                  q, t);
			}
			if (live)
				restored_check(s);
		} else if (copy.why == WHY_RESUME && s->resuming) {
			s->resuming--;
			if (live && !q->dead) {
				char t[600];
				snprintf(t, sizeof t, "%s %s%s%s", st == MQ_ACK_OK ? "resumed" : "cannot resume",
				         q->dest, st == MQ_ACK_OK ? "" : ": ", ack.text);
				client_emit_queue(s, st == MQ_ACK_OK ? MQ_EVENT_QUEUE_RESUMED : MQ_EVENT_QUEUE_RESUME_FAILED,
				                  q, t);
			}
			if (live)
				health_restored_check(s);
		}
		break;
	case PEND_UNSUBSCRIBE:
		if (!q)
			break;
		if (q->unsub_wait)
			q->unsub_wait--;
		if (copy.why == WHY_PAUSE && (q->on_ready || q->waiter)) {
			client_queue_done(q, st, ack.text);
		} else if (copy.why == WHY_SUSPEND && live && !q->dead) {
			char t[600];
			snprintf(t, sizeof t, "suspended %s (host unhealthy)", q->dest);
			client_emit_queue(s, MQ_EVENT_QUEUE_SUSPENDED, q, t);
		} else if (copy.why == WHY_CLOSE) {
			if (q->close_wait)
				q->close_wait--;
			client_close_check(q);
		}
		break;
	case PEND_DISCONNECT:
		if (st == MQ_ACK_OK)
			close_conn(s, true, "closed by mq_session_stop");
		break;
	}
}

static void settle(struct mq_session *s, struct pending *p, enum mq_ack_status st, const char *text)
{
	client_settle(s, p, st, MQ_ACK_REFUSED, text);
}

void client_pending_cancel_queue(struct mq_session *s, struct mq_queue *q)
{
	size_t it = 0;
	uint64_t key;
	void *v;
	while (u64map_next(&s->pending, &it, &key, &v)) {
		struct pending *p = v;
		if (key != 0 && p->q == q)
			p->q = NULL;
	}
}

/* Forgets a receipt whose waiter gave up (a *_sync timeout). */
void client_pending_drop(struct mq_session *s, uint64_t id)
{
	struct pending *p = u64map_del(&s->pending, id);
	if (!p)
		return;
	if (p->kind == PEND_POST) {
		s->stats.acks_pending--;
		s->stats.ack_failed++;
	}
	pending_recycle(s, p);
}

static int cmp_pending(const void *a, const void *b)
{
	const struct pending *x = *(struct pending *const *)a, *y = *(struct pending *const *)b;
	return x->id < y->id ? -1 : x->id > y->id;
}

/* The receipts awaited now, in the order they were asked for; NULL when
 * there are none. */
static struct pending **pending_list(struct mq_session *s, size_t *n)
{
	struct pending **list;
	size_t it = 0;
	uint64_t key;
	void *v;

	*n = 0;
	if (s->pending.count <= 1)
		return NULL;	/* the anchor only */
	list = xmalloc(s->pending.count * sizeof *list);
	while (u64map_next(&s->pending, &it, &key, &v))
		if (key != 0)
			list[(*n)++] = v;
	qsort(list, *n, sizeof *list, cmp_pending);
	return list;
}

static enum mq_ack_reason lost_reason(const struct pending *p)
{
	return p->kind == PEND_POST && !p->sent ? MQ_ACK_CANCELED : MQ_ACK_CONNECTION;
}

/* Every receipt still awaited fails, in the order they were asked for. */
static void fail_all_pending(struct mq_session *s, const char *text)
{
	size_t n;
	struct pending **list = pending_list(s, &n);

	/* Out of the map before any callback runs: they may add receipts. */
	for (size_t i = 0; i < n; i++)
		u64map_del(&s->pending, list[i]->id);
	for (size_t i = 0; i < n; i++)
		client_settle(s, list[i], MQ_ACK_FAILED, lost_reason(list[i]), text);
	free(list);
}

/* The connection is lost and another will be made: receipts that the new
 * connection cannot answer are settled or dropped here; posts kept for
 * sending again stay in the map with their ids. */
static void settle_on_loss(struct mq_session *s, const char *text)
{
	size_t n;
	struct pending **list = pending_list(s, &n);
	size_t keep = 0;

	for (size_t i = 0; i < n; i++) {
		struct pending *p = list[i];
		if (p->kind == PEND_POST && p->copy && !(p->q && p->q->closing))
			continue;	/* sent again after the reconnection */
		u64map_del(&s->pending, p->id);
		list[keep++] = p;
	}
	for (size_t i = 0; i < keep; i++) {
		struct pending *p = list[i];
		struct mq_queue *q = p->q;
		enum pend_why why = p->why;	/* p is recycled before callbacks run */
		if (s->state != MQ_SESSION_RECONNECTING) {
			/* A callback stopped or freed the session: what is left
			 * is out of the map, so it is settled here, silently
			 * but for the callbacks every post and transaction is
			 * owed. */
			if (p->kind == PEND_POST || p->kind == PEND_TX)
				client_settle(s, p, MQ_ACK_FAILED, lost_reason(p), text);
			else
				pending_recycle(s, p);
			continue;
		}
		switch (p->kind) {
		case PEND_POST:
		case PEND_TX:
			client_settle(s, p, MQ_ACK_FAILED, lost_reason(p), text);
			break;
		case PEND_SUBSCRIBE:
			/* The queue is subscribed again once reconnected, and
			 * on_ready fires then. */
			pending_recycle(s, p);
			if (why == WHY_RESUME && q && !q->dead) {
				char t[600];
				if (s->resuming)
					s->resuming--;
				snprintf(t, sizeof t, "resumed %s (subscribed again once reconnected)", q->dest);
				client_emit_queue(s, MQ_EVENT_QUEUE_RESUMED, q, t);
				health_restored_check(s);
			}
			break;
		case PEND_UNSUBSCRIBE:
			/* Without a connection there is no subscription left. */
			pending_recycle(s, p);
			if (!q)
				break;
			if (why == WHY_PAUSE && (q->on_ready || q->waiter)) {
				client_queue_done(q, MQ_ACK_OK, "");
			} else if (why == WHY_SUSPEND && !q->dead) {
				char t[600];
				snprintf(t, sizeof t, "suspended %s (host unhealthy)", q->dest);
				client_emit_queue(s, MQ_EVENT_QUEUE_SUSPENDED, q, t);
			} else if (why == WHY_CLOSE) {
				if (q->close_wait)
					q->close_wait--;
				client_close_check(q);
			}
			break;
		case PEND_DISCONNECT:
			pending_recycle(s, p);
			break;
		}
	}
	free(list);
}

/* ---- timers ---- */

static void arm(struct event *ev, unsigned ms)
{
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
	event_add(ev, &tv);
}

static int start_attempt(struct mq_session *s);
static void finish(struct mq_session *s, bool requested, const char *text);
static void schedule_retry(struct mq_session *s, bool after_loss);

/* Whether a close that nobody asked for is followed by another attempt. */
static bool may_retry(const struct mq_session *s)
{
	return s->reconnect && !s->free_requested && !s->final_close &&
	       (s->up || mono_ms() < s->start_deadline_ms);
}

/* The back-off delay has passed: the next attempt. */
static void retry(struct mq_session *s)
{
	char text[sizeof s->err + 64];
	if (!s->up && mono_ms() >= s->start_deadline_ms) {
		snprintf(text, sizeof text, "no connection within %u ms (last attempt: %.400s)", s->timeout_ms, s->err);
		finish(s, false, text);
		return;
	}
	if (start_attempt(s) == 0)
		return;
	/* Could not even begin (no socket, say): a failed attempt like any. */
	snprintf(text, sizeof text, "%s", s->err);
	log_info("session %u %s: connection attempt failed: %s", s->serial, s->addr, text);
	if (may_retry(s))
		schedule_retry(s, false);
	else
		finish(s, false, text);
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mq_session *s = arg;
	client_enter(s);
	if (s->state == MQ_SESSION_CONNECTING || s->state == MQ_SESSION_LOGIN)
		close_conn(s, false, "no CONNECTED from %s within %u ms", s->addr, s->timeout_ms);
	else if (s->state == MQ_SESSION_CLOSING)
		close_conn(s, true, "closed by mq_session_stop (no RECEIPT for DISCONNECT within %u ms)",
		           s->timeout_ms);
	else if (s->state == MQ_SESSION_RECONNECTING)
		retry(s);
	client_leave(s);
}

static void hb_out_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mq_session *s = arg;
	/* Only when nothing else went out since the last check: any frame is
	 * proof of life. Checked at half the interval so that the gap never
	 * exceeds it. */
	if (s->stats.bytes_out == s->hb_out_mark && s->bev) {
		evbuffer_add(bufferevent_get_output(s->bev), "\n", 1);
		s->stats.bytes_out++;
		s->stats.heartbeats_out++;
	}
	s->hb_out_mark = s->stats.bytes_out;
}

static void hb_in_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mq_session *s = arg;
	if (s->rx_seen) {
		s->rx_seen = false;
		s->hb_in_misses = 0;
		return;
	}
	/* Two whole intervals without a byte: the specification leaves the
	 * tolerance to us, and one late heart-beat is not a dead broker. */
	if (++s->hb_in_misses < 2)
		return;
	client_enter(s);
	close_conn(s, false, "broker %s silent for %u ms (heart-beat interval %u ms)",
	           s->addr, 2 * s->hb_in_ms, s->hb_in_ms);
	client_leave(s);
}

/* ---- the close path ---- */

/* xorshift64: the jitter needs spread, not secrecy. */
static uint64_t next_random(struct mq_session *s)
{
	uint64_t x = s->rng;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return s->rng = x;
}

/* The delay before the next attempt doubles with each failure from
 * rc_min_ms up to rc_max_ms, and is drawn between half of it and all of
 * it, so that the clients of a restarted broker spread out. The first
 * attempt after a loss goes to the same host; each one after a failed
 * attempt to the next host of the list. */
static void schedule_retry(struct mq_session *s, bool after_loss)
{
	uint64_t full = s->rc_min_ms, delay;
	for (unsigned i = 0; i < s->attempts && full < s->rc_max_ms; i++)
		full *= 2;
	full = MIN(full, (uint64_t)s->rc_max_ms);
	delay = full / 2 + next_random(s) % (full - full / 2 + 1);
	if (!s->up) {
		uint64_t now = mono_ms();
		delay = s->start_deadline_ms > now ? MIN(delay, s->start_deadline_ms - now) : 0;
	}
	if (!after_loss && s->nhosts > 1)
		s->host_i = (s->host_i + 1) % s->nhosts;
	s->attempts++;
	if (log_enabled(LOG_DEBUG))
		log_debug("session %u: next attempt in %" PRIu64 " ms, to %s", s->serial, delay,
		          s->hosts[s->host_i].addr);
	arm(s->timer, (unsigned)delay);
}

/* Drops the connection itself: its buffer, timers and per-connection state. */
static void teardown(struct mq_session *s)
{
	if (s->bev) {
		/* The bufferevent may be the one whose callback is running: free
		 * it in the sweep, once every callback has returned. */
		bufferevent_disable(s->bev, EV_READ | EV_WRITE);
		bufferevent_setcb(s->bev, NULL, NULL, NULL, NULL);
		s->dead_bevs = xrealloc(s->dead_bevs, (s->ndead_bevs + 1) * sizeof *s->dead_bevs);
		s->dead_bevs[s->ndead_bevs++] = s->bev;
		s->bev = NULL;
	}
	event_del(s->timer);
	event_del(s->hb_out_ev);
	event_del(s->hb_in_ev);
	memset(&s->scan, 0, sizeof s->scan);
	s->in_counted = 0;
	s->epoch++;
	s->out_above_high = false;
	s->stop_requested = false;
	for (struct mq_queue *q = s->queues; q; q = q->next) {
		q->unsub_wait = 0;
		q->subscribed = false;
		q->gen++;
	}
	for (struct mq_queue *q = s->closing; q; q = q->next)
		q->subscribed = false;
}

/* The session is over: IDLE, everything outstanding fails, and the one
 * DISCONNECTED (or CONNECT_FAILED, when it never came up). */
static void finish(struct mq_session *s, bool requested, const char *text)
{
	struct mq_event ev = { 0 };

	set_state(s, MQ_SESSION_IDLE);
	event_del(s->timer);
	snprintf(s->err, sizeof s->err, "%s", text);
	if (s->up)
		log_info("session %u %s: disconnected: %s", s->serial, s->addr, text);
	else
		log_info("session %u %s: connection failed: %s", s->serial, s->addr, text);
	s->restoring = 0;
	s->resuming = 0;
	s->final_close = false;
	fail_all_pending(s, text);
	while (s->closing)
		client_close_finish(s->closing, MQ_ACK_FAILED, text);
	ev.type = s->up ? MQ_EVENT_DISCONNECTED : MQ_EVENT_CONNECT_FAILED;
	ev.text = text;
	ev.requested = requested;
	s->up = false;
	s->lost = false;
	emit(s, &ev);
}

/* A connection dropped and another will be made. */
static void lose(struct mq_session *s, bool was_up, const char *text)
{
	set_state(s, MQ_SESSION_RECONNECTING);
	s->restoring = 0;
	if (was_up) {
		log_warn("session %u %s: connection lost: %s; reconnecting", s->serial, s->addr, text);
		s->lost = true;
		emit_simple(s, MQ_EVENT_CONNECTION_LOST, text);
		if (s->state != MQ_SESSION_RECONNECTING)
			return;	/* stopped or freed from the event */
	} else {
		log_info("session %u %s: connection attempt failed: %s", s->serial, s->addr, text);
	}
	settle_on_loss(s, text);
	if (s->state == MQ_SESSION_RECONNECTING)
		schedule_retry(s, was_up);
}

static void close_conn(struct mq_session *s, bool requested, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	bool was_up;

	if (s->state == MQ_SESSION_IDLE)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	was_up = s->state == MQ_SESSION_CONNECTED || s->state == MQ_SESSION_CLOSING;
	requested = requested || s->stop_requested;

	client_enter(s);
	teardown(s);
	snprintf(s->err, sizeof s->err, "%s", text);
	if (!requested && may_retry(s))
		lose(s, was_up, text);
	else
		finish(s, requested, text);
	client_leave(s);
}

/* ---- frame handlers ---- */

static bool offered(const struct mq_session *s, const char *v)
{
	const char *p = s->accept_version;
	size_t n = strlen(v);
	while (p && *p) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		while (len && *p == ' ') {
			p++;
			len--;
		}
		while (len && p[len - 1] == ' ')
			len--;
		if (len == n && memcmp(p, v, n) == 0)
			return true;
		p = comma ? comma + 1 : NULL;
	}
	return false;
}

/* CONNECTED after a loss: every queue that should be subscribed is, the
 * kept posts go again in the order they were first made, then
 * RECONNECTED; STATE_RESTORED once the broker has answered every
 * SUBSCRIBE (at once when there is none). */
static void restore(struct mq_session *s)
{
	char text[300];
	size_t n;
	struct pending **list;

	s->lost = false;
	s->stats.reconnects++;
	s->restoring = 0;
	for (struct mq_queue *q = s->queues; q; q = q->next) {
		if (client_wants_sub(q)) {
			client_subscribe(q, WHY_REOPEN);
			s->restoring++;
		}
	}
	list = pending_list(s, &n);
	for (size_t i = 0; i < n && s->state == MQ_SESSION_CONNECTED; i++)
		if (list[i]->kind == PEND_POST && list[i]->copy)
			client_repost(s, list[i]);
	free(list);
	if (s->state != MQ_SESSION_CONNECTED)
		return;
	snprintf(text, sizeof text, "reconnected to %s (STOMP %s)", s->addr, version_text(s->version));
	log_warn("session %u %s", s->serial, text);
	emit_simple(s, MQ_EVENT_RECONNECTED, text);
	restored_check(s);
}

static void handle_connected(struct mq_session *s, struct frame *f)
{
	const char *v = frame_get(f, "version");
	const char *hb = frame_get(f, "heart-beat");
	unsigned long sx = 0, sy = 0;
	char text[256];
	struct mq_event ev = { .type = MQ_EVENT_CONNECTED };

	if (s->state != MQ_SESSION_LOGIN) {
		log_warn("session %u %s: CONNECTED frame in state %s ignored", s->serial, s->addr,
		         mq_session_state_name(s->state));
		return;
	}
	if (!v)
		v = "1.0";	/* a 1.0 broker does not say */
	if (strcmp(v, "1.0") == 0 || strcmp(v, "1.1") == 0 || strcmp(v, "1.2") == 0) {
		if (!offered(s, v)) {
			close_conn(s, false, "broker %s chose STOMP version %s, which was not offered (accept-version:%s)",
			           s->addr, v, s->accept_version);
			return;
		}
		s->version = (enum stomp_version)(10 + (v[2] - '0'));
	} else {
		close_conn(s, false, "broker %s answered with unknown STOMP version '%s' (accept-version:%s)",
		           s->addr, v, s->accept_version);
		return;
	}
	if (hb && s->version >= STOMP_1_1) {
		char *end;
		sx = strtoul(hb, &end, 10);
		if (*end == ',')
			sy = strtoul(end + 1, &end, 10);
		if (*end) {
			close_conn(s, false, "broker %s sent a malformed heart-beat header '%s' in CONNECTED: expected sx,sy",
			           s->addr, hb);
			return;
		}
	}
	/* The specification's rule: each side sends at the slower of what one
	 * can do and the other wants; 0 on either side means none. */
	s->hb_out_ms = (s->hb_send_ms && sy) ? (unsigned)MAX(s->hb_send_ms, sy) : 0;
	s->hb_in_ms = (s->hb_recv_ms && sx) ? (unsigned)MAX(s->hb_recv_ms, sx) : 0;
	free(s->server);
	free(s->broker_session);
	s->server = xstrdup(frame_get(f, "server") ? frame_get(f, "server") : "");
	s->broker_session = xstrdup(frame_get(f, "session") ? frame_get(f, "session") : "");
	{
		/* Every header, for mq_session_connected_header(): a broker's
		 * own (mqbroker's broker-id) need no field of their own. */
		size_t need = 0;
		char *p;
		for (unsigned i = 0; i < f->nhdrs; i++)
			need += f->hdrs[i].name_len + f->hdrs[i].value_len + 2;
		free(s->connected_hdrs);
		s->connected_hdrs = p = xmalloc(need ? need : 1);
		s->connected_len = need;
		for (unsigned i = 0; i < f->nhdrs; i++) {
			memcpy(p, f->hdrs[i].name, f->hdrs[i].name_len + 1);
			p += f->hdrs[i].name_len + 1;
			memcpy(p, f->hdrs[i].value, f->hdrs[i].value_len + 1);
			p += f->hdrs[i].value_len + 1;
		}
	}

	event_del(s->timer);
	set_state(s, MQ_SESSION_CONNECTED);
	s->stats.connects++;
	if (!s->lost)
		s->attempts = 0;	/* after a loss: once the state is restored */
	s->last_version = s->version;
	if (s->hb_out_ms) {
		s->hb_out_mark = s->stats.bytes_out;
		arm(s->hb_out_ev, MAX(s->hb_out_ms / 2, 1));
	}
	if (s->hb_in_ms) {
		s->rx_seen = false;
		s->hb_in_misses = 0;
		arm(s->hb_in_ev, s->hb_in_ms);
	}
	if (s->lost) {
		restore(s);
		return;
	}
	s->up = true;
	for (struct mq_queue *q = s->queues; q; q = q->next)
		if (client_wants_sub(q))
			client_subscribe(q, WHY_OPEN);

	snprintf(text, sizeof text, "connected to %s (STOMP %s%s%s)", s->addr, version_text(s->version),
	         *s->server ? ", server " : "", s->server);
	log_info("session %u %s", s->serial, text);
	ev.text = text;
	emit(s, &ev);
}

static struct pending *take_receipt(struct mq_session *s, const char *rid, const char *frame)
{
	uint64_t id;
	struct pending *p;
	if (!rid)
		return NULL;
	if (!parse_u64(rid, 1, UINT64_MAX, &id) || !(p = u64map_del(&s->pending, id))) {
		log_warn("session %u %s: %s for unknown receipt '%s' ignored", s->serial, s->addr, frame, rid);
		return NULL;
	}
	return p;
}

static void handle_receipt(struct mq_session *s, struct frame *f)
{
	struct pending *p = take_receipt(s, frame_get(f, "receipt-id"), "RECEIPT");
	if (p)
		settle(s, p, MQ_ACK_OK, "");
}

static void handle_error(struct mq_session *s, struct frame *f)
{
	const char *msg = frame_get(f, "message");
	const char *rid = frame_get(f, "receipt-id");
	char text[256];
	struct pending *p;
	struct mq_event ev = { .type = MQ_EVENT_ERROR_FRAME };

	s->stats.errors++;
	if (msg && *msg) {
		snprintf(text, sizeof text, "%s", msg);
	} else if (f->body_len) {
		/* Some brokers put everything in the body; its first line will do. */
		size_t n = strcspn(f->body, "\r\n");
		snprintf(text, sizeof text, "%.*s", (int)MIN(n, sizeof text - 1), f->body);
	} else {
		snprintf(text, sizeof text, "ERROR frame without a message");
	}
	snprintf(s->last_error, sizeof s->last_error, "%s", text);

	if (s->state == MQ_SESSION_CONNECTING || s->state == MQ_SESSION_LOGIN) {
		/* A refused first CONNECT (a wrong passcode) will be refused
		 * again; once the session has been up, the broker may have been
		 * shutting down, so reconnection goes on. */
		s->final_close = !s->up;
		close_conn(s, false, "broker %s refused CONNECT: %s", s->addr, text);
		return;
	}
	log_info("session %u %s: ERROR from broker: %s", s->serial, s->addr, text);
	p = take_receipt(s, rid, "ERROR");
	if (p)
		settle(s, p, MQ_ACK_FAILED, text);
	if (s->state == MQ_SESSION_IDLE)
		return;	/* the acknowledgement callback closed the session */
	ev.text = text;
	ev.detail = f->body;
	ev.detail_len = f->body_len;
	ev.receipt_id = rid;
	emit(s, &ev);
}

static void dispatch(struct mq_session *s, struct frame *f)
{
	switch (f->cmd) {
	case CMD_CONNECTED: handle_connected(s, f); break;
	case CMD_MESSAGE:
		if (s->state == MQ_SESSION_CONNECTED || s->state == MQ_SESSION_CLOSING)
			client_deliver(s, f);
		break;
	case CMD_RECEIPT: handle_receipt(s, f); break;
	case CMD_ERROR: handle_error(s, f); break;
	default:
		log_warn("session %u %s: unexpected %s frame from the broker ignored", s->serial, s->addr,
		         frame_cmd_name(f->cmd));
	}
}

/* libevent makes connecting sockets without close-on-exec: a program that
 * runs children (the scenario runner starts brokers) would hand them our
 * connections, and an aborted connection would stay open in the child. */
static void keep_from_children(struct bufferevent *bev)
{
	evutil_socket_t fd = bufferevent_getfd(bev);
	if (fd >= 0)
		evutil_make_socket_closeonexec(fd);
}

/* ---- bufferevent callbacks ---- */

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct mq_session *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint32_t epoch = s->epoch;
	char err[256];

	client_enter(s);
	s->rx_seen = true;
	s->stats.bytes_in += evbuffer_get_length(in) - s->in_counted;
	for (;;) {
		/* Until CONNECTED says otherwise, headers are taken raw: a 1.0
		 * decoding can never fail on what a broker of any version sends. */
		enum stomp_version v = s->state >= MQ_SESSION_CONNECTED ? s->version : STOMP_1_0;
		enum frame_status st = frame_parse(in, &s->scan, &s->frame, &s->lim, v, err, sizeof err);
		s->stats.heartbeats_in += s->frame.skipped_eols;
		if (st == FRAME_NEED_MORE)
			break;
		if (st == FRAME_ERROR) {
			close_conn(s, false, "malformed frame from broker %s: %s", s->addr, err);
			break;
		}
		s->stats.frames_in++;
		dispatch(s, &s->frame);
		/* A callback closed the connection: its buffer is the dead one. */
		if (s->epoch != epoch)
			break;
		frame_consume(in, &s->scan, &s->frame);
	}
	if (s->epoch == epoch)
		s->in_counted = evbuffer_get_length(in);
	client_leave(s);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct mq_session *s = arg;
	struct mq_event ev = { .type = MQ_EVENT_DRAINED, .text = "output buffer drained" };
	if (!s->out_above_high)
		return;
	s->out_above_high = false;
	client_enter(s);
	emit(s, &ev);
	client_leave(s);
}

static void send_connect(struct mq_session *s)
{
	struct frame_writer w;
	size_t bound = 16 + FW_HDR_BOUND(14, strlen(s->accept_version)) + FW_HDR_BOUND(4, strlen(s->vhost)) +
	               FW_HDR_BOUND(10, 2 * FW_U64_MAX + 1) + 2;
	if (s->login)
		bound += FW_HDR_BOUND(5, strlen(s->login));
	if (s->passcode)
		bound += FW_HDR_BOUND(8, strlen(s->passcode));
	if (s->client_id)
		bound += FW_HDR_BOUND(9, strlen(s->client_id));
	/* CONNECT headers are never escaped, whatever the version. */
	fw_begin(&w, client_out(s), bound, STOMP_1_0);
	fw_str(&w, "CONNECT\n");
	fw_hdrs(&w, "accept-version", s->accept_version);
	fw_hdrs(&w, "host", s->vhost);
	if (s->login)
		fw_hdrs(&w, "login", s->login);
	if (s->passcode)
		fw_hdrs(&w, "passcode", s->passcode);
	if (s->client_id)
		fw_hdrs(&w, "client-id", s->client_id);
	fw_str(&w, "heart-beat:");
	fw_u64(&w, s->hb_send_ms);
	fw_raw(&w, ",", 1);
	fw_u64(&w, s->hb_recv_ms);
	fw_raw(&w, "\n\n", 3);	/* the blank line and the NUL */
	s->stats.bytes_out += fw_end(&w);
	s->stats.frames_out++;
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct mq_session *s = arg;
	char reason[256];

	client_enter(s);
	if (what & BEV_EVENT_CONNECTED) {
		/* Sockets made after a name lookup are marked here. */
		keep_from_children(bev);
		evutil_socket_t fd = bufferevent_getfd(bev);
		int one = 1;
		/* Frames are batched in the output buffer already; Nagle would
		 * only add latency to receipts and acknowledgements. */
		if (fd >= 0)
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
		set_state(s, MQ_SESSION_LOGIN);
		send_connect(s);
	} else if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT)) {
		int err = EVUTIL_SOCKET_ERROR();	/* first: later calls may change it */
		bool up = s->state == MQ_SESSION_CONNECTED || s->state == MQ_SESSION_CLOSING;
		int dns = bufferevent_socket_get_dns_error(bev);
		const char *why = err ? evutil_socket_error_to_string(err) : "connection failed";

		if (dns) {
			close_conn(s, false, "cannot resolve broker host '%s': %s", s->host, evutil_gai_strerror(dns));
		} else if (s->state == MQ_SESSION_CONNECTING) {
			if (s->tls && client_tls_describe(s, bev, reason, sizeof reason))
				close_conn(s, false, "TLS handshake with %s failed: %s", s->addr, reason);
			else if (what & BEV_EVENT_EOF)
				close_conn(s, false, "connection to %s closed during the TLS handshake", s->addr);
			else
				close_conn(s, false, "cannot connect to %s: %s", s->addr, why);
		} else if (what & BEV_EVENT_EOF) {
			if (s->state == MQ_SESSION_CLOSING)
				close_conn(s, true, "closed by mq_session_stop");
			else if (*s->last_error)
				close_conn(s, false, "connection to %s closed by the broker after ERROR: %s",
				           s->addr, s->last_error);
			else
				close_conn(s, false, "connection to %s closed by the broker%s", s->addr,
				           up ? "" : " before CONNECTED");
		} else if (s->tls && client_tls_describe(s, bev, reason, sizeof reason)) {
			close_conn(s, false, "TLS error on the connection to %s: %s", s->addr, reason);
		} else {
			close_conn(s, false, "connection to %s lost: %s", s->addr, why);
		}
	}
	client_leave(s);
}

/* ---- public: life cycle ---- */

/* "host", "host:port", "[v6]" or "[v6]:port"; a bare address with more
 * than one colon is an IPv6 address without a port. */
static bool parse_host(const char *spec, uint16_t defport, struct host *h, char *err, size_t errlen)
{
	const char *colon = NULL, *name = spec;
	size_t nlen;
	uint64_t port = defport;
	char addr[300];

	if (!spec || !*spec) {
		snprintf(err, errlen, "empty host name in the host list");
		return false;
	}
	if (spec[0] == '[') {
		const char *close = strchr(spec, ']');
		if (!close || close == spec + 1 || (close[1] && close[1] != ':')) {
			snprintf(err, errlen, "host '%s': expected [address] or [address]:port", spec);
			return false;
		}
		name = spec + 1;
		nlen = (size_t)(close - name);
		colon = close[1] ? close + 1 : NULL;
	} else {
		colon = strchr(spec, ':');
		if (colon && strchr(colon + 1, ':'))
			colon = NULL;	/* IPv6 without brackets: no port */
		nlen = colon ? (size_t)(colon - spec) : strlen(spec);
	}
	if (nlen == 0 || nlen > 255) {
		snprintf(err, errlen, "host '%s': the name must have 1 to 255 characters", spec);
		return false;
	}
	if (colon && !parse_u64(colon + 1, 1, 65535, &port)) {
		snprintf(err, errlen, "host '%s': port '%s' is not a number 1..65535", spec, colon + 1);
		return false;
	}
	h->name = xstrndup(name, nlen);
	h->port = (uint16_t)port;
	snprintf(addr, sizeof addr, strchr(h->name, ':') ? "[%s]:%u" : "%s:%u", h->name, h->port);
	h->addr = xstrdup(addr);
	return true;
}

static void use_host(struct mq_session *s, size_t i)
{
	s->host_i = i;
	s->host = s->hosts[i].name;
	s->port = s->hosts[i].port;
	s->addr = s->hosts[i].addr;
	s->vhost = s->vhost_opt ? s->vhost_opt : s->host;
}

static void hosts_init(struct mq_session *s, const struct mq_session_opts *o, uint16_t defport)
{
	char err[400];
	size_t n = o->hosts && o->nhosts ? o->nhosts : 1;

	s->hosts = xcalloc(n, sizeof *s->hosts);
	if (!(o->hosts && o->nhosts)) {
		const char *name = o->host && *o->host ? o->host : DEFAULT_HOST;
		char addr[300];
		s->hosts[0].name = xstrdup(name);
		s->hosts[0].port = defport;
		snprintf(addr, sizeof addr, strchr(name, ':') ? "[%s]:%u" : "%s:%u", name, defport);
		s->hosts[0].addr = xstrdup(addr);
		s->nhosts = 1;
		return;
	}
	for (size_t i = 0; i < n; i++) {
		if (!parse_host(o->hosts[i], defport, &s->hosts[s->nhosts], err, sizeof err)) {
			if (!s->hosts_err)
				s->hosts_err = xstrdup(err);
			continue;
		}
		s->nhosts++;
	}
	if (s->nhosts == 0) {
		/* Something to name in messages; start refuses anyway. */
		s->hosts[0].name = xstrdup(DEFAULT_HOST);
		s->hosts[0].port = defport;
		s->hosts[0].addr = xstrdup("(no valid host)");
		s->nhosts = 1;
	}
}

/* A per-session prefix for MQ_POST_ID_HEADER: two sessions, even in two
 * processes started in the same microsecond, should not share one. */
static void make_nonce(struct mq_session *s)
{
	uint64_t seed = mono_us() ^ (wall_ms() << 20) ^ ((uint64_t)getpid() << 40) ^
	                ((uint64_t)s->serial * 0x9e3779b97f4a7c15ull) ^ (uint64_t)(uintptr_t)s;
	FILE *f = fopen("/dev/urandom", "rb");
	if (f) {
		uint64_t r;
		if (fread(&r, sizeof r, 1, f) == 1)
			seed ^= r;
		fclose(f);
	}
	s->rng = seed ? seed : 0x2545f4914f6cdd1dull;
	snprintf(s->post_nonce, sizeof s->post_nonce, "%016" PRIx64, next_random(s));
}

struct mq_session *mq_session_new(struct event_base *base, const struct mq_session_opts *o)
{
	struct mq_session *s;

	if (!base || !o)
		return NULL;
	s = xcalloc(1, sizeof *s);
	s->base = base;
	s->serial = ++session_serial;
	s->dns_base = o->dns_base;
	s->vhost_opt = o->vhost && *o->vhost ? xstrdup(o->vhost) : NULL;
	s->accept_version = xstrdup(o->accept_version && *o->accept_version ? o->accept_version : "1.0,1.1,1.2");
	s->login = dup_or_null(o->login);
	s->passcode = dup_or_null(o->passcode);
	s->client_id = dup_or_null(o->client_id);
	s->hb_send_ms = o->heartbeat_send_ms;
	s->hb_recv_ms = o->heartbeat_recv_ms;
	s->timeout_ms = o->connect_timeout_ms ? o->connect_timeout_ms : DEFAULT_TIMEOUT_MS;
	s->tls = o->tls;
	s->tls_cert_key = dup_or_null(o->tls_cert_key);
	s->tls_ca_chain = dup_or_null(o->tls_ca_chain);
	s->tls_server_name = dup_or_null(o->tls_server_name);
	if (o->tls_env)
		client_tls_env(s);
	hosts_init(s, o, o->port ? o->port : (s->tls ? DEFAULT_TLS_PORT : DEFAULT_PORT));
	use_host(s, 0);
	s->reconnect = o->reconnect;
	s->rc_min_ms = o->reconnect_min_ms ? o->reconnect_min_ms : DEFAULT_RECONNECT_MIN_MS;
	s->rc_max_ms = o->reconnect_max_ms ? o->reconnect_max_ms : DEFAULT_RECONNECT_MAX_MS;
	if (s->rc_max_ms < s->rc_min_ms)
		s->rc_max_ms = s->rc_min_ms;
	s->repost = o->repost == MQ_REPOST_FAIL ? MQ_REPOST_FAIL : MQ_REPOST_RESEND;
	s->healthy = true;
	s->last_version = STOMP_1_2;
	make_nonce(s);
	s->out_high = o->out_high_water ? o->out_high_water : DEFAULT_OUT_HIGH;
	s->out_low = o->out_low_water ? o->out_low_water : DEFAULT_OUT_LOW;
	if (s->out_low > s->out_high)
		s->out_low = s->out_high;
	s->on_event = o->on_event;
	s->on_message = o->on_message;
	s->arg = o->arg;

	s->lim.max_frame = o->max_frame ? o->max_frame : FRAME_DEFAULT_MAX_FRAME;
	/* A broker may pass on every header its producers set: be generous
	 * with counts and lines, strict only on the total. */
	s->lim.max_headers = 1024;
	s->lim.max_header_line = 64 * 1024;
	frame_init(&s->frame);
	u64map_init(&s->pending);
	u64map_put(&s->pending, 0, &s->pend_anchor);
	strmap_init(&s->subs);
	s->server = xstrdup("");
	s->broker_session = xstrdup("");
	s->timer = evtimer_new(base, timer_cb, s);
	s->hb_out_ev = event_new(base, -1, EV_PERSIST, hb_out_cb, s);
	s->hb_in_ev = event_new(base, -1, EV_PERSIST, hb_in_cb, s);
	return s;
}

static bool connect_headers_ok(struct mq_session *s)
{
	static const char *const names[] = { "accept-version", "host", "login", "passcode", "client-id" };
	const char *values[] = { s->accept_version, s->vhost, s->login, s->passcode, s->client_id };
	for (size_t i = 0; i < ARRAY_LEN(names); i++)
		if (values[i] && !client_header_ok(s, "CONNECT", names[i], values[i], STOMP_1_0))
			return false;
	return true;
}

/* One connection attempt to hosts[host_i]: 0, or -1 with s->err when it
 * could not even begin. */
static int start_attempt(struct mq_session *s)
{
	struct bufferevent *bev;
	const int opts = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
	struct sockaddr_storage ss;
	int sslen = sizeof ss;
	int r;
	unsigned timeout = s->timeout_ms;

	use_host(s, s->host_i);
	if (!connect_headers_ok(s))
		return -1;
	if (s->tls) {
		struct ssl_st *ssl;
		if (!s->ssl_ctx && !(s->ssl_ctx = client_tls_ctx(s)))
			return -1;
		if (!(ssl = client_tls_ssl(s)))
			return -1;
		bev = bufferevent_openssl_socket_new(s->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, opts);
		if (!bev) {
			SSL_free(ssl);
			client_set_err(s, "cannot create a TLS connection to %s", s->addr);
			return -1;
		}
		/* A broker that closes without close_notify has still closed. */
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	} else {
		bev = bufferevent_socket_new(s->base, -1, opts);
		if (!bev) {
			client_set_err(s, "cannot create a connection to %s", s->addr);
			return -1;
		}
	}
	bufferevent_setcb(bev, read_cb, write_cb, event_cb, s);
	bufferevent_set_max_single_read(bev, MAX_SINGLE_IO);
	bufferevent_set_max_single_write(bev, MAX_SINGLE_IO);
	bufferevent_setwatermark(bev, EV_WRITE, s->out_low, 0);
	bufferevent_enable(bev, EV_READ | EV_WRITE);

	memset(&ss, 0, sizeof ss);
	if (evutil_parse_sockaddr_port(s->host, (struct sockaddr *)&ss, &sslen) == 0) {
		/* A numeric address: no resolver involved. */
		if (ss.ss_family == AF_INET)
			((struct sockaddr_in *)&ss)->sin_port = htons(s->port);
		else
			((struct sockaddr_in6 *)&ss)->sin6_port = htons(s->port);
		r = bufferevent_socket_connect(bev, (struct sockaddr *)&ss, sslen);
	} else {
		r = bufferevent_socket_connect_hostname(bev, s->dns_base, AF_UNSPEC, s->host, s->port);
	}
	if (r < 0) {
		int err = EVUTIL_SOCKET_ERROR();
		bufferevent_free(bev);
		client_set_err(s, "cannot connect to %s: %s", s->addr, evutil_socket_error_to_string(err));
		return -1;
	}
	keep_from_children(bev);
	s->bev = bev;
	s->stats.attempts++;
	s->last_error[0] = 0;
	s->version = 0;
	s->hb_out_ms = s->hb_in_ms = 0;
	s->err[0] = 0;
	set_state(s, MQ_SESSION_CONNECTING);
	if (s->reconnect && !s->up) {
		/* The first connection has one budget for all its attempts. */
		uint64_t now = mono_ms();
		timeout = s->start_deadline_ms > now ? (unsigned)MIN(timeout, s->start_deadline_ms - now) : 1;
	}
	arm(s->timer, MAX(timeout, 1));
	return 0;
}

int mq_session_start(struct mq_session *s)
{
	if (s->state != MQ_SESSION_IDLE) {
		client_set_err(s, "session %s is already %s", s->addr, mq_session_state_name(s->state));
		return -1;
	}
	if (s->free_requested) {
		client_set_err(s, "session %s is being freed", s->addr);
		return -1;
	}
	if (s->hosts_err) {
		client_set_err(s, "cannot start: %s", s->hosts_err);
		return -1;
	}
	s->up = false;
	s->lost = false;
	s->final_close = false;
	s->attempts = 0;
	s->start_deadline_ms = mono_ms() + s->timeout_ms;
	use_host(s, 0);
	return start_attempt(s);
}

void mq_session_stop(struct mq_session *s)
{
	struct frame_writer w;
	struct pending *p;

	if (!s)
		return;
	switch (s->state) {
	case MQ_SESSION_IDLE:
	case MQ_SESSION_CLOSING:
		return;
	case MQ_SESSION_CONNECTING:
	case MQ_SESSION_LOGIN:
		close_conn(s, true, s->up ? "stopped by mq_session_stop while reconnecting"
		                          : "stopped by mq_session_stop before CONNECTED");
		return;
	case MQ_SESSION_RECONNECTING:
		close_conn(s, true, "stopped by mq_session_stop while reconnecting");
		return;
	case MQ_SESSION_CONNECTED:
		break;
	}
	p = client_pending_new(s, PEND_DISCONNECT);
	fw_begin(&w, client_out(s), 32 + FW_U64_MAX, s->version);
	fw_str(&w, "DISCONNECT\nreceipt:");
	fw_u64(&w, p->id);
	fw_raw(&w, "\n\n", 3);
	s->stats.bytes_out += fw_end(&w);
	s->stats.frames_out++;
	s->stop_requested = true;
	set_state(s, MQ_SESSION_CLOSING);
	arm(s->timer, s->timeout_ms);
}

void mq_session_abort(struct mq_session *s)
{
	if (!s || s->state == MQ_SESSION_IDLE)
		return;
	close_conn(s, true, "aborted by mq_session_abort");
}

static void destroy(struct mq_session *s)
{
	/* Never back to zero: callbacks run below must not free it again. */
	s->busy++;
	fail_all_pending(s, "session freed");
	while (s->closing)
		client_close_finish(s->closing, MQ_ACK_FAILED, "session freed");
	if (s->bev)
		bufferevent_free(s->bev);	/* not expected: free closes first */
	sweep(s);
	while (s->queues) {
		struct mq_queue *q = s->queues;
		s->queues = q->next;
		client_messages_detach_queue(s, q);
		client_queue_free(q);
	}
	client_messages_detach_session(s);
	while (s->free_pend) {
		struct pending *p = s->free_pend;
		s->free_pend = p->next_free;
		free(p);
	}
	u64map_fini(&s->pending);
	strmap_fini(&s->subs);
	frame_fini(&s->frame);
	event_free(s->timer);
	event_free(s->hb_out_ev);
	event_free(s->hb_in_ev);
	if (s->ssl_ctx)
		SSL_CTX_free(s->ssl_ctx);
	for (size_t i = 0; i < s->nhosts; i++) {
		free(s->hosts[i].name);
		free(s->hosts[i].addr);
	}
	free(s->hosts);
	free(s->hosts_err);
	free(s->vhost_opt);
	free(s->accept_version);
	free(s->login);
	free(s->passcode);
	free(s->client_id);
	free(s->tls_cert_key);
	free(s->tls_ca_chain);
	free(s->tls_server_name);
	free(s->server);
	free(s->broker_session);
	free(s->connected_hdrs);
	free(s);
}

void mq_session_free(struct mq_session *s)
{
	if (!s || s->free_requested)
		return;
	client_enter(s);
	/* From here on no event is reported; acknowledgement callbacks still
	 * run, so that whatever their arguments hold can be released. */
	s->free_requested = true;
	if (s->state != MQ_SESSION_IDLE)
		close_conn(s, true, "session freed");
	client_leave(s);
}

/* ---- public: host health ---- */

/* The queues now, so that callbacks run while walking them may close any. */
static struct mq_queue **queue_snapshot(struct mq_session *s, size_t *n)
{
	struct mq_queue **list;
	size_t count = 0;
	for (struct mq_queue *q = s->queues; q; q = q->next)
		count++;
	*n = 0;
	if (!count)
		return NULL;
	list = xmalloc(count * sizeof *list);
	for (struct mq_queue *q = s->queues; q; q = q->next)
		list[(*n)++] = q;
	return list;
}

void mq_session_set_host_health(struct mq_session *s, bool healthy)
{
	struct mq_queue **list;
	size_t n;

	if (!s || s->healthy == healthy || s->free_requested)
		return;
	client_enter(s);
	s->healthy = healthy;
	log_info("session %u %s: host %s", s->serial, s->addr, healthy ? "healthy again" : "unhealthy");
	if (!healthy)
		emit_simple(s, MQ_EVENT_HOST_UNHEALTHY, "host unhealthy");
	list = queue_snapshot(s, &n);
	/* A queue closed by an earlier callback is only marked dead: it is
	 * freed by the sweep, after client_leave. */
	for (size_t i = 0; i < n && s->healthy == healthy; i++) {
		struct mq_queue *q = list[i];
		if (q->dead)
			continue;
		if (!healthy && q->suspend_opt && !q->suspended)
			client_queue_suspend(q);
		else if (healthy && q->suspended)
			client_queue_resume(q);
	}
	free(list);
	if (healthy && s->healthy)
		health_restored_check(s);
	client_leave(s);
}

bool mq_session_host_healthy(const struct mq_session *s) { return s->healthy; }

void mq_log_set_level(int level)
{
	/* A program that asks for the library's lines gets them named as such. */
	log_set_ident("mqclient");
	log_set_level(level);
}

/* ---- public: accessors ---- */

enum mq_session_state mq_session_state(const struct mq_session *s) { return s->state; }
const char *mq_session_error(const struct mq_session *s) { return s->err; }
int mq_session_version(const struct mq_session *s)
{
	return s->state == MQ_SESSION_CONNECTED || s->state == MQ_SESSION_CLOSING ? (int)s->version : 0;
}
const char *mq_session_server(const struct mq_session *s) { return s->server; }
const char *mq_session_broker_session(const struct mq_session *s) { return s->broker_session; }

const char *mq_session_connected_header(const struct mq_session *s, const char *name)
{
	const char *p = s->connected_hdrs, *end = p ? p + s->connected_len : NULL;
	while (p && p < end) {
		const char *v = p + strlen(p) + 1;
		if (strcmp(p, name) == 0)
			return v;
		p = v + strlen(v) + 1;
	}
	return NULL;
}
struct event_base *mq_session_base(const struct mq_session *s) { return s->base; }
const char *mq_session_address(const struct mq_session *s) { return s->addr; }

void mq_session_heartbeats(const struct mq_session *s, unsigned *send_ms, unsigned *recv_ms)
{
	if (send_ms)
		*send_ms = s->hb_out_ms;
	if (recv_ms)
		*recv_ms = s->hb_in_ms;
}

size_t mq_session_pending_bytes(const struct mq_session *s)
{
	return s->bev ? evbuffer_get_length(bufferevent_get_output(s->bev)) : 0;
}

void mq_session_stats(const struct mq_session *s, struct mq_stats *out) { *out = s->stats; }
