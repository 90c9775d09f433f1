/* stomp_cmds.c: publish, tail and browse on the client library's blocking helpers. */
#include "stomp_cmds.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/json.h"
#include "mqclient.h"
#include "common/util.h"

/* The window a queue subscription gets: with a count, one message at a
 * time, so that at most one message past the count is sent to us (and
 * goes back, marked redelivered); without one, enough to keep up. */
#define TAIL_WINDOW_COUNTED 1
#define TAIL_WINDOW 64

bool stomp_cmds_tls_from_env(void)
{
	/* The same variables the library's tls_env reads, in the same way
	 * (empty counts as unset), so that mqsh picks the port it will need. */
	static const char *const names[] = {
		"MQ_CLIENT_CERT_KEY", "MQ_CLIENT_CA_CHAIN", "MQ_CLIENT_SERVER_NAME",
		"PDG_MQ_CLIENT_CERT_KEY", "PDG_MQ_CLIENT_CA_CHAIN", "PDG_MQ_CLIENT_SERVER_NAME",
	};
	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		const char *v = getenv(names[i]);
		if (v && *v)
			return true;
	}
	return false;
}

/* One command's loop, session, and Ctrl-C watch. */
struct run {
	struct event_base *base;	/* owned */
	struct mq_session *s;		/* owned */
	struct event *sigint;		/* owned */
	volatile sig_atomic_t *stop;	/* borrowed */
	char why[512];			/* how the connection ended, or the broker's ERROR */
};

static void event_cb(struct mq_session *s, const struct mq_event *ev, void *arg)
{
	struct run *r = arg;
	(void)s;
	if (ev->type == MQ_EVENT_DISCONNECTED || ev->type == MQ_EVENT_ERROR_FRAME)
		snprintf(r->why, sizeof r->why, "%s", ev->text);
}

/* Ctrl-C through libevent: a plain handler would set the flag but leave
 * the loop asleep until the next network event. */
static void sigint_cb(evutil_socket_t fd, short what, void *arg)
{
	struct run *r = arg;
	(void)fd;
	(void)what;
	if (r->stop)
		*r->stop = 1;
	/* While connecting or waiting for a receipt the helpers watch the
	 * session, not the flag: closing it ends their wait. */
	if (mq_session_state(r->s) != MQ_SESSION_CONNECTED)
		mq_session_abort(r->s);
}

static int run_start(struct run *r, const struct stomp_target *t, volatile sig_atomic_t *stop,
                     char *err, size_t errlen)
{
	struct mq_session_opts so = {
		.host = t->host,
		.port = t->port,
		.login = t->login,
		.passcode = t->passcode,
		.tls = t->tls,
		.tls_env = true,
		.connect_timeout_ms = t->timeout_ms,
		.on_event = event_cb,
		.arg = r,
	};

	memset(r, 0, sizeof *r);
	r->stop = stop;
	r->base = event_base_new();
	if (!r->base) {
		snprintf(err, errlen, "cannot create an event loop");
		return -1;
	}
	r->s = mq_session_new(r->base, &so);
	r->sigint = evsignal_new(r->base, SIGINT, sigint_cb, r);
	event_add(r->sigint, NULL);
	if (mq_session_connect_sync(r->s, t->timeout_ms) < 0) {
		snprintf(err, errlen, "%s", stop && *stop ? "interrupted" : mq_session_error(r->s));
		return -1;
	}
	return 0;
}

static void run_end(struct run *r)
{
	if (r->s && mq_session_state(r->s) != MQ_SESSION_IDLE)
		mq_session_stop_sync(r->s, 2000);
	mq_session_free(r->s);
	/* Deleting the signal event gives SIGINT back to mqsh's own handler. */
	if (r->sigint)
		event_free(r->sigint);
	if (r->base)
		event_base_free(r->base);
	memset(r, 0, sizeof *r);
}

int stomp_cmds_publish(const struct stomp_target *t, const char *dest, const char *body,
                       char *const *headers, int nheaders, volatile sig_atomic_t *stop,
                       char *err, size_t errlen)
{
	struct mq_header *h = xcalloc((size_t)nheaders + 1, sizeof *h);
	char **copies = xcalloc((size_t)nheaders + 1, sizeof *copies);
	struct mq_queue *q;
	struct run r;
	int rc = -1;

	for (int i = 0; i < nheaders; i++) {
		char *eq;
		copies[i] = xstrdup(headers[i]);
		eq = strchr(copies[i], '=');
		if (!eq || eq == copies[i]) {
			snprintf(err, errlen, "publish: header '%s' is not NAME=VALUE", headers[i]);
			goto out_args;
		}
		*eq = 0;
		h[i].name = copies[i];
		h[i].value = eq + 1;
	}
	if (run_start(&r, t, stop, err, errlen) < 0)
		goto out;
	q = mq_open_sync(r.s, dest, MQ_WRITE, NULL, t->timeout_ms);
	if (!q) {
		snprintf(err, errlen, "%s", mq_session_error(r.s));
		goto out;
	}
	if (mq_post_sync(q, body, strlen(body), h, (size_t)nheaders, 0, t->timeout_ms) < 0) {
		snprintf(err, errlen, "%s", stop && *stop ? "interrupted" : mq_session_error(r.s));
		goto out;
	}
	rc = 0;
out:
	run_end(&r);
out_args:
	for (int i = 0; i < nheaders; i++)
		free(copies[i]);
	free(copies);
	free(h);
	return rc;
}

struct tail {
	const struct stomp_tail_opts *o;
	uint64_t got;
	struct sbuf line;
	bool browsing;
	bool ended;		/* browsing: the broker's end marker came */
};

/* Body text for people: line breaks start an indented line, other
 * control bytes are escaped so that a binary body cannot upset the
 * terminal. */
static void add_body(struct sbuf *out, const char *p, size_t len)
{
	sbuf_adds(out, "  ");
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '\n')
			sbuf_adds(out, i + 1 < len ? "\n  " : "");
		else if (c == '\t')
			sbuf_addc(out, '\t');
		else if (c < 0x20 || c == 0x7f)
			sbuf_printf(out, "\\x%02x", c);
		else
			sbuf_addc(out, (char)c);
	}
	sbuf_addc(out, '\n');
}

/* Headers that say how the message travelled rather than what it is. */
static bool transport_header(const char *name)
{
	return strcmp(name, "destination") == 0 || strcmp(name, "subscription") == 0 ||
	       strcmp(name, "ack") == 0 || strcmp(name, "content-length") == 0;
}

static void format_message(struct sbuf *out, struct mq_message *m, bool json)
{
	size_t n = mq_message_header_count(m), len;
	const char *body = mq_message_body(m, &len);

	if (json) {
		struct jw w;
		jw_init(&w, out);
		jw_obj_begin(&w);
		jw_kstr(&w, "destination", mq_message_destination(m));
		jw_key(&w, "headers");
		jw_obj_begin(&w);
		for (size_t i = 0; i < n; i++) {
			const char *name, *value;
			mq_message_header_at(m, i, &name, &value);
			jw_kstr(&w, name, value);
		}
		jw_obj_end(&w);
		jw_key(&w, "body");
		jw_strn(&w, body, len);
		jw_obj_end(&w);
		sbuf_addc(out, '\n');
		return;
	}
	sbuf_adds(out, mq_message_destination(m));
	for (size_t i = 0; i < n; i++) {
		const char *name, *value;
		mq_message_header_at(m, i, &name, &value);
		if (!transport_header(name))
			sbuf_printf(out, " %s=%s", name, value);
	}
	sbuf_addc(out, '\n');
	add_body(out, body, len);
}

static void tail_message(struct mq_session *s, struct mq_message *m, void *arg)
{
	struct tail *t = arg;
	const char *end;
	(void)s;
	if (t->browsing && (end = mq_message_header(m, "browser")) && strcmp(end, "end") == 0) {
		t->ended = true;
		return;
	}
	if (t->o->count && t->got >= t->o->count)
		return;		/* past the count: unconfirmed, it goes back */
	sbuf_reset(&t->line);
	format_message(&t->line, m, t->o->json);
	fwrite(t->line.buf, 1, t->line.len, t->o->out);
	fflush(t->o->out);
	(void)mq_confirm(m);	/* printed, so consumed (auto mode: nothing sent) */
	t->got++;
}

static bool tail_done(void *arg)
{
	struct tail *t = arg;
	return (t->o->stop && *t->o->stop) || (t->o->count && t->got >= t->o->count) || t->ended;
}

static int follow(const struct stomp_target *t, const char *dest, const struct stomp_tail_opts *o, bool browse,
                  uint64_t *received, char *err, size_t errlen)
{
	const char *what = browse ? "browse" : "tail";
	struct tail tl = { .o = o, .browsing = browse };
	static const struct mq_header browser = { "browser", "true" };
	struct mq_queue_opts qo = {
		.ack = o->topic || browse ? MQ_ACK_AUTO : MQ_ACK_CLIENT_INDIVIDUAL,
		.max_unconfirmed_messages = o->topic || browse ? 0 : o->count ? TAIL_WINDOW_COUNTED : TAIL_WINDOW,
		.headers = browse ? &browser : NULL,
		.nheaders = browse ? 1 : 0,
		.on_message = tail_message,
		.arg = &tl,
		.selector = o->selector,
	};
	struct run r;
	int rc = -1;

	*received = 0;
	sbuf_init(&tl.line);
	if (run_start(&r, t, o->stop, err, errlen) < 0)
		goto out;
	if (!mq_open_sync(r.s, dest, MQ_READ, &qo, t->timeout_ms)) {
		snprintf(err, errlen, "%s", o->stop && *o->stop ? "interrupted" : mq_session_error(r.s));
		goto out;
	}
	switch (mq_session_run_until(r.s, tail_done, &tl, 0)) {
	case MQ_RUN_DONE:
		rc = 0;
		break;
	case MQ_RUN_CLOSED:
		snprintf(err, errlen, "%s %s: lost the connection to the broker: %s", what, dest,
		         r.why[0] ? r.why : mq_session_error(r.s));
		break;
	default:
		snprintf(err, errlen, "%s %s: %s", what, dest, mq_session_error(r.s));
		break;
	}
out:
	*received = tl.got;
	run_end(&r);
	sbuf_fini(&tl.line);
	return rc;
}

int stomp_cmds_tail(const struct stomp_target *t, const char *dest, const struct stomp_tail_opts *o,
                    uint64_t *received, char *err, size_t errlen)
{
	return follow(t, dest, o, false, received, err, errlen);
}

int stomp_cmds_browse(const struct stomp_target *t, const char *dest, const struct stomp_tail_opts *o,
                      uint64_t *received, char *err, size_t errlen)
{
	return follow(t, dest, o, true, received, err, errlen);
}
