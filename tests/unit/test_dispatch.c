/* test_dispatch.c: destination semantics and dispatch, through the real
 * broker modules, with clients on bufferevent pairs instead of sockets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "core/broker.h"
#include "server/server.h"
#include "stomp/conn.h"
#include "core/dest.h"
#include "common/frame.h"
#include "core/msg.h"
#include "core/sub.h"

struct client {
	struct bufferevent *ours;	/* the test's end of the pair */
	struct frame_scan scan;
	struct frame f;
	struct conn *conn;
};

struct fixture {
	struct broker *b;
	char dir[64];
};

static int setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof *fx);
	struct config cfg;
	char err[256];
	strcpy(fx->dir, "/tmp/mq-dispatch-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	config_init(&cfg);
	config_set(&cfg, "data_dir", fx->dir, err, sizeof err);
	fx->b = broker_new(&cfg, NULL, err, sizeof err);
	assert_non_null(fx->b);
	*state = fx;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[128];
	broker_free(fx->b);
	snprintf(cmd, sizeof cmd, "rm -rf %s", fx->dir);
	if (system(cmd) != 0)
		return -1;
	free(fx);
	return 0;
}

static void pump(struct broker *b)
{
	for (int i = 0; i < 20; i++)
		event_base_loop(b->base, EVLOOP_NONBLOCK);
}

static struct client *connect_client(struct broker *b)
{
	struct client *cl = calloc(1, sizeof *cl);
	struct bufferevent *pair[2];
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	bufferevent_pair_new(b->base, 0, pair);
	cl->ours = pair[1];
	bufferevent_enable(cl->ours, EV_READ | EV_WRITE);
	cl->conn = conn_new(b, pair[0], (struct sockaddr *)&sa, sizeof sa, "tcp");
	frame_init(&cl->f);
	evbuffer_add_printf(bufferevent_get_output(cl->ours), "CONNECT\naccept-version:1.2\nhost:/\n\n%c", 0);
	pump(b);
	return cl;
}

static void send_frame(struct broker *b, struct client *cl, const char *text)
{
	/* text uses '|' for NUL so that tests read as frames */
	struct evbuffer *out = bufferevent_get_output(cl->ours);
	for (const char *p = text; *p; p++)
		evbuffer_add(out, *p == '|' ? "" : p, 1);
	pump(b);
}

/* Next frame the broker sent this client, or FRAME_NEED_MORE. */
static enum frame_status next(struct client *cl)
{
	struct evbuffer *in = bufferevent_get_input(cl->ours);
	const struct frame_limits lim = { 1 << 20, 64, 4096 };
	char err[256];
	if (cl->f.total)
		frame_consume(in, &cl->scan, &cl->f);
	return frame_parse(in, &cl->scan, &cl->f, &lim, STOMP_1_2, err, sizeof err);
}

/* Collects the bodies of every MESSAGE waiting for this client. */
static int bodies(struct client *cl, char out[][32], int max)
{
	int n = 0;
	while (next(cl) == FRAME_OK) {
		if (cl->f.cmd != CMD_MESSAGE)
			continue;
		if (n < max) {
			snprintf(out[n], 32, "%.*s", (int)cl->f.body_len, cl->f.body);
			n++;
		}
	}
	return n;
}

static void free_client(struct client *cl)
{
	frame_fini(&cl->f);
	bufferevent_free(cl->ours);
	free(cl);
}

static void test_queue_round_robin_between_equal_subscribers(void **state)
{
	/* Two subscribers of equal priority take turns. */
	struct fixture *fx = *state;
	struct client *a = connect_client(fx->b), *c = connect_client(fx->b), *p = connect_client(fx->b);
	char got[16][32];
	next(a), next(c), next(p);	/* CONNECTED */
	send_frame(fx->b, a, "SUBSCRIBE\ndestination:/queue/rr\nid:1\n\n|");
	send_frame(fx->b, c, "SUBSCRIBE\ndestination:/queue/rr\nid:1\n\n|");
	for (int i = 0; i < 6; i++) {
		char f[64];
		snprintf(f, sizeof f, "SEND\ndestination:/queue/rr\n\n%d|", i);
		send_frame(fx->b, p, f);
	}
	assert_int_equal(bodies(a, got, 16), 3);
	assert_string_equal(got[0], "0");
	assert_string_equal(got[2], "4");
	assert_int_equal(bodies(c, got, 16), 3);
	assert_string_equal(got[0], "1");
	free_client(a);
	free_client(c);
	free_client(p);
}

static void test_queue_priority_then_spill_over(void **state)
{
	/* Only the highest priority with room gets messages; the rest spill. */
	struct fixture *fx = *state;
	struct client *lo = connect_client(fx->b), *hi = connect_client(fx->b), *p = connect_client(fx->b);
	char got[16][32];
	send_frame(fx->b, lo, "SUBSCRIBE\ndestination:/queue/pr\nid:1\nack:client\nconsumer-priority:1\n\n|");
	send_frame(fx->b, hi, "SUBSCRIBE\ndestination:/queue/pr\nid:1\nack:client\nconsumer-priority:9\n"
	                      "max-unconfirmed-messages:2\n\n|");
	for (int i = 0; i < 5; i++) {
		char f[64];
		snprintf(f, sizeof f, "SEND\ndestination:/queue/pr\n\n%d|", i);
		send_frame(fx->b, p, f);
	}
	assert_int_equal(bodies(hi, got, 16), 2);
	assert_string_equal(got[1], "1");
	assert_int_equal(bodies(lo, got, 16), 3);
	assert_string_equal(got[0], "2");
	free_client(lo);
	free_client(hi);
	free_client(p);
}

static void test_nack_returns_ahead_of_newer(void **state)
{
	/* A NACKed message goes to the head of the queue. */
	struct fixture *fx = *state;
	struct client *c = connect_client(fx->b), *p = connect_client(fx->b);
	struct dest *q;
	char ack[40] = "";
	send_frame(fx->b, p, "SEND\ndestination:/queue/nk\n\nfirst|SEND\ndestination:/queue/nk\n\nsecond|");
	send_frame(fx->b, c, "SUBSCRIBE\ndestination:/queue/nk\nid:1\nack:client-individual\n"
	                     "max-unconfirmed-messages:1\n\n|");
	while (next(c) == FRAME_OK)
		if (c->f.cmd == CMD_MESSAGE)
			snprintf(ack, sizeof ack, "%s", frame_get(&c->f, "ack"));
	assert_true(ack[0]);
	q = dest_find(fx->b->default_vhost, "/queue/nk");
	assert_int_equal(q->count, 1);
	{
		char f[96];
		snprintf(f, sizeof f, "NACK\nid:%s\n\n|", ack);
		send_frame(fx->b, c, f);
	}
	while (next(c) == FRAME_OK) {
		if (c->f.cmd == CMD_MESSAGE) {
			assert_memory_equal(c->f.body, "first", 5);
			assert_string_equal(frame_get(&c->f, "redelivered"), "true");
			assert_string_equal(frame_get(&c->f, "delivery-count"), "2");
		}
	}
	assert_int_equal(q->count, 1);
	assert_memory_equal(q->items[q->head].m->body, "second", 6);
	free_client(c);
	free_client(p);
}

static void test_topic_fan_out_and_drop(void **state)
{
	/* Every subscriber gets a copy; with none, the message is counted dropped. */
	struct fixture *fx = *state;
	struct client *a = connect_client(fx->b), *c = connect_client(fx->b), *p = connect_client(fx->b);
	char got[4][32];
	uint64_t dropped = fx->b->stats.dropped;
	send_frame(fx->b, p, "SEND\ndestination:/topic/t\n\nlost|");
	assert_int_equal(fx->b->stats.dropped, dropped + 1);
	assert_null(dest_find(fx->b->default_vhost, "/topic/t"));
	send_frame(fx->b, a, "SUBSCRIBE\ndestination:/topic/t\nid:1\n\n|");
	send_frame(fx->b, c, "SUBSCRIBE\ndestination:/topic/t\nid:1\n\n|");
	send_frame(fx->b, p, "SEND\ndestination:/topic/t\n\nboth|");
	assert_int_equal(bodies(a, got, 4), 1);
	assert_int_equal(bodies(c, got, 4), 1);
	assert_string_equal(got[0], "both");
	/* one message, shared: a single allocation however many subscribers */
	free_client(a);
	free_client(c);
	free_client(p);
}

static void test_pubsub_shares_one_message_with_children(void **state)
{
	/* Children receive the same message object, not copies. */
	struct fixture *fx = *state;
	struct vhost *vh = fx->b->default_vhost;
	char err[256];
	struct dest *ps = dest_create(vh, "/pubsub/p", DEST_PUBSUB, NULL, err, sizeof err);
	struct dest *c1 = dest_get(vh, "/queue/c1", err, sizeof err);
	struct dest *c2 = dest_get(vh, "/queue/c2", err, sizeof err);
	struct client *p = connect_client(fx->b);
	assert_int_equal(pubsub_attach(ps, c1, err, sizeof err), 0);
	assert_int_equal(pubsub_attach(ps, c2, err, sizeof err), 0);
	assert_int_equal(pubsub_attach(ps, c2, err, sizeof err), -1);
	assert_non_null(strstr(err, "already a child"));
	send_frame(fx->b, p, "SEND\ndestination:/pubsub/p\n\nx|");
	assert_int_equal(c1->count, 1);
	assert_int_equal(c2->count, 1);
	assert_ptr_equal(c1->items[c1->head].m, c2->items[c2->head].m);
	assert_int_equal(c1->items[c1->head].m->refs, 2);
	free_client(p);
}

static void test_ring_buffer_keeps_order_across_growth_and_returns(void **state)
{
	/* Thousands of pushes, some returned to the front, come out in order. */
	struct fixture *fx = *state;
	struct vhost *vh = fx->b->default_vhost;
	char err[256];
	struct dest *q = dest_get(vh, "/queue/ring", err, sizeof err);
	struct frame f;
	frame_init(&f);
	for (int i = 0; i < 5000; i++) {
		struct msg *m = msg_from_parts((uint64_t)i, q->name, "", 0, "", 0);
		queue_push(q, m, 0, false);
		msg_unref(m);
	}
	/* take the first 10 out and put them back at the head, newest first */
	struct msg *taken[10];
	for (int i = 0; i < 10; i++) {
		taken[i] = msg_ref(q->items[q->head].m);
		msg_unref(q->items[q->head].m);
		q->head = (q->head + 1) & (q->cap - 1);
		q->count--;
	}
	for (int i = 9; i >= 0; i--) {
		queue_push_front(q, taken[i], 1, false);
		msg_unref(taken[i]);
	}
	for (size_t i = 0; i < q->count; i++)
		assert_int_equal(q->items[(q->head + i) & (q->cap - 1)].m->id, i);
	assert_int_equal(queue_purge(q), 5000);
	frame_fini(&f);
}

static void test_bounded_queue_drops_oldest(void **state)
{
	/* max-length with drop-oldest keeps the newest. */
	struct fixture *fx = *state;
	struct vhost *vh = fx->b->default_vhost;
	char err[256];
	struct queue_opts o = { .max_length = 3 };
	struct dest *q = dest_create(vh, "/queue/b3", DEST_QUEUE, &o, err, sizeof err);
	uint64_t seq = 0;
	for (int i = 0; i < 10; i++) {
		struct msg *m = msg_from_parts((uint64_t)i, q->name, "", 0, "", 0);
		assert_int_equal(dest_send(q, m, &seq, err, sizeof err), SEND_OK);
		msg_unref(m);
	}
	assert_int_equal(q->count, 3);
	assert_int_equal(q->items[q->head].m->id, 7);
	assert_int_equal(q->dropped, 7);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_queue_round_robin_between_equal_subscribers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_queue_priority_then_spill_over, setup, teardown),
		cmocka_unit_test_setup_teardown(test_nack_returns_ahead_of_newer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_topic_fan_out_and_drop, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pubsub_shares_one_message_with_children, setup, teardown),
		cmocka_unit_test_setup_teardown(test_ring_buffer_keeps_order_across_growth_and_returns, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bounded_queue_drops_oldest, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
