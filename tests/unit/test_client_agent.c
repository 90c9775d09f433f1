/* test_client_agent.c: the session on a thread of its own (mq_agent_*),
 * against a fake broker that runs on the test's thread: requests become
 * frames, answers become events in order, confirms are checked at once
 * (stale after a reconnection), closing fails what is outstanding, posts
 * from several threads each get exactly one acknowledgement, and stop and
 * free end the thread cleanly (ASan sees the rest). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>

#include "mqclient.h"
#include "test_client_fake.h"
#include "common/util.h"

#include <sys/time.h>

/* An event as the test keeps it: the strings are copied. */
struct got_ev {
	int kind, code, reason;
	uint32_t queue;
	uint64_t token;
	char text[256];
	char body[256];
	size_t body_len;
	char headers[512];
	size_t headers_len;
};

#define GOT_MAX 256

struct ax {
	struct fx *x;
	struct mq_agent *a;
	struct got_ev got[GOT_MAX];
	int n;
	int cursor;	/* events before it were matched or passed over */
};

static void take(struct ax *t, const struct mq_agent_event *e)
{
	struct got_ev *g;
	assert_true(t->n < GOT_MAX);
	g = &t->got[t->n++];
	g->kind = e->kind;
	g->code = e->code;
	g->reason = e->reason;
	g->queue = e->queue;
	g->token = e->token;
	assert_non_null(e->text);
	snprintf(g->text, sizeof g->text, "%s", e->text);
	g->body_len = e->body_len;
	if (e->body_len)
		memcpy(g->body, e->body, MIN(e->body_len, sizeof g->body));
	g->headers_len = e->headers_len;
	if (e->headers_len)
		memcpy(g->headers, e->headers, MIN(e->headers_len, sizeof g->headers));
}

/* Runs the fake's loop and polls the agent until an event of `kind` (and
 * `code` unless -1) arrives after the last one matched; returns it. */
static struct got_ev *wait_for(struct ax *t, int kind, int code)
{
	uint64_t end = 0;
	int from = t->cursor;
	struct timeval tv;
	gettimeofday(&tv, NULL);
	end = (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000 + FAKE_WAIT_MS;
	for (;;) {
		struct mq_agent_event ev[16];
		size_t n;
		event_base_loop(t->x->base, EVLOOP_NONBLOCK);
		n = mq_agent_poll(t->a, ev, 16, 5);
		for (size_t i = 0; i < n; i++)
			take(t, &ev[i]);
		for (int i = from; i < t->n; i++) {
			if (t->got[i].kind == kind && (code == -1 || t->got[i].code == code)) {
				t->cursor = i + 1;
				return &t->got[i];
			}
		}
		gettimeofday(&tv, NULL);
		if ((uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000 > end)
			fail_msg("no agent event of kind %d (code %d) within %d ms", kind, code, FAKE_WAIT_MS);
	}
}

static int ax_setup(void **state)
{
	struct ax *t = calloc(1, sizeof *t);
	fx_setup((void **)&t->x);
	t->x->o.on_event = NULL;
	t->x->o.arg = NULL;
	*state = t;
	return 0;
}

static int ax_teardown(void **state)
{
	struct ax *t = *state;
	mq_agent_free(t->a);
	fx_teardown((void **)&t->x);
	free(t);
	return 0;
}

/* Agent started and CONNECTED. */
static void ax_connect(struct ax *t)
{
	t->a = mq_agent_new(&t->x->o);
	assert_non_null(t->a);
	assert_int_equal(mq_agent_start(t->a), 0);
	assert_int_equal(mq_agent_start(t->a), -1);
	assert_contains(mq_agent_error(), "already started");
	fake_expect(t->x->fake, "CONNECT\naccept-version:1.0,1.1,1.2\nhost:127.0.0.1\nheart-beat:0,0\n\n");
	fake_send(t->x->fake, CONNECTED_12);
	wait_for(t, MQ_AGENT_EVENT, MQ_EVENT_CONNECTED);
}

static void send_receipt(struct fake *f, const char *id)
{
	char buf[64];
	int n = snprintf(buf, sizeof buf, "RECEIPT\nreceipt-id:%s\n\n", id);
	fake_sendn(f, buf, (size_t)n + 1);
}

static void test_agent_open_post_receive_confirm(void **state)
{
	/* Open (DONE after the SUBSCRIBE's RECEIPT), post with a token (ACK
	 * with it on the RECEIPT), a MESSAGE (body and headers as name NUL
	 * value NUL), confirm by its token (the ACK frame goes out; a second
	 * confirm is refused at once). */
	struct ax *t = *state;
	struct mq_queue_opts qo = { .max_unconfirmed_messages = 4 };
	const struct mq_header h[] = { { "color", "blue" } };
	struct got_ev *g;
	uint32_t q;
	ax_connect(t);
	q = mq_agent_open(t->a, "/queue/a", MQ_READ | MQ_WRITE, &qo, 11);
	assert_int_equal(q, 1);
	fake_expect(t->x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/a\nack:client-individual\n"
	                        "max-unconfirmed-messages:4\nreceipt:1\n\n");
	send_receipt(t->x->fake, "1");
	g = wait_for(t, MQ_AGENT_DONE, -1);
	assert_int_equal(g->token, 11);
	assert_int_equal(g->code, 0);

	assert_int_equal(mq_agent_post(t->a, q, "hi", 2, h, 1, 0, 42), 0);
	fake_expect(t->x->fake, "SEND\ndestination:/queue/a\nreceipt:2\ncolor:blue\ncontent-length:2\n\nhi");
	send_receipt(t->x->fake, "2");
	g = wait_for(t, MQ_AGENT_ACK, -1);
	assert_int_equal(g->token, 42);
	assert_int_equal(g->code, MQ_ACK_OK);

	fake_send(t->x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:9\nack:9\ndestination:/queue/a\n"
	                      "x-k:v\ncontent-length:3\n\na\0b");
	g = wait_for(t, MQ_AGENT_MESSAGE, -1);
	assert_int_equal(g->queue, q);
	assert_int_equal(g->body_len, 3);
	assert_memory_equal(g->body, "a\0b", 3);
	assert_true(g->headers_len > 0);
	assert_memory_equal(g->headers, "subscription\0sub-1\0", 19);
	assert_int_equal(mq_agent_confirm(t->a, g->token), MQ_OK);
	fake_expect(t->x->fake, "ACK\nid:9\n\n");
	assert_int_equal(mq_agent_confirm(t->a, g->token), MQ_ERR);
	assert_contains(mq_agent_error(), "already confirmed");
}

static void test_agent_refuses_at_once(void **state)
{
	/* Requests that cannot succeed fail before anything is queued, with a
	 * reason for this thread. */
	struct ax *t = *state;
	uint32_t r;
	ax_connect(t);
	assert_int_equal(mq_agent_post(t->a, 7, "x", 1, NULL, 0, 0, 0), -1);
	assert_contains(mq_agent_error(), "queue 7: it is not open");
	assert_int_equal(mq_agent_open(t->a, "", MQ_READ, NULL, 1), 0);
	assert_contains(mq_agent_error(), "empty destination");
	r = mq_agent_open(t->a, "/queue/r", MQ_READ, NULL, 1);
	assert_int_not_equal(r, 0);
	assert_int_equal(mq_agent_post(t->a, r, "x", 1, NULL, 0, 0, 0), -1);
	assert_contains(mq_agent_error(), "not opened for writing");
	assert_int_equal(mq_agent_configure(t->a, 99, NULL, 2), -1);
	assert_int_equal(mq_agent_confirm(t->a, 12345), MQ_ERR);
}

static void test_agent_open_refused_by_broker(void **state)
{
	/* A SUBSCRIBE the broker refuses: DONE with -1 and the ERROR's text. */
	struct ax *t = *state;
	struct got_ev *g;
	ax_connect(t);
	assert_int_not_equal(mq_agent_open(t->a, "/queue/no", MQ_READ, NULL, 5), 0);
	fake_expect(t->x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/no\nack:client-individual\nreceipt:1\n\n");
	fake_send(t->x->fake, "ERROR\nreceipt-id:1\nmessage:not allowed here\n\n");
	g = wait_for(t, MQ_AGENT_DONE, -1);
	assert_int_equal(g->token, 5);
	assert_int_equal(g->code, -1);
	assert_contains(g->text, "not allowed here");
}

static void test_agent_confirm_stale_after_reconnect(void **state)
{
	/* With reconnection: a message from before the loss is refused with
	 * MQ_ERR_STALE by mq_agent_confirm itself; the queue is reopened and
	 * the agent reports RECONNECTED and STATE_RESTORED. */
	struct ax *t = *state;
	struct got_ev *g;
	uint64_t token;
	uint32_t q;
	t->x->o.reconnect = true;
	t->x->o.reconnect_min_ms = 10;
	ax_connect(t);
	q = mq_agent_open(t->a, "/queue/s", MQ_READ, NULL, 1);
	fake_expect(t->x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/s\nack:client-individual\nreceipt:1\n\n");
	send_receipt(t->x->fake, "1");
	wait_for(t, MQ_AGENT_DONE, -1);
	fake_send(t->x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:1\nack:1\ndestination:/queue/s\n\nm");
	g = wait_for(t, MQ_AGENT_MESSAGE, -1);
	token = g->token;
	fake_close(t->x->fake);
	wait_for(t, MQ_AGENT_EVENT, MQ_EVENT_CONNECTION_LOST);
	assert_int_equal(mq_agent_confirm(t->a, token), MQ_ERR_STALE);
	assert_contains(mq_agent_error(), "earlier connection");
	fake_expect(t->x->fake, "CONNECT\naccept-version:1.0,1.1,1.2\nhost:127.0.0.1\nheart-beat:0,0\n\n");
	fake_send(t->x->fake, CONNECTED_12);
	wait_for(t, MQ_AGENT_EVENT, MQ_EVENT_RECONNECTED);
	fake_expect(t->x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/s\nack:client-individual\nreceipt:2\n\n");
	send_receipt(t->x->fake, "2");
	g = wait_for(t, MQ_AGENT_EVENT, MQ_EVENT_QUEUE_REOPENED);
	assert_int_equal(g->queue, q);
	wait_for(t, MQ_AGENT_EVENT, MQ_EVENT_STATE_RESTORED);
}

static void test_agent_close_fails_outstanding_before_done(void **state)
{
	/* Closing with a post unanswered: at the timeout its ACK fails
	 * (CANCELED), and only then DONE(-1); the queue is gone. */
	struct ax *t = *state;
	struct got_ev *ack, *done;
	uint32_t q;
	ax_connect(t);
	q = mq_agent_open(t->a, "/queue/w", MQ_WRITE, NULL, 1);
	wait_for(t, MQ_AGENT_DONE, 0);
	assert_int_equal(mq_agent_post(t->a, q, "x", 1, NULL, 0, 0, 77), 0);
	fake_expect(t->x->fake, "SEND\ndestination:/queue/w\nreceipt:1\ncontent-length:1\n\nx");
	assert_int_equal(mq_agent_close(t->a, q, 50, 2), 0);
	assert_int_equal(mq_agent_post(t->a, q, "y", 1, NULL, 0, 0, 0), -1);
	done = wait_for(t, MQ_AGENT_DONE, -1);
	assert_int_equal(done->token, 2);
	assert_int_equal(done->code, -1);
	ack = &t->got[done - t->got - 1];
	assert_int_equal(ack->kind, MQ_AGENT_ACK);
	assert_int_equal(ack->token, 77);
	assert_int_equal(ack->code, MQ_ACK_FAILED);
	assert_int_equal(ack->reason, MQ_ACK_CANCELED);
}

static void test_agent_health_suspends_posts(void **state)
{
	/* Unhealthy: once QUEUE_SUSPENDED is reported, posts to the queue are
	 * refused with MQ_ERR_SUSPENDED; healthy again, they go. */
	struct ax *t = *state;
	struct mq_queue_opts wo = { .suspend_on_bad_host_health = true };
	uint32_t q;
	ax_connect(t);
	q = mq_agent_open(t->a, "/queue/h", MQ_WRITE, &wo, 1);
	wait_for(t, MQ_AGENT_DONE, 0);
	mq_agent_set_host_health(t->a, false);
	wait_for(t, MQ_AGENT_EVENT, MQ_EVENT_HOST_UNHEALTHY);
	wait_for(t, MQ_AGENT_EVENT, MQ_EVENT_QUEUE_SUSPENDED);
	assert_int_equal(mq_agent_post(t->a, q, "x", 1, NULL, 0, 0, 0), MQ_ERR_SUSPENDED);
	mq_agent_set_host_health(t->a, true);
	wait_for(t, MQ_AGENT_EVENT, MQ_EVENT_HOST_HEALTH_RESTORED);
	assert_int_equal(mq_agent_post(t->a, q, "x", 1, NULL, 0, 0, 0), 0);
	fake_expect(t->x->fake, "SEND\ndestination:/queue/h\ncontent-length:1\n\nx");
}

static void test_agent_sync_comes_after_earlier_events(void **state)
{
	/* mq_agent_sync's DONE follows every event the agent had reported
	 * when it took the request: here, two messages. */
	struct ax *t = *state;
	struct got_ev *g;
	int i;
	ax_connect(t);
	mq_agent_open(t->a, "/queue/y", MQ_READ, NULL, 1);
	fake_expect(t->x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/y\nack:client-individual\nreceipt:1\n\n");
	send_receipt(t->x->fake, "1");
	wait_for(t, MQ_AGENT_DONE, 0);
	fake_send(t->x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:1\nack:1\ndestination:/queue/y\n\na"
	                      "\0MESSAGE\nsubscription:sub-1\nmessage-id:2\nack:2\ndestination:/queue/y\n\nb");
	/* the frames reach the agent's thread well before the request does */
	test_sleep(t->x->base, 300);
	assert_int_equal(mq_agent_sync(t->a, 7), 0);
	g = wait_for(t, MQ_AGENT_DONE, -1);
	assert_int_equal(g->token, 7);
	i = (int)(g - t->got);
	assert_int_equal(t->got[i - 1].kind, MQ_AGENT_MESSAGE);
	assert_int_equal(t->got[i - 2].kind, MQ_AGENT_MESSAGE);
}

static void test_agent_stop_then_closed(void **state)
{
	/* Stop: DISCONNECT, then DONE(token) once the session is over, then
	 * CLOSED; later polls return nothing at once, requests are refused. */
	struct ax *t = *state;
	struct got_ev *g;
	struct mq_agent_event ev[4];
	ax_connect(t);
	assert_int_equal(mq_agent_stop(t->a, 99), 0);
	fake_expect(t->x->fake, "DISCONNECT\nreceipt:1\n\n");
	send_receipt(t->x->fake, "1");
	wait_for(t, MQ_AGENT_EVENT, MQ_EVENT_DISCONNECTED);
	g = wait_for(t, MQ_AGENT_DONE, -1);
	assert_int_equal(g->token, 99);
	wait_for(t, MQ_AGENT_CLOSED, -1);
	assert_int_equal(mq_agent_poll(t->a, ev, 4, 1000), 0);
	assert_int_equal(mq_agent_open(t->a, "/queue/x", MQ_WRITE, NULL, 1), 0);
	assert_contains(mq_agent_error(), "stopped");
}

static void test_agent_free_while_connected(void **state)
{
	/* Freeing a running agent aborts the session and joins its thread. */
	struct ax *t = *state;
	uint32_t q;
	ax_connect(t);
	q = mq_agent_open(t->a, "/queue/f", MQ_WRITE, NULL, 1);
	assert_int_equal(mq_agent_post(t->a, q, "x", 1, NULL, 0, 0, 5), 0);
	mq_agent_free(t->a);
	t->a = NULL;
	fake_wait_eof(t->x->fake);
}

/* ---- posting from several threads ---- */

#define POSTERS 3
#define PER_POSTER 3000

struct poster {
	struct mq_agent *a;
	uint32_t q;
	int index;
	int refused;
};

static void *poster_main(void *arg)
{
	struct poster *p = arg;
	for (int i = 0; i < PER_POSTER; i++) {
		uint64_t token = (uint64_t)p->index * 1000000 + (uint64_t)i + 1;
		int r = mq_agent_post(p->a, p->q, "0123456789", 10, NULL, 0, 0, token);
		if (r < 0)
			p->refused++;
		else if (r == 1)
			mq_agent_wait_writable(p->a, 1000);
	}
	return NULL;
}

struct tally {
	int acks_ok;
	int dup;
	unsigned char *seen;
};

static void test_agent_posts_from_threads_each_acked_once(void **state)
{
	/* Three threads post at once; the fake answers every receipt. Every
	 * token comes back exactly once, OK. */
	struct ax *t = *state;
	pthread_t th[POSTERS];
	struct poster p[POSTERS];
	struct tally tl = { 0 };
	uint32_t q;
	int total = POSTERS * PER_POSTER;
	uint64_t end;
	struct timeval tv;

	t->x->fake->autopilot = true;
	t->x->fake->auto_connected = CONNECTED_12;
	t->x->fake->auto_connected_len = sizeof CONNECTED_12;
	t->a = mq_agent_new(&t->x->o);
	assert_int_equal(mq_agent_start(t->a), 0);
	wait_for(t, MQ_AGENT_EVENT, MQ_EVENT_CONNECTED);
	q = mq_agent_open(t->a, "/queue/many", MQ_WRITE, NULL, 1);
	wait_for(t, MQ_AGENT_DONE, 0);
	tl.seen = calloc(POSTERS * 1000000, 1);
	for (int i = 0; i < POSTERS; i++) {
		p[i] = (struct poster){ .a = t->a, .q = q, .index = i };
		pthread_create(&th[i], NULL, poster_main, &p[i]);
	}
	gettimeofday(&tv, NULL);
	end = (uint64_t)tv.tv_sec * 1000 + 20000;
	while (tl.acks_ok + tl.dup < total) {
		struct mq_agent_event ev[64];
		size_t n;
		event_base_loop(t->x->base, EVLOOP_NONBLOCK);
		n = mq_agent_poll(t->a, ev, 64, 2);
		for (size_t i = 0; i < n; i++) {
			if (ev[i].kind != MQ_AGENT_ACK)
				continue;
			assert_int_equal(ev[i].code, MQ_ACK_OK);
			if (tl.seen[ev[i].token - 1])
				tl.dup++;
			tl.seen[ev[i].token - 1] = 1;
			tl.acks_ok++;
		}
		gettimeofday(&tv, NULL);
		if ((uint64_t)tv.tv_sec * 1000 > end)
			break;
	}
	for (int i = 0; i < POSTERS; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(p[i].refused, 0);
	}
	free(tl.seen);
	assert_int_equal(tl.dup, 0);
	assert_int_equal(tl.acks_ok, total);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_agent_open_post_receive_confirm, ax_setup, ax_teardown),
		cmocka_unit_test_setup_teardown(test_agent_refuses_at_once, ax_setup, ax_teardown),
		cmocka_unit_test_setup_teardown(test_agent_open_refused_by_broker, ax_setup, ax_teardown),
		cmocka_unit_test_setup_teardown(test_agent_confirm_stale_after_reconnect, ax_setup, ax_teardown),
		cmocka_unit_test_setup_teardown(test_agent_close_fails_outstanding_before_done, ax_setup, ax_teardown),
		cmocka_unit_test_setup_teardown(test_agent_health_suspends_posts, ax_setup, ax_teardown),
		cmocka_unit_test_setup_teardown(test_agent_sync_comes_after_earlier_events, ax_setup, ax_teardown),
		cmocka_unit_test_setup_teardown(test_agent_stop_then_closed, ax_setup, ax_teardown),
		cmocka_unit_test_setup_teardown(test_agent_free_while_connected, ax_setup, ax_teardown),
		cmocka_unit_test_setup_teardown(test_agent_posts_from_threads_each_acked_once, ax_setup, ax_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
