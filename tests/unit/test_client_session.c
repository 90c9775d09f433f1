/* test_client_session.c: the client session's life cycle against a fake
 * broker: CONNECT and version negotiation, connection failures, heart-beats,
 * stop, abort, free from a callback, backpressure and the blocking helpers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mqclient.h"
#include "test_client_fake.h"
#include "common/util.h"

/* A loopback port with nothing listening: bind one, note it, close it. */
static uint16_t closed_port(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof sin;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof sin), 0);
	getsockname(fd, (struct sockaddr *)&sin, &len);
	close(fd);
	return ntohs(sin.sin_port);
}

static void test_connect_negotiates_each_version(void **state)
{
	/* The CONNECT frame offers 1.0,1.1,1.2 by default and the session
	 * takes the version CONNECTED names (none named: 1.0). */
	static const struct {
		const char *connected;
		size_t len;
		int version;
	} cases[] = {
		{ "CONNECTED\nversion:1.2\nserver:fake/1\nsession:s-1\n\n", 0, 12 },
		{ "CONNECTED\nversion:1.1\nserver:fake/1\nsession:s-1\n\n", 0, 11 },
		{ "CONNECTED\nserver:fake/1\nsession:s-1\n\n", 0, 10 },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fx *x;
		struct rec_event *e;
		fx_setup(state);
		x = *state;
		x->s = mq_session_new(x->base, &x->o);
		assert_int_equal(mq_session_state(x->s), MQ_SESSION_IDLE);
		assert_int_equal(mq_session_start(x->s), 0);
		assert_int_equal(mq_session_state(x->s), MQ_SESSION_CONNECTING);
		fake_expect(x->fake, "CONNECT\naccept-version:1.0,1.1,1.2\nhost:127.0.0.1\nheart-beat:0,0\n\n");
		assert_int_equal(mq_session_state(x->s), MQ_SESSION_LOGIN);
		fake_sendn(x->fake, cases[i].connected, strlen(cases[i].connected) + 1);
		e = rec_wait_event(x->base, &x->rec, 1);
		assert_int_equal(e->type, MQ_EVENT_CONNECTED);
		assert_int_equal(mq_session_state(x->s), MQ_SESSION_CONNECTED);
		assert_int_equal(mq_session_version(x->s), cases[i].version);
		assert_string_equal(mq_session_server(x->s), "fake/1");
		assert_string_equal(mq_session_broker_session(x->s), "s-1");
		assert_contains(e->text, cases[i].version == 12 ? "STOMP 1.2" :
		                         cases[i].version == 11 ? "STOMP 1.1" : "STOMP 1.0");
		fx_teardown(state);
	}
}

static void test_connect_headers_from_options(void **state)
{
	/* vhost, login, passcode, client-id, heart-beat and accept-version
	 * go out exactly as given, unescaped, in a fixed order. */
	struct fx *x = *state;
	x->o.vhost = "/prod";
	x->o.login = "alice";
	x->o.passcode = "pa:ss";
	x->o.client_id = "worker-1";
	x->o.accept_version = "1.2";
	x->o.heartbeat_send_ms = 5000;
	x->o.heartbeat_recv_ms = 7000;
	x->s = mq_session_new(x->base, &x->o);
	assert_int_equal(mq_session_start(x->s), 0);
	fake_expect(x->fake, "CONNECT\naccept-version:1.2\nhost:/prod\nlogin:alice\npasscode:pa:ss\n"
	                     "client-id:worker-1\nheart-beat:5000,7000\n\n");
}

static void test_connect_rejects_newline_in_header(void **state)
{
	/* CONNECT headers are never escaped, so a newline cannot be sent:
	 * start refuses, naming the header. */
	struct fx *x = *state;
	x->o.login = "ali\nce";
	x->s = mq_session_new(x->base, &x->o);
	assert_int_equal(mq_session_start(x->s), -1);
	assert_contains(mq_session_error(x->s), "'login'");
	assert_int_equal(mq_session_state(x->s), MQ_SESSION_IDLE);
	assert_int_equal(x->fake->accepted, 0);
}

static void test_connect_version_not_offered_fails(void **state)
{
	/* A broker answering with a version we did not offer is refused. */
	struct fx *x = *state;
	struct rec_event *e;
	x->o.accept_version = "1.1,1.2";
	fx_start(x);
	fake_send(x->fake, CONNECTED_10);
	fake_send(x->fake, "CONNECTED\nversion:1.0\n\n");
	e = rec_wait_event(x->base, &x->rec, 1);
	/* The first CONNECTED (no version: 1.0) already fails. */
	assert_int_equal(e->type, MQ_EVENT_CONNECT_FAILED);
	assert_false(e->requested);
	assert_int_equal(mq_session_state(x->s), MQ_SESSION_IDLE);
	fake_wait_eof(x->fake);
	test_sleep(x->base, 50);
	assert_int_equal(x->rec.nevents, 1);
}

static void test_connect_unoffered_explicit_version_fails(void **state)
{
	/* version:1.0 when only 1.2 was offered: CONNECT_FAILED naming both. */
	struct fx *x = *state;
	struct rec_event *e;
	x->o.accept_version = "1.2";
	fx_start(x);
	fake_send(x->fake, "CONNECTED\nversion:1.0\n\n");
	e = rec_wait_event(x->base, &x->rec, 1);
	assert_int_equal(e->type, MQ_EVENT_CONNECT_FAILED);
	assert_contains(e->text, "version 1.0, which was not offered (accept-version:1.2)");
	assert_string_equal(mq_session_error(x->s), e->text);
}

static void test_connect_refused_port_reports_connect_failed(void **state)
{
	/* Nothing listening: CONNECT_FAILED, with the address and the
	 * system's reason, reported from the loop and not from start(). */
	struct fx *x = *state;
	struct rec_event *e;
	char want[64];
	x->o.port = closed_port();
	x->s = mq_session_new(x->base, &x->o);
	assert_int_equal(mq_session_start(x->s), 0);
	assert_int_equal(x->rec.nevents, 0);
	e = rec_wait_event(x->base, &x->rec, 1);
	assert_int_equal(e->type, MQ_EVENT_CONNECT_FAILED);
	snprintf(want, sizeof want, "cannot connect to 127.0.0.1:%u: Connection refused", x->o.port);
	assert_string_equal(e->text, want);
	assert_false(e->requested);
	assert_int_equal(mq_session_state(x->s), MQ_SESSION_IDLE);
	/* And it may be started again. */
	assert_int_equal(mq_session_start(x->s), 0);
	e = rec_wait_event(x->base, &x->rec, 2);
	assert_int_equal(e->type, MQ_EVENT_CONNECT_FAILED);
}

static void test_connect_error_frame_reports_connect_failed(void **state)
{
	/* An ERROR in answer to CONNECT is a failed connection, with the
	 * broker's message in the text. */
	struct fx *x = *state;
	struct rec_event *e;
	fx_start(x);
	fake_send(x->fake, "ERROR\nmessage:bad login 'alice'\n\nno such user");
	e = rec_wait_event(x->base, &x->rec, 1);
	assert_int_equal(e->type, MQ_EVENT_CONNECT_FAILED);
	assert_contains(e->text, "refused CONNECT: bad login 'alice'");
	fake_wait_eof(x->fake);
	test_sleep(x->base, 30);
	assert_int_equal(x->rec.nevents, 1);	/* no second event for the close */
}

static void test_connect_timeout_reports_connect_failed(void **state)
{
	/* A broker that accepts and never answers CONNECT: CONNECT_FAILED
	 * after connect_timeout_ms, and the socket is closed. */
	struct fx *x = *state;
	struct rec_event *e;
	x->o.connect_timeout_ms = 150;
	fx_start(x);
	e = rec_wait_event(x->base, &x->rec, 1);
	assert_int_equal(e->type, MQ_EVENT_CONNECT_FAILED);
	assert_contains(e->text, "no CONNECTED from 127.0.0.1:");
	assert_contains(e->text, "within 150 ms");
	fake_wait_eof(x->fake);
}

static void test_heartbeat_eols_sent_at_interval(void **state)
{
	/* heart-beat:100,0 offered, broker wants 100: an idle client sends an
	 * EOL at least every 100 ms. */
	struct fx *x = *state;
	unsigned snd, rcv;
	struct mq_stats st;
	x->o.heartbeat_send_ms = 100;
	fx_connect(x, "CONNECTED\nversion:1.2\nheart-beat:0,100\n\n");
	mq_session_heartbeats(x->s, &snd, &rcv);
	assert_int_equal(snd, 100);
	assert_int_equal(rcv, 0);
	fake_expect_nothing(x->fake, 420);
	/* 420 ms at most 100 ms apart: at least 4 (the first may take 100). */
	if (x->fake->eols < 3)
		fail_msg("only %zu heart-beats in 420 ms at 100 ms", x->fake->eols);
	mq_session_stats(x->s, &st);
	assert_int_equal(st.heartbeats_out, x->fake->eols);
}

static void test_heartbeat_not_sent_when_broker_wants_none(void **state)
{
	/* The broker's 0 for "wants" means no heart-beats at all. */
	struct fx *x = *state;
	x->o.heartbeat_send_ms = 50;
	fx_connect(x, "CONNECTED\nversion:1.2\nheart-beat:0,0\n\n");
	fake_expect_nothing(x->fake, 200);
	assert_int_equal(x->fake->eols, 0);
}

struct beat {
	struct fake *f;
	struct event *ev;
};

static void beat_cb(evutil_socket_t fd, short what, void *arg)
{
	struct beat *b = arg;
	if (b->f->bev)
		bufferevent_write(b->f->bev, "\n", 1);
}

static void test_heartbeat_silent_broker_detected(void **state)
{
	/* While the broker's EOLs keep coming the session stays up; once they
	 * stop, DISCONNECTED comes within about two intervals. */
	struct fx *x = *state;
	struct rec_event *e;
	struct beat b = { x->fake, NULL };
	struct timeval every = { 0, 40 * 1000 };
	struct mq_stats st;
	uint64_t t0;
	x->o.heartbeat_recv_ms = 100;
	fx_connect(x, "CONNECTED\nversion:1.2\nheart-beat:100,0\n\n");
	b.ev = event_new(x->base, -1, EV_PERSIST, beat_cb, &b);
	event_add(b.ev, &every);
	test_sleep(x->base, 500);
	assert_int_equal(x->rec.nevents, 1);
	assert_int_equal(mq_session_state(x->s), MQ_SESSION_CONNECTED);
	mq_session_stats(x->s, &st);
	assert_true(st.heartbeats_in >= 8);
	event_free(b.ev);

	t0 = mono_ms();
	e = rec_wait_event(x->base, &x->rec, 2);
	assert_int_equal(e->type, MQ_EVENT_DISCONNECTED);
	assert_false(e->requested);
	assert_contains(e->text, "silent for 200 ms (heart-beat interval 100 ms)");
	assert_true(mono_ms() - t0 <= 600);	/* nominal 200-300 ms; slack for loaded CI */
	fake_wait_eof(x->fake);
}

static void test_stop_sends_disconnect_and_waits_for_receipt(void **state)
{
	/* stop: DISCONNECT with a receipt; an ack answered before it is OK;
	 * the close and DISCONNECTED (requested) only on the RECEIPT. */
	struct fx *x = *state;
	struct mq_queue *q;
	struct rec_event *e;
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/a", MQ_WRITE, NULL);
	assert_int_equal(mq_post(q, "x", 1, NULL, 0, 0, rec_ack_cb, &x->rec), 0);
	fake_expect(x->fake, "SEND\ndestination:/queue/a\nreceipt:1\ncontent-length:1\n\nx");
	mq_session_stop(x->s);
	assert_int_equal(mq_session_state(x->s), MQ_SESSION_CLOSING);
	fake_expect(x->fake, "DISCONNECT\nreceipt:2\n\n");
	/* closing: no more posts */
	assert_int_equal(mq_post(q, "y", 1, NULL, 0, 0, NULL, NULL), -1);
	assert_contains(mq_session_error(x->s), "is closing");
	test_sleep(x->base, 30);
	assert_false(x->fake->eof);
	fake_send(x->fake, "RECEIPT\nreceipt-id:1\n\n");
	fake_send(x->fake, "RECEIPT\nreceipt-id:2\n\n");
	e = rec_wait_event(x->base, &x->rec, 2);
	assert_int_equal(e->type, MQ_EVENT_DISCONNECTED);
	assert_true(e->requested);
	assert_string_equal(e->text, "closed by mq_session_stop");
	assert_int_equal(x->rec.nacks, 1);
	assert_int_equal(x->rec.ack[0].status, MQ_ACK_OK);
	assert_true(x->rec.ack[0].seq < e->seq);
	fake_wait_eof(x->fake);
	assert_int_equal(evbuffer_get_length(x->fake->rx), 0);
}

static void test_stop_without_receipt_times_out(void **state)
{
	/* A broker that never answers DISCONNECT: closed after the timeout. */
	struct fx *x = *state;
	struct rec_event *e;
	x->o.connect_timeout_ms = 100;
	fx_connect(x, CONNECTED_12);
	mq_session_stop(x->s);
	fake_expect(x->fake, "DISCONNECT\nreceipt:1\n\n");
	e = rec_wait_event(x->base, &x->rec, 2);
	assert_int_equal(e->type, MQ_EVENT_DISCONNECTED);
	assert_true(e->requested);
	assert_contains(e->text, "no RECEIPT for DISCONNECT within 100 ms");
	fake_wait_eof(x->fake);
}

static void test_abort_closes_without_disconnect(void **state)
{
	/* abort: no DISCONNECT on the wire, the socket closed, and before it
	 * returns the outstanding ack has failed and DISCONNECTED is out. */
	struct fx *x = *state;
	struct mq_queue *q;
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/a", MQ_WRITE, NULL);
	assert_int_equal(mq_post(q, "x", 1, NULL, 0, 0, rec_ack_cb, &x->rec), 0);
	fake_expect(x->fake, "SEND\ndestination:/queue/a\nreceipt:1\ncontent-length:1\n\nx");
	mq_session_abort(x->s);
	assert_int_equal(mq_session_state(x->s), MQ_SESSION_IDLE);
	assert_int_equal(x->rec.nacks, 1);
	assert_int_equal(x->rec.ack[0].status, MQ_ACK_FAILED);
	assert_string_equal(x->rec.ack[0].text, "aborted by mq_session_abort");
	assert_int_equal(x->rec.nevents, 2);
	assert_int_equal(x->rec.ev[1].type, MQ_EVENT_DISCONNECTED);
	assert_true(x->rec.ev[1].requested);
	assert_true(x->rec.ack[0].seq < x->rec.ev[1].seq);
	fake_wait_eof(x->fake);
	assert_int_equal(evbuffer_get_length(x->fake->rx), 0);	/* no DISCONNECT */
	mq_session_abort(x->s);	/* again: nothing */
	assert_int_equal(x->rec.nevents, 2);
}

static void test_broker_close_reports_disconnected(void **state)
{
	/* The broker hangs up: DISCONNECTED, not requested, naming it. */
	struct fx *x = *state;
	struct rec_event *e;
	fx_connect(x, CONNECTED_12);
	fake_close(x->fake);
	e = rec_wait_event(x->base, &x->rec, 2);
	assert_int_equal(e->type, MQ_EVENT_DISCONNECTED);
	assert_false(e->requested);
	assert_contains(e->text, "closed by the broker");
	assert_int_equal(mq_session_version(x->s), 0);
}

static void free_on_event(struct mq_session *s, const struct mq_event *ev, void *arg)
{
	int *n = arg;
	(*n)++;
	mq_session_free(s);
}

static void test_free_inside_event_callback(void **state)
{
	/* A session freed from its own CONNECTED event is released once the
	 * callback returns (ASan checks the rest), and the socket closes. */
	struct fx *x = *state;
	int calls = 0;
	x->o.on_event = free_on_event;
	x->o.arg = &calls;
	fx_start(x);
	fake_send(x->fake, CONNECTED_12);
	fake_wait_eof(x->fake);
	assert_int_equal(calls, 1);
	x->s = NULL;	/* freed */
}

struct restarter {
	struct rec rec;
	int restarts;
};

static void restart_on_close(struct mq_session *s, const struct mq_event *ev, void *arg)
{
	struct restarter *r = arg;
	rec_event_cb(s, ev, &r->rec);
	if (ev->type == MQ_EVENT_DISCONNECTED && r->restarts++ == 0)
		assert_int_equal(mq_session_start(s), 0);
}

static void test_restart_from_disconnected_handler(void **state)
{
	/* Reconnecting from inside the DISCONNECTED callback works: a new
	 * connection, a new CONNECT, and the old socket closed. */
	struct fx *x = *state;
	struct restarter r = { 0 };
	struct rec_event *e;
	struct mq_stats st;
	x->o.on_event = restart_on_close;
	x->o.arg = &r;
	fx_start(x);
	fake_send(x->fake, CONNECTED_12);
	rec_wait_event(x->base, &r.rec, 1);
	fake_close(x->fake);
	rec_wait_event(x->base, &r.rec, 2);
	fake_expect(x->fake, "CONNECT\naccept-version:1.0,1.1,1.2\nhost:127.0.0.1\nheart-beat:0,0\n\n");
	fake_send(x->fake, CONNECTED_11);
	e = rec_wait_event(x->base, &r.rec, 3);
	assert_int_equal(e->type, MQ_EVENT_CONNECTED);
	assert_int_equal(mq_session_version(x->s), 11);
	assert_int_equal(x->fake->accepted, 2);
	mq_session_stats(x->s, &st);
	assert_int_equal(st.connects, 2);
}

static void test_drained_event_after_high_water(void **state)
{
	/* Past out_high_water, DRAINED comes once the output has drained to
	 * out_low_water. */
	struct fx *x = *state;
	struct mq_queue *q;
	struct rec_event *e;
	static char body[8192];
	x->o.out_high_water = 4096;
	x->o.out_low_water = 1024;
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/a", MQ_WRITE, NULL);
	for (int i = 0; i < 4; i++)
		assert_int_equal(mq_post(q, body, sizeof body, NULL, 0, 0, NULL, NULL), 0);
	assert_true(mq_session_pending_bytes(x->s) > 4096);
	e = rec_wait_event(x->base, &x->rec, 2);
	assert_int_equal(e->type, MQ_EVENT_DRAINED);
	assert_true(mq_session_pending_bytes(x->s) <= 1024);
}

static void test_stats_count_frames_and_bytes(void **state)
{
	/* Counters add up to what crossed the wire. */
	struct fx *x = *state;
	struct mq_queue *q;
	struct mq_stats st;
	static const char connect[] = "CONNECT\naccept-version:1.0,1.1,1.2\nhost:127.0.0.1\nheart-beat:0,0\n\n";
	static const char send[] = "SEND\ndestination:/q\nreceipt:1\ncontent-length:2\n\nhi";
	static const char receipt[] = "RECEIPT\nreceipt-id:1\n\n";
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/q", MQ_WRITE, NULL);
	assert_int_equal(mq_post(q, "hi", 2, NULL, 0, 0, rec_ack_cb, &x->rec), 0);
	mq_session_stats(x->s, &st);
	assert_int_equal(st.acks_pending, 1);
	fake_expect(x->fake, send);
	fake_send(x->fake, receipt);
	rec_wait_ack(x->base, &x->rec, 1);
	mq_session_stats(x->s, &st);
	assert_int_equal(st.frames_out, 2);
	assert_int_equal(st.bytes_out, sizeof connect + sizeof send);
	assert_int_equal(st.frames_in, 2);
	assert_int_equal(st.bytes_in, sizeof CONNECTED_12 + sizeof receipt);
	assert_int_equal(st.posted, 1);
	assert_int_equal(st.acked, 1);
	assert_int_equal(st.acks_pending, 0);
	assert_int_equal(st.connects, 1);
}

/* ---- blocking helpers, against the fake on autopilot ---- */

static void test_sync_helpers_run_the_loop(void **state)
{
	/* connect_sync, open_sync, post_sync and stop_sync each return once
	 * their answer has arrived, with the frames in order on the wire. */
	struct fx *x = *state;
	struct mq_queue *w, *r;
	static const char connected[] = CONNECTED_12;
	const char want[] =
		"CONNECT\naccept-version:1.0,1.1,1.2\nhost:127.0.0.1\nheart-beat:0,0\n\n\0"
		"SUBSCRIBE\nid:sub-1\ndestination:/queue/in\nack:auto\nreceipt:1\n\n\0"
		"SEND\ndestination:/queue/out\nreceipt:2\npersistent:true\ncontent-length:3\n\nabc\0"
		"DISCONNECT\nreceipt:3\n\n";
	x->fake->autopilot = true;
	x->fake->auto_connected = connected;
	x->fake->auto_connected_len = sizeof connected;
	x->s = mq_session_new(x->base, &x->o);
	assert_int_equal(mq_session_connect_sync(x->s, 2000), 0);
	assert_int_equal(mq_session_state(x->s), MQ_SESSION_CONNECTED);
	r = mq_open_sync(x->s, "/queue/in", MQ_READ, NULL, 2000);
	assert_non_null(r);
	w = mq_open_sync(x->s, "/queue/out", MQ_WRITE, NULL, 2000);
	assert_non_null(w);
	assert_int_equal(mq_post_sync(w, "abc", 3, NULL, 0, MQ_PERSISTENT, 2000), 0);
	mq_session_stop_sync(x->s, 2000);
	assert_int_equal(mq_session_state(x->s), MQ_SESSION_IDLE);
	fake_wait_eof(x->fake);
	assert_int_equal(evbuffer_get_length(x->fake->log), sizeof want);
	assert_memory_equal(evbuffer_pullup(x->fake->log, -1), want, sizeof want);
}

static void test_sync_post_fails_on_error_frame(void **state)
{
	/* post_sync returns -1 with the broker's ERROR text. */
	struct fx *x = *state;
	struct mq_queue *w;
	static const char connected[] = CONNECTED_12;
	x->fake->autopilot = true;
	x->fake->auto_connected = connected;
	x->fake->auto_connected_len = sizeof connected;
	x->s = mq_session_new(x->base, &x->o);
	assert_int_equal(mq_session_connect_sync(x->s, 2000), 0);
	w = mq_open(x->s, "/queue/out", MQ_WRITE, NULL);
	/* The ERROR goes out before the autopilot's RECEIPT. */
	fake_send(x->fake, "ERROR\nreceipt-id:1\nmessage:queue /queue/out is full\n\n");
	assert_int_equal(mq_post_sync(w, "abc", 3, NULL, 0, 0, 2000), -1);
	assert_string_equal(mq_session_error(x->s), "post to /queue/out failed: queue /queue/out is full");
}

static void test_sync_open_refused_by_error(void **state)
{
	/* open_sync: an ERROR naming the SUBSCRIBE's receipt gives NULL, the
	 * broker's text, and a closed queue (its id free again). The refused
	 * subscription does not exist, so closing it sends no UNSUBSCRIBE. */
	struct fx *x = *state;
	struct mq_queue_opts o = { .id = "mine" };
	fx_connect(x, CONNECTED_12);
	/* Read only once open_sync runs the loop, after its SUBSCRIBE. */
	fake_send(x->fake, "ERROR\nreceipt-id:1\nmessage:cannot subscribe to pubsub /pubsub/p\n\n");
	assert_null(mq_open_sync(x->s, "/pubsub/p", MQ_READ, &o, 2000));
	assert_string_equal(mq_session_error(x->s), "cannot subscribe to /pubsub/p: cannot subscribe to pubsub /pubsub/p");
	fake_expect(x->fake, "SUBSCRIBE\nid:mine\ndestination:/pubsub/p\nack:auto\nreceipt:1\n\n");
	assert_non_null(mq_open(x->s, "/queue/q", MQ_READ, &o));
	fake_expect(x->fake, "SUBSCRIBE\nid:mine\ndestination:/queue/q\nack:auto\n\n");
}

static void test_sync_post_timeout_forgets_receipt(void **state)
{
	/* post_sync with no answer: -1 after the time given; the RECEIPT that
	 * comes later is ignored (its waiter is gone) and counted nowhere. */
	struct fx *x = *state;
	struct mq_queue *w;
	struct mq_stats st;
	fx_connect(x, CONNECTED_12);
	w = mq_open(x->s, "/queue/slow", MQ_WRITE, NULL);
	assert_int_equal(mq_post_sync(w, "abc", 3, NULL, 0, 0, 100), -1);
	assert_string_equal(mq_session_error(x->s), "post to /queue/slow: no RECEIPT within 100 ms");
	mq_session_stats(x->s, &st);
	assert_int_equal(st.acks_pending, 0);
	assert_int_equal(st.ack_failed, 1);
	fake_expect(x->fake, "SEND\ndestination:/queue/slow\nreceipt:1\ncontent-length:3\n\nabc");
	fake_send(x->fake, "RECEIPT\nreceipt-id:1\n\n");
	test_sleep(x->base, 50);
	mq_session_stats(x->s, &st);
	assert_int_equal(st.acked, 0);
	assert_int_equal(mq_session_state(x->s), MQ_SESSION_CONNECTED);
}

static void test_sync_connect_refused_names_address(void **state)
{
	/* connect_sync to a closed port: -1 and the reason. */
	struct fx *x = *state;
	char want[64];
	x->o.port = closed_port();
	x->s = mq_session_new(x->base, &x->o);
	assert_int_equal(mq_session_connect_sync(x->s, 2000), -1);
	snprintf(want, sizeof want, "cannot connect to 127.0.0.1:%u: Connection refused", x->o.port);
	assert_string_equal(mq_session_error(x->s), want);
}

static void test_sync_connect_timeout(void **state)
{
	/* A broker that never answers: -1 after the given time, and the
	 * attempt is abandoned (the session is IDLE again). */
	struct fx *x = *state;
	x->s = mq_session_new(x->base, &x->o);
	assert_int_equal(mq_session_connect_sync(x->s, 150), -1);
	assert_contains(mq_session_error(x->s), "within 150 ms");
	assert_int_equal(mq_session_state(x->s), MQ_SESSION_IDLE);
}

static bool never(void *arg) { return false; }

static void nested_run_on_event(struct mq_session *s, const struct mq_event *ev, void *arg)
{
	*(enum mq_run_status *)arg = mq_session_run_until(s, never, NULL, 10);
}

static void test_run_until_refused_inside_callback(void **state)
{
	/* Running the loop from a callback would nest it: refused. */
	struct fx *x = *state;
	enum mq_run_status st = MQ_RUN_DONE;
	x->o.on_event = nested_run_on_event;
	x->o.arg = &st;
	fx_start(x);
	fake_send(x->fake, CONNECTED_12);
	test_run(x->base, NULL, NULL, 100);
	assert_int_equal(st, MQ_RUN_ERROR);
	assert_contains(mq_session_error(x->s), "inside a callback");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_connect_negotiates_each_version),
		cmocka_unit_test_setup_teardown(test_connect_headers_from_options, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_connect_rejects_newline_in_header, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_connect_version_not_offered_fails, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_connect_unoffered_explicit_version_fails, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_connect_refused_port_reports_connect_failed, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_connect_error_frame_reports_connect_failed, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_connect_timeout_reports_connect_failed, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_heartbeat_eols_sent_at_interval, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_heartbeat_not_sent_when_broker_wants_none, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_heartbeat_silent_broker_detected, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_stop_sends_disconnect_and_waits_for_receipt, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_stop_without_receipt_times_out, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_abort_closes_without_disconnect, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_broker_close_reports_disconnected, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_free_inside_event_callback, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_restart_from_disconnected_handler, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_drained_event_after_high_water, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_stats_count_frames_and_bytes, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_sync_helpers_run_the_loop, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_sync_post_fails_on_error_frame, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_sync_open_refused_by_error, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_sync_post_timeout_forgets_receipt, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_sync_connect_refused_names_address, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_sync_connect_timeout, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_run_until_refused_inside_callback, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
