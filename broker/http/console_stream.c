/* console_stream.c: one snapshot a second for every console, events as
 * they happen, and the figures of the last minutes. */
#include "http/console_stream.h"

#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>

#include "admin/cmd.h"
#include "common/hmap.h"
#include "common/json.h"
#include "common/log.h"
#include "core/auth.h"
#include "core/broker.h"
#include "core/dest.h"
#include "core/msg.h"
#include "http/console_session.h"

/* A viewer's output past this is not read: it skips what comes next. */
#define STREAM_MAX_PENDING (4u << 20)

/* What a snapshot holds: each part is the data of one read-only admin
 * command, so the console shows what mqsh shows. A listing that fails
 * is an empty list. */
static const struct {
	const char *key;
	const char *argv[2];
} parts[] = {
	{ "stats", { "stats", NULL } },
	{ "destinations", { "list", "destinations" } },
	{ "durables", { "list", "durables" } },
	{ "clients", { "list", "clients" } },
	{ "bridges", { "list", "bridges" } },
};

/* Broker-wide figures kept for the overview's chart. */
static const char *const broker_fields[] = { "rate_in", "rate_out", "connections", "message_bytes", "depth",
                                             "unacked" };
/* And per destination, for its page. */
static const char *const dest_fields[] = { "depth", "unacked", "rate_in", "rate_out", "consumers" };
#define NBROKER ARRAY_LEN(broker_fields)
#define NDEST ARRAY_LEN(dest_fields)

/* One SSE message, written once and added by reference to every stream. */
struct shared {
	unsigned refs;
	size_t len;
	char data[];
};

struct stream {
	TAILQ_ENTRY(stream) link;
	struct evhttp_request *req;		/* evhttp's; ours only once detached (see conn_closed) */
	struct evhttp_connection *hc;
	char sid[CONSOLE_SESSION_ID_LEN + 1];
};

struct dest_hist {
	char *key;				/* owned: vhost, '\n', name */
	uint64_t since;				/* the first tick recorded */
	uint64_t seen;				/* the last tick the destination was there */
	float v[CONSOLE_HISTORY][NDEST];	/* at tick % CONSOLE_HISTORY */
};

struct console_streams {
	struct broker *b;
	struct console_sessions *sessions;	/* borrowed */
	struct event *timer;			/* owned: once a second */
	TAILQ_HEAD(, stream) list;
	size_t n;
	struct shared *last;			/* ref held: the latest snapshot */
	uint64_t last_tick;			/* the tick it was built in */
	uint64_t tick;				/* ticks recorded, the current one's number */
	uint64_t times[CONSOLE_HISTORY];	/* wall clock of each tick */
	float broker_hist[CONSOLE_HISTORY][NBROKER];
	struct strmap dests;			/* key -> struct dest_hist *, owned */
	struct console_stream_stats stats;
};

static struct shared *shared_new(const struct sbuf *msg)
{
	struct shared *s = xmalloc(sizeof *s + msg->len);
	s->refs = 1;
	s->len = msg->len;
	memcpy(s->data, msg->buf, msg->len);
	return s;
}

static void shared_unref(struct shared *s)
{
	if (s && --s->refs == 0)
		free(s);
}

static void shared_release(const void *data, size_t len, void *arg)
{
	(void)data;
	(void)len;
	shared_unref(arg);
}

/* Queues one message on a stream, unless its viewer is not reading. */
static bool stream_send(struct console_streams *cs, struct stream *st, struct shared *s)
{
	struct bufferevent *bev = evhttp_connection_get_bufferevent(st->hc);
	struct evbuffer *buf;
	if (bev && evbuffer_get_length(bufferevent_get_output(bev)) > STREAM_MAX_PENDING) {
		cs->stats.skipped++;
		return false;
	}
	buf = evbuffer_new();
	s->refs++;
	if (evbuffer_add_reference(buf, s->data, s->len, shared_release, s) < 0)
		shared_unref(s);
	evhttp_send_reply_chunk(st->req, buf);
	evbuffer_free(buf);
	return true;
}

static void send_text(struct stream *st, const char *text, size_t len)
{
	struct evbuffer *buf = evbuffer_new();
	evbuffer_add(buf, text, len);
	evhttp_send_reply_chunk(st->req, buf);
	evbuffer_free(buf);
}

static void stream_end(struct console_streams *cs, struct stream *st, const char *event, const char *reason)
{
	struct sbuf msg;
	struct jw w;
	sbuf_init(&msg);
	sbuf_printf(&msg, "event: %s\ndata: ", event);
	jw_init(&w, &msg);
	jw_obj_begin(&w);
	jw_kstr(&w, "reason", reason);
	jw_obj_end(&w);
	sbuf_adds(&msg, "\n\n");
	send_text(st, msg.buf, msg.len);
	sbuf_fini(&msg);
	TAILQ_REMOVE(&cs->list, st, link);
	cs->n--;
	evhttp_send_reply_end(st->req);
	free(st);
}

/* ---- history ---- */

static void history_key(struct sbuf *key, const char *vhost, const char *name)
{
	sbuf_reset(key);
	sbuf_adds(key, vhost);
	sbuf_addc(key, '\n');
	sbuf_adds(key, name);
}

static void record(struct console_streams *cs)
{
	struct broker *b = cs->b;
	uint64_t t = ++cs->tick;
	size_t slot = t % CONSOLE_HISTORY, n;
	struct dest **all = broker_dests(b, -1, &n);
	double depth = 0, unacked = 0;
	struct sbuf key;

	sbuf_init(&key);
	cs->times[slot] = wall_ms();
	for (size_t i = 0; i < n; i++) {
		const struct dest *d = all[i];
		struct dest_hist *h;
		depth += (double)d->count;
		unacked += (double)d->unacked;
		history_key(&key, d->vhost->name, d->name);
		h = strmap_get(&cs->dests, key.buf);
		if (!h) {
			if (cs->dests.count >= CONSOLE_HISTORY_DESTS)
				continue;
			h = xcalloc(1, sizeof *h);
			h->key = sbuf_take(&key);
			h->since = t;
			strmap_put(&cs->dests, h->key, h);
		}
		h->seen = t;
		h->v[slot][0] = (float)d->count;
		h->v[slot][1] = (float)d->unacked;
		h->v[slot][2] = (float)d->rate_in;
		h->v[slot][3] = (float)d->rate_out;
		h->v[slot][4] = (float)d->nsubs;
	}
	free(all);
	sbuf_fini(&key);
	{
		/* Destinations that are gone lose their history. */
		struct dest_hist *gone[64];
		size_t ngone;
		do {
			size_t it = 0;
			void *v;
			ngone = 0;
			while (ngone < ARRAY_LEN(gone) && strmap_next(&cs->dests, &it, NULL, &v))
				if (((struct dest_hist *)v)->seen != t)
					gone[ngone++] = v;
			for (size_t i = 0; i < ngone; i++) {
				strmap_del(&cs->dests, gone[i]->key);
				free(gone[i]->key);
				free(gone[i]);
			}
		} while (ngone == ARRAY_LEN(gone));
	}
	cs->broker_hist[slot][0] = (float)b->rate_in;
	cs->broker_hist[slot][1] = (float)b->rate_out;
	cs->broker_hist[slot][2] = (float)b->nsinks;
	cs->broker_hist[slot][3] = (float)msg_live_bytes();
	cs->broker_hist[slot][4] = (float)depth;
	cs->broker_hist[slot][5] = (float)unacked;
}

/* The recorded samples: ticks first..cs->tick, each a row of the time and
 * the figures. */
static void samples_json(const struct console_streams *cs, struct jw *w, uint64_t first, const float *rows,
                         size_t stride, const char *const *fields, size_t nfields)
{
	uint64_t oldest = cs->tick >= CONSOLE_HISTORY ? cs->tick - CONSOLE_HISTORY + 1 : 1;
	if (first < oldest)
		first = oldest;
	jw_kint(w, "interval_ms", 1000);
	jw_key(w, "fields");
	jw_arr_begin(w);
	jw_str(w, "time_ms");
	for (size_t i = 0; i < nfields; i++)
		jw_str(w, fields[i]);
	jw_arr_end(w);
	jw_key(w, "samples");
	jw_arr_begin(w);
	for (uint64_t t = first; cs->tick && t <= cs->tick; t++) {
		size_t slot = t % CONSOLE_HISTORY;
		jw_arr_begin(w);
		jw_uint(w, cs->times[slot]);
		for (size_t i = 0; i < nfields; i++)
			jw_double(w, rows[slot * stride + i]);
		jw_arr_end(w);
	}
	jw_arr_end(w);
}

bool console_history_json(struct console_streams *cs, const char *vhost, const char *name, struct sbuf *out)
{
	struct sbuf key;
	struct dest_hist *h;
	struct jw w;
	sbuf_init(&key);
	history_key(&key, vhost, name);
	h = strmap_get(&cs->dests, key.buf);
	sbuf_fini(&key);
	if (!h)
		return false;
	jw_init(&w, out);
	jw_obj_begin(&w);
	jw_kstr(&w, "name", name);
	jw_kstr(&w, "vhost", vhost);
	samples_json(cs, &w, h->since, &h->v[0][0], NDEST, dest_fields, NDEST);
	jw_obj_end(&w);
	return true;
}

/* ---- snapshots ---- */

static struct shared *build_snapshot(struct console_streams *cs)
{
	struct sbuf msg;
	struct jw w;
	struct cmd_ctx ctx = { cs->b, false, "web console", NULL };

	sbuf_init(&msg);
	sbuf_adds(&msg, "event: snapshot\ndata: ");
	jw_init(&w, &msg);
	jw_obj_begin(&w);
	jw_kuint(&w, "time_ms", wall_ms());
	for (size_t i = 0; i < ARRAY_LEN(parts); i++) {
		struct cmd_reply r;
		char *argv[2] = { (char *)parts[i].argv[0], (char *)parts[i].argv[1] };
		cmd_reply_init(&r);
		cmd_exec(&ctx, argv[1] ? 2 : 1, argv, &r);
		jw_key(&w, parts[i].key);
		jw_raw(&w, r.status == CMD_OK && r.data.len ? r.data.buf : "[]");
		cmd_reply_fini(&r);
	}
	jw_obj_end(&w);
	sbuf_adds(&msg, "\n\n");
	cs->stats.snapshots++;
	cs->stats.snapshot_bytes = msg.len;
	{
		struct shared *s = shared_new(&msg);
		sbuf_fini(&msg);
		return s;
	}
}

/* The snapshot of this tick, built by whoever needs it first. */
static struct shared *snapshot(struct console_streams *cs)
{
	if (!cs->last || cs->last_tick != cs->tick) {
		shared_unref(cs->last);
		cs->last = build_snapshot(cs);
		cs->last_tick = cs->tick;
	}
	return cs->last;
}

/* Rights change while a console is open (a grant taken away, the user
 * deleted): its stream ends with them, not only its next request. */
static bool may_still_view(struct console_streams *cs, const struct console_session *s)
{
	struct principal p = { .vhost = cs->b->default_vhost, .authenticated = true, .admin = s->admin };
	bool yes;
	principal_set_login(&p, s->login);
	yes = auth_may_view(cs->b, &p);
	principal_fini(&p);
	return yes;
}

static void tick_cb(evutil_socket_t fd, short what, void *arg)
{
	struct console_streams *cs = arg;
	uint64_t now = mono_ms();
	struct stream *st, *next;
	(void)fd;
	(void)what;

	/* An open console keeps its session alive; an ended one ends it. */
	for (st = TAILQ_FIRST(&cs->list); st; st = next) {
		next = TAILQ_NEXT(st, link);
		struct console_session *s = console_session_find(cs->sessions, st->sid, now);
		if (!s)
			stream_end(cs, st, "logout", "the session expired: log in again");
		else if (!may_still_view(cs, s))
			stream_end(cs, st, "logout", "this user may no longer use the console");
	}
	console_sessions_expire(cs->sessions, now);
	/* Nobody logged in: nothing is recorded, nothing built. */
	if (!console_sessions_count(cs->sessions) && !cs->n)
		return;
	record(cs);
	if (!cs->n || cs->b->shutting_down)
		return;
	{
		struct shared *s = snapshot(cs);
		TAILQ_FOREACH(st, &cs->list, link)
			stream_send(cs, st, s);
	}
}

/* ---- streams ---- */

void console_stream_open(struct console_streams *cs, struct evhttp_request *req, const char *sid)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct stream *st = xcalloc(1, sizeof *st);
	struct sbuf msg;
	struct jw w;

	st->req = req;
	st->hc = evhttp_request_get_connection(req);
	snprintf(st->sid, sizeof st->sid, "%s", sid);
	evhttp_add_header(h, "Content-Type", "text/event-stream; charset=utf-8");
	evhttp_add_header(h, "Cache-Control", "no-store");
	evhttp_add_header(h, "X-Content-Type-Options", "nosniff");
	evhttp_send_reply_start(req, 200, "OK");
	TAILQ_INSERT_TAIL(&cs->list, st, link);
	cs->n++;

	/* What the charts need to start with: the minutes recorded so far. */
	sbuf_init(&msg);
	sbuf_adds(&msg, "retry: 3000\nevent: history\ndata: ");
	jw_init(&w, &msg);
	jw_obj_begin(&w);
	samples_json(cs, &w, 1, &cs->broker_hist[0][0], NBROKER, broker_fields, NBROKER);
	jw_obj_end(&w);
	sbuf_adds(&msg, "\n\n");
	send_text(st, msg.buf, msg.len);
	sbuf_fini(&msg);
	if (cs->tick == 0)
		record(cs);
	stream_send(cs, st, snapshot(cs));
}

void console_streams_conn_closed(struct console_streams *cs, struct evhttp_connection *hc)
{
	struct stream *st, *next;
	for (st = TAILQ_FIRST(&cs->list); st; st = next) {
		next = TAILQ_NEXT(st, link);
		if (st->hc != hc)
			continue;
		TAILQ_REMOVE(&cs->list, st, link);
		cs->n--;
		/* A reply still being sent when its connection failed is
		 * detached from it and left to us: ending it frees it. */
		if (!evhttp_request_get_connection(st->req))
			evhttp_send_reply_end(st->req);
		free(st);
	}
}

void console_streams_session_ended(struct console_streams *cs, const char *sid, const char *reason)
{
	struct stream *st, *next;
	for (st = TAILQ_FIRST(&cs->list); st; st = next) {
		next = TAILQ_NEXT(st, link);
		if (strcmp(st->sid, sid) == 0)
			stream_end(cs, st, "logout", reason);
	}
}

bool console_streams_listening(const struct console_streams *cs)
{
	return cs->n > 0;
}

void console_streams_event(struct console_streams *cs, const char *json, size_t len)
{
	struct sbuf msg;
	struct shared *s;
	struct stream *st;
	sbuf_init(&msg);
	sbuf_adds(&msg, "event: event\ndata: ");
	sbuf_add(&msg, json, len);
	sbuf_adds(&msg, "\n\n");
	s = shared_new(&msg);
	sbuf_fini(&msg);
	TAILQ_FOREACH(st, &cs->list, link)
		stream_send(cs, st, s);
	shared_unref(s);
}

struct console_streams *console_streams_new(struct broker *b, struct console_sessions *sessions)
{
	struct console_streams *cs = xcalloc(1, sizeof *cs);
	struct timeval one = { 1, 0 };
	cs->b = b;
	cs->sessions = sessions;
	TAILQ_INIT(&cs->list);
	strmap_init(&cs->dests);
	cs->timer = event_new(b->base, -1, EV_PERSIST, tick_cb, cs);
	event_add(cs->timer, &one);
	return cs;
}

void console_streams_free(struct console_streams *cs)
{
	size_t it = 0;
	void *v;
	if (!cs)
		return;
	event_free(cs->timer);
	while (!TAILQ_EMPTY(&cs->list)) {
		struct stream *st = TAILQ_FIRST(&cs->list);
		TAILQ_REMOVE(&cs->list, st, link);
		free(st);
	}
	while (strmap_next(&cs->dests, &it, NULL, &v)) {
		struct dest_hist *h = v;
		free(h->key);
		free(h);
	}
	strmap_fini(&cs->dests);
	shared_unref(cs->last);
	free(cs);
}

void console_streams_get_stats(const struct console_streams *cs, struct console_stream_stats *out)
{
	*out = cs->stats;
	out->streams = cs->n;
}
