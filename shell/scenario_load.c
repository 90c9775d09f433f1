/* scenario_load.c: producers and consumers, as state machines over the
 * client library on the run's event loop.
 *
 * A producer connection posts in batches straight into the session's
 * output buffer and lets the loop write them: one write covers hundreds of
 * messages. It posts as long as it may: its quota or duration, its share
 * of the rate, its receipt window, and the output buffer. Above OUT_HIGH
 * it stops and returns to the loop, which writes, reads (consumers share
 * the loop) and, once the output is down to OUT_LOW, reports the
 * library's DRAINED event, which posts the next batch. So what restarts a
 * producer is always an event that had to happen anyway: DRAINED, a
 * RECEIPT opening the window, or the pacing tick; never a timer of its
 * own, which would cost a system call per batch.
 *
 * A consumer connection takes each message in on_message: it reads the
 * stamp, records the latency and the order of first deliveries, and either
 * processes the message at once (confirm, count it into the sink) or, when
 * it has a processing delay or is stalled, keeps it with mq_message_ref()
 * in a FIFO that one timer per connection works through. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "scenario_int.h"

#define OUT_HIGH (512u << 10)	/* unwritten output above which a producer waits for DRAINED */
#define OUT_LOW (256u << 10)	/* ... which fires once the output falls to this: one write's worth */
#define PACE_MIN_NS 1000000u	/* finest pacing tick: the loop's timers are milliseconds */
#define PACE_MAX_NS 50000000u	/* coarsest: 50 ms */

static void arm_ns(struct event *ev, uint64_t ns)
{
	struct timeval tv = { (time_t)(ns / 1000000000u), (suseconds_t)(ns % 1000000000u / 1000u) };
	evtimer_add(ev, &tv);
}

static char *dup_or_null(const char *s) { return s ? xstrdup(s) : NULL; }

static struct mq_header *copy_headers(const struct mq_header *h, size_t n, size_t extra)
{
	struct mq_header *c = xcalloc(n + extra, sizeof *c);
	for (size_t i = 0; i < n; i++) {
		c[i].name = xstrdup(h[i].name);
		c[i].value = xstrdup(h[i].value);
	}
	return c;
}

static void free_headers(struct mq_header *h, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free((char *)h[i].name);
		free((char *)h[i].value);
	}
	free(h);
}

static struct mq_session *new_session(struct scn_run *r, struct scn_broker *b, const char *login,
                                      const char *passcode, const char *vhost, mq_event_cb on_event, void *arg)
{
	struct mq_session_opts o = { 0 };
	o.host = b->host;
	o.port = b->port;
	o.login = login ? login : b->login;
	o.passcode = passcode ? passcode : b->passcode;
	o.vhost = vhost ? vhost : b->vhost;
	o.tls_env = true;	/* MQ_CLIENT_* turn TLS on, as for every tool of ours */
	o.out_high_water = OUT_HIGH;
	o.out_low_water = OUT_LOW;
	o.on_event = on_event;
	o.arg = arg;
	return mq_session_new(r->base, &o);
}

/* ======================================================================
 * producers
 * ====================================================================== */

enum pstate {
	P_IDLE,		/* not started */
	P_CONNECTING,	/* started, waiting for CONNECTED */
	P_POSTING,	/* posting, paced by quota, rate, receipt window and output buffer */
	P_SETTLING,	/* everything posted; waiting for the receipts in flight */
	P_CLOSING,	/* DISCONNECT sent (finished or stopped) */
	P_RETRY,	/* lost; connecting again after reconnect_ms */
	P_CLOSED,	/* for good */
};

struct pconn;

/* One post in flight with a receipt: on_ack's argument. */
struct slot {
	struct pconn *pc;
	uint64_t seq;
};

struct pconn {
	struct scn_pgroup *g;
	unsigned i;
	enum pstate st;
	struct mq_session *s;		/* owned */
	struct mq_queue *q;		/* owned by s */
	struct scn_source src;
	uint64_t quota;			/* posts this connection makes; UINT64_MAX with duration */
	bool finished;			/* posted everything and saw every receipt */
	bool stopping;			/* the close under way is ours */
	bool wait_drain;		/* above OUT_HIGH: waiting for DRAINED */
	double rate;			/* its share, per second; 0 = as fast as possible */
	uint64_t pace_t0, pace_n;	/* pacing restarts at every connection */
	struct slot *slots;		/* owned: the receipt window */
	unsigned *free_slots;		/* owned: stack of free slot indexes */
	unsigned nslots, nfree;
	struct event *retry;		/* owned */
	char stamp[SCN_STAMP_MAX];
};

struct scn_pgroup {
	struct scn_run *run;		/* borrowed */
	unsigned index;
	struct scn_broker *b;		/* borrowed */
	char *dest;			/* owned */
	unsigned n;
	uint64_t count;
	double duration_s, rate;
	size_t size;
	char *body;			/* owned: size bytes */
	struct mq_header *hdrs;		/* owned; the last one is the stamp, its value set per post */
	size_t nhdrs;
	unsigned flags;			/* MQ_PERSISTENT */
	unsigned receipts;
	bool reconnect;
	unsigned reconnect_ms;
	char *login, *passcode, *vhost;	/* owned */
	char name[32];			/* "producers 1" */
	struct pconn *conns;		/* owned, n */
	uint64_t end_ns;		/* duration: when posting ends */
	bool started, stopped, freeing;
	unsigned drop_next;		/* where drop() starts looking */
	struct event *pace;		/* owned: rate > 0 */
	struct scn_pstats st;
	char error[512];
};

static void p_set_error(struct scn_pgroup *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void p_set_error(struct scn_pgroup *g, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(g->error, sizeof g->error, fmt, ap);
	va_end(ap);
}

static void p_connect(struct pconn *pc);
static void pump(struct pconn *pc);

/* Nothing left to pace once every connection is through. */
static void p_check_done(struct scn_pgroup *g)
{
	if (g->pace && scn_pgroup_done(g))
		event_del(g->pace);
}

static void p_closed(struct pconn *pc)
{
	if (pc->st == P_CLOSED)
		return;
	pc->st = P_CLOSED;
	pc->g->st.closed++;
	event_del(pc->retry);
	p_check_done(pc->g);
}

/* Posted everything and every receipt is in: close gracefully. The
 * DISCONNECT's RECEIPT then says the broker has processed every frame. */
static void p_finish(struct pconn *pc)
{
	if (pc->finished)
		return;
	pc->finished = true;
	pc->g->st.finished++;
	pc->stopping = true;
	p_check_done(pc->g);
	if (mq_session_state(pc->s) == MQ_SESSION_IDLE) {
		p_closed(pc);
		return;
	}
	pc->st = P_CLOSING;
	mq_session_stop(pc->s);
}

static void p_settle(struct pconn *pc)
{
	pc->st = P_SETTLING;
	if (pc->nfree == pc->nslots)
		p_finish(pc);
}

static void on_ack(struct mq_session *s, const struct mq_ack *ack, void *arg)
{
	struct slot *sl = arg;
	struct pconn *pc = sl->pc;
	struct scn_pgroup *g = pc->g;
	(void)s;

	if (ack->status == MQ_ACK_OK) {
		g->st.acked++;
		scn_bits_set(&pc->src.acked, sl->seq);
	} else {
		g->st.failed++;
		if (!g->freeing)
			p_set_error(g, "%s connection %u: post seq %llu failed: %s", g->name, pc->i + 1,
			            (unsigned long long)sl->seq, ack->text);
	}
	pc->free_slots[pc->nfree++] = (unsigned)(sl - pc->slots);
	if (g->freeing)
		return;
	if (pc->st == P_POSTING)
		pump(pc);	/* the window opened; posting from here is allowed */
	else if (pc->st == P_SETTLING && pc->nfree == pc->nslots) {
		p_finish(pc);
	}
}

static int post_one(struct pconn *pc)
{
	struct scn_pgroup *g = pc->g;
	struct scn_run *r = g->run;
	struct scn_stamp st = { r->id, pc->src.id, pc->src.sent + 1, scn_now_ns() };
	struct slot *sl = NULL;

	scn_stamp_format(pc->stamp, &st);
	g->hdrs[g->nhdrs - 1].value = pc->stamp;
	if (g->receipts) {
		sl = &pc->slots[pc->free_slots[--pc->nfree]];
		sl->seq = st.seq;
	}
	if (mq_post(pc->q, g->body, g->size, g->hdrs, g->nhdrs, g->flags, sl ? on_ack : NULL, sl) < 0) {
		if (sl)
			pc->nfree++;
		p_set_error(g, "%s connection %u: %s", g->name, pc->i + 1, mq_session_error(pc->s));
		if (mq_session_state(pc->s) == MQ_SESSION_CONNECTED) {
			/* Refused while connected (a header the negotiated
			 * version cannot carry): no later post would do better,
			 * and nothing would ever pump again. Give up on it. */
			pc->stopping = true;
			pc->st = P_CLOSING;
			mq_session_stop(pc->s);
		}
		return -1;
	}
	pc->src.sent = st.seq;
	pc->pace_n++;
	g->st.sent++;
	if (!r->first_post_ns)
		r->first_post_ns = st.sent_ns;
	r->last_post_ns = st.sent_ns;
	return 0;
}

static void pump(struct pconn *pc)
{
	struct scn_pgroup *g = pc->g;
	uint64_t now, allowed;

	if (pc->st != P_POSTING || pc->wait_drain)
		return;
	now = scn_now_ns();
	if (g->duration_s > 0 && now >= g->end_ns) {
		p_settle(pc);
		return;
	}
	allowed = pc->quota - pc->src.sent;
	if (pc->rate > 0) {
		/* Due by now: one at pace_t0, then one every 1/rate s. */
		uint64_t due = (uint64_t)(pc->rate * (double)(now - pc->pace_t0) / 1e9) + 1;
		due = due > pc->pace_n ? due - pc->pace_n : 0;
		if (due < allowed)
			allowed = due;
	}
	while (allowed) {
		if (g->receipts && !pc->nfree)
			break;	/* on_ack pumps again */
		if (post_one(pc) < 0)
			return;	/* its close is on the way */
		allowed--;
		if (mq_session_pending_bytes(pc->s) > OUT_HIGH) {
			pc->wait_drain = true;	/* DRAINED pumps again */
			break;
		}
	}
	/* Otherwise the pace timer comes back once more is due. */
	if (pc->src.sent >= pc->quota)
		p_settle(pc);
}

static void pace_cb(evutil_socket_t fd, short what, void *arg)
{
	struct scn_pgroup *g = arg;
	(void)fd;
	(void)what;
	for (unsigned i = 0; i < g->n; i++)
		pump(&g->conns[i]);
}

static void p_lost(struct pconn *pc, const char *why)
{
	struct scn_pgroup *g = pc->g;
	pc->wait_drain = false;
	if (pc->stopping || g->stopped || pc->finished) {
		p_closed(pc);
		return;
	}
	p_set_error(g, "%s connection %u: %s", g->name, pc->i + 1, why);
	if (g->reconnect) {
		pc->st = P_RETRY;
		arm_ns(pc->retry, (uint64_t)g->reconnect_ms * 1000000u);
	} else {
		p_closed(pc);
	}
}

static void p_on_event(struct mq_session *s, const struct mq_event *ev, void *arg)
{
	struct pconn *pc = arg;
	struct scn_pgroup *g = pc->g;
	(void)s;

	switch (ev->type) {
	case MQ_EVENT_CONNECTED:
		g->st.connected++;
		if (pc->st != P_CONNECTING)
			break;
		pc->st = P_POSTING;
		pc->pace_t0 = scn_now_ns();
		pc->pace_n = 0;
		pc->wait_drain = false;
		pump(pc);
		break;
	case MQ_EVENT_DISCONNECTED:
		g->st.connected--;
		p_lost(pc, ev->text);
		break;
	case MQ_EVENT_CONNECT_FAILED:
		p_lost(pc, ev->text);
		break;
	case MQ_EVENT_ERROR_FRAME:
		p_set_error(g, "%s connection %u: ERROR from the broker: %s", g->name, pc->i + 1, ev->text);
		break;
	case MQ_EVENT_DRAINED:
		pc->wait_drain = false;
		pump(pc);
		break;
	default:
		break;	/* reconnection and host health: not used by the load generator */
	}
}

static void p_connect(struct pconn *pc)
{
	pc->st = P_CONNECTING;
	if (mq_session_start(pc->s) < 0)
		p_lost(pc, mq_session_error(pc->s));	/* it decides what comes next */
}

static void p_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct pconn *pc = arg;
	(void)fd;
	(void)what;
	if (pc->st != P_RETRY)
		return;
	pc->g->st.reconnects++;
	p_connect(pc);
}

struct scn_pgroup *scn_pgroup_new(struct scn_run *r, const struct scn_pgroup_opts *o)
{
	struct scn_pgroup *g = xcalloc(1, sizeof *g);
	uint64_t each, extra;

	g->run = r;
	g->index = (unsigned)r->npgroups + 1;
	snprintf(g->name, sizeof g->name, "producers %u", g->index);
	g->b = o->broker;
	g->dest = xstrdup(o->dest);
	g->n = o->n;
	g->count = o->count;
	g->duration_s = o->duration_s;
	g->rate = o->rate;
	g->size = o->size;
	g->body = xmalloc(o->size + 1);
	memset(g->body, 'x', o->size);
	g->body[o->size] = 0;
	g->hdrs = copy_headers(o->headers, o->nheaders, 1);
	g->nhdrs = o->nheaders + 1;
	g->hdrs[o->nheaders].name = xstrdup(SCN_STAMP_HEADER);
	g->hdrs[o->nheaders].value = NULL;
	g->flags = o->persistent ? MQ_PERSISTENT : 0;
	g->receipts = o->receipts;
	g->reconnect = o->reconnect;
	g->reconnect_ms = o->reconnect_ms;
	g->login = dup_or_null(o->login);
	g->passcode = dup_or_null(o->passcode);
	g->vhost = dup_or_null(o->vhost);
	g->conns = xcalloc(g->n, sizeof *g->conns);
	each = g->count / g->n;
	extra = g->count % g->n;
	for (unsigned i = 0; i < g->n; i++) {
		struct pconn *pc = &g->conns[i];
		pc->g = g;
		pc->i = i;
		pc->quota = g->duration_s > 0 ? UINT64_MAX : each + (i < extra);
		pc->rate = g->rate / g->n;
		pc->src.dest = g->dest;
		pc->src.broker = g->b;
		pc->src.group = g->name;
		scn_register_source(r, &pc->src);
		if (g->receipts) {
			pc->nslots = pc->nfree = g->receipts;
			pc->slots = xcalloc(g->receipts, sizeof *pc->slots);
			pc->free_slots = xcalloc(g->receipts, sizeof *pc->free_slots);
			for (unsigned k = 0; k < g->receipts; k++) {
				pc->slots[k].pc = pc;
				pc->free_slots[k] = g->receipts - 1 - k;
			}
		}
		pc->retry = evtimer_new(r->base, p_retry_cb, pc);
		pc->s = new_session(r, g->b, g->login, g->passcode, g->vhost, p_on_event, pc);
		pc->q = mq_open(pc->s, g->dest, MQ_WRITE, NULL);
	}
	if (g->rate > 0) {
		double tick = 1e9 / g->rate;
		struct timeval tv;
		uint64_t ns = tick < PACE_MIN_NS ? PACE_MIN_NS : tick > PACE_MAX_NS ? PACE_MAX_NS : (uint64_t)tick;
		tv.tv_sec = (time_t)(ns / 1000000000u);
		tv.tv_usec = (suseconds_t)(ns % 1000000000u / 1000u);
		g->pace = event_new(r->base, -1, EV_PERSIST, pace_cb, g);
		event_add(g->pace, &tv);
	}
	return g;
}

void scn_pgroup_start(struct scn_pgroup *g)
{
	if (g->started)
		return;
	g->started = true;
	g->end_ns = scn_now_ns() + (uint64_t)(g->duration_s * 1e9);
	for (unsigned i = 0; i < g->n; i++) {
		if (g->conns[i].quota == 0) {
			/* count < n: nothing for this one to do. */
			g->conns[i].finished = true;
			g->st.finished++;
			g->conns[i].st = P_CLOSED;
			g->st.closed++;
			continue;
		}
		p_connect(&g->conns[i]);
	}
}

void scn_pgroup_stop(struct scn_pgroup *g)
{
	g->stopped = true;
	if (g->pace)
		event_del(g->pace);
	for (unsigned i = 0; i < g->n; i++) {
		struct pconn *pc = &g->conns[i];
		event_del(pc->retry);
		if (pc->st == P_CLOSED)
			continue;
		pc->stopping = true;
		if (mq_session_state(pc->s) == MQ_SESSION_IDLE) {
			p_closed(pc);
		} else {
			pc->st = P_CLOSING;
			mq_session_stop(pc->s);
		}
	}
}

void scn_pgroup_free(struct scn_pgroup *g)
{
	if (!g)
		return;
	g->freeing = true;
	if (g->pace)
		event_free(g->pace);
	for (unsigned i = 0; i < g->n; i++) {
		struct pconn *pc = &g->conns[i];
		/* Fails what is still in flight through on_ack, which only
		 * counts while freeing. */
		mq_session_free(pc->s);
		event_free(pc->retry);
		free(pc->slots);
		free(pc->free_slots);
		scn_bits_fini(&pc->src.acked);
	}
	free(g->conns);
	/* The stamp's value is a connection's buffer, not ours to free. */
	g->hdrs[g->nhdrs - 1].value = NULL;
	free_headers(g->hdrs, g->nhdrs);
	free(g->body);
	free(g->dest);
	free(g->login);
	free(g->passcode);
	free(g->vhost);
	free(g);
}

void scn_pgroup_stats(const struct scn_pgroup *g, struct scn_pstats *out) { *out = g->st; }

bool scn_pgroup_done(const struct scn_pgroup *g)
{
	for (unsigned i = 0; i < g->n; i++)
		if (!g->conns[i].finished && g->conns[i].st != P_CLOSED)
			return false;
	return g->started;
}

bool scn_pgroup_idle(const struct scn_pgroup *g)
{
	for (unsigned i = 0; i < g->n; i++)
		if (mq_session_state(g->conns[i].s) != MQ_SESSION_IDLE)
			return false;
	return true;
}

unsigned scn_pgroup_index(const struct scn_pgroup *g) { return g->index; }
unsigned scn_pgroup_n(const struct scn_pgroup *g) { return g->n; }
const char *scn_pgroup_dest(const struct scn_pgroup *g) { return g->dest; }
const char *scn_pgroup_error(const struct scn_pgroup *g) { return g->error; }

const struct scn_source *scn_pgroup_source(const struct scn_pgroup *g, unsigned i)
{
	return i < g->n ? &g->conns[i].src : NULL;
}

const char *scn_pgroup_client_id(const struct scn_pgroup *g, unsigned i)
{
	if (i >= g->n || mq_session_state(g->conns[i].s) != MQ_SESSION_CONNECTED)
		return "";
	return mq_session_broker_session(g->conns[i].s);
}

unsigned scn_pgroup_drop(struct scn_pgroup *g, unsigned n)
{
	unsigned dropped = 0;
	for (unsigned k = 0; k < g->n && dropped < n; k++) {
		struct pconn *pc = &g->conns[(g->drop_next + k) % g->n];
		if (mq_session_state(pc->s) != MQ_SESSION_CONNECTED || pc->stopping)
			continue;
		g->st.drops++;
		dropped++;
		/* Reports DISCONNECTED (and fails the receipts in flight)
		 * before it returns; p_lost reconnects when asked to. */
		mq_session_abort(pc->s);
	}
	g->drop_next = (g->drop_next + dropped) % g->n;
	return dropped;
}

/* ======================================================================
 * consumers
 * ====================================================================== */

enum cstate {
	C_IDLE,		/* not started */
	C_CONNECTING,	/* started, waiting for CONNECTED */
	C_UP,		/* connected; SUBSCRIBE sent (the library sends it on CONNECTED) */
	C_CLOSING,	/* DISCONNECT sent */
	C_RETRY,	/* lost; connecting again after reconnect_ms */
	C_CLOSED,	/* for good */
};

/* A message kept for later processing. */
struct held {
	struct mq_message *m;		/* reference held */
	uint64_t due_ns;
	struct scn_stamp stamp;
	bool stamped;
};

struct cconn {
	struct scn_cgroup *g;
	unsigned i;
	enum cstate st;
	struct mq_session *s;		/* owned */
	struct mq_queue *q;		/* owned by s */
	bool ready;			/* the broker confirmed the SUBSCRIBE */
	bool stopping;			/* the close under way is ours */
	bool gone;			/* disconnect_after fired: it stays away */
	uint64_t deliveries;		/* on this connection since CONNECTED */
	uint64_t received;		/* processed, over its life */
	struct scn_order order;
	struct held *held;		/* owned ring */
	size_t head, len, cap;
	uint64_t last_due_ns, stall_until_ns;
	struct event *work;		/* owned: the head of `held` is due */
	struct event *retry;		/* owned */
};

struct scn_cgroup {
	struct scn_run *run;
	unsigned index;
	struct scn_broker *b;
	char *dest;
	unsigned n;
	enum mq_ack_mode ack;
	uint32_t max_unconfirmed;
	uint64_t max_unconfirmed_bytes;
	int32_t priority;
	char *selector;			/* owned; NULL: every message */
	uint64_t delay_ns;
	uint64_t disconnect_after;
	bool fanout;
	struct mq_header *hdrs;
	size_t nhdrs;
	bool reconnect;
	unsigned reconnect_ms;
	char *login, *passcode, *vhost;
	char name[32];
	struct scn_sink *sink;		/* borrowed from the run */
	struct scn_hist *lat;		/* owned: first deliveries, ns */
	struct cconn *conns;
	bool started, stopped, freeing;
	bool baseline_set;		/* fan-out: all subscribed once; see scn_sink_set_baseline */
	unsigned drop_next;
	struct scn_cstats st;
	char error[512];
};

static void c_set_error(struct scn_cgroup *g, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void c_set_error(struct scn_cgroup *g, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(g->error, sizeof g->error, fmt, ap);
	va_end(ap);
}

static void process(struct cconn *cc, struct mq_message *m, bool stamped, const struct scn_stamp *st, uint64_t now)
{
	struct scn_cgroup *g = cc->g;
	if (g->ack != MQ_ACK_AUTO && mq_confirm(m) < 0) {
		g->st.confirm_failed++;
		g->st.abandoned++;
		c_set_error(g, "%s connection %u: %s", g->name, cc->i + 1, mq_session_error(cc->s));
		return;
	}
	g->st.received++;
	cc->received++;
	if (stamped)
		scn_sink_add(g->sink, st->producer, st->seq);
	g->run->last_recv_ns = now;
}

static void discard_held(struct cconn *cc)
{
	struct scn_cgroup *g = cc->g;
	while (cc->len) {
		mq_message_unref(cc->held[cc->head].m);
		cc->head = (cc->head + 1) % cc->cap;
		cc->len--;
		g->st.abandoned++;
		g->st.unconfirmed--;
	}
	cc->head = 0;
	cc->last_due_ns = 0;
	event_del(cc->work);
}

static void work_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cconn *cc = arg;
	struct scn_cgroup *g = cc->g;
	uint64_t now = scn_now_ns();
	(void)fd;
	(void)what;

	if (now < cc->stall_until_ns) {
		arm_ns(cc->work, cc->stall_until_ns - now);
		return;
	}
	while (cc->len) {
		struct held h = cc->held[cc->head];
		if (h.due_ns > now)
			break;
		cc->head = (cc->head + 1) % cc->cap;
		cc->len--;
		g->st.unconfirmed--;
		process(cc, h.m, h.stamped, &h.stamp, now);
		mq_message_unref(h.m);
	}
	if (cc->len)
		arm_ns(cc->work, cc->held[cc->head].due_ns - now);
}

static void hold(struct cconn *cc, struct mq_message *m, bool stamped, const struct scn_stamp *st, uint64_t now)
{
	struct scn_cgroup *g = cc->g;
	struct held *h;
	uint64_t start = now;

	if (cc->len == cc->cap) {
		size_t ncap = cc->cap ? cc->cap * 2 : 64;
		struct held *n = xmalloc(ncap * sizeof *n);
		for (size_t i = 0; i < cc->len; i++)
			n[i] = cc->held[(cc->head + i) % cc->cap];
		free(cc->held);
		cc->held = n;
		cc->head = 0;
		cc->cap = ncap;
	}
	/* Processing is serial: this one starts when the one before it is
	 * done, and not before a stall ends. */
	if (cc->last_due_ns > start)
		start = cc->last_due_ns;
	if (cc->stall_until_ns > start)
		start = cc->stall_until_ns;
	h = &cc->held[(cc->head + cc->len) % cc->cap];
	h->m = mq_message_ref(m);
	h->due_ns = start + g->delay_ns;
	h->stamped = stamped;
	if (stamped)
		h->stamp = *st;
	cc->last_due_ns = h->due_ns;
	cc->len++;
	g->st.unconfirmed++;
	if (cc->len > g->st.peak_unconfirmed)
		g->st.peak_unconfirmed = cc->len;
	if (cc->len == 1)
		arm_ns(cc->work, h->due_ns > now ? h->due_ns - now : 0);
}

static void c_on_message(struct mq_session *s, struct mq_message *m, void *arg)
{
	struct cconn *cc = arg;
	struct scn_cgroup *g = cc->g;
	struct scn_run *r = g->run;
	struct scn_stamp st;
	uint64_t now = scn_now_ns();
	bool redelivered = mq_message_redelivered(m);
	bool stamped = scn_stamp_parse(mq_message_header(m, SCN_STAMP_HEADER), &st) && st.run == r->id;

	g->st.delivered++;
	cc->deliveries++;
	if (redelivered)
		g->st.redelivered++;
	if (!stamped) {
		g->st.foreign++;
	} else if (!redelivered) {
		/* First deliveries only: a redelivery's latency is the time it
		 * spent with the consumer that failed, and it comes out of order
		 * by design. */
		uint64_t lat = now > st.sent_ns ? now - st.sent_ns : 0;
		scn_hist_record(g->lat, lat);
		scn_hist_record(r->latency, lat);
		if (!scn_order_check(&cc->order, g->sink, st.producer, st.seq))
			g->st.out_of_order++;
	}
	if (g->disconnect_after) {
		/* A consumer that crashes after K messages: it confirms none. */
		if (cc->deliveries >= g->disconnect_after) {
			g->st.abandoned += cc->deliveries;
			cc->gone = true;
			mq_session_abort(s);
		}
		return;
	}
	if (g->delay_ns || cc->len || now < cc->stall_until_ns) {
		hold(cc, m, stamped, &st, now);
		return;
	}
	process(cc, m, stamped, &st, now);
}

static void on_ready(struct mq_queue *q, const struct mq_ack *res, void *arg)
{
	struct cconn *cc = arg;
	struct scn_cgroup *g = cc->g;
	(void)q;
	if (g->freeing)
		return;
	if (res->status == MQ_ACK_OK) {
		if (!cc->ready) {
			cc->ready = true;
			g->st.ready++;
		}
		if (g->fanout && !g->baseline_set && g->st.ready == g->n) {
			/* Every connection is subscribed: from here on every
			 * message is owed to each of them. */
			struct scn_run *r = g->run;
			g->baseline_set = true;
			for (size_t i = 0; i < r->nsources; i++)
				scn_sink_set_baseline(g->sink, r->sources[i]->id, r->sources[i]->sent);
			scn_sink_open(g->sink);
		}
		return;
	}
	/* A close before the RECEIPT also lands here; that is not the
	 * broker refusing anything. */
	if (mq_session_state(cc->s) == MQ_SESSION_CONNECTED) {
		g->st.errors++;
		c_set_error(g, "%s connection %u: SUBSCRIBE to %s refused: %s", g->name, cc->i + 1, g->dest, res->text);
	}
}

static void c_closed(struct cconn *cc)
{
	if (cc->st == C_CLOSED)
		return;
	cc->st = C_CLOSED;
	cc->g->st.closed++;
	event_del(cc->retry);
}

static void c_connect(struct cconn *cc);

static void c_lost(struct cconn *cc, const char *why)
{
	struct scn_cgroup *g = cc->g;
	if (cc->ready) {
		cc->ready = false;
		g->st.ready--;
	}
	discard_held(cc);
	/* A new connection starts a new order: what it sees first may be
	 * older than what the last one saw. */
	scn_order_fini(&cc->order);
	if (cc->stopping || g->stopped || cc->gone) {
		c_closed(cc);
		return;
	}
	c_set_error(g, "%s connection %u: %s", g->name, cc->i + 1, why);
	if (g->reconnect) {
		cc->st = C_RETRY;
		arm_ns(cc->retry, (uint64_t)g->reconnect_ms * 1000000u);
	} else {
		c_closed(cc);
	}
}

static void c_on_event(struct mq_session *s, const struct mq_event *ev, void *arg)
{
	struct cconn *cc = arg;
	struct scn_cgroup *g = cc->g;
	(void)s;

	switch (ev->type) {
	case MQ_EVENT_CONNECTED:
		g->st.connected++;
		cc->deliveries = 0;
		if (cc->st == C_CONNECTING)
			cc->st = C_UP;
		break;
	case MQ_EVENT_DISCONNECTED:
		g->st.connected--;
		c_lost(cc, ev->text);
		break;
	case MQ_EVENT_CONNECT_FAILED:
		c_lost(cc, ev->text);
		break;
	case MQ_EVENT_ERROR_FRAME:
		g->st.errors++;
		c_set_error(g, "%s connection %u: ERROR from the broker: %s", g->name, cc->i + 1, ev->text);
		break;
	case MQ_EVENT_DRAINED:
		break;
	default:
		break;	/* reconnection and host health: not used by the load generator */
	}
}

static void c_connect(struct cconn *cc)
{
	cc->st = C_CONNECTING;
	if (mq_session_start(cc->s) < 0)
		c_lost(cc, mq_session_error(cc->s));
}

static void c_retry_cb(evutil_socket_t fd, short what, void *arg)
{
	struct cconn *cc = arg;
	(void)fd;
	(void)what;
	if (cc->st != C_RETRY)
		return;
	cc->g->st.reconnects++;
	c_connect(cc);
}

struct scn_cgroup *scn_cgroup_new(struct scn_run *r, const struct scn_cgroup_opts *o)
{
	struct scn_cgroup *g = xcalloc(1, sizeof *g);
	struct mq_queue_opts qo = { 0 };

	g->run = r;
	g->index = (unsigned)r->ncgroups + 1;
	snprintf(g->name, sizeof g->name, "consumers %u", g->index);
	g->b = o->broker;
	g->dest = xstrdup(o->dest);
	g->n = o->n;
	g->ack = o->ack;
	g->max_unconfirmed = o->max_unconfirmed;
	g->max_unconfirmed_bytes = o->max_unconfirmed_bytes;
	g->priority = o->priority;
	g->selector = dup_or_null(o->selector);
	g->delay_ns = (uint64_t)o->delay_ms * 1000000u;
	g->disconnect_after = o->disconnect_after;
	g->fanout = o->fanout;
	g->hdrs = copy_headers(o->headers, o->nheaders, 0);
	g->nhdrs = o->nheaders;
	g->reconnect = o->reconnect;
	g->reconnect_ms = o->reconnect_ms;
	g->login = dup_or_null(o->login);
	g->passcode = dup_or_null(o->passcode);
	g->vhost = dup_or_null(o->vhost);
	g->lat = scn_hist_new();
	g->sink = scn_sink_for(r, g->b, g->dest, g->fanout, g->fanout ? g->n : 1, g->index);
	g->conns = xcalloc(g->n, sizeof *g->conns);

	qo.ack = g->ack;
	qo.max_unconfirmed_messages = g->max_unconfirmed;
	qo.max_unconfirmed_bytes = g->max_unconfirmed_bytes;
	qo.consumer_priority = g->priority;
	qo.selector = g->selector;
	qo.headers = g->hdrs;
	qo.nheaders = g->nhdrs;
	qo.on_message = c_on_message;
	qo.on_ready = on_ready;
	for (unsigned i = 0; i < g->n; i++) {
		struct cconn *cc = &g->conns[i];
		cc->g = g;
		cc->i = i;
		cc->work = evtimer_new(r->base, work_cb, cc);
		cc->retry = evtimer_new(r->base, c_retry_cb, cc);
		cc->s = new_session(r, g->b, g->login, g->passcode, g->vhost, c_on_event, cc);
		qo.arg = cc;
		/* Opened before the connection: SUBSCRIBE goes out on every
		 * CONNECTED, the first and each reconnection. */
		cc->q = mq_open(cc->s, g->dest, MQ_READ, &qo);
	}
	return g;
}

void scn_cgroup_start(struct scn_cgroup *g)
{
	if (g->started)
		return;
	g->started = true;
	for (unsigned i = 0; i < g->n; i++)
		c_connect(&g->conns[i]);
}

void scn_cgroup_stop(struct scn_cgroup *g)
{
	g->stopped = true;
	for (unsigned i = 0; i < g->n; i++) {
		struct cconn *cc = &g->conns[i];
		event_del(cc->retry);
		if (cc->st == C_CLOSED)
			continue;
		cc->stopping = true;
		if (mq_session_state(cc->s) == MQ_SESSION_IDLE) {
			discard_held(cc);
			c_closed(cc);
		} else {
			cc->st = C_CLOSING;
			mq_session_stop(cc->s);
		}
	}
}

void scn_cgroup_free(struct scn_cgroup *g)
{
	if (!g)
		return;
	g->freeing = true;
	for (unsigned i = 0; i < g->n; i++) {
		struct cconn *cc = &g->conns[i];
		discard_held(cc);
		mq_session_free(cc->s);
		event_free(cc->work);
		event_free(cc->retry);
		free(cc->held);
		scn_order_fini(&cc->order);
	}
	free(g->conns);
	free_headers(g->hdrs, g->nhdrs);
	scn_hist_free(g->lat);
	free(g->dest);
	free(g->selector);
	free(g->login);
	free(g->passcode);
	free(g->vhost);
	free(g);
}

void scn_cgroup_stats(const struct scn_cgroup *g, struct scn_cstats *out) { *out = g->st; }
unsigned scn_cgroup_index(const struct scn_cgroup *g) { return g->index; }
unsigned scn_cgroup_n(const struct scn_cgroup *g) { return g->n; }
const char *scn_cgroup_dest(const struct scn_cgroup *g) { return g->dest; }
struct scn_sink *scn_cgroup_sink(const struct scn_cgroup *g) { return g->sink; }
const struct scn_hist *scn_cgroup_latency(const struct scn_cgroup *g) { return g->lat; }
const char *scn_cgroup_error(const struct scn_cgroup *g) { return g->error; }

bool scn_cgroup_idle(const struct scn_cgroup *g)
{
	for (unsigned i = 0; i < g->n; i++)
		if (mq_session_state(g->conns[i].s) != MQ_SESSION_IDLE)
			return false;
	return true;
}

const char *scn_cgroup_client_id(const struct scn_cgroup *g, unsigned i)
{
	if (i >= g->n || mq_session_state(g->conns[i].s) != MQ_SESSION_CONNECTED)
		return "";
	return mq_session_broker_session(g->conns[i].s);
}

uint64_t scn_cgroup_received_by(const struct scn_cgroup *g, unsigned i)
{
	return i < g->n ? g->conns[i].received : 0;
}

unsigned scn_cgroup_drop(struct scn_cgroup *g, unsigned n)
{
	unsigned dropped = 0;
	for (unsigned k = 0; k < g->n && dropped < n; k++) {
		struct cconn *cc = &g->conns[(g->drop_next + k) % g->n];
		if (mq_session_state(cc->s) != MQ_SESSION_CONNECTED || cc->stopping)
			continue;
		g->st.drops++;
		dropped++;
		mq_session_abort(cc->s);	/* DISCONNECTED now; c_lost reconnects when asked to */
	}
	g->drop_next = (g->drop_next + dropped) % g->n;
	return dropped;
}

void scn_cgroup_stall(struct scn_cgroup *g, double seconds)
{
	uint64_t until = scn_now_ns() + (uint64_t)(seconds * 1e9);
	for (unsigned i = 0; i < g->n; i++)
		g->conns[i].stall_until_ns = until;
}
