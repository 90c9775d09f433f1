/* queue.c: destinations opened on a session: SUBSCRIBE and its options,
 * pause and suspension, the two ways to close, delivery to on_message,
 * SEND (and the copies kept to send again after a reconnection), and
 * transactions. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "client_int.h"
#include "common/log.h"
#include "common/util.h"

/* Bodies up to this size are copied into the frame's one reserved extent;
 * larger ones are appended after it, so that a 10 MB body never needs a
 * 10 MB contiguous reservation. */
#define INLINE_BODY_MAX (64u << 10)

static const char *ack_name(enum mq_ack_mode m)
{
	switch (m) {
	case MQ_ACK_AUTO: return "auto";
	case MQ_ACK_CLIENT: return "client";
	case MQ_ACK_CLIENT_INDIVIDUAL: return "client-individual";
	}
	return "auto";
}

static void free_headers(struct mq_header *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((char *)h[i].name);
		free((char *)h[i].value);
	}
	free(h);
}

/* Checks the options that will be sent; before CONNECTED the version is
 * unknown, so the strictest (1.0) rules apply. */
static bool opts_ok(struct mq_session *s, const char *dest, const struct mq_queue_opts *o)
{
	if (!client_header_ok(s, "SUBSCRIBE", "destination", dest, STOMP_1_0))
		return false;
	if (!o)
		return true;
	if ((unsigned)o->ack > MQ_ACK_CLIENT_INDIVIDUAL) {
		client_set_err(s, "SUBSCRIBE to %s: unknown ack mode %d", dest, (int)o->ack);
		return false;
	}
	if (o->id && !client_header_ok(s, "SUBSCRIBE", "id", o->id, STOMP_1_0))
		return false;
	for (size_t i = 0; i < o->nheaders; i++) {
		const char *n = o->headers[i].name;
		if (!client_header_ok(s, "SUBSCRIBE", n, o->headers[i].value, STOMP_1_0))
			return false;
		/* A second receipt would settle nothing of ours; the others
		 * would contradict the options. */
		if (strcmp(n, "id") == 0 || strcmp(n, "destination") == 0 || strcmp(n, "ack") == 0 ||
		    strcmp(n, "receipt") == 0) {
			client_set_err(s, "SUBSCRIBE to %s: header '%s' is written by the library; "
			               "use the queue options", dest, n);
			return false;
		}
	}
	return true;
}

static void set_opts(struct mq_queue *q, const struct mq_queue_opts *o)
{
	static const struct mq_queue_opts defaults;
	if (!o)
		o = &defaults;
	free_headers(q->hdrs, q->nhdrs);
	q->hdrs = NULL;
	q->nhdrs = o->nheaders;
	if (o->nheaders) {
		q->hdrs = xcalloc(o->nheaders, sizeof *q->hdrs);
		for (size_t i = 0; i < o->nheaders; i++) {
			q->hdrs[i].name = xstrdup(o->headers[i].name);
			q->hdrs[i].value = xstrdup(o->headers[i].value);
		}
	}
	q->ack = o->ack;
	q->max_msgs = o->max_unconfirmed_messages;
	q->max_bytes = o->max_unconfirmed_bytes;
	q->priority = o->consumer_priority;
	free(q->selector);
	q->selector = o->selector && *o->selector ? xstrdup(o->selector) : NULL;
	q->paused = o->paused;
	q->suspend_opt = o->suspend_on_bad_host_health;
	q->on_message = o->on_message;
	q->on_ready = o->on_ready;
	q->arg = o->arg;
}

static void wb_i64(struct frame_writer *w, int64_t v)
{
	if (v < 0) {
		*w->p++ = '-';
		fw_u64(w, (uint64_t)0 - (uint64_t)v);
	} else {
		fw_u64(w, (uint64_t)v);
	}
}

bool client_wants_sub(const struct mq_queue *q)
{
	return (q->flags & MQ_READ) && !q->dead && !q->paused && !q->suspended && !q->refused;
}

void client_subscribe(struct mq_queue *q, enum pend_why why)
{
	struct mq_session *s = q->s;
	struct frame_writer w;
	struct pending *p = NULL;
	size_t bound = 16 + FW_HDR_BOUND(2, strlen(q->id)) + FW_HDR_BOUND(11, strlen(q->dest)) +
	               FW_HDR_BOUND(3, 17) + FW_HDR_BOUND(24, FW_U64_MAX) + FW_HDR_BOUND(21, FW_U64_MAX) +
	               FW_HDR_BOUND(17, FW_U64_MAX + 1) + FW_HDR_BOUND(7, FW_U64_MAX);
	for (size_t i = 0; i < q->nhdrs; i++)
		bound += FW_HDR_BOUND(strlen(q->hdrs[i].name), strlen(q->hdrs[i].value));
	if (q->selector)
		bound += FW_HDR_BOUND(8, strlen(q->selector));

	fw_begin(&w, client_out(s), bound, s->version);
	fw_str(&w, "SUBSCRIBE\n");
	fw_hdrs(&w, "id", q->id);
	fw_hdrs(&w, "destination", q->dest);
	fw_hdrs(&w, "ack", ack_name(q->ack));
	if (q->max_msgs) {
		fw_str(&w, "max-unconfirmed-messages:");
		fw_u64(&w, q->max_msgs);
		*w.p++ = '\n';
	}
	if (q->max_bytes) {
		fw_str(&w, "max-unconfirmed-bytes:");
		fw_u64(&w, q->max_bytes);
		*w.p++ = '\n';
	}
	if (q->priority) {
		fw_str(&w, "consumer-priority:");
		wb_i64(&w, q->priority);
		*w.p++ = '\n';
	}
	if (q->selector)
		fw_hdrs(&w, "selector", q->selector);
	for (size_t i = 0; i < q->nhdrs; i++)
		fw_hdrs(&w, q->hdrs[i].name, q->hdrs[i].value);
	if (why != WHY_OPEN || q->on_ready || q->waiter) {
		p = client_pending_new(s, PEND_SUBSCRIBE);
		p->q = q;
		p->why = why;
		fw_str(&w, "receipt:");
		fw_u64(&w, p->id);
		*w.p++ = '\n';
	}
	fw_raw(&w, "\n", 2);	/* the blank line and the NUL */
	s->stats.bytes_out += fw_end(&w);
	s->stats.frames_out++;
	q->subscribed = true;
	q->sub_ack = q->ack;
}

static void send_unsubscribe(struct mq_queue *q, struct pending *p)
{
	struct mq_session *s = q->s;
	struct frame_writer w;
	fw_begin(&w, client_out(s), 16 + FW_HDR_BOUND(2, strlen(q->id)) + FW_HDR_BOUND(7, FW_U64_MAX),
	         s->version);
	fw_str(&w, "UNSUBSCRIBE\n");
	fw_hdrs(&w, "id", q->id);
	if (p) {
		fw_str(&w, "receipt:");
		fw_u64(&w, p->id);
		*w.p++ = '\n';
	}
	fw_raw(&w, "\n", 2);
	s->stats.bytes_out += fw_end(&w);
	s->stats.frames_out++;
}

void client_unsubscribe(struct mq_queue *q, enum pend_why why)
{
	struct mq_session *s = q->s;
	struct pending *p = client_pending_new(s, PEND_UNSUBSCRIBE);
	p->q = q;
	p->why = why;
	send_unsubscribe(q, p);
	q->subscribed = false;
	q->gen++;
	/* Several may overlap (configure twice, pause, suspend): the frames
	 * still arriving are delivered only when every subscription being
	 * withdrawn was ack:auto, since the broker takes back the others. */
	q->stale_deliver = (q->unsub_wait ? q->stale_deliver : true) && q->sub_ack == MQ_ACK_AUTO;
	q->unsub_wait++;
}

/* A configure or open that has nothing to send is done at once. */
static void ready_now(struct mq_queue *q)
{
	if (q->on_ready || q->waiter)
		client_queue_done(q, MQ_ACK_OK, "");
}

void client_queue_suspend(struct mq_queue *q)
{
	struct mq_session *s = q->s;
	char t[600];
	q->suspended = true;
	if (q->subscribed && s->state == MQ_SESSION_CONNECTED) {
		client_unsubscribe(q, WHY_SUSPEND);	/* QUEUE_SUSPENDED on its RECEIPT */
		return;
	}
	snprintf(t, sizeof t, "suspended %s (host unhealthy)", q->dest);
	client_emit_queue(s, MQ_EVENT_QUEUE_SUSPENDED, q, t);
}

void client_queue_resume(struct mq_queue *q)
{
	struct mq_session *s = q->s;
	char t[600];
	q->suspended = false;
	if (client_wants_sub(q) && !q->subscribed && s->state == MQ_SESSION_CONNECTED) {
		client_subscribe(q, WHY_RESUME);	/* QUEUE_RESUMED on its RECEIPT */
		s->resuming++;
		return;
	}
	snprintf(t, sizeof t, "resumed %s", q->dest);
	client_emit_queue(s, MQ_EVENT_QUEUE_RESUMED, q, t);
}

void client_queue_done(struct mq_queue *q, enum mq_ack_status st, const char *text)
{
	struct mq_ack ack = { .status = st, .text = text ? text : "" };
	if (q->dead)
		return;
	if (q->waiter) {
		q->waiter->done = true;
		q->waiter->status = st;
		snprintf(q->waiter->text, sizeof q->waiter->text, "%s", ack.text);
		q->waiter = NULL;
	}
	if (q->on_ready)
		q->on_ready(q, &ack, q->arg);
}

struct mq_queue *client_open(struct mq_session *s, const char *destination, unsigned flags,
                             const struct mq_queue_opts *opts, struct sync_wait *waiter)
{
	struct mq_queue *q;
	char idbuf[32];
	const char *id = "";

	if (!destination || !*destination) {
		client_set_err(s, "cannot open a queue: empty destination");
		return NULL;
	}
	if (!flags || (flags & ~(unsigned)(MQ_READ | MQ_WRITE))) {
		client_set_err(s, "cannot open %s: flags 0x%x, expected MQ_READ, MQ_WRITE or both",
		               destination, flags);
		return NULL;
	}
	if (s->free_requested) {
		client_set_err(s, "cannot open %s: the session is being freed", destination);
		return NULL;
	}
	if (!opts_ok(s, destination, opts))
		return NULL;
	if (flags & MQ_READ) {
		if (opts && opts->id && *opts->id) {
			id = opts->id;
		} else {
			/* Skip ids a caller chose by hand that look like ours. */
			do
				snprintf(idbuf, sizeof idbuf, "sub-%u", ++s->next_sub);
			while (strmap_get(&s->subs, idbuf));
			id = idbuf;
		}
		if (strmap_get(&s->subs, id)) {
			client_set_err(s, "cannot open %s: subscription id '%s' is already in use in this session",
			               destination, id);
			return NULL;
		}
	}
	q = xcalloc(1, sizeof *q);
	q->s = s;
	q->dest = xstrdup(destination);
	q->id = xstrdup(id);
	q->flags = flags;
	set_opts(q, opts);
	q->waiter = waiter;
	q->sub_ack = q->ack;
	q->next = s->queues;
	if (s->queues)
		s->queues->prev = q;
	s->queues = q;
	if (flags & MQ_READ)
		strmap_put(&s->subs, q->id, q);
	if (!s->healthy && q->suspend_opt) {
		/* Opened while the host is unhealthy: suspended from the start. */
		char t[600];
		q->suspended = true;
		snprintf(t, sizeof t, "suspended %s (host unhealthy)", q->dest);
		client_emit_queue(s, MQ_EVENT_QUEUE_SUSPENDED, q, t);
	}
	if (flags & MQ_READ) {
		if (!client_wants_sub(q))
			ready_now(q);
		else if (s->state == MQ_SESSION_CONNECTED)
			client_subscribe(q, WHY_OPEN);
	}
	return q;
}

struct mq_queue *mq_open(struct mq_session *s, const char *destination, unsigned flags,
                         const struct mq_queue_opts *opts)
{
	return client_open(s, destination, flags, opts, NULL);
}

int mq_configure(struct mq_queue *q, const struct mq_queue_opts *opts)
{
	struct mq_session *s = q->s;
	bool was_sub, want;

	if (q->dead) {
		client_set_err(s, "cannot configure %s: the queue is closed", q->dest);
		return -1;
	}
	if (!(q->flags & MQ_READ)) {
		client_set_err(s, "cannot configure %s: it was not opened with MQ_READ", q->dest);
		return -1;
	}
	if (opts && opts->id && *opts->id && strcmp(opts->id, q->id) != 0) {
		client_set_err(s, "cannot configure %s: the subscription id is '%s' and cannot change to '%s'",
		               q->dest, q->id, opts->id);
		return -1;
	}
	if (!opts_ok(s, q->dest, opts))
		return -1;
	client_enter(s);
	was_sub = q->subscribed;
	set_opts(q, opts);
	q->refused = false;	/* the application tries again */
	q->gen++;
	/* While the host is unhealthy, suspension follows the option. */
	if (!s->healthy && q->suspend_opt != q->suspended) {
		char t[600];
		q->suspended = q->suspend_opt;
		snprintf(t, sizeof t, "%s %s", q->suspended ? "suspended" : "resumed", q->dest);
		client_emit_queue(s, q->suspended ? MQ_EVENT_QUEUE_SUSPENDED : MQ_EVENT_QUEUE_RESUMED, q, t);
	}
	want = client_wants_sub(q);
	if (s->state != MQ_SESSION_CONNECTED) {
		/* The next CONNECTED subscribes with these, and on_ready fires
		 * then; a queue that will not be subscribed is ready now. */
		if (!want)
			ready_now(q);
	} else if (was_sub && want) {
		client_unsubscribe(q, WHY_CONFIGURE);
		client_subscribe(q, WHY_OPEN);
	} else if (was_sub) {
		client_unsubscribe(q, WHY_PAUSE);
	} else if (want) {
		client_subscribe(q, WHY_OPEN);
	} else {
		ready_now(q);
	}
	client_leave(s);
	return 0;
}

static void unlink_queue(struct mq_queue **head, struct mq_queue *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		*head = q->next;
	if (q->next)
		q->next->prev = q->prev;
	q->prev = q->next = NULL;
}

static void push_queue(struct mq_queue **head, struct mq_queue *q)
{
	q->prev = NULL;
	q->next = *head;
	if (*head)
		(*head)->prev = q;
	*head = q;
}

void mq_close(struct mq_queue *q)
{
	struct mq_session *s;
	if (!q || q->dead)
		return;
	s = q->s;
	client_enter(s);
	if (q->flags & MQ_READ) {
		strmap_del(&s->subs, q->id);
		if (s->state == MQ_SESSION_CONNECTED && q->subscribed)
			send_unsubscribe(q, NULL);
	}
	client_pending_cancel_queue(s, q);
	q->waiter = NULL;
	q->dead = true;
	unlink_queue(&s->queues, q);
	/* Freed by the sweep, once no callback can be using it. */
	push_queue(&s->dead_queues, q);
	client_leave(s);
}

/* Fails the queue's posts still waiting for an acknowledgement. */
static void cancel_posts(struct mq_queue *q, enum mq_ack_reason reason, const char *text)
{
	struct mq_session *s = q->s;
	size_t it = 0, n = 0, cap = 0;
	uint64_t key;
	void *v;
	struct pending **list = NULL;

	while (u64map_next(&s->pending, &it, &key, &v)) {
		struct pending *p = v;
		if (key == 0 || p->kind != PEND_POST || p->q != q)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			list = xrealloc(list, cap * sizeof *list);
		}
		list[n++] = p;
	}
	for (size_t i = 0; i < n; i++)
		u64map_del(&s->pending, list[i]->id);
	for (size_t i = 0; i < n; i++)
		client_settle(s, list[i], MQ_ACK_FAILED,
		              reason == MQ_ACK_CANCELED && list[i]->sent && s->state != MQ_SESSION_CONNECTED ?
		              MQ_ACK_CONNECTION : reason, text);
	free(list);
}

static void close_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mq_queue *q = arg;
	struct mq_session *s = q->s;
	char t[300];
	client_enter(s);
	snprintf(t, sizeof t, "queue %s closed with posts unanswered", q->dest);
	/* Held open while its posts fail, so that their settling does not
	 * report the close as a normal one. */
	q->close_wait++;
	cancel_posts(q, MQ_ACK_CANCELED, t);
	client_close_finish(q, MQ_ACK_FAILED, t);
	client_leave(s);
}

int mq_close_then(struct mq_queue *q, unsigned timeout_ms, mq_ack_cb on_closed, void *arg)
{
	struct mq_session *s;
	size_t it = 0;
	uint64_t key;
	void *v;

	if (!q || q->dead)
		return -1;
	s = q->s;
	client_enter(s);
	if (q->flags & MQ_READ) {
		strmap_del(&s->subs, q->id);
		if (s->state == MQ_SESSION_CONNECTED && q->subscribed) {
			client_unsubscribe(q, WHY_CLOSE);
			q->close_wait++;
		}
	}
	/* Receipts of its subscription no longer concern it; its posts and
	 * its last UNSUBSCRIBE do. */
	while (u64map_next(&s->pending, &it, &key, &v)) {
		struct pending *p = v;
		if (key != 0 && p->q == q && p->kind != PEND_POST &&
		    !(p->kind == PEND_UNSUBSCRIBE && p->why == WHY_CLOSE))
			p->q = NULL;
	}
	q->waiter = NULL;
	q->dead = true;
	q->closing = true;
	q->on_closed = on_closed;
	q->closed_arg = arg;
	unlink_queue(&s->queues, q);
	push_queue(&s->closing, q);
	if (s->state != MQ_SESSION_CONNECTED) {
		char t[300];
		snprintf(t, sizeof t, "queue %s closed while not connected", q->dest);
		cancel_posts(q, MQ_ACK_CANCELED, t);
	} else if (timeout_ms && (q->acks_pending || q->close_wait)) {
		struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
		q->close_timer = evtimer_new(s->base, close_timeout_cb, q);
		evtimer_add(q->close_timer, &tv);
	}
	client_close_check(q);
	client_leave(s);
	return 0;
}

void client_close_check(struct mq_queue *q)
{
	if (q->closing && q->acks_pending == 0 && q->close_wait == 0)
		client_close_finish(q, MQ_ACK_OK, "");
}

void client_close_finish(struct mq_queue *q, enum mq_ack_status st, const char *text)
{
	struct mq_session *s = q->s;
	struct mq_ack ack = { .status = st, .text = text ? text : "",
	                      .reason = st == MQ_ACK_OK ? MQ_ACK_NONE : MQ_ACK_CANCELED };
	if (!q->closing)
		return;
	q->closing = false;
	if (q->close_timer)
		event_del(q->close_timer);
	unlink_queue(&s->closing, q);
	client_pending_cancel_queue(s, q);
	push_queue(&s->dead_queues, q);
	if (q->on_closed)
		q->on_closed(s, &ack, q->closed_arg);
}

void client_queue_free(struct mq_queue *q)
{
	if (q->close_timer)
		event_free(q->close_timer);
	free_headers(q->hdrs, q->nhdrs);
	free(q->selector);
	free(q->send_prefix);
	free(q->dest);
	free(q->id);
	free(q);
}

const char *mq_queue_destination(const struct mq_queue *q) { return q->dest; }
const char *mq_queue_id(const struct mq_queue *q) { return q->id; }
void *mq_queue_arg(const struct mq_queue *q) { return q->arg; }
struct mq_session *mq_queue_session(const struct mq_queue *q) { return q->s; }

/* ---- delivery ---- */

static struct mq_queue *by_destination(struct mq_session *s, const char *dest)
{
	/* A 1.0 broker need not say which subscription a MESSAGE is for. */
	if (!dest)
		return NULL;
	for (struct mq_queue *q = s->queues; q; q = q->next)
		if ((q->flags & MQ_READ) && strcmp(q->dest, dest) == 0)
			return q;
	return NULL;
}

void client_deliver(struct mq_session *s, struct frame *f)
{
	const char *sub = frame_get(f, "subscription");
	struct mq_queue *q = sub ? strmap_get(&s->subs, sub) : by_destination(s, frame_get(f, "destination"));
	struct mq_message *m = &s->cur;
	mq_message_cb cb;
	void *arg;
	bool stale;

	if (!q) {
		s->stats.dropped++;
		if (log_enabled(LOG_DEBUG))
			log_debug("session %u %s: MESSAGE for subscription '%s' that is not open dropped",
			          s->serial, s->addr, sub ? sub : "(none)");
		return;
	}
	stale = q->unsub_wait > 0;
	if ((stale && !q->stale_deliver) || (!stale && !q->subscribed)) {
		/* The broker took it back when it processed our UNSUBSCRIBE. */
		s->stats.dropped++;
		return;
	}
	memset(m, 0, sizeof *m);
	m->s = s;
	m->q = q;
	m->epoch = s->epoch;
	m->gen = q->gen;
	m->seq = ++q->delivered;
	m->ack_mode = stale ? MQ_ACK_AUTO : q->ack;
	m->ver = s->version;
	client_message_fill(m, f->hdrs, f->nhdrs);
	m->body = f->body;
	m->len = f->body_len;
	s->stats.received++;
	cb = q->on_message ? q->on_message : s->on_message;
	arg = q->on_message ? q->arg : s->arg;
	if (cb)
		cb(s, m, arg);
	/* Whatever copy mq_message_ref made now lives on its own. */
	m->copy = NULL;
}

/* ---- posting ---- */

static void build_prefix(struct mq_queue *q, enum stomp_version v)
{
	size_t dl = strlen(q->dest);
	char *p;
	free(q->send_prefix);
	q->send_prefix = p = xmalloc(5 + FW_HDR_BOUND(11, dl));
	memcpy(p, "SEND\ndestination:", 17);
	p += 17;
	p += frame_escape(p, q->dest, dl, v);
	*p++ = '\n';
	q->send_prefix_len = (size_t)(p - q->send_prefix);
	q->prefix_ver = v;
}

static bool reserved_header(const char *name)
{
	return strcmp(name, "destination") == 0 || strcmp(name, "receipt") == 0 ||
	       strcmp(name, "content-length") == 0;
}

/* Writes one SEND: the prepared destination line, the receipt (0: none),
 * persistent, the headers, content-length and the body. */
static void write_send(struct mq_queue *q, const void *body, size_t len, const char *raw, size_t raw_len,
                       const struct mq_header *headers, size_t nheaders, unsigned flags, uint64_t receipt)
{
	struct mq_session *s = q->s;
	struct evbuffer *out = client_out(s);
	struct frame_writer w;
	bool inline_body = len <= INLINE_BODY_MAX;
	size_t bound;

	if (q->prefix_ver != s->version || !q->send_prefix)
		build_prefix(q, s->version);
	bound = q->send_prefix_len + 9 + FW_U64_MAX + 16 + 16 + FW_U64_MAX + 3 + raw_len;
	for (size_t i = 0; i < nheaders; i++)
		bound += FW_HDR_BOUND(strlen(headers[i].name), strlen(headers[i].value));
	if (inline_body)
		bound += len;

	fw_begin(&w, out, bound, s->version);
	fw_raw(&w, q->send_prefix, q->send_prefix_len);
	if (receipt) {
		fw_raw(&w, "receipt:", 8);
		fw_u64(&w, receipt);
		*w.p++ = '\n';
	}
	if (flags & MQ_PERSISTENT)
		fw_raw(&w, "persistent:true\n", 16);
	for (size_t i = 0; i < nheaders; i++)
		fw_hdrs(&w, headers[i].name, headers[i].value);
	if (raw_len)
		fw_raw(&w, raw, raw_len);
	fw_raw(&w, "content-length:", 15);
	fw_u64(&w, len);
	fw_raw(&w, "\n\n", 2);
	if (inline_body) {
		if (len)
			fw_raw(&w, body, len);
		*w.p++ = 0;
		s->stats.bytes_out += fw_end(&w);
	} else {
		s->stats.bytes_out += fw_end(&w);
		evbuffer_add(out, body, len);
		evbuffer_add(out, "", 1);
		s->stats.bytes_out += len + 1;
	}
	s->stats.frames_out++;
	client_check_high_water(s);
}

void client_post_copy_free(struct post_copy *c) { free(c); }

/* The copy kept to send the post again: the caller's headers, then the
 * post id (unless the caller set one), then the body, in one block. */
static struct post_copy *copy_post(struct mq_session *s, uint64_t receipt, const void *body, size_t len,
                                   const struct mq_header *headers, size_t nheaders, unsigned flags)
{
	char id[64];
	bool own_id = false;
	size_t need, nh;
	struct post_copy *c;
	char *p;

	for (size_t i = 0; i < nheaders && !own_id; i++)
		own_id = strcmp(headers[i].name, MQ_POST_ID_HEADER) == 0;
	snprintf(id, sizeof id, "%s-%" PRIu64, s->post_nonce, receipt);
	nh = nheaders + !own_id;
	need = sizeof *c + nh * sizeof(struct mq_header) + len + 1;
	for (size_t i = 0; i < nheaders; i++)
		need += strlen(headers[i].name) + strlen(headers[i].value) + 2;
	if (!own_id)
		need += sizeof MQ_POST_ID_HEADER + strlen(id) + 1;
	c = xmalloc(need);
	c->flags = flags;
	c->nhdrs = nh;
	c->hdrs = (struct mq_header *)(c + 1);
	p = (char *)(c->hdrs + nh);
	for (size_t i = 0; i < nh; i++) {
		const char *n = i < nheaders ? headers[i].name : MQ_POST_ID_HEADER;
		const char *v = i < nheaders ? headers[i].value : id;
		size_t nl = strlen(n) + 1, vl = strlen(v) + 1;
		memcpy(p, n, nl);
		c->hdrs[i].name = p;
		p += nl;
		memcpy(p, v, vl);
		c->hdrs[i].value = p;
		p += vl;
		if (strcmp(n, MQ_POST_ID_HEADER) == 0)
			c->post_id = c->hdrs[i].value;
	}
	if (len)
		memcpy(p, body, len);
	p[len] = 0;
	c->body = p;
	c->len = len;
	return c;
}

/* Raw header lines must be whole lines, each with a name, none of them a
 * header the library writes: a forwarder's block goes out as it is. */
static bool raw_ok(struct mq_queue *q, const char *raw, size_t raw_len)
{
	struct mq_session *s = q->s;
	const char *p = raw, *end = raw + raw_len;
	if (raw_len && raw[raw_len - 1] != '\n') {
		client_set_err(s, "cannot post to %s: raw headers must end with a line feed", q->dest);
		return false;
	}
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *colon = memchr(p, ':', (size_t)(eol - p));
		size_t nlen = colon ? (size_t)(colon - p) : 0;
		char name[16];
		if (!colon || nlen == 0 || memchr(p, 0, (size_t)(eol - p))) {
			client_set_err(s, "cannot post to %s: raw header line '%.*s' is not name:value", q->dest,
			               (int)MIN((size_t)(eol - p), 64), p);
			return false;
		}
		if (nlen < sizeof name) {
			memcpy(name, p, nlen);
			name[nlen] = 0;
			if (reserved_header(name)) {
				client_set_err(s, "cannot post to %s: header '%s' is written by the library", q->dest, name);
				return false;
			}
		}
		p = eol + 1;
	}
	return true;
}

int client_post(struct mq_queue *q, const void *body, size_t len, const char *raw, size_t raw_len,
                const struct mq_header *headers, size_t nheaders,
                unsigned flags, mq_ack_cb on_ack, void *arg, uint64_t *receipt)
{
	struct mq_session *s = q->s;
	struct pending *p = NULL;
	/* A raw block is escaped for this connection's version: it is not
	 * kept to be sent on another. */
	bool keep = on_ack && s->reconnect && s->repost == MQ_REPOST_RESEND && !raw_len;
	bool away = keep && client_reconnecting(s);
	enum stomp_version v = s->state == MQ_SESSION_CONNECTED ? s->version : s->last_version;

	if (q->dead) {
		client_set_err(s, "cannot post to %s: the queue is closed", q->dest);
		return -1;
	}
	if (q->suspended) {
		client_set_err(s, "cannot post to %s: the queue is suspended while the host is unhealthy", q->dest);
		return MQ_ERR_SUSPENDED;
	}
	if (raw_len && s->state != MQ_SESSION_CONNECTED) {
		client_set_err(s, "cannot post to %s: session %s is %s (raw headers need a connection)", q->dest,
		               s->addr, mq_session_state_name(s->state));
		return -1;
	}
	if (s->state != MQ_SESSION_CONNECTED && !away) {
		client_set_err(s, "cannot post to %s: session %s is %s", q->dest, s->addr,
		               mq_session_state_name(s->state));
		return -1;
	}
	if (!(q->flags & MQ_WRITE)) {
		client_set_err(s, "cannot post to %s: the queue was not opened with MQ_WRITE", q->dest);
		return -1;
	}
	if (!body && len) {
		client_set_err(s, "cannot post to %s: NULL body of %zu bytes", q->dest, len);
		return -1;
	}
	for (size_t i = 0; i < nheaders; i++) {
		const char *n = headers[i].name;
		if (!client_header_ok(s, "SEND", n, headers[i].value, v))
			return -1;
		if (reserved_header(n)) {
			client_set_err(s, "cannot post to %s: header '%s' is written by the library", q->dest, n);
			return -1;
		}
	}
	if (raw_len && !raw_ok(q, raw, raw_len))
		return -1;
	if (on_ack) {
		p = client_pending_new(s, PEND_POST);
		p->cb = on_ack;
		p->arg = arg;
		p->q = q;
		q->acks_pending++;
		if (receipt)
			*receipt = p->id;
	}
	s->stats.posted++;
	if (keep) {
		p->copy = copy_post(s, p->id, body, len, headers, nheaders, flags);
		if (away)
			return 0;	/* sent once the connection is back */
		write_send(q, p->copy->body, p->copy->len, NULL, 0, p->copy->hdrs, p->copy->nhdrs, flags, p->id);
	} else {
		write_send(q, body, len, raw, raw_len, headers, nheaders, flags, p ? p->id : 0);
	}
	if (p)
		p->sent = true;
	return 0;
}

void client_repost(struct mq_session *s, struct pending *p)
{
	struct mq_queue *q = p->q;
	const char *why = NULL;

	if (!q || q->dead)
		why = "the queue was closed before the post could be sent again";
	else if (q->suspended)
		why = "the queue is suspended (host unhealthy): the post was not sent again";
	if (why) {
		u64map_del(&s->pending, p->id);
		client_settle(s, p, MQ_ACK_FAILED, p->sent ? MQ_ACK_CONNECTION : MQ_ACK_CANCELED, why);
		return;
	}
	/* Headers were checked against the version of the connection they
	 * were posted on; a broker of another version may refuse what cannot
	 * be escaped for it. */
	for (size_t i = 0; i < p->copy->nhdrs; i++) {
		if (!client_header_ok(s, "SEND", p->copy->hdrs[i].name, p->copy->hdrs[i].value, s->version)) {
			char t[600];
			snprintf(t, sizeof t, "cannot send the post again: %s", s->err);
			u64map_del(&s->pending, p->id);
			client_settle(s, p, MQ_ACK_FAILED, p->sent ? MQ_ACK_CONNECTION : MQ_ACK_CANCELED, t);
			return;
		}
	}
	write_send(q, p->copy->body, p->copy->len, NULL, 0, p->copy->hdrs, p->copy->nhdrs, p->copy->flags, p->id);
	if (p->sent)
		s->stats.reposted++;
	p->sent = true;
}

int mq_post(struct mq_queue *q, const void *body, size_t len,
            const struct mq_header *headers, size_t nheaders,
            unsigned flags, mq_ack_cb on_ack, void *arg)
{
	return client_post(q, body, len, NULL, 0, headers, nheaders, flags, on_ack, arg, NULL);
}

int mq_post_raw(struct mq_queue *q, const void *body, size_t len,
                const struct mq_header *headers, size_t nheaders, const char *raw, size_t raw_len,
                unsigned flags, mq_ack_cb on_ack, void *arg)
{
	if (!raw && raw_len) {
		client_set_err(q->s, "cannot post to %s: NULL raw headers of %zu bytes", q->dest, raw_len);
		return -1;
	}
	return client_post(q, body, len, raw, raw_len, headers, nheaders, flags, on_ack, arg, NULL);
}

/* ---- transactions ---- */

static int tx_frame(struct mq_session *s, const char *cmd, const char *tx, mq_ack_cb on_done, void *arg)
{
	struct frame_writer w;
	if (!tx || !*tx) {
		client_set_err(s, "%s: empty transaction name", cmd);
		return -1;
	}
	if (s->state != MQ_SESSION_CONNECTED) {
		client_set_err(s, "cannot %s transaction %s: session %s is %s", cmd, tx, s->addr,
		               mq_session_state_name(s->state));
		return -1;
	}
	if (!client_header_ok(s, cmd, "transaction", tx, s->version))
		return -1;
	fw_begin(&w, client_out(s), 16 + FW_HDR_BOUND(11, strlen(tx)) + FW_HDR_BOUND(7, FW_U64_MAX), s->version);
	fw_str(&w, cmd);
	*w.p++ = '\n';
	fw_hdrs(&w, "transaction", tx);
	if (on_done) {
		struct pending *p = client_pending_new(s, PEND_TX);
		p->cb = on_done;
		p->arg = arg;
		fw_str(&w, "receipt:");
		fw_u64(&w, p->id);
		*w.p++ = '\n';
	}
	fw_raw(&w, "\n", 2);
	s->stats.bytes_out += fw_end(&w);
	s->stats.frames_out++;
	return 0;
}

int mq_tx_begin(struct mq_session *s, const char *tx) { return tx_frame(s, "BEGIN", tx, NULL, NULL); }

int mq_tx_commit(struct mq_session *s, const char *tx, mq_ack_cb on_done, void *arg)
{
	return tx_frame(s, "COMMIT", tx, on_done, arg);
}

int mq_tx_abort(struct mq_session *s, const char *tx, mq_ack_cb on_done, void *arg)
{
	return tx_frame(s, "ABORT", tx, on_done, arg);
}
