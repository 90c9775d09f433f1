/* test_client_fake.h: a scripted STOMP server for the client library's
 * tests, on loopback, in the test's own event loop.
 *
 * The test drives it step by step: fake_expect() runs the loop until the
 * client's next frame has arrived and compares its exact bytes;
 * fake_send() answers with frames written by hand. Frames are cut out of
 * the byte stream here with a deliberately separate, naive scanner, so
 * that a bug in frame.c cannot hide a bug in what the client writes.
 * With autopilot set it answers CONNECT and every receipt by itself, for
 * the blocking helpers that run the loop on their own. Included by the
 * test_client_*.c files only. */
#ifndef TEST_CLIENT_FAKE_H
#define TEST_CLIENT_FAKE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "mqclient.h"

#define FAKE_WAIT_MS 3000

struct fake {
	struct event_base *base;	/* borrowed */
	struct evconnlistener *lst;
	uint16_t port;
	SSL_CTX *ssl_ctx;		/* borrowed; TLS when set */
	struct bufferevent *bev;	/* the latest accepted connection */
	int accepted;
	bool eof;			/* the client closed (or TLS failed) */
	bool handshake_done;
	char peer_cn[128];		/* TLS: CN of the client's certificate, "" if none */
	struct evbuffer *rx;		/* bytes received, not yet cut into frames */
	size_t eols;			/* heart-beat EOLs cut */
	size_t frames;			/* frames cut */

	/* autopilot */
	bool autopilot;
	const char *auto_connected;	/* reply to CONNECT, NUL included by fake_sendn */
	size_t auto_connected_len;
	struct evbuffer *log;		/* autopilot: every frame cut, back to back */
};

static void test_expire_cb(evutil_socket_t fd, short what, void *arg)
{
	*(bool *)arg = true;
}

/* Runs the loop until pred(arg) or ms pass; returns pred's last value. */
static __attribute__((unused)) bool test_run(struct event_base *base, bool (*pred)(void *), void *arg, unsigned ms)
{
	bool expired = false;
	struct timeval tv = { .tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000 };
	struct event *t = evtimer_new(base, test_expire_cb, &expired);
	bool ok;
	evtimer_add(t, &tv);
	while (!(ok = pred ? pred(arg) : false) && !expired)
		event_base_loop(base, EVLOOP_ONCE);
	event_free(t);
	return ok;
}

/* Runs the loop for ms, whatever happens. */
static __attribute__((unused)) void test_sleep(struct event_base *base, unsigned ms)
{
	test_run(base, NULL, NULL, ms);
}

static __attribute__((unused)) void fake_sendn(struct fake *f, const void *p, size_t n)
{
	assert_non_null(f->bev);
	bufferevent_write(f->bev, p, n);
}

/* A string literal is sent with its terminating NUL: the frame's. */
#define fake_send(f, lit) fake_sendn((f), (lit), sizeof(lit))

/* Cuts the next frame out of rx: leading EOLs are counted as heart-beats;
 * the body ends by content-length when the header is there, else at the
 * first NUL. Returns a malloc'd copy (NUL included) or NULL. */
static char *fake_cut(struct fake *f, size_t *len)
{
	size_t n, hdr_end, total;
	unsigned char *p, *blank, *nul;
	char *out, *cl;

	for (;;) {
		n = evbuffer_get_length(f->rx);
		if (!n)
			return NULL;
		p = evbuffer_pullup(f->rx, n < 2 ? (ev_ssize_t)n : 2);
		if (p[0] == '\n') {
			evbuffer_drain(f->rx, 1);
			f->eols++;
		} else if (n >= 2 && p[0] == '\r' && p[1] == '\n') {
			evbuffer_drain(f->rx, 2);
			f->eols++;
		} else {
			break;
		}
	}
	p = evbuffer_pullup(f->rx, -1);
	blank = memmem(p, n, "\n\n", 2);
	if (!blank)
		return NULL;
	hdr_end = (size_t)(blank - p) + 2;
	/* content-length among the headers only */
	{
		char *hdrs = strndup((char *)p, hdr_end);
		cl = strstr(hdrs, "\ncontent-length:");
		if (cl) {
			total = hdr_end + strtoul(cl + 16, NULL, 10) + 1;
			free(hdrs);
			if (n < total)
				return NULL;
		} else {
			free(hdrs);
			nul = memchr(p + hdr_end, 0, n - hdr_end);
			if (!nul)
				return NULL;
			total = (size_t)(nul - p) + 1;
		}
	}
	out = malloc(total);
	memcpy(out, p, total);
	evbuffer_drain(f->rx, total);
	*len = total;
	f->frames++;
	return out;
}

/* Autopilot: CONNECTED for CONNECT, RECEIPT for any receipt header. */
static void fake_autopilot(struct fake *f)
{
	char *fr;
	size_t len;
	while ((fr = fake_cut(f, &len))) {
		char *r;
		evbuffer_add(f->log, fr, len);
		if (strncmp(fr, "CONNECT\n", 8) == 0 && f->auto_connected) {
			fake_sendn(f, f->auto_connected, f->auto_connected_len);
		} else if ((r = strstr(fr, "\nreceipt:")) && r < strstr(fr, "\n\n")) {
			char reply[128];
			int n = snprintf(reply, sizeof reply, "RECEIPT\nreceipt-id:%.*s\n\n",
			                 (int)strcspn(r + 9, "\n"), r + 9);
			fake_sendn(f, reply, (size_t)n + 1);
		}
		free(fr);
	}
}

static void fake_read_cb(struct bufferevent *bev, void *arg)
{
	struct fake *f = arg;
	evbuffer_add_buffer(f->rx, bufferevent_get_input(bev));
	if (f->autopilot)
		fake_autopilot(f);
}

static void fake_peer_cn(struct fake *f, struct bufferevent *bev)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	X509 *cert = ssl ? SSL_get1_peer_certificate(ssl) : NULL;
	f->peer_cn[0] = 0;
	if (cert) {
		X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, f->peer_cn,
		                          sizeof f->peer_cn);
		X509_free(cert);
	}
}

static void fake_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct fake *f = arg;
	if (what & BEV_EVENT_CONNECTED) {
		f->handshake_done = true;
		fake_peer_cn(f, bev);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
		/* Keep what arrived before the close for the test to inspect. */
		evbuffer_add_buffer(f->rx, bufferevent_get_input(bev));
		f->eof = true;
		if (f->bev == bev)
			f->bev = NULL;
		bufferevent_free(bev);
	}
}

static void fake_accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa,
                           int salen, void *arg)
{
	struct fake *f = arg;
	struct bufferevent *bev;
	if (f->bev)
		bufferevent_free(f->bev);
	if (f->ssl_ctx)
		bev = bufferevent_openssl_socket_new(f->base, fd, SSL_new(f->ssl_ctx), BUFFEREVENT_SSL_ACCEPTING,
		                                     BEV_OPT_CLOSE_ON_FREE);
	else
		bev = bufferevent_socket_new(f->base, fd, BEV_OPT_CLOSE_ON_FREE);
	assert_non_null(bev);
	bufferevent_setcb(bev, fake_read_cb, NULL, fake_event_cb, f);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	f->bev = bev;
	f->accepted++;
	f->eof = false;
	f->handshake_done = !f->ssl_ctx;
	evbuffer_drain(f->rx, evbuffer_get_length(f->rx));
}

static __attribute__((unused)) struct fake *fake_new(struct event_base *base, SSL_CTX *ctx)
{
	struct fake *f = calloc(1, sizeof *f);
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sin;

	f->base = base;
	f->ssl_ctx = ctx;
	f->rx = evbuffer_new();
	f->log = evbuffer_new();
	f->lst = evconnlistener_new_bind(base, fake_accept_cb, f, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 16,
	                                 (struct sockaddr *)&sin, sizeof sin);
	assert_non_null(f->lst);
	getsockname(evconnlistener_get_fd(f->lst), (struct sockaddr *)&sin, &len);
	f->port = ntohs(sin.sin_port);
	return f;
}

static __attribute__((unused)) void fake_free(struct fake *f)
{
	if (!f)
		return;
	if (f->bev)
		bufferevent_free(f->bev);
	evconnlistener_free(f->lst);
	evbuffer_free(f->rx);
	evbuffer_free(f->log);
	free(f);
}

/* Closes the accepted connection, as a broker does after an ERROR. */
static __attribute__((unused)) void fake_close(struct fake *f)
{
	if (f->bev)
		bufferevent_free(f->bev);
	f->bev = NULL;
}

struct fake_wait {
	struct fake *f;
	char *frame;
	size_t len;
};

static bool fake_have_frame(void *arg)
{
	struct fake_wait *w = arg;
	if (!w->frame)
		w->frame = fake_cut(w->f, &w->len);
	return w->frame != NULL;
}

/* The next frame from the client, or NULL when none comes in time. */
static __attribute__((unused)) char *fake_next(struct fake *f, size_t *len, unsigned ms)
{
	struct fake_wait w = { .f = f };
	test_run(f->base, fake_have_frame, &w, ms);
	*len = w.len;
	return w.frame;
}

/* Prints bytes with the control characters visible, for failure reports. */
static void fake_show(const char *what, const char *p, size_t n)
{
	fprintf(stderr, "%s (%zu bytes): \"", what, n);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)p[i];
		if (c == '\n')
			fputs("\\n", stderr);
		else if (c == 0)
			fputs("\\0", stderr);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(stderr, "\\x%02x", c);
		else
			fputc(c, stderr);
	}
	fputs("\"\n", stderr);
}

static __attribute__((unused)) void fake_expectn(struct fake *f, const char *want, size_t wlen)
{
	size_t len = 0;
	char *got = fake_next(f, &len, FAKE_WAIT_MS);
	if (!got) {
		fake_show("expected", want, wlen);
		fail_msg("the client sent no (complete) frame within %d ms", FAKE_WAIT_MS);
	}
	if (len != wlen || memcmp(got, want, len) != 0) {
		fake_show("expected", want, wlen);
		fake_show("received", got, len);
		free(got);
		fail_msg("the client's frame differs from the expected bytes");
	}
	free(got);
}

#define fake_expect(f, lit) fake_expectn((f), (lit), sizeof(lit))

/* Nothing more arrives within ms (heart-beat EOLs aside). */
static __attribute__((unused)) void fake_expect_nothing(struct fake *f, unsigned ms)
{
	size_t len = 0;
	char *got = fake_next(f, &len, ms);
	if (got) {
		fake_show("unexpected", got, len);
		free(got);
		fail_msg("the client sent a frame where none was expected");
	}
}

static bool fake_is_eof(void *arg) { return ((struct fake *)arg)->eof; }
static bool fake_is_accepted(void *arg) { return ((struct fake *)arg)->bev != NULL; }

static __attribute__((unused)) void fake_wait_eof(struct fake *f)
{
	if (!test_run(f->base, fake_is_eof, f, FAKE_WAIT_MS))
		fail_msg("the client did not close its connection within %d ms", FAKE_WAIT_MS);
}

static __attribute__((unused)) void fake_wait_accept(struct fake *f)
{
	if (!test_run(f->base, fake_is_accepted, f, FAKE_WAIT_MS))
		fail_msg("the client did not connect within %d ms", FAKE_WAIT_MS);
}

/* ---- what the client's callbacks reported, in order ---- */

#define REC_MAX 64

struct rec_event {
	int seq;			/* order among events and acks */
	enum mq_event_type type;
	char text[512];
	bool requested;
	struct mq_queue *queue;
};

struct rec_ack {
	int seq;
	enum mq_ack_status status;
	enum mq_ack_reason reason;
	char text[256];
	uint64_t receipt;
	void *arg;
};

struct rec {
	int seq;
	int nevents;
	struct rec_event ev[REC_MAX];
	int nacks;
	struct rec_ack ack[REC_MAX];
};

static __attribute__((unused)) void rec_event_cb(struct mq_session *s, const struct mq_event *ev, void *arg)
{
	struct rec *r = arg;
	struct rec_event *e;
	assert_true(r->nevents < REC_MAX);
	e = &r->ev[r->nevents++];
	e->seq = r->seq++;
	e->type = ev->type;
	e->requested = ev->requested;
	e->queue = ev->queue;
	assert_non_null(ev->text);
	snprintf(e->text, sizeof e->text, "%s", ev->text);
}

/* on_ack with arg = the struct rec; the post's own arg is not needed. */
static __attribute__((unused)) void rec_ack_cb(struct mq_session *s, const struct mq_ack *ack, void *arg)
{
	struct rec *r = arg;
	struct rec_ack *a;
	assert_true(r->nacks < REC_MAX);
	a = &r->ack[r->nacks++];
	a->seq = r->seq++;
	a->status = ack->status;
	a->reason = ack->reason;
	a->receipt = ack->receipt;
	a->arg = arg;
	assert_non_null(ack->text);
	snprintf(a->text, sizeof a->text, "%s", ack->text);
}

struct rec_want {
	struct rec *r;
	int n;
};

static bool rec_has_events(void *arg)
{
	struct rec_want *w = arg;
	return w->r->nevents >= w->n;
}

static bool rec_has_acks(void *arg)
{
	struct rec_want *w = arg;
	return w->r->nacks >= w->n;
}

/* Runs the loop until the n-th event has been reported; returns it. */
static __attribute__((unused)) struct rec_event *rec_wait_event(struct event_base *base, struct rec *r, int n)
{
	struct rec_want w = { r, n };
	if (!test_run(base, rec_has_events, &w, FAKE_WAIT_MS))
		fail_msg("event #%d not reported within %d ms (have %d)", n, FAKE_WAIT_MS, r->nevents);
	return &r->ev[n - 1];
}

static __attribute__((unused)) struct rec_ack *rec_wait_ack(struct event_base *base, struct rec *r, int n)
{
	struct rec_want w = { r, n };
	if (!test_run(base, rec_has_acks, &w, FAKE_WAIT_MS))
		fail_msg("acknowledgement #%d not reported within %d ms (have %d)", n, FAKE_WAIT_MS, r->nacks);
	return &r->ack[n - 1];
}

#define assert_contains(hay, needle)                                                    \
	do {                                                                            \
		if (!strstr((hay), (needle)))                                           \
			fail_msg("'%s' does not contain '%s'", (hay), (needle));        \
	} while (0)

/* ---- a fixture: loop, fake server, session ---- */

struct fx {
	struct event_base *base;
	struct fake *fake;
	struct mq_session *s;
	struct mq_session_opts o;	/* used by fx_start: tests adjust it first */
	struct rec rec;
	void *data;			/* the test's own */
};

static __attribute__((unused)) int fx_setup(void **state)
{
	struct fx *x = calloc(1, sizeof *x);
	x->base = event_base_new();
	x->fake = fake_new(x->base, NULL);
	x->o.host = "127.0.0.1";
	x->o.port = x->fake->port;
	x->o.on_event = rec_event_cb;
	x->o.arg = &x->rec;
	*state = x;
	return 0;
}

static __attribute__((unused)) int fx_teardown(void **state)
{
	struct fx *x = *state;
	mq_session_free(x->s);
	fake_free(x->fake);
	event_base_free(x->base);
	free(x);
	return 0;
}

/* A session from x->o, started; returns once the fake has its CONNECT. */
static __attribute__((unused)) void fx_start(struct fx *x)
{
	size_t n;
	char *fr;
	x->s = mq_session_new(x->base, &x->o);
	assert_non_null(x->s);
	assert_int_equal(mq_session_start(x->s), 0);
	fr = fake_next(x->fake, &n, FAKE_WAIT_MS);
	if (!fr)
		fail_msg("no CONNECT frame arrived");
	assert_memory_equal(fr, "CONNECT\n", 8);
	free(fr);
}

/* fx_start, then the CONNECTED given; returns after the CONNECTED event. */
static __attribute__((unused)) void fx_connectn(struct fx *x, const char *connected, size_t len)
{
	struct rec_event *e;
	int n = x->rec.nevents;
	fx_start(x);
	fake_sendn(x->fake, connected, len);
	e = rec_wait_event(x->base, &x->rec, n + 1);
	if (e->type != MQ_EVENT_CONNECTED)
		fail_msg("expected CONNECTED, got event %d: %s", e->type, e->text);
}

#define fx_connect(x, lit) fx_connectn((x), (lit), sizeof(lit))
#define CONNECTED_12 "CONNECTED\nversion:1.2\n\n"
#define CONNECTED_11 "CONNECTED\nversion:1.1\n\n"
#define CONNECTED_10 "CONNECTED\n\n"

#endif
