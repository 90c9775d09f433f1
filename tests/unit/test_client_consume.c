/* test_client_consume.c: subscriptions against a fake broker: SUBSCRIBE
 * headers, MESSAGE fields, ACK/NACK per version, references that outlive
 * the callback, configure, close, frames split across reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mqclient.h"
#include "test_client_fake.h"

#define GOT_MAX 16

enum action {
	ACT_NONE,
	ACT_CONFIRM,
	ACT_REJECT,
	ACT_KEEP,		/* mq_message_ref, settle later */
	ACT_FREE_SESSION,
	ACT_CLOSE_QUEUE,
	ACT_ABORT,		/* a consumer that "crashes" mid-stream */
};

/* What on_message saw, copied out during the callback. */
struct got {
	int n;
	enum action action;
	struct {
		char dest[64], sub[32], id[32], ackid[32], custom[64];
		char body[64];
		size_t len;
		bool redelivered;
		struct mq_queue *q;
		size_t nhdrs;
		int rc;			/* of the action */
		char err[256];
	} m[GOT_MAX];
	struct mq_message *kept[GOT_MAX];
	struct fx *x;
};

static void on_msg(struct mq_session *s, struct mq_message *m, void *arg)
{
	struct got *g = arg;
	const char *v;
	const void *body;
	size_t len;
	int i = g->n++;

	assert_true(i < GOT_MAX);
	snprintf(g->m[i].dest, sizeof g->m[i].dest, "%s", mq_message_destination(m));
	snprintf(g->m[i].sub, sizeof g->m[i].sub, "%s", mq_message_subscription(m));
	snprintf(g->m[i].id, sizeof g->m[i].id, "%s", mq_message_id(m));
	snprintf(g->m[i].ackid, sizeof g->m[i].ackid, "%s", mq_message_ack_id(m));
	v = mq_message_header(m, "x-custom");
	snprintf(g->m[i].custom, sizeof g->m[i].custom, "%s", v ? v : "(none)");
	body = mq_message_body(m, &len);
	assert_true(len < sizeof g->m[i].body);
	memcpy(g->m[i].body, body, len);
	assert_int_equal(((const char *)body)[len], 0);
	g->m[i].len = len;
	g->m[i].redelivered = mq_message_redelivered(m);
	g->m[i].q = mq_message_queue(m);
	g->m[i].nhdrs = mq_message_header_count(m);
	switch (g->action) {
	case ACT_NONE: break;
	case ACT_CONFIRM: g->m[i].rc = mq_confirm(m); break;
	case ACT_REJECT: g->m[i].rc = mq_reject(m); break;
	case ACT_KEEP: g->kept[i] = mq_message_ref(m); break;
	case ACT_FREE_SESSION:
		mq_session_free(s);
		g->x->s = NULL;
		break;
	case ACT_CLOSE_QUEUE:
		mq_close(mq_message_queue(m));
		g->m[i].rc = mq_confirm(m);
		break;
	case ACT_ABORT:
		mq_session_abort(s);
		g->m[i].rc = mq_confirm(m);
		break;
	}
	snprintf(g->m[i].err, sizeof g->m[i].err, "%s", g->x->s ? mq_session_error(s) : "");
}

struct got_want {
	struct got *g;
	int n;
};

static bool got_enough(void *arg)
{
	struct got_want *w = arg;
	return w->g->n >= w->n;
}

static void wait_got(struct fx *x, struct got *g, int n)
{
	struct got_want w = { g, n };
	if (!test_run(x->base, got_enough, &w, FAKE_WAIT_MS))
		fail_msg("message #%d not delivered within %d ms (have %d)", n, FAKE_WAIT_MS, g->n);
}

static struct got *new_got(struct fx *x, enum action a)
{
	struct got *g = calloc(1, sizeof *g);
	g->action = a;
	g->x = x;
	x->data = g;
	return g;
}

static int setup(void **state)
{
	fx_setup(state);
	new_got(*state, ACT_NONE);
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	struct got *g = x->data;
	for (int i = 0; i < GOT_MAX; i++)
		mq_message_unref(g->kept[i]);
	free(g);
	return fx_teardown(state);
}

static struct mq_queue *open_read(struct fx *x, const char *dest, enum mq_ack_mode ack)
{
	struct mq_queue_opts o = { .ack = ack, .on_message = on_msg, .arg = x->data };
	struct mq_queue *q = mq_open(x->s, dest, MQ_READ, &o);
	assert_non_null(q);
	return q;
}

static void test_subscribe_default_headers(void **state)
{
	/* Defaults: a generated id, ack auto, no flow-control headers. */
	struct fx *x = *state;
	struct mq_queue *q;
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/topic/news", MQ_READ, NULL);
	assert_string_equal(mq_queue_id(q), "sub-1");
	assert_string_equal(mq_queue_destination(q), "/topic/news");
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/topic/news\nack:auto\n\n");
	q = mq_open(x->s, "/topic/more", MQ_READ | MQ_WRITE, NULL);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-2\ndestination:/topic/more\nack:auto\n\n");
}

static void test_subscribe_flow_control_headers(void **state)
{
	/* The ack mode, max-unconfirmed-messages, max-unconfirmed-bytes,
	 * consumer-priority (negative too) and extra headers, escaped. */
	struct fx *x = *state;
	const struct mq_header extra[] = { { "selector", "kind = 'a:b'" }, { "durable-name", "nightly" } };
	struct mq_queue_opts o = {
		.id = "s1",
		.ack = MQ_ACK_CLIENT_INDIVIDUAL,
		.max_unconfirmed_messages = 10,
		.max_unconfirmed_bytes = 65536,
		.consumer_priority = -3,
		.headers = extra,
		.nheaders = 2,
	};
	struct mq_queue *q;
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/in", MQ_READ, &o);
	assert_string_equal(mq_queue_id(q), "s1");
	fake_expect(x->fake, "SUBSCRIBE\nid:s1\ndestination:/queue/in\nack:client-individual\n"
	                     "max-unconfirmed-messages:10\nmax-unconfirmed-bytes:65536\nconsumer-priority:-3\n"
	                     "selector:kind = 'a\\cb'\ndurable-name:nightly\n\n");
	o.ack = MQ_ACK_CLIENT;
	o.id = "s2";
	o.max_unconfirmed_bytes = 0;
	o.consumer_priority = 7;
	o.nheaders = 0;
	mq_open(x->s, "/queue/in", MQ_READ, &o);
	fake_expect(x->fake, "SUBSCRIBE\nid:s2\ndestination:/queue/in\nack:client\n"
	                     "max-unconfirmed-messages:10\nconsumer-priority:7\n\n");
	/* Headers the library writes cannot be given as extras. */
	{
		const struct mq_header dup[] = { { "receipt", "r-1" } };
		struct mq_queue_opts bad = { .headers = dup, .nheaders = 1 };
		assert_null(mq_open(x->s, "/queue/other", MQ_READ, &bad));
		assert_contains(mq_session_error(x->s), "header 'receipt' is written by the library");
	}
	/* An id in use is refused. */
	assert_null(mq_open(x->s, "/queue/other", MQ_READ, &o));
	assert_contains(mq_session_error(x->s), "subscription id 's2' is already in use");
}

static void test_subscribe_waits_for_connected_and_again_after_reconnect(void **state)
{
	/* A queue opened before CONNECTED subscribes when it arrives, and
	 * again on the next connection after a loss. */
	struct fx *x = *state;
	x->s = mq_session_new(x->base, &x->o);
	open_read(x, "/queue/early", MQ_ACK_CLIENT);
	assert_int_equal(mq_session_start(x->s), 0);
	fake_expect(x->fake, "CONNECT\naccept-version:1.0,1.1,1.2\nhost:127.0.0.1\nheart-beat:0,0\n\n");
	fake_send(x->fake, CONNECTED_12);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/early\nack:client\n\n");
	rec_wait_event(x->base, &x->rec, 1);
	fake_close(x->fake);
	rec_wait_event(x->base, &x->rec, 2);
	assert_int_equal(mq_session_start(x->s), 0);
	fake_expect(x->fake, "CONNECT\naccept-version:1.0,1.1,1.2\nhost:127.0.0.1\nheart-beat:0,0\n\n");
	fake_send(x->fake, CONNECTED_11);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/early\nack:client\n\n");
	assert_int_equal(x->fake->accepted, 2);
}

static void ready_cb(struct mq_queue *q, const struct mq_ack *r, void *arg)
{
	struct fx *x = ((struct got *)arg)->x;
	rec_ack_cb(mq_queue_session(q), r, &x->rec);
}

static void test_on_ready_on_subscribe_receipt_or_error(void **state)
{
	/* on_ready asks for a receipt: OK on the RECEIPT, FAILED with the
	 * text of an ERROR that names it. */
	struct fx *x = *state;
	struct mq_queue_opts o = { .on_ready = ready_cb, .arg = x->data };
	fx_connect(x, CONNECTED_12);
	mq_open(x->s, "/queue/ok", MQ_READ, &o);
	mq_open(x->s, "/pubsub/p", MQ_READ, &o);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/ok\nack:auto\nreceipt:1\n\n");
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-2\ndestination:/pubsub/p\nack:auto\nreceipt:2\n\n");
	fake_send(x->fake, "RECEIPT\nreceipt-id:1\n\n");
	fake_send(x->fake, "ERROR\nreceipt-id:2\nmessage:cannot subscribe to pubsub /pubsub/p\n\n");
	rec_wait_ack(x->base, &x->rec, 2);
	assert_int_equal(x->rec.ack[0].status, MQ_ACK_OK);
	assert_int_equal(x->rec.ack[1].status, MQ_ACK_FAILED);
	assert_string_equal(x->rec.ack[1].text, "cannot subscribe to pubsub /pubsub/p");
}

static void test_message_fields(void **state)
{
	/* Every field of a 1.2 MESSAGE, with a decoded header and a binary
	 * body, reaches on_message along with the queue it belongs to. */
	struct fx *x = *state;
	struct got *g = x->data;
	struct mq_queue *q;
	struct mq_stats st;
	fx_connect(x, CONNECTED_12);
	q = open_read(x, "/queue/in", MQ_ACK_CLIENT);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/in\nack:client\n\n");
	fake_send(x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:m-7\nack:a-7\ndestination:/queue/in\n"
	                   "redelivered:true\nx-custom:a\\cb\\nc\ncontent-length:4\n\nbo\0y");
	wait_got(x, g, 1);
	assert_string_equal(g->m[0].dest, "/queue/in");
	assert_string_equal(g->m[0].sub, "sub-1");
	assert_string_equal(g->m[0].id, "m-7");
	assert_string_equal(g->m[0].ackid, "a-7");
	assert_string_equal(g->m[0].custom, "a:b\nc");
	assert_int_equal(g->m[0].len, 4);
	assert_memory_equal(g->m[0].body, "bo\0y", 4);
	assert_true(g->m[0].redelivered);
	assert_ptr_equal(g->m[0].q, q);
	assert_int_equal(g->m[0].nhdrs, 7);
	mq_session_stats(x->s, &st);
	assert_int_equal(st.received, 1);
}

static void test_message_for_unknown_subscription_dropped(void **state)
{
	/* A MESSAGE for a subscription we do not have is counted and dropped. */
	struct fx *x = *state;
	struct got *g = x->data;
	struct mq_stats st;
	fx_connect(x, CONNECTED_12);
	open_read(x, "/queue/in", MQ_ACK_AUTO);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/in\nack:auto\n\n");
	fake_send(x->fake, "MESSAGE\nsubscription:sub-9\nmessage-id:m-1\ndestination:/queue/x\n\nx");
	fake_send(x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:m-2\ndestination:/queue/in\n\ny");
	wait_got(x, g, 1);
	assert_string_equal(g->m[0].id, "m-2");
	mq_session_stats(x->s, &st);
	assert_int_equal(st.dropped, 1);
	assert_int_equal(st.received, 1);
}

static void test_message_without_subscription_header_under_10(void **state)
{
	/* A 1.0 broker need not name the subscription: the MESSAGE goes to
	 * the queue reading its destination. */
	struct fx *x = *state;
	struct got *g = x->data;
	struct mq_queue *q;
	fx_connect(x, CONNECTED_10);
	open_read(x, "/queue/one", MQ_ACK_AUTO);
	q = open_read(x, "/queue/ten", MQ_ACK_AUTO);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/one\nack:auto\n\n");
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-2\ndestination:/queue/ten\nack:auto\n\n");
	fake_send(x->fake, "MESSAGE\nmessage-id:old-1\ndestination:/queue/ten\n\nold");
	wait_got(x, g, 1);
	assert_ptr_equal(g->m[0].q, q);
	assert_string_equal(g->m[0].sub, "");
	assert_string_equal(g->m[0].ackid, "old-1");
}

static void test_confirm_and_reject_per_version(void **state)
{
	/* ACK and NACK name the message as each version wants: 1.2 by the ack
	 * header, 1.1 by message-id and subscription, 1.0 by message-id (and
	 * 1.0 has no NACK). Ids with a colon survive the escaping round trip. */
	static const struct {
		const char *connected;
		const char *msg1, *msg2;
		const char *ack;
		size_t ack_len;
		const char *nack;	/* NULL: NACK is refused */
		size_t nack_len;
	} cases[] = {
#define S(lit) lit, sizeof(lit)
		{ CONNECTED_12,
		  "MESSAGE\nsubscription:sub-1\nmessage-id:m\\c1\nack:a\\c1\ndestination:/queue/v\n\none",
		  "MESSAGE\nsubscription:sub-1\nmessage-id:m-2\nack:a-2\ndestination:/queue/v\n\ntwo",
		  S("ACK\nid:a\\c1\n\n"), S("NACK\nid:a-2\n\n") },
		{ CONNECTED_11,
		  "MESSAGE\nsubscription:sub-1\nmessage-id:m\\c1\ndestination:/queue/v\n\none",
		  "MESSAGE\nsubscription:sub-1\nmessage-id:m-2\ndestination:/queue/v\n\ntwo",
		  S("ACK\nmessage-id:m\\c1\nsubscription:sub-1\n\n"),
		  S("NACK\nmessage-id:m-2\nsubscription:sub-1\n\n") },
		{ CONNECTED_10,
		  "MESSAGE\nsubscription:sub-1\nmessage-id:m:1\ndestination:/queue/v\n\none",
		  "MESSAGE\nsubscription:sub-1\nmessage-id:m-2\ndestination:/queue/v\n\ntwo",
		  S("ACK\nmessage-id:m:1\n\n"), NULL, 0 },
#undef S
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct fx *x;
		struct got *g;
		setup(state);
		x = *state;
		g = x->data;
		fx_connectn(x, cases[i].connected, strlen(cases[i].connected) + 1);
		open_read(x, "/queue/v", MQ_ACK_CLIENT_INDIVIDUAL);
		fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/v\nack:client-individual\n\n");
		g->action = ACT_CONFIRM;
		fake_sendn(x->fake, cases[i].msg1, strlen(cases[i].msg1) + 1);
		wait_got(x, g, 1);
		assert_int_equal(g->m[0].rc, 0);
		assert_string_equal(g->m[0].id, "m:1");
		fake_expectn(x->fake, cases[i].ack, cases[i].ack_len);
		g->action = ACT_REJECT;
		fake_sendn(x->fake, cases[i].msg2, strlen(cases[i].msg2) + 1);
		wait_got(x, g, 2);
		if (cases[i].nack) {
			assert_int_equal(g->m[1].rc, 0);
			fake_expectn(x->fake, cases[i].nack, cases[i].nack_len);
		} else {
			assert_int_equal(g->m[1].rc, -1);
			assert_contains(g->m[1].err, "cannot reject message m-2: STOMP 1.0 has no NACK");
			fake_expect_nothing(x->fake, 50);
		}
		teardown(state);
	}
}

static void test_confirm_twice_and_auto_mode(void **state)
{
	/* A second confirm is refused; in ack mode auto, confirm sends
	 * nothing and succeeds, reject is refused. */
	struct fx *x = *state;
	struct got *g = x->data;
	fx_connect(x, CONNECTED_12);
	open_read(x, "/queue/c", MQ_ACK_CLIENT);
	open_read(x, "/queue/a", MQ_ACK_AUTO);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/c\nack:client\n\n");
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-2\ndestination:/queue/a\nack:auto\n\n");
	g->action = ACT_KEEP;
	fake_send(x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:1\nack:1\ndestination:/queue/c\n\nx");
	fake_send(x->fake, "MESSAGE\nsubscription:sub-2\nmessage-id:2\nack:2\ndestination:/queue/a\n\ny");
	wait_got(x, g, 2);
	assert_int_equal(mq_confirm(g->kept[0]), 0);
	fake_expect(x->fake, "ACK\nid:1\n\n");
	assert_int_equal(mq_confirm(g->kept[0]), -1);
	assert_contains(mq_session_error(x->s), "cannot confirm message 1: it was already confirmed or rejected");
	assert_int_equal(mq_reject(g->kept[0]), -1);
	assert_int_equal(mq_confirm(g->kept[1]), 0);
	assert_int_equal(mq_reject(g->kept[1]), -1);
	assert_contains(mq_session_error(x->s), "subscription sub-2 uses ack mode auto");
	fake_expect_nothing(x->fake, 50);
}

static void test_client_mode_confirm_is_cumulative(void **state)
{
	/* Ack mode client: confirming the third message covers the first
	 * two, so settling them afterwards sends nothing (the broker would
	 * answer an unknown id with an ERROR); a fourth still needs its ACK. */
	struct fx *x = *state;
	struct got *g = x->data;
	fx_connect(x, CONNECTED_12);
	open_read(x, "/queue/cum", MQ_ACK_CLIENT);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/cum\nack:client\n\n");
	g->action = ACT_KEEP;
	fake_send(x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:u1\nack:u1\ndestination:/queue/cum\n\n1"
	                   "\0MESSAGE\nsubscription:sub-1\nmessage-id:u2\nack:u2\ndestination:/queue/cum\n\n2"
	                   "\0MESSAGE\nsubscription:sub-1\nmessage-id:u3\nack:u3\ndestination:/queue/cum\n\n3"
	                   "\0MESSAGE\nsubscription:sub-1\nmessage-id:u4\nack:u4\ndestination:/queue/cum\n\n4");
	wait_got(x, g, 4);
	assert_int_equal(mq_confirm(g->kept[2]), 0);
	fake_expect(x->fake, "ACK\nid:u3\n\n");
	assert_int_equal(mq_confirm(g->kept[0]), 0);
	assert_int_equal(mq_reject(g->kept[1]), 0);
	fake_expect_nothing(x->fake, 50);
	assert_int_equal(mq_confirm(g->kept[0]), -1);	/* settled is settled */
	assert_int_equal(mq_confirm(g->kept[3]), 0);
	fake_expect(x->fake, "ACK\nid:u4\n\n");
}

static void test_message_ref_kept_beyond_callback(void **state)
{
	/* A kept message stays readable after its callback, while later
	 * frames reuse the input buffer, and is confirmed later; a second
	 * ref returns the same copy, which lives until the last unref. */
	struct fx *x = *state;
	struct got *g = x->data;
	struct mq_message *m, *again;
	const void *body;
	size_t len;
	fx_connect(x, CONNECTED_11);
	open_read(x, "/queue/slow", MQ_ACK_CLIENT_INDIVIDUAL);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/slow\nack:client-individual\n\n");
	g->action = ACT_KEEP;
	fake_send(x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:k-1\ndestination:/queue/slow\n"
	                   "x-custom:first\n\nfirst body");
	wait_got(x, g, 1);
	g->action = ACT_NONE;
	for (int i = 0; i < 5; i++)
		fake_send(x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:k-2\ndestination:/queue/slow\n"
		                   "x-custom:XXXXXXXXXXXXXXXX\n\nXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX");
	wait_got(x, g, 6);
	m = g->kept[0];
	assert_non_null(m);
	assert_string_equal(mq_message_id(m), "k-1");
	assert_string_equal(mq_message_ack_id(m), "k-1");
	assert_string_equal(mq_message_subscription(m), "sub-1");
	assert_string_equal(mq_message_destination(m), "/queue/slow");
	assert_string_equal(mq_message_header(m, "x-custom"), "first");
	body = mq_message_body(m, &len);
	assert_int_equal(len, 10);
	assert_memory_equal(body, "first body", 10);
	assert_non_null(mq_message_queue(m));
	again = mq_message_ref(m);
	assert_ptr_equal(again, m);
	mq_message_unref(again);
	assert_int_equal(mq_confirm(m), 0);
	fake_expect(x->fake, "ACK\nmessage-id:k-1\nsubscription:sub-1\n\n");
	mq_message_unref(m);
	g->kept[0] = NULL;
}

static void test_kept_message_outlives_session(void **state)
{
	/* After the session is freed a kept message is still readable;
	 * confirming it fails instead of touching freed memory. */
	struct fx *x = *state;
	struct got *g = x->data;
	fx_connect(x, CONNECTED_12);
	open_read(x, "/queue/k", MQ_ACK_CLIENT);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/k\nack:client\n\n");
	g->action = ACT_KEEP;
	fake_send(x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:z\nack:z\ndestination:/queue/k\n\nbody");
	wait_got(x, g, 1);
	mq_session_free(x->s);
	x->s = NULL;
	assert_string_equal(mq_message_id(g->kept[0]), "z");
	assert_null(mq_message_queue(g->kept[0]));
	assert_int_equal(mq_confirm(g->kept[0]), -1);
}

static void test_confirm_after_reconnect_refused(void **state)
{
	/* A message from a connection that is gone cannot be confirmed: the
	 * broker has already taken it back. */
	struct fx *x = *state;
	struct got *g = x->data;
	fx_connect(x, CONNECTED_12);
	open_read(x, "/queue/r", MQ_ACK_CLIENT);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/r\nack:client\n\n");
	g->action = ACT_KEEP;
	fake_send(x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:r1\nack:r1\ndestination:/queue/r\n\nb");
	wait_got(x, g, 1);
	fake_close(x->fake);
	rec_wait_event(x->base, &x->rec, 2);
	assert_int_equal(mq_session_start(x->s), 0);
	fake_expect(x->fake, "CONNECT\naccept-version:1.0,1.1,1.2\nhost:127.0.0.1\nheart-beat:0,0\n\n");
	fake_send(x->fake, CONNECTED_12);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/r\nack:client\n\n");
	rec_wait_event(x->base, &x->rec, 3);
	assert_int_equal(mq_confirm(g->kept[0]), MQ_ERR_STALE);
	assert_contains(mq_session_error(x->s), "arrived on an earlier connection");
	fake_expect_nothing(x->fake, 50);
}

static void test_configure_resubscribes_and_drops_stale(void **state)
{
	/* configure: UNSUBSCRIBE (with a receipt) and SUBSCRIBE with the same
	 * id and the new options. Messages from before can no longer be
	 * confirmed; client-mode MESSAGEs that were in flight before the
	 * UNSUBSCRIBE's RECEIPT are dropped; later ones are delivered. */
	struct fx *x = *state;
	struct got *g = x->data;
	struct mq_queue *q;
	struct mq_queue_opts o = { .ack = MQ_ACK_CLIENT, .max_unconfirmed_messages = 5,
	                           .on_message = on_msg, .arg = g };
	struct mq_stats st;
	fx_connect(x, CONNECTED_12);
	q = open_read(x, "/queue/c", MQ_ACK_CLIENT);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/c\nack:client\n\n");
	g->action = ACT_KEEP;
	fake_send(x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:c1\nack:c1\ndestination:/queue/c\n\n1");
	wait_got(x, g, 1);
	g->action = ACT_CONFIRM;

	assert_int_equal(mq_configure(q, &o), 0);
	fake_expect(x->fake, "UNSUBSCRIBE\nid:sub-1\nreceipt:1\n\n");
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/c\nack:client\nmax-unconfirmed-messages:5\n\n");
	assert_int_equal(mq_confirm(g->kept[0]), MQ_ERR_STALE);
	assert_contains(mq_session_error(x->s), "subscription sub-1 was reconfigured, paused or suspended since it arrived");

	fake_send(x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:c2\nack:c2\ndestination:/queue/c\n\n2");
	fake_send(x->fake, "RECEIPT\nreceipt-id:1\n\n");
	fake_send(x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:c3\nack:c3\ndestination:/queue/c\n\n3");
	wait_got(x, g, 2);
	assert_string_equal(g->m[1].id, "c3");
	assert_int_equal(g->m[1].rc, 0);
	fake_expect(x->fake, "ACK\nid:c3\n\n");
	mq_session_stats(x->s, &st);
	assert_int_equal(st.dropped, 1);
	/* A different id is not a configuration. */
	o.id = "other";
	assert_int_equal(mq_configure(q, &o), -1);
	assert_contains(mq_session_error(x->s), "cannot change to 'other'");
}

static void test_configure_auto_delivers_in_flight(void **state)
{
	/* In ack mode auto the broker forgot the in-flight messages when it
	 * sent them: they are delivered, not dropped. */
	struct fx *x = *state;
	struct got *g = x->data;
	struct mq_queue *q;
	struct mq_queue_opts o = { .ack = MQ_ACK_AUTO, .consumer_priority = 2, .on_message = on_msg, .arg = g };
	fx_connect(x, CONNECTED_12);
	q = open_read(x, "/topic/t", MQ_ACK_AUTO);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/topic/t\nack:auto\n\n");
	assert_int_equal(mq_configure(q, &o), 0);
	fake_expect(x->fake, "UNSUBSCRIBE\nid:sub-1\nreceipt:1\n\n");
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/topic/t\nack:auto\nconsumer-priority:2\n\n");
	fake_send(x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:t1\ndestination:/topic/t\n\n1");
	wait_got(x, g, 1);
	assert_string_equal(g->m[0].id, "t1");
}

static void test_configure_write_only_refused(void **state)
{
	struct fx *x = *state;
	struct mq_queue *q;
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/w", MQ_WRITE, NULL);
	assert_int_equal(mq_configure(q, NULL), -1);
	assert_contains(mq_session_error(x->s), "cannot configure /queue/w: it was not opened with MQ_READ");
}

static void test_close_unsubscribes_and_drops_later_messages(void **state)
{
	/* close: UNSUBSCRIBE; later MESSAGEs for the id are dropped; a kept
	 * message of the queue loses its queue and cannot be confirmed. */
	struct fx *x = *state;
	struct got *g = x->data;
	struct mq_queue *q;
	struct mq_stats st;
	fx_connect(x, CONNECTED_12);
	q = open_read(x, "/queue/x", MQ_ACK_CLIENT);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/x\nack:client\n\n");
	g->action = ACT_KEEP;
	fake_send(x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:x1\nack:x1\ndestination:/queue/x\n\n1");
	wait_got(x, g, 1);
	mq_close(q);
	fake_expect(x->fake, "UNSUBSCRIBE\nid:sub-1\n\n");
	assert_null(mq_message_queue(g->kept[0]));
	assert_int_equal(mq_confirm(g->kept[0]), -1);
	assert_contains(mq_session_error(x->s), "subscription sub-1 is closed");
	fake_send(x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:x2\nack:x2\ndestination:/queue/x\n\n2");
	fake_send(x->fake, "RECEIPT\nreceipt-id:77\n\n");	/* a marker: everything before it is read */
	test_sleep(x->base, 50);
	assert_int_equal(g->n, 1);
	mq_session_stats(x->s, &st);
	assert_int_equal(st.dropped, 1);
	/* The id is free again. */
	assert_non_null(open_read(x, "/queue/y", MQ_ACK_AUTO));
}

static void test_close_inside_on_message(void **state)
{
	/* Closing the queue from its own callback: the message can no longer
	 * be confirmed, the queue is freed after the callback (ASan). */
	struct fx *x = *state;
	struct got *g = x->data;
	fx_connect(x, CONNECTED_12);
	open_read(x, "/queue/i", MQ_ACK_CLIENT);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/i\nack:client\n\n");
	g->action = ACT_CLOSE_QUEUE;
	fake_send(x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:i1\nack:i1\ndestination:/queue/i\n\n1"
	                   "\0MESSAGE\nsubscription:sub-1\nmessage-id:i2\nack:i2\ndestination:/queue/i\n\n2");
	wait_got(x, g, 1);
	assert_int_equal(g->m[0].rc, -1);
	fake_expect(x->fake, "UNSUBSCRIBE\nid:sub-1\n\n");
	test_sleep(x->base, 30);
	assert_int_equal(g->n, 1);	/* i2, in the same read, was dropped */
}

static void test_free_session_inside_on_message(void **state)
{
	/* Freeing the session from on_message, with more frames in the same
	 * read: the rest is not delivered and nothing is used after free. */
	struct fx *x = *state;
	struct got *g = x->data;
	fx_connect(x, CONNECTED_12);
	open_read(x, "/queue/f", MQ_ACK_AUTO);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/f\nack:auto\n\n");
	g->action = ACT_FREE_SESSION;
	fake_send(x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:f1\ndestination:/queue/f\n\n1"
	                   "\0MESSAGE\nsubscription:sub-1\nmessage-id:f2\ndestination:/queue/f\n\n2");
	wait_got(x, g, 1);
	fake_wait_eof(x->fake);
	assert_int_equal(g->n, 1);
	assert_null(x->s);
}

static void test_abort_inside_on_message(void **state)
{
	/* The scenario runner's crashing consumer: abort from on_message with
	 * more frames in the same read. DISCONNECTED (requested) is reported
	 * from inside the callback, nothing more is delivered, the message
	 * cannot be confirmed (the broker has it back: MQ_ERR_STALE), and no
	 * ACK or DISCONNECT reaches the broker. */
	struct fx *x = *state;
	struct got *g = x->data;
	fx_connect(x, CONNECTED_12);
	open_read(x, "/queue/crash", MQ_ACK_CLIENT);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/crash\nack:client\n\n");
	g->action = ACT_ABORT;
	fake_send(x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:c1\nack:c1\ndestination:/queue/crash\n\n1"
	                   "\0MESSAGE\nsubscription:sub-1\nmessage-id:c2\nack:c2\ndestination:/queue/crash\n\n2");
	wait_got(x, g, 1);
	assert_int_equal(x->rec.nevents, 2);
	assert_int_equal(x->rec.ev[1].type, MQ_EVENT_DISCONNECTED);
	assert_true(x->rec.ev[1].requested);
	assert_int_equal(g->m[0].rc, MQ_ERR_STALE);
	assert_contains(g->m[0].err, "arrived on an earlier connection");
	fake_wait_eof(x->fake);
	assert_int_equal(evbuffer_get_length(x->fake->rx), 0);
	assert_int_equal(g->n, 1);
}

struct bytes_in {
	struct mq_session *s;
	uint64_t want;
};

static bool read_upto(void *arg)
{
	struct bytes_in *b = arg;
	struct mq_stats st;
	mq_session_stats(b->s, &st);
	return st.bytes_in >= b->want;
}

static void test_message_split_byte_by_byte(void **state)
{
	/* A MESSAGE (and a heart-beat before it) fed one byte per read: the
	 * client keeps the partial frame and delivers it once, whole, when
	 * the last byte arrives. */
	struct fx *x = *state;
	struct got *g = x->data;
	static const char frame[] = "\nMESSAGE\nsubscription:sub-1\nmessage-id:s-1\nack:s-1\ndestination:/queue/s\n"
	                            "x-custom:split\\cme\ncontent-length:11\n\nhello\0world";
	struct mq_stats st;
	struct bytes_in b;
	fx_connect(x, CONNECTED_12);
	open_read(x, "/queue/s", MQ_ACK_CLIENT);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/s\nack:client\n\n");
	mq_session_stats(x->s, &st);
	b.s = x->s;
	b.want = st.bytes_in;
	for (size_t i = 0; i < sizeof frame; i++) {
		fake_sendn(x->fake, frame + i, 1);
		b.want++;
		if (!test_run(x->base, read_upto, &b, FAKE_WAIT_MS))
			fail_msg("byte %zu not read", i);
		if (i + 1 < sizeof frame)
			assert_int_equal(g->n, 0);
	}
	wait_got(x, g, 1);
	assert_string_equal(g->m[0].id, "s-1");
	assert_string_equal(g->m[0].custom, "split:me");
	assert_int_equal(g->m[0].len, 11);
	assert_memory_equal(g->m[0].body, "hello\0world", 11);
	mq_session_stats(x->s, &st);
	assert_int_equal(st.heartbeats_in, 1);
	assert_int_equal(st.received, 1);
}

struct counter {
	int n;
	int out_of_order;
	int confirm_failed;
};

static void count_msg(struct mq_session *s, struct mq_message *m, void *arg)
{
	struct counter *c = arg;
	char want[16];
	snprintf(want, sizeof want, "n-%d", c->n);
	if (strcmp(mq_message_id(m), want) != 0)
		c->out_of_order++;
	if (mq_confirm(m) != 0)
		c->confirm_failed++;
	c->n++;
}

static bool counted(void *arg) { return ((struct counter *)arg)->n >= 500; }

static void test_many_messages_in_one_read(void **state)
{
	/* 500 MESSAGE frames written at once are all delivered, in order, and
	 * every confirm goes out, byte for byte. */
	struct fx *x = *state;
	struct counter c = { 0 };
	struct mq_queue_opts o = { .ack = MQ_ACK_CLIENT_INDIVIDUAL, .on_message = count_msg, .arg = &c };
	struct evbuffer *burst = evbuffer_new(), *acks = evbuffer_new();
	size_t len;
	char *got;
	fx_connect(x, CONNECTED_12);
	mq_open(x->s, "/queue/burst", MQ_READ, &o);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/burst\nack:client-individual\n\n");
	for (int i = 0; i < 500; i++) {
		evbuffer_add_printf(burst, "MESSAGE\nsubscription:sub-1\nmessage-id:n-%d\nack:n-%d\n"
		                    "destination:/queue/burst\ncontent-length:5\n\nbody%c", i, i, 'a' + i % 26);
		evbuffer_add(burst, "", 1);
		evbuffer_add_printf(acks, "ACK\nid:n-%d\n\n", i);
		evbuffer_add(acks, "", 1);
	}
	fake_sendn(x->fake, evbuffer_pullup(burst, -1), evbuffer_get_length(burst));
	assert_true(test_run(x->base, counted, &c, FAKE_WAIT_MS));
	assert_int_equal(c.n, 500);
	assert_int_equal(c.out_of_order, 0);
	assert_int_equal(c.confirm_failed, 0);
	for (int i = 0; i < 500; i++) {
		got = fake_next(x->fake, &len, FAKE_WAIT_MS);
		assert_non_null(got);
		{
			unsigned char *want = evbuffer_pullup(acks, (ev_ssize_t)len);
			assert_non_null(want);
			assert_memory_equal(got, want, len);
			evbuffer_drain(acks, len);
		}
		free(got);
	}
	assert_int_equal(evbuffer_get_length(acks), 0);
	evbuffer_free(burst);
	evbuffer_free(acks);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_subscribe_default_headers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subscribe_flow_control_headers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_subscribe_waits_for_connected_and_again_after_reconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_on_ready_on_subscribe_receipt_or_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_message_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_message_for_unknown_subscription_dropped, setup, teardown),
		cmocka_unit_test_setup_teardown(test_message_without_subscription_header_under_10, setup, teardown),
		cmocka_unit_test(test_confirm_and_reject_per_version),
		cmocka_unit_test_setup_teardown(test_confirm_twice_and_auto_mode, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_mode_confirm_is_cumulative, setup, teardown),
		cmocka_unit_test_setup_teardown(test_message_ref_kept_beyond_callback, setup, teardown),
		cmocka_unit_test_setup_teardown(test_kept_message_outlives_session, setup, teardown),
		cmocka_unit_test_setup_teardown(test_confirm_after_reconnect_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_configure_resubscribes_and_drops_stale, setup, teardown),
		cmocka_unit_test_setup_teardown(test_configure_auto_delivers_in_flight, setup, teardown),
		cmocka_unit_test_setup_teardown(test_configure_write_only_refused, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_unsubscribes_and_drops_later_messages, setup, teardown),
		cmocka_unit_test_setup_teardown(test_close_inside_on_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_free_session_inside_on_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_abort_inside_on_message, setup, teardown),
		cmocka_unit_test_setup_teardown(test_message_split_byte_by_byte, setup, teardown),
		cmocka_unit_test_setup_teardown(test_many_messages_in_one_read, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
