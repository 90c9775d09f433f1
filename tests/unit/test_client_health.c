/* test_client_health.c: host health and pausing, against a fake broker:
 * queues with suspend_on_bad_host_health withdraw their subscription and
 * refuse posts while the host is unhealthy, with BlazingMQ's events in
 * BlazingMQ's order; a queue configured paused is unsubscribed and later
 * subscribed again; messages of a withdrawn subscription are stale. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mqclient.h"
#include "test_client_fake.h"

static void send_receipt(struct fake *f, const char *id)
{
	char buf[64];
	int n = snprintf(buf, sizeof buf, "RECEIPT\nreceipt-id:%s\n\n", id);
	fake_sendn(f, buf, (size_t)n + 1);
}

struct ready {
	int n;
	enum mq_ack_status status;
};

static void on_ready(struct mq_queue *q, const struct mq_ack *ack, void *arg)
{
	struct ready *r = arg;
	r->n++;
	r->status = ack->status;
}

static bool ready_n(void *arg) { return ((struct ready *)arg)->n > 0; }

struct msgs {
	int n;
	struct mq_message *kept;
};

static void on_msg(struct mq_session *s, struct mq_message *m, void *arg)
{
	struct msgs *g = arg;
	g->n++;
	if (!g->kept)
		g->kept = mq_message_ref(m);
}

static void test_unhealthy_suspends_and_healthy_resumes(void **state)
{
	/* HOST_UNHEALTHY first; then each sensitive reading queue sends
	 * UNSUBSCRIBE and reports QUEUE_SUSPENDED on its RECEIPT, a sensitive
	 * write-only queue at once; posts to them are refused with
	 * MQ_ERR_SUSPENDED while other queues work. Healthy again: SUBSCRIBE
	 * with the same options, QUEUE_RESUMED on the RECEIPT, then
	 * HOST_HEALTH_RESTORED last. */
	struct fx *x = *state;
	struct mq_queue_opts ro = { .ack = MQ_ACK_CLIENT_INDIVIDUAL, .max_unconfirmed_messages = 3,
	                            .suspend_on_bad_host_health = true };
	struct mq_queue_opts wo = { .suspend_on_bad_host_health = true };
	struct mq_queue *r, *w, *plain;
	fx_connect(x, CONNECTED_12);
	r = mq_open(x->s, "/queue/r", MQ_READ, &ro);
	w = mq_open(x->s, "/queue/w", MQ_WRITE, &wo);
	plain = mq_open(x->s, "/queue/p", MQ_WRITE, NULL);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/r\nack:client-individual\n"
	                     "max-unconfirmed-messages:3\n\n");
	assert_true(mq_session_host_healthy(x->s));

	mq_session_set_host_health(x->s, false);
	assert_false(mq_session_host_healthy(x->s));
	/* reported before the call returns: HOST_UNHEALTHY, the write-only one */
	assert_int_equal(x->rec.nevents, 3);
	assert_int_equal(x->rec.ev[1].type, MQ_EVENT_HOST_UNHEALTHY);
	assert_int_equal(x->rec.ev[2].type, MQ_EVENT_QUEUE_SUSPENDED);
	assert_ptr_equal(x->rec.ev[2].queue, w);
	fake_expect(x->fake, "UNSUBSCRIBE\nid:sub-1\nreceipt:1\n\n");
	assert_int_equal(mq_post(w, "x", 1, NULL, 0, 0, NULL, NULL), MQ_ERR_SUSPENDED);
	assert_contains(mq_session_error(x->s), "suspended");
	assert_int_equal(mq_post(plain, "y", 1, NULL, 0, 0, NULL, NULL), 0);
	fake_expect(x->fake, "SEND\ndestination:/queue/p\ncontent-length:1\n\ny");
	send_receipt(x->fake, "1");
	rec_wait_event(x->base, &x->rec, 4);
	assert_int_equal(x->rec.ev[3].type, MQ_EVENT_QUEUE_SUSPENDED);
	assert_ptr_equal(x->rec.ev[3].queue, r);

	/* a second "unhealthy" changes nothing */
	mq_session_set_host_health(x->s, false);
	assert_int_equal(x->rec.nevents, 4);

	mq_session_set_host_health(x->s, true);
	/* the write-only queue resumes at once; the reading one on its RECEIPT */
	assert_int_equal(x->rec.nevents, 5);
	assert_int_equal(x->rec.ev[4].type, MQ_EVENT_QUEUE_RESUMED);
	assert_ptr_equal(x->rec.ev[4].queue, w);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/r\nack:client-individual\n"
	                     "max-unconfirmed-messages:3\nreceipt:2\n\n");
	assert_int_equal(mq_post(w, "x", 1, NULL, 0, 0, NULL, NULL), 0);
	fake_expect(x->fake, "SEND\ndestination:/queue/w\ncontent-length:1\n\nx");
	send_receipt(x->fake, "2");
	rec_wait_event(x->base, &x->rec, 7);
	assert_int_equal(x->rec.ev[5].type, MQ_EVENT_QUEUE_RESUMED);
	assert_ptr_equal(x->rec.ev[5].queue, r);
	assert_int_equal(x->rec.ev[6].type, MQ_EVENT_HOST_HEALTH_RESTORED);
}

static void test_messages_in_flight_at_suspension_are_dropped(void **state)
{
	/* Client acks: a MESSAGE that arrives between the UNSUBSCRIBE and its
	 * RECEIPT is the broker's again, so it is not delivered; one kept from
	 * before cannot be confirmed (MQ_ERR_STALE). */
	struct fx *x = *state;
	struct msgs g = { 0 };
	struct mq_queue_opts ro = { .ack = MQ_ACK_CLIENT_INDIVIDUAL, .suspend_on_bad_host_health = true,
	                            .on_message = on_msg, .arg = &g };
	fx_connect(x, CONNECTED_12);
	assert_non_null(mq_open(x->s, "/queue/r", MQ_READ, &ro));
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/r\nack:client-individual\n\n");
	fake_send(x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:1\nack:1\ndestination:/queue/r\n\na");
	rec_wait_event(x->base, &x->rec, 1);
	test_sleep(x->base, 20);
	assert_int_equal(g.n, 1);
	mq_session_set_host_health(x->s, false);
	fake_expect(x->fake, "UNSUBSCRIBE\nid:sub-1\nreceipt:1\n\n");
	fake_send(x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:2\nack:2\ndestination:/queue/r\n\nb");
	send_receipt(x->fake, "1");
	rec_wait_event(x->base, &x->rec, 3);
	assert_int_equal(g.n, 1);
	assert_int_equal(mq_confirm(g.kept), MQ_ERR_STALE);
	fake_expect_nothing(x->fake, 20);
	mq_message_unref(g.kept);
}

static void test_open_while_unhealthy_starts_suspended(void **state)
{
	/* A sensitive queue opened while unhealthy is suspended from the start
	 * (QUEUE_SUSPENDED, no SUBSCRIBE, on_ready at once), and subscribes
	 * when the host recovers. An insensitive one subscribes as usual. */
	struct fx *x = *state;
	struct ready rd = { 0 };
	struct mq_queue_opts ro = { .suspend_on_bad_host_health = true, .on_ready = on_ready, .arg = &rd };
	fx_connect(x, CONNECTED_12);
	mq_session_set_host_health(x->s, false);
	assert_int_equal(x->rec.ev[1].type, MQ_EVENT_HOST_UNHEALTHY);
	assert_non_null(mq_open(x->s, "/queue/s", MQ_READ, &ro));
	assert_int_equal(rd.n, 1);
	assert_int_equal(x->rec.ev[2].type, MQ_EVENT_QUEUE_SUSPENDED);
	assert_non_null(mq_open(x->s, "/queue/n", MQ_READ, NULL));
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-2\ndestination:/queue/n\nack:auto\n\n");
	mq_session_set_host_health(x->s, true);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/s\nack:auto\nreceipt:1\n\n");
	send_receipt(x->fake, "1");
	rec_wait_event(x->base, &x->rec, 5);
	assert_int_equal(x->rec.ev[3].type, MQ_EVENT_QUEUE_RESUMED);
	assert_int_equal(x->rec.ev[4].type, MQ_EVENT_HOST_HEALTH_RESTORED);
}

static void test_health_while_disconnected(void **state)
{
	/* With no connection, suspension and resumption are immediate: the
	 * next CONNECTED subscribes only what is not suspended. */
	struct fx *x = *state;
	struct mq_queue_opts ro = { .suspend_on_bad_host_health = true };
	x->s = mq_session_new(x->base, &x->o);
	assert_non_null(mq_open(x->s, "/queue/s", MQ_READ, &ro));
	mq_session_set_host_health(x->s, false);
	assert_int_equal(x->rec.nevents, 2);
	assert_int_equal(x->rec.ev[0].type, MQ_EVENT_HOST_UNHEALTHY);
	assert_int_equal(x->rec.ev[1].type, MQ_EVENT_QUEUE_SUSPENDED);
	assert_int_equal(mq_session_start(x->s), 0);
	fake_expect(x->fake, "CONNECT\naccept-version:1.0,1.1,1.2\nhost:127.0.0.1\nheart-beat:0,0\n\n");
	fake_send(x->fake, CONNECTED_12);
	rec_wait_event(x->base, &x->rec, 3);
	fake_expect_nothing(x->fake, 30);
	mq_session_set_host_health(x->s, true);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/s\nack:auto\nreceipt:1\n\n");
}

static void test_pause_unsubscribes_and_unpause_subscribes(void **state)
{
	/* BlazingMQ's QueueOptions(0, 0, 0): configure to paused sends only an
	 * UNSUBSCRIBE, on_ready fires on its RECEIPT, messages still arriving
	 * after it are dropped and earlier ones are stale; configure unpaused
	 * sends only a SUBSCRIBE with the new options. Configuring a paused
	 * queue while it stays paused sends nothing and is ready at once. */
	struct fx *x = *state;
	struct ready rd = { 0 };
	struct msgs g = { 0 };
	struct mq_queue_opts o = { .ack = MQ_ACK_CLIENT_INDIVIDUAL, .on_message = on_msg, .arg = &g };
	struct mq_queue_opts po = { .ack = MQ_ACK_CLIENT_INDIVIDUAL, .paused = true, .on_ready = on_ready,
	                            .on_message = on_msg, .arg = &rd };
	struct mq_queue *q;
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/c", MQ_READ, &o);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/c\nack:client-individual\n\n");
	fake_send(x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:1\nack:1\ndestination:/queue/c\n\na");
	test_sleep(x->base, 30);
	assert_int_equal(g.n, 1);

	po.arg = &rd;
	po.on_message = NULL;
	assert_int_equal(mq_configure(q, &po), 0);
	fake_expect(x->fake, "UNSUBSCRIBE\nid:sub-1\nreceipt:1\n\n");
	assert_int_equal(rd.n, 0);
	send_receipt(x->fake, "1");
	assert_true(test_run(x->base, ready_n, &rd, FAKE_WAIT_MS));
	assert_int_equal(rd.status, MQ_ACK_OK);
	assert_int_equal(mq_confirm(g.kept), MQ_ERR_STALE);
	fake_send(x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:2\nack:2\ndestination:/queue/c\n\nb");
	test_sleep(x->base, 30);
	assert_int_equal(g.n, 1);

	rd.n = 0;
	assert_int_equal(mq_configure(q, &po), 0);	/* still paused: nothing to send */
	assert_int_equal(rd.n, 1);
	fake_expect_nothing(x->fake, 20);

	o.max_unconfirmed_messages = 10;
	o.on_ready = on_ready;
	o.arg = &rd;
	o.on_message = NULL;
	rd.n = 0;
	assert_int_equal(mq_configure(q, &o), 0);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/c\nack:client-individual\n"
	                     "max-unconfirmed-messages:10\nreceipt:2\n\n");
	send_receipt(x->fake, "2");
	assert_true(test_run(x->base, ready_n, &rd, FAKE_WAIT_MS));
	mq_message_unref(g.kept);
}

static void test_paused_queue_not_reopened(void **state)
{
	/* After a reconnection a paused queue stays unsubscribed, and
	 * STATE_RESTORED does not wait for it. */
	struct fx *x = *state;
	struct mq_queue_opts po = { .paused = true };
	x->o.reconnect = true;
	x->o.reconnect_min_ms = 10;
	fx_connect(x, CONNECTED_12);
	assert_non_null(mq_open(x->s, "/queue/p", MQ_READ, &po));
	fake_close(x->fake);
	rec_wait_event(x->base, &x->rec, 2);
	fake_expect(x->fake, "CONNECT\naccept-version:1.0,1.1,1.2\nhost:127.0.0.1\nheart-beat:0,0\n\n");
	fake_send(x->fake, CONNECTED_12);
	rec_wait_event(x->base, &x->rec, 4);
	assert_int_equal(x->rec.ev[2].type, MQ_EVENT_RECONNECTED);
	assert_int_equal(x->rec.ev[3].type, MQ_EVENT_STATE_RESTORED);
	fake_expect_nothing(x->fake, 30);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_unhealthy_suspends_and_healthy_resumes, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_messages_in_flight_at_suspension_are_dropped, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_open_while_unhealthy_starts_suspended, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_health_while_disconnected, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_pause_unsubscribes_and_unpause_subscribes, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_paused_queue_not_reopened, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
