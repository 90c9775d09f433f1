/* agent.c: a session on a thread of its own, for programs and language
 * bindings that want BlazingMQ's threading rather than an event loop.
 *
 * The session is the ordinary one, on an event_base that only the agent's
 * thread runs. Other threads never touch it: they append requests to a
 * queue and wake the thread through a pipe; the thread turns what the
 * session reports into events that a poller takes in order. One mutex
 * guards both queues and the few facts that callers check at once (which
 * queues are open and writable, whether the session can post, which
 * messages can still be confirmed): those are mirrors, refreshed by the
 * thread after every request and event, so that a call answers without
 * waiting for the thread. The thread has the last word: a post the mirror
 * let through that the session then refuses is failed by an ACK. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "client_int.h"
#include "common/log.h"
#include "common/util.h"

static __thread char agent_err[512];

static void set_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_err(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(agent_err, sizeof agent_err, fmt, ap);
	va_end(ap);
}

const char *mq_agent_error(void) { return agent_err; }

enum cmd_kind {
	CMD_OPEN,
	CMD_CONFIGURE,
	CMD_CLOSE,
	CMD_POST,
	CMD_CONFIRM,
	CMD_RELEASE,	/* drop a kept message that can no longer be confirmed */
	CMD_HEALTH,
	CMD_SYNC,
	CMD_STOP,
	CMD_QUIT,	/* mq_agent_free: abort and end the thread */
};

/* A message kept so that it can be confirmed by its token. */
struct kept {
	struct mq_message *m;	/* client_message_keep; the thread's alone */
	uint32_t queue;
	uint32_t epoch, gen;	/* the message's, to compare with the mirrors */
};

struct cmd {
	struct cmd *next;
	enum cmd_kind kind;
	uint32_t queue;
	uint64_t token;
	unsigned flags;
	unsigned timeout_ms;
	bool healthy;
	bool has_opts;
	struct mq_queue_opts opts;	/* strings and headers in blob */
	const char *dest;
	struct mq_header *hdrs;
	size_t nhdrs;
	const char *body;
	size_t len;
	struct kept *kept;
	char blob[];
};

/* One token waiting for an on_ready: requests complete in order. */
struct ready_wait {
	uint64_t token;
	struct ready_wait *next;
};

/* One open queue. Fields marked (mirror) are read by callers under the
 * mutex; the rest belong to the thread. */
struct aq {
	struct mq_agent *a;
	uint32_t id;
	struct mq_queue *q;		/* NULL until the thread opened it */
	unsigned flags;			/* (mirror) MQ_READ | MQ_WRITE */
	bool open;			/* (mirror) false once a close is asked for */
	bool suspended;			/* (mirror) */
	uint32_t gen;			/* (mirror) q->gen */
	struct ready_wait *ready, *ready_tail;
	uint64_t close_token;
};

struct mq_agent {
	struct event_base *base;	/* owned */
	struct mq_session *s;		/* owned; the thread's */
	struct event *wake_ev;		/* the pipe's read end */
	int wake_rd, wake_wr;
	pthread_t thread;
	bool started, joined;

	pthread_mutex_t mu;
	pthread_cond_t have_events;	/* for the poller */
	pthread_cond_t writable;	/* for mq_agent_wait_writable */

	/* requests, under mu */
	struct cmd *cmd_head, *cmd_tail;

	/* events, under mu: ev[head..count) wait for the poller; blocks[i]
	 * owns ev[i]'s strings. What the poller took last time is freed at
	 * its next call. */
	struct mq_agent_event *ev;
	void **blocks;
	size_t head, count, cap;
	void **taken;
	size_t ntaken, taken_cap;
	bool closed;			/* CLOSED queued: the thread is done */

	/* mirrors, under mu */
	struct u64map queues;		/* id -> struct aq */
	uint32_t next_queue;
	struct u64map kept;		/* message token -> struct kept */
	uint64_t next_message;
	uint32_t epoch;
	bool can_post;			/* CONNECTED */
	bool can_keep;			/* reconnecting with MQ_REPOST_RESEND: posts with an ack wait */
	bool above_high;		/* output above out_high_water, no DRAINED yet */

	/* the thread's */
	bool stopping;
	uint64_t stop_token;
	bool freeing;			/* mq_agent_free: callbacks only report */
};

/* ---- the event queue (caller holds mu) ---- */

static void push_event(struct mq_agent *a, const struct mq_agent_event *e, void *block)
{
	if (a->count == a->cap) {
		if (a->head > 0) {
			memmove(a->ev, a->ev + a->head, (a->count - a->head) * sizeof *a->ev);
			memmove(a->blocks, a->blocks + a->head, (a->count - a->head) * sizeof *a->blocks);
			a->count -= a->head;
			a->head = 0;
		} else {
			a->cap = a->cap ? a->cap * 2 : 256;
			a->ev = xrealloc(a->ev, a->cap * sizeof *a->ev);
			a->blocks = xrealloc(a->blocks, a->cap * sizeof *a->blocks);
		}
	}
	a->ev[a->count] = *e;
	if (!a->ev[a->count].text)
		a->ev[a->count].text = "";
	a->blocks[a->count] = block;
	a->count++;
	pthread_cond_signal(&a->have_events);
}

/* An event whose text is copied into a block of its own. */
static void push_text_event(struct mq_agent *a, struct mq_agent_event *e, const char *text)
{
	char *block = NULL;
	if (text && *text) {
		block = xstrdup(text);
		e->text = block;
	}
	pthread_mutex_lock(&a->mu);
	push_event(a, e, block);
	pthread_mutex_unlock(&a->mu);
}

static void push_done(struct mq_agent *a, uint64_t token, int code, const char *text)
{
	struct mq_agent_event e = { .kind = MQ_AGENT_DONE, .code = code, .token = token };
	push_text_event(a, &e, text);
}

/* ---- mirrors (the thread, holding mu) ---- */

/* Kept messages that the broker has taken back (their connection or
 * subscription is gone) become tombstones, so that confirming one still
 * says why it cannot be; their copies are handed to the caller to release
 * outside the lock. Those of closed queues go altogether. */
struct stale {
	void **m;		/* struct mq_message * */
	void **gone;		/* struct kept * */
	size_t nm, ngone;
};

static void stale_add(void ***list, size_t *n, void *p)
{
	if (*n == 0 || (*n & (*n - 1)) == 0)	/* full at each power of two */
		*list = xrealloc(*list, (*n ? 2 * *n : 1) * sizeof **list);
	(*list)[(*n)++] = p;
}

static void refresh(struct mq_agent *a, struct stale *st)
{
	struct mq_session *s = a->s;
	size_t it = 0;
	uint64_t key;
	void *v;

	a->epoch = s->epoch;
	a->can_post = s->state == MQ_SESSION_CONNECTED;
	a->can_keep = client_reconnecting(s);
	if (!a->can_post && !a->can_keep && a->above_high) {
		a->above_high = false;
		pthread_cond_broadcast(&a->writable);
	}
	while (u64map_next(&a->queues, &it, NULL, &v)) {
		struct aq *aq = v;
		if (!aq->q)
			continue;
		aq->gen = aq->q->gen;
		aq->suspended = aq->q->suspended;
	}
	it = 0;
	while (u64map_next(&a->kept, &it, &key, &v)) {
		struct kept *k = v;
		struct aq *aq = u64map_get(&a->queues, k->queue);
		if (!aq) {
			stale_add(&st->gone, &st->ngone, k);
		} else if (k->m && (k->epoch != a->epoch || k->gen != aq->gen)) {
			stale_add(&st->m, &st->nm, k->m);
			k->m = NULL;
		}
	}
	for (size_t i = 0; i < st->ngone; i++) {
		it = 0;
		while (u64map_next(&a->kept, &it, &key, &v))
			if (v == st->gone[i]) {
				u64map_del(&a->kept, key);
				break;
			}
	}
}

static void sync_mirrors(struct mq_agent *a)
{
	struct stale st = { 0 };
	if (a->freeing)
		return;
	pthread_mutex_lock(&a->mu);
	refresh(a, &st);
	pthread_mutex_unlock(&a->mu);
	for (size_t i = 0; i < st.nm; i++)
		mq_message_unref(st.m[i]);
	for (size_t i = 0; i < st.ngone; i++) {
		struct kept *k = st.gone[i];
		mq_message_unref(k->m);
		free(k);
	}
	free(st.m);
	free(st.gone);
}

/* ---- session callbacks (the thread) ---- */

static void on_event(struct mq_session *s, const struct mq_event *ev, void *arg)
{
	struct mq_agent *a = arg;
	struct mq_agent_event e = { .kind = MQ_AGENT_EVENT, .code = ev->type };

	if (ev->queue) {
		struct aq *aq = mq_queue_arg(ev->queue);
		e.queue = aq ? aq->id : 0;
	}
	if (ev->type == MQ_EVENT_DRAINED) {
		pthread_mutex_lock(&a->mu);
		a->above_high = false;
		pthread_cond_broadcast(&a->writable);
		pthread_mutex_unlock(&a->mu);
	}
	sync_mirrors(a);
	push_text_event(a, &e, ev->text);
	if (a->stopping && (ev->type == MQ_EVENT_DISCONNECTED || ev->type == MQ_EVENT_CONNECT_FAILED)) {
		a->stopping = false;
		push_done(a, a->stop_token, 0, "");
		event_base_loopbreak(a->base);
	}
}

/* The post's token travels as the callback's arg; the agent is found
 * through the session's. */
static void ack_cb(struct mq_session *s, const struct mq_ack *ack, void *arg)
{
	struct mq_agent *a = s->arg;
	struct mq_agent_event e = { .kind = MQ_AGENT_ACK, .code = ack->status, .reason = ack->reason,
	                            .token = (uint64_t)(uintptr_t)arg };
	push_text_event(a, &e, ack->text);
}

static void ready_cb(struct mq_queue *q, const struct mq_ack *result, void *arg)
{
	struct aq *aq = arg;
	struct ready_wait *w = aq->ready;
	if (!w)
		return;	/* a reconnection's re-subscription: no request waits */
	aq->ready = w->next;
	if (!aq->ready)
		aq->ready_tail = NULL;
	push_done(aq->a, w->token, result->status == MQ_ACK_OK ? 0 : -1, result->text);
	free(w);
}

static void closed_cb(struct mq_session *s, const struct mq_ack *ack, void *arg)
{
	struct aq *aq = arg;
	struct mq_agent *a = aq->a;
	struct ready_wait *w;

	pthread_mutex_lock(&a->mu);
	u64map_del(&a->queues, aq->id);
	pthread_mutex_unlock(&a->mu);
	/* Requests still waiting on this queue will not be answered by it. */
	while ((w = aq->ready)) {
		aq->ready = w->next;
		push_done(a, w->token, -1, "the queue was closed");
		free(w);
	}
	push_done(a, aq->close_token, ack->status == MQ_ACK_OK ? 0 : -1, ack->text);
	free(aq);
	sync_mirrors(a);
}

/* Headers as name NUL value NUL ..., then the body and a NUL, in one block. */
static void message_cb(struct mq_session *s, struct mq_message *m, void *arg)
{
	struct aq *aq = arg;
	struct mq_agent *a = aq->a;
	struct mq_agent_event e = { .kind = MQ_AGENT_MESSAGE, .queue = aq->id };
	size_t n = mq_message_header_count(m), hlen = 0, blen;
	const void *body = mq_message_body(m, &blen);
	struct kept *k = xmalloc(sizeof *k);
	char *block, *p;

	for (size_t i = 0; i < n; i++) {
		const char *name, *value;
		mq_message_header_at(m, i, &name, &value);
		hlen += strlen(name) + strlen(value) + 2;
	}
	block = p = xmalloc(hlen + blen + 1);
	for (size_t i = 0; i < n; i++) {
		const char *name, *value;
		size_t nl, vl;
		mq_message_header_at(m, i, &name, &value);
		nl = strlen(name) + 1;
		vl = strlen(value) + 1;
		memcpy(p, name, nl);
		p += nl;
		memcpy(p, value, vl);
		p += vl;
	}
	memcpy(p, body, blen);
	p[blen] = 0;
	e.headers = block;
	e.headers_len = hlen;
	e.body = block + hlen;
	e.body_len = blen;
	e.redelivered = mq_message_redelivered(m);
	e.text = "";

	k->m = client_message_keep(m);
	k->queue = aq->id;
	k->epoch = m->epoch;
	k->gen = m->gen;
	pthread_mutex_lock(&a->mu);
	e.token = ++a->next_message;
	u64map_put(&a->kept, e.token, k);
	push_event(a, &e, block);
	pthread_mutex_unlock(&a->mu);
}

/* ---- requests (the thread) ---- */

static void ready_push(struct aq *aq, uint64_t token)
{
	struct ready_wait *w = xcalloc(1, sizeof *w);
	w->token = token;
	if (aq->ready_tail)
		aq->ready_tail->next = w;
	else
		aq->ready = w;
	aq->ready_tail = w;
}

static struct aq *queue_of(struct mq_agent *a, uint32_t id)
{
	struct aq *aq;
	pthread_mutex_lock(&a->mu);
	aq = u64map_get(&a->queues, id);
	pthread_mutex_unlock(&a->mu);
	return aq;
}

/* Messages of a queue that wait in the event queue, not yet polled, are
 * taken out before its subscription changes: the broker takes them back
 * with the old subscription, so the application would only be refused
 * their confirms. (The thread, not holding mu.) */
static void drop_queued_messages(struct mq_agent *a, uint32_t queue)
{
	size_t keep, n = 0, cap = 0;
	struct kept **gone = NULL;

	pthread_mutex_lock(&a->mu);
	keep = a->head;
	for (size_t i = a->head; i < a->count; i++) {
		if (a->ev[i].kind == MQ_AGENT_MESSAGE && a->ev[i].queue == queue) {
			struct kept *k = u64map_del(&a->kept, a->ev[i].token);
			free(a->blocks[i]);
			if (k) {
				if (n == cap) {
					cap = cap ? cap * 2 : 16;
					gone = xrealloc(gone, cap * sizeof *gone);
				}
				gone[n++] = k;
			}
			continue;
		}
		a->ev[keep] = a->ev[i];
		a->blocks[keep] = a->blocks[i];
		keep++;
	}
	a->count = keep;
	pthread_mutex_unlock(&a->mu);
	for (size_t i = 0; i < n; i++) {
		mq_message_unref(gone[i]->m);
		free(gone[i]);
	}
	free(gone);
}

static void agent_opts(struct aq *aq, struct mq_queue_opts *o)
{
	o->ack = MQ_ACK_CLIENT_INDIVIDUAL;
	o->on_message = message_cb;
	o->on_ready = ready_cb;
	o->arg = aq;
}

static void run_cmd(struct mq_agent *a, struct cmd *c)
{
	struct mq_session *s = a->s;
	struct aq *aq = c->kind == CMD_OPEN || c->kind == CMD_CONFIGURE || c->kind == CMD_CLOSE ||
	                c->kind == CMD_POST ? queue_of(a, c->queue) : NULL;

	switch (c->kind) {
	case CMD_OPEN:
		if (!aq)
			break;
		agent_opts(aq, &c->opts);
		if (c->flags & MQ_READ)
			ready_push(aq, c->token);
		aq->q = mq_open(s, c->dest, c->flags, &c->opts);
		if (!aq->q) {
			char why[600];
			snprintf(why, sizeof why, "%s", mq_session_error(s));
			if (c->flags & MQ_READ) {
				struct ready_wait *w = aq->ready;
				aq->ready = aq->ready_tail = NULL;
				free(w);
			}
			pthread_mutex_lock(&a->mu);
			u64map_del(&a->queues, aq->id);
			pthread_mutex_unlock(&a->mu);
			free(aq);
			push_done(a, c->token, -1, why);
		} else if (!(c->flags & MQ_READ)) {
			push_done(a, c->token, 0, "");
		}
		break;
	case CMD_CONFIGURE:
		if (!aq || !aq->q) {
			push_done(a, c->token, -1, "the queue is not open");
			break;
		}
		agent_opts(aq, &c->opts);
		ready_push(aq, c->token);
		drop_queued_messages(a, aq->id);
		if (mq_configure(aq->q, &c->opts) < 0) {
			/* Not queued after all: the last waiter is this one. */
			struct ready_wait *w = aq->ready, *prev = NULL;
			while (w && w->next) {
				prev = w;
				w = w->next;
			}
			if (prev)
				prev->next = NULL;
			else
				aq->ready = NULL;
			aq->ready_tail = prev;
			free(w);
			push_done(a, c->token, -1, mq_session_error(s));
		}
		break;
	case CMD_CLOSE:
		if (!aq || !aq->q) {
			push_done(a, c->token, -1, "the queue is not open");
			break;
		}
		aq->close_token = c->token;
		mq_close_then(aq->q, c->timeout_ms, closed_cb, aq);
		break;
	case CMD_POST: {
		int r = aq && aq->q ? mq_post(aq->q, c->body, c->len, c->hdrs, c->nhdrs, c->flags,
		                              c->token ? ack_cb : NULL, (void *)(uintptr_t)c->token)
		                    : -1;
		if (r < 0 && c->token) {
			struct mq_agent_event e = { .kind = MQ_AGENT_ACK, .code = MQ_ACK_FAILED,
			                            .reason = MQ_ACK_CANCELED, .token = c->token };
			push_text_event(a, &e, aq && aq->q ? mq_session_error(s) : "the queue is not open");
		}
		if (mq_session_pending_bytes(s) > s->out_high) {
			pthread_mutex_lock(&a->mu);
			a->above_high = true;
			pthread_mutex_unlock(&a->mu);
		}
		break;
	}
	case CMD_CONFIRM:
		/* A refusal here (the connection dropped since the caller
		 * checked) needs no answer: the broker delivers it again. */
		if (mq_confirm(c->kept->m) < 0 && log_enabled(LOG_DEBUG))
			log_debug("agent: %s", mq_session_error(s));
		/* fall through */
	case CMD_RELEASE:
		mq_message_unref(c->kept->m);
		free(c->kept);
		break;
	case CMD_HEALTH:
		mq_session_set_host_health(s, c->healthy);
		break;
	case CMD_SYNC:
		push_done(a, c->token, 0, "");
		break;
	case CMD_STOP:
		if (mq_session_state(s) == MQ_SESSION_IDLE) {
			push_done(a, c->token, 0, "");
			event_base_loopbreak(a->base);
		} else {
			a->stopping = true;
			a->stop_token = c->token;
			mq_session_stop(s);
		}
		break;
	case CMD_QUIT:
		mq_session_abort(s);
		event_base_loopbreak(a->base);
		break;
	}
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
	struct mq_agent *a = arg;
	struct cmd *list, *c;
	char buf[256];

	while (read(fd, buf, sizeof buf) > 0)
		;
	pthread_mutex_lock(&a->mu);
	list = a->cmd_head;
	a->cmd_head = a->cmd_tail = NULL;
	pthread_mutex_unlock(&a->mu);
	while ((c = list)) {
		list = c->next;
		run_cmd(a, c);
		free(c);
	}
	sync_mirrors(a);
}

static void *thread_main(void *arg)
{
	struct mq_agent *a = arg;
	struct mq_agent_event e = { .kind = MQ_AGENT_CLOSED, .text = "" };
	event_base_loop(a->base, EVLOOP_NO_EXIT_ON_EMPTY);
	pthread_mutex_lock(&a->mu);
	a->closed = true;
	a->can_post = a->can_keep = false;
	push_event(a, &e, NULL);
	pthread_cond_broadcast(&a->writable);
	pthread_mutex_unlock(&a->mu);
	return NULL;
}

/* ---- public ---- */

struct mq_agent *mq_agent_new(const struct mq_session_opts *opts)
{
	struct mq_agent *a;
	struct mq_session_opts o;
	int fds[2];

	if (!opts)
		return NULL;
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
		set_err("cannot create the agent's pipe: %s", strerror(errno));
		return NULL;
	}
	a = xcalloc(1, sizeof *a);
	a->wake_rd = fds[0];
	a->wake_wr = fds[1];
	a->base = event_base_new();
	o = *opts;
	o.on_event = on_event;
	o.on_message = NULL;
	o.arg = a;
	a->s = mq_session_new(a->base, &o);
	a->wake_ev = event_new(a->base, a->wake_rd, EV_READ | EV_PERSIST, wake_cb, a);
	event_add(a->wake_ev, NULL);
	pthread_mutex_init(&a->mu, NULL);
	pthread_cond_init(&a->have_events, NULL);
	pthread_cond_init(&a->writable, NULL);
	u64map_init(&a->queues);
	u64map_init(&a->kept);
	return a;
}

int mq_agent_start(struct mq_agent *a)
{
	int r;
	if (a->started) {
		set_err("the agent was already started");
		return -1;
	}
	/* Before the thread exists the session is still this thread's. */
	if (mq_session_start(a->s) < 0) {
		set_err("%s", mq_session_error(a->s));
		return -1;
	}
	sync_mirrors(a);
	r = pthread_create(&a->thread, NULL, thread_main, a);
	if (r != 0) {
		mq_session_abort(a->s);
		set_err("cannot start the agent's thread: %s", strerror(r));
		return -1;
	}
	a->started = true;
	return 0;
}

/* Hands a request to the thread (caller holds mu). */
static void enqueue(struct mq_agent *a, struct cmd *c)
{
	bool was_empty = !a->cmd_head;
	c->next = NULL;
	if (a->cmd_tail)
		a->cmd_tail->next = c;
	else
		a->cmd_head = c;
	a->cmd_tail = c;
	if (was_empty) {
		/* A full pipe already holds a wake-up: EAGAIN is fine. */
		ssize_t r = write(a->wake_wr, "", 1);
		(void)r;
	}
}

static bool accepting(struct mq_agent *a)
{
	if (!a->started || a->closed) {
		set_err(a->closed ? "the session is stopped" : "the agent is not started");
		return false;
	}
	return true;
}

/* A request with room for the options' strings and headers, copied. */
static struct cmd *cmd_with_opts(const char *dest, const struct mq_queue_opts *o)
{
	size_t need = dest ? strlen(dest) + 1 : 0, nh = o ? o->nheaders : 0;
	struct cmd *c;
	char *p;

	if (o && o->id)
		need += strlen(o->id) + 1;
	if (o && o->selector)
		need += strlen(o->selector) + 1;
	for (size_t i = 0; i < nh; i++)
		need += strlen(o->headers[i].name) + strlen(o->headers[i].value) + 2;
	c = xcalloc(1, sizeof *c + nh * sizeof(struct mq_header) + need);
	c->hdrs = (struct mq_header *)c->blob;
	p = (char *)(c->hdrs + nh);
	if (dest) {
		c->dest = p;
		p = stpcpy(p, dest) + 1;
	}
	if (o) {
		c->opts = *o;
		c->has_opts = true;
		if (o->id) {
			c->opts.id = p;
			p = stpcpy(p, o->id) + 1;
		}
		if (o->selector) {
			c->opts.selector = p;
			p = stpcpy(p, o->selector) + 1;
		}
		for (size_t i = 0; i < nh; i++) {
			c->hdrs[i].name = p;
			p = stpcpy(p, o->headers[i].name) + 1;
			c->hdrs[i].value = p;
			p = stpcpy(p, o->headers[i].value) + 1;
		}
		c->opts.headers = nh ? c->hdrs : NULL;
		c->opts.nheaders = nh;
	}
	return c;
}

uint32_t mq_agent_open(struct mq_agent *a, const char *destination, unsigned flags,
                       const struct mq_queue_opts *opts, uint64_t token)
{
	struct aq *aq;
	struct cmd *c;
	uint32_t id;

	if (!destination || !*destination) {
		set_err("cannot open a queue: empty destination");
		return 0;
	}
	if (!flags || (flags & ~(unsigned)(MQ_READ | MQ_WRITE))) {
		set_err("cannot open %s: flags 0x%x, expected MQ_READ, MQ_WRITE or both", destination, flags);
		return 0;
	}
	c = cmd_with_opts(destination, opts);
	c->kind = CMD_OPEN;
	c->flags = flags;
	c->token = token;
	aq = xcalloc(1, sizeof *aq);
	aq->a = a;
	aq->flags = flags;
	aq->open = true;
	pthread_mutex_lock(&a->mu);
	if (!accepting(a)) {
		pthread_mutex_unlock(&a->mu);
		free(aq);
		free(c);
		return 0;
	}
	id = aq->id = c->queue = ++a->next_queue;
	u64map_put(&a->queues, id, aq);
	enqueue(a, c);
	pthread_mutex_unlock(&a->mu);
	return id;
}

/* The queue, open and of this agent (caller holds mu), or NULL with the reason. */
static struct aq *open_queue(struct mq_agent *a, uint32_t id, const char *what)
{
	struct aq *aq = u64map_get(&a->queues, id);
	if (!aq || !aq->open) {
		set_err("cannot %s queue %u: it is not open", what, id);
		return NULL;
	}
	return aq;
}

int mq_agent_configure(struct mq_agent *a, uint32_t queue, const struct mq_queue_opts *opts, uint64_t token)
{
	struct cmd *c = cmd_with_opts(NULL, opts);
	struct aq *aq;
	c->kind = CMD_CONFIGURE;
	c->queue = queue;
	c->token = token;
	pthread_mutex_lock(&a->mu);
	if (!accepting(a) || !(aq = open_queue(a, queue, "configure"))) {
		pthread_mutex_unlock(&a->mu);
		free(c);
		return -1;
	}
	if (!(aq->flags & MQ_READ)) {
		set_err("cannot configure queue %u: it was not opened for reading", queue);
		pthread_mutex_unlock(&a->mu);
		free(c);
		return -1;
	}
	enqueue(a, c);
	pthread_mutex_unlock(&a->mu);
	return 0;
}

int mq_agent_close(struct mq_agent *a, uint32_t queue, unsigned timeout_ms, uint64_t token)
{
	struct cmd *c = xcalloc(1, sizeof *c);
	struct aq *aq;
	c->kind = CMD_CLOSE;
	c->queue = queue;
	c->token = token;
	c->timeout_ms = timeout_ms;
	pthread_mutex_lock(&a->mu);
	if (!accepting(a) || !(aq = open_queue(a, queue, "close"))) {
		pthread_mutex_unlock(&a->mu);
		free(c);
		return -1;
	}
	aq->open = false;
	enqueue(a, c);
	pthread_mutex_unlock(&a->mu);
	return 0;
}

int mq_agent_post(struct mq_agent *a, uint32_t queue, const void *body, size_t len,
                  const struct mq_header *headers, size_t nheaders, unsigned flags, uint64_t token)
{
	size_t need = len + 1;
	struct cmd *c;
	struct aq *aq;
	char *p;
	int r = 0;

	if (!body && len) {
		set_err("cannot post to queue %u: NULL body of %zu bytes", queue, len);
		return -1;
	}
	for (size_t i = 0; i < nheaders; i++) {
		if (!headers[i].name || !headers[i].value) {
			set_err("cannot post to queue %u: header %zu has no name or value", queue, i);
			return -1;
		}
		need += strlen(headers[i].name) + strlen(headers[i].value) + 2;
	}
	c = xmalloc(sizeof *c + nheaders * sizeof(struct mq_header) + need);
	memset(c, 0, sizeof *c);
	c->kind = CMD_POST;
	c->queue = queue;
	c->token = token;
	c->flags = flags;
	c->hdrs = (struct mq_header *)c->blob;
	c->nhdrs = nheaders;
	p = (char *)(c->hdrs + nheaders);
	for (size_t i = 0; i < nheaders; i++) {
		c->hdrs[i].name = p;
		p = stpcpy(p, headers[i].name) + 1;
		c->hdrs[i].value = p;
		p = stpcpy(p, headers[i].value) + 1;
	}
	if (len)
		memcpy(p, body, len);
	p[len] = 0;
	c->body = p;
	c->len = len;

	pthread_mutex_lock(&a->mu);
	if (!accepting(a) || !(aq = open_queue(a, queue, "post to"))) {
		r = -1;
	} else if (!(aq->flags & MQ_WRITE)) {
		set_err("cannot post to queue %u: it was not opened for writing", queue);
		r = -1;
	} else if (aq->suspended) {
		set_err("cannot post to queue %u: it is suspended while the host is unhealthy", queue);
		r = MQ_ERR_SUSPENDED;
	} else if (!a->can_post && !(token && a->can_keep)) {
		set_err("cannot post to queue %u: the session is not connected", queue);
		r = -1;
	}
	if (r == 0) {
		enqueue(a, c);
		c = NULL;
		r = a->above_high ? 1 : 0;
	}
	pthread_mutex_unlock(&a->mu);
	free(c);
	return r;
}

void mq_agent_wait_writable(struct mq_agent *a, int timeout_ms)
{
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	if (timeout_ms >= 0) {
		until.tv_sec += timeout_ms / 1000;
		until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&a->mu);
	while (a->above_high && (a->can_post || a->can_keep)) {
		if (timeout_ms < 0)
			pthread_cond_wait(&a->writable, &a->mu);
		else if (pthread_cond_timedwait(&a->writable, &a->mu, &until) != 0)
			break;
	}
	pthread_mutex_unlock(&a->mu);
}

int mq_agent_confirm(struct mq_agent *a, uint64_t message)
{
	struct kept *k;
	struct aq *aq;
	struct cmd *c = xcalloc(1, sizeof *c);
	int r = MQ_OK;

	pthread_mutex_lock(&a->mu);
	if (!accepting(a)) {
		pthread_mutex_unlock(&a->mu);
		free(c);
		return MQ_ERR;
	}
	k = u64map_del(&a->kept, message);
	if (!k) {
		set_err("cannot confirm message %llu: unknown, already confirmed, or no longer confirmable",
		        (unsigned long long)message);
		pthread_mutex_unlock(&a->mu);
		free(c);
		return MQ_ERR;
	}
	aq = u64map_get(&a->queues, k->queue);
	if (k->epoch != a->epoch) {
		set_err("cannot confirm message %llu: it arrived on an earlier connection, and the broker "
		        "has taken it back (it will be delivered again)", (unsigned long long)message);
		r = MQ_ERR_STALE;
	} else if (!aq || !aq->open) {
		set_err("cannot confirm message %llu: its queue is closed", (unsigned long long)message);
		r = MQ_ERR;
	} else if (k->gen != aq->gen) {
		set_err("cannot confirm message %llu: its queue was reconfigured, paused or suspended since it "
		        "arrived, and the broker has taken it back (it will be delivered again)",
		        (unsigned long long)message);
		r = MQ_ERR_STALE;
	}
	if (k->m) {
		c->kind = r == MQ_OK ? CMD_CONFIRM : CMD_RELEASE;
		c->kept = k;
		enqueue(a, c);
		c = NULL;
	} else {
		free(k);	/* a tombstone: nothing for the thread to release */
	}
	pthread_mutex_unlock(&a->mu);
	free(c);
	return r;
}

void mq_agent_set_host_health(struct mq_agent *a, bool healthy)
{
	struct cmd *c = xcalloc(1, sizeof *c);
	c->kind = CMD_HEALTH;
	c->healthy = healthy;
	pthread_mutex_lock(&a->mu);
	if (a->started && !a->closed) {
		enqueue(a, c);
		c = NULL;
	}
	pthread_mutex_unlock(&a->mu);
	if (c) {
		/* Not running: the session is this thread's to tell. */
		free(c);
		if (!a->started)
			mq_session_set_host_health(a->s, healthy);
	}
}

/* A command that carries only a token: -1 once the agent takes no more. */
static int submit_token(struct mq_agent *a, enum cmd_kind kind, uint64_t token)
{
	struct cmd *c = xcalloc(1, sizeof *c);
	c->kind = kind;
	c->token = token;
	pthread_mutex_lock(&a->mu);
	if (!accepting(a)) {
		pthread_mutex_unlock(&a->mu);
		free(c);
		return -1;
	}
	enqueue(a, c);
	pthread_mutex_unlock(&a->mu);
	return 0;
}

int mq_agent_sync(struct mq_agent *a, uint64_t token)
{
	return submit_token(a, CMD_SYNC, token);
}

int mq_agent_stop(struct mq_agent *a, uint64_t token)
{
	return submit_token(a, CMD_STOP, token);
}

size_t mq_agent_poll(struct mq_agent *a, struct mq_agent_event *ev, size_t max, int timeout_ms)
{
	struct timespec until;
	size_t n;

	if (timeout_ms > 0) {
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += timeout_ms / 1000;
		until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
		if (until.tv_nsec >= 1000000000L) {
			until.tv_sec++;
			until.tv_nsec -= 1000000000L;
		}
	}
	pthread_mutex_lock(&a->mu);
	for (size_t i = 0; i < a->ntaken; i++)
		free(a->taken[i]);
	a->ntaken = 0;
	while (a->head == a->count && timeout_ms != 0 && !a->closed) {
		if (timeout_ms < 0)
			pthread_cond_wait(&a->have_events, &a->mu);
		else if (pthread_cond_timedwait(&a->have_events, &a->mu, &until) != 0)
			break;
	}
	n = MIN(max, a->count - a->head);
	if (n > a->taken_cap) {
		a->taken_cap = n;
		a->taken = xrealloc(a->taken, n * sizeof *a->taken);
	}
	for (size_t i = 0; i < n; i++) {
		ev[i] = a->ev[a->head + i];
		a->taken[i] = a->blocks[a->head + i];
	}
	a->ntaken = n;
	a->head += n;
	if (a->head == a->count)
		a->head = a->count = 0;
	pthread_mutex_unlock(&a->mu);
	return n;
}

void mq_agent_free(struct mq_agent *a)
{
	struct cmd *c;
	size_t it = 0;
	void *v;

	if (!a)
		return;
	if (a->started) {
		c = xcalloc(1, sizeof *c);
		c->kind = CMD_QUIT;
		pthread_mutex_lock(&a->mu);
		enqueue(a, c);
		pthread_mutex_unlock(&a->mu);
		pthread_join(a->thread, NULL);
	}
	/* The thread is gone: what it owned is this thread's now. */
	a->freeing = true;
	while ((c = a->cmd_head)) {
		a->cmd_head = c->next;
		if (c->kind == CMD_CONFIRM || c->kind == CMD_RELEASE) {
			mq_message_unref(c->kept->m);
			free(c->kept);
		}
		free(c);
	}
	mq_session_free(a->s);	/* acknowledgements fail into the event queue, unread */
	while (u64map_next(&a->kept, &it, NULL, &v)) {
		struct kept *k = v;
		mq_message_unref(k->m);
		free(k);
	}
	u64map_fini(&a->kept);
	it = 0;
	while (u64map_next(&a->queues, &it, NULL, &v)) {
		struct aq *aq = v;
		while (aq->ready) {
			struct ready_wait *w = aq->ready;
			aq->ready = w->next;
			free(w);
		}
		free(aq);
	}
	u64map_fini(&a->queues);
	for (size_t i = 0; i < a->ntaken; i++)
		free(a->taken[i]);
	for (size_t i = a->head; i < a->count; i++)
		free(a->blocks[i]);
	free(a->taken);
	free(a->blocks);
	free(a->ev);
	event_free(a->wake_ev);
	event_base_free(a->base);
	close(a->wake_rd);
	close(a->wake_wr);
	pthread_cond_destroy(&a->writable);
	pthread_cond_destroy(&a->have_events);
	pthread_mutex_destroy(&a->mu);
	free(a);
}
