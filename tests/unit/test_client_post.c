/* test_client_post.c: posting against a fake broker: the exact SEND
 * frames, receipts turned into acknowledgement callbacks (OK, FAILED by
 * ERROR, FAILED by a close), pipelining, header rules, transactions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "mqclient.h"
#include "test_client_fake.h"

static void test_post_with_receipt_acked_ok(void **state)
{
	/* With on_ack: a receipt header, and on_ack(OK) on the RECEIPT. */
	struct fx *x = *state;
	struct mq_queue *q;
	struct rec_ack *a;
	struct mq_stats st;
	const struct mq_header h[] = { { "x-k", "v" } };
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/a", MQ_WRITE, NULL);
	assert_non_null(q);
	assert_string_equal(mq_queue_id(q), "");
	assert_int_equal(mq_post(q, "hello", 5, h, 1, 0, rec_ack_cb, &x->rec), 0);
	fake_expect(x->fake, "SEND\ndestination:/queue/a\nreceipt:1\nx-k:v\ncontent-length:5\n\nhello");
	test_sleep(x->base, 20);
	assert_int_equal(x->rec.nacks, 0);	/* nothing before the RECEIPT */
	fake_send(x->fake, "RECEIPT\nreceipt-id:1\n\n");
	a = rec_wait_ack(x->base, &x->rec, 1);
	assert_int_equal(a->status, MQ_ACK_OK);
	assert_int_equal(a->receipt, 1);
	assert_string_equal(a->text, "");
	mq_session_stats(x->s, &st);
	assert_int_equal(st.posted, 1);
	assert_int_equal(st.acked, 1);
	assert_int_equal(st.ack_failed, 0);
	assert_int_equal(st.acks_pending, 0);
}

static void test_post_without_ack_has_no_receipt(void **state)
{
	/* No on_ack: no receipt header, nothing to wait for. */
	struct fx *x = *state;
	struct mq_queue *q;
	struct mq_stats st;
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/topic/t", MQ_WRITE, NULL);
	assert_int_equal(mq_post(q, "", 0, NULL, 0, 0, NULL, NULL), 0);
	fake_expect(x->fake, "SEND\ndestination:/topic/t\ncontent-length:0\n\n");
	mq_session_stats(x->s, &st);
	assert_int_equal(st.acks_pending, 0);
}

static void test_post_error_with_receipt_fails_with_text(void **state)
{
	/* An ERROR carrying our receipt-id fails that post with the ERROR's
	 * message; the session reports ERROR_FRAME, and the broker's close
	 * after it a DISCONNECTED that repeats the reason. */
	struct fx *x = *state;
	struct mq_queue *q;
	struct rec_ack *a;
	struct rec_event *e;
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/a", MQ_WRITE, NULL);
	assert_int_equal(mq_post(q, "a", 1, NULL, 0, 0, rec_ack_cb, &x->rec), 0);
	assert_int_equal(mq_post(q, "b", 1, NULL, 0, 0, rec_ack_cb, &x->rec), 0);
	fake_expect(x->fake, "SEND\ndestination:/queue/a\nreceipt:1\ncontent-length:1\n\na");
	fake_expect(x->fake, "SEND\ndestination:/queue/a\nreceipt:2\ncontent-length:1\n\nb");
	fake_send(x->fake, "RECEIPT\nreceipt-id:1\n\n");
	fake_send(x->fake, "ERROR\nreceipt-id:2\nmessage:queue /queue/a is full (limit 1)\n"
	                   "content-length:7\n\ndetails");
	a = rec_wait_ack(x->base, &x->rec, 2);
	assert_int_equal(x->rec.ack[0].status, MQ_ACK_OK);
	assert_int_equal(a->status, MQ_ACK_FAILED);
	assert_int_equal(a->receipt, 2);
	assert_string_equal(a->text, "queue /queue/a is full (limit 1)");
	e = rec_wait_event(x->base, &x->rec, 2);
	assert_int_equal(e->type, MQ_EVENT_ERROR_FRAME);
	assert_string_equal(e->text, "queue /queue/a is full (limit 1)");
	fake_close(x->fake);
	e = rec_wait_event(x->base, &x->rec, 3);
	assert_int_equal(e->type, MQ_EVENT_DISCONNECTED);
	assert_contains(e->text, "closed by the broker after ERROR: queue /queue/a is full (limit 1)");
}

static void check_detail(struct mq_session *s, const struct mq_event *ev, void *arg)
{
	rec_event_cb(s, ev, arg);
	if (ev->type == MQ_EVENT_ERROR_FRAME) {
		assert_int_equal(ev->detail_len, 7);
		assert_memory_equal(ev->detail, "det\0ils", 7);
		assert_string_equal(ev->receipt_id, "9");
	}
}

static void test_error_frame_event_carries_body(void **state)
{
	/* ERROR_FRAME hands over the body (binary-safe) and the receipt-id,
	 * even one that names no receipt of ours. */
	struct fx *x = *state;
	struct rec_event *e;
	x->o.on_event = check_detail;
	fx_connect(x, CONNECTED_12);
	fake_send(x->fake, "ERROR\nreceipt-id:9\nmessage:m\ncontent-length:7\n\ndet\0ils");
	e = rec_wait_event(x->base, &x->rec, 2);
	assert_int_equal(e->type, MQ_EVENT_ERROR_FRAME);
	assert_string_equal(e->text, "m");
}

static void test_post_pipelined_acks_any_order(void **state)
{
	/* Many posts outstanding at once; receipts in any order settle the
	 * right posts, once each. */
	struct fx *x = *state;
	struct mq_queue *q;
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/p", MQ_WRITE, NULL);
	for (int i = 0; i < 3; i++)
		assert_int_equal(mq_post(q, "m", 1, NULL, 0, 0, rec_ack_cb, &x->rec), 0);
	assert_int_equal(mq_post(q, "n", 1, NULL, 0, 0, NULL, NULL), 0);
	fake_expect(x->fake, "SEND\ndestination:/queue/p\nreceipt:1\ncontent-length:1\n\nm");
	fake_expect(x->fake, "SEND\ndestination:/queue/p\nreceipt:2\ncontent-length:1\n\nm");
	fake_expect(x->fake, "SEND\ndestination:/queue/p\nreceipt:3\ncontent-length:1\n\nm");
	fake_expect(x->fake, "SEND\ndestination:/queue/p\ncontent-length:1\n\nn");
	fake_send(x->fake, "RECEIPT\nreceipt-id:3\n\n");
	fake_send(x->fake, "RECEIPT\nreceipt-id:1\n\n");
	fake_send(x->fake, "RECEIPT\nreceipt-id:1\n\n");	/* a duplicate: ignored */
	fake_send(x->fake, "RECEIPT\nreceipt-id:2\n\n");
	rec_wait_ack(x->base, &x->rec, 3);
	test_sleep(x->base, 30);
	assert_int_equal(x->rec.nacks, 3);
	assert_int_equal(x->rec.ack[0].receipt, 3);
	assert_int_equal(x->rec.ack[1].receipt, 1);
	assert_int_equal(x->rec.ack[2].receipt, 2);
	for (int i = 0; i < 3; i++)
		assert_int_equal(x->rec.ack[i].status, MQ_ACK_OK);
	assert_int_equal(mq_session_state(x->s), MQ_SESSION_CONNECTED);
}

static void test_post_outstanding_acks_failed_on_disconnect(void **state)
{
	/* The broker drops the connection with posts unanswered: each fails,
	 * in post order, before DISCONNECTED is reported. */
	struct fx *x = *state;
	struct mq_queue *q;
	struct rec_event *e;
	struct mq_stats st;
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/a", MQ_WRITE, NULL);
	for (int i = 0; i < 3; i++)
		assert_int_equal(mq_post(q, "m", 1, NULL, 0, 0, rec_ack_cb, &x->rec), 0);
	fake_expect(x->fake, "SEND\ndestination:/queue/a\nreceipt:1\ncontent-length:1\n\nm");
	fake_send(x->fake, "RECEIPT\nreceipt-id:2\n\n");
	rec_wait_ack(x->base, &x->rec, 1);
	fake_close(x->fake);
	e = rec_wait_event(x->base, &x->rec, 2);
	assert_int_equal(e->type, MQ_EVENT_DISCONNECTED);
	assert_int_equal(x->rec.nacks, 3);
	assert_int_equal(x->rec.ack[0].status, MQ_ACK_OK);
	assert_int_equal(x->rec.ack[1].receipt, 1);
	assert_int_equal(x->rec.ack[2].receipt, 3);
	for (int i = 1; i < 3; i++) {
		assert_int_equal(x->rec.ack[i].status, MQ_ACK_FAILED);
		assert_contains(x->rec.ack[i].text, "closed by the broker");
		assert_true(x->rec.ack[i].seq < e->seq);
	}
	mq_session_stats(x->s, &st);
	assert_int_equal(st.acked, 1);
	assert_int_equal(st.ack_failed, 2);
	assert_int_equal(st.acks_pending, 0);
	/* Not connected: posting fails at once, without a callback. */
	assert_int_equal(mq_post(q, "m", 1, NULL, 0, 0, rec_ack_cb, &x->rec), -1);
	assert_contains(mq_session_error(x->s), "cannot post to /queue/a: session 127.0.0.1:");
	assert_int_equal(x->rec.nacks, 3);
}

static void test_post_acks_failed_by_free(void **state)
{
	/* mq_session_free fails what is outstanding (so that args can be
	 * released) and reports no event. */
	struct fx *x = *state;
	struct mq_queue *q;
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/a", MQ_WRITE, NULL);
	assert_int_equal(mq_post(q, "m", 1, NULL, 0, 0, rec_ack_cb, &x->rec), 0);
	mq_session_free(x->s);
	x->s = NULL;
	assert_int_equal(x->rec.nacks, 1);
	assert_int_equal(x->rec.ack[0].status, MQ_ACK_FAILED);
	assert_string_equal(x->rec.ack[0].text, "session freed");
	assert_int_equal(x->rec.nevents, 1);	/* CONNECTED only */
}

static void test_post_persistent_and_escaped_headers(void **state)
{
	/* MQ_PERSISTENT adds persistent:true; header names and values are
	 * escaped for 1.2 (colon, newline, backslash, carriage return), and
	 * so is the destination. */
	struct fx *x = *state;
	struct mq_queue *q;
	const struct mq_header h[] = { { "a:b", "x\ny" }, { "path", "c:\\d\r" } };
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/we:ird", MQ_WRITE, NULL);
	assert_int_equal(mq_post(q, "p", 1, h, 2, MQ_PERSISTENT, NULL, NULL), 0);
	fake_expect(x->fake, "SEND\ndestination:/queue/we\\cird\npersistent:true\na\\cb:x\\ny\n"
	                     "path:c\\c\\\\d\\r\ncontent-length:1\n\np");
}

static void test_post_headers_under_10_are_raw(void **state)
{
	/* 1.0 has no escaping: values go out as they are, and a line break
	 * (which would end the header) is refused. */
	struct fx *x = *state;
	struct mq_queue *q;
	const struct mq_header ok[] = { { "path", "c:\\d" } };
	const struct mq_header bad[] = { { "note", "two\nlines" } };
	fx_connect(x, CONNECTED_10);
	q = mq_open(x->s, "/queue/a:b", MQ_WRITE, NULL);
	assert_int_equal(mq_post(q, "p", 1, ok, 1, 0, NULL, NULL), 0);
	fake_expect(x->fake, "SEND\ndestination:/queue/a:b\npath:c:\\d\ncontent-length:1\n\np");
	assert_int_equal(mq_post(q, "p", 1, bad, 1, 0, rec_ack_cb, &x->rec), -1);
	assert_contains(mq_session_error(x->s), "'note' contains a line break");
	assert_int_equal(x->rec.nacks, 0);
}

static void test_post_refuses_reserved_headers_and_wrong_mode(void **state)
{
	/* Headers the library writes cannot be given; a queue opened for
	 * reading only cannot be posted to. Nothing reaches the wire. */
	struct fx *x = *state;
	struct mq_queue *w, *r;
	const char *reserved[] = { "destination", "receipt", "content-length" };
	fx_connect(x, CONNECTED_12);
	w = mq_open(x->s, "/queue/a", MQ_WRITE, NULL);
	for (size_t i = 0; i < 3; i++) {
		struct mq_header h = { reserved[i], "1" };
		char want[96];
		assert_int_equal(mq_post(w, "p", 1, &h, 1, 0, NULL, NULL), -1);
		snprintf(want, sizeof want, "header '%s' is written by the library", reserved[i]);
		assert_contains(mq_session_error(x->s), want);
	}
	{
		struct mq_header h = { "", "1" };
		assert_int_equal(mq_post(w, "p", 1, &h, 1, 0, NULL, NULL), -1);
		assert_contains(mq_session_error(x->s), "empty header name");
	}
	r = mq_open(x->s, "/queue/r", MQ_READ, NULL);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/r\nack:auto\n\n");
	assert_int_equal(mq_post(r, "p", 1, NULL, 0, 0, NULL, NULL), -1);
	assert_contains(mq_session_error(x->s), "not opened with MQ_WRITE");
	fake_expect_nothing(x->fake, 50);
}

static void test_post_raw_headers_go_out_as_given(void **state)
{
	/* mq_post_raw: the decoded headers first (escaped), then the block as
	 * it is, already escaped for the version; the receipt as usual. */
	struct fx *x = *state;
	struct mq_queue *q;
	struct rec_ack *a;
	const struct mq_header h[] = { { "mq-via", "a:b" } };
	const char raw[] = "colour:red\nnote:x\\cy\n";
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/f", MQ_WRITE, NULL);
	assert_int_equal(mq_post_raw(q, "body", 4, h, 1, raw, sizeof raw - 1, MQ_PERSISTENT, rec_ack_cb, &x->rec), 0);
	fake_expect(x->fake, "SEND\ndestination:/queue/f\nreceipt:1\npersistent:true\nmq-via:a\\cb\n"
	                     "colour:red\nnote:x\\cy\ncontent-length:4\n\nbody");
	fake_send(x->fake, "RECEIPT\nreceipt-id:1\n\n");
	a = rec_wait_ack(x->base, &x->rec, 1);
	assert_int_equal(a->status, MQ_ACK_OK);
	/* An empty block is a plain post. */
	assert_int_equal(mq_post_raw(q, "", 0, NULL, 0, NULL, 0, 0, NULL, NULL), 0);
	fake_expect(x->fake, "SEND\ndestination:/queue/f\ncontent-length:0\n\n");
}

static void test_post_raw_refuses_what_the_library_writes(void **state)
{
	/* Lines that are not name:value, that do not end a line, or that name
	 * a header the library writes are refused, naming the line; nothing
	 * reaches the wire. Without a connection a raw post is refused. */
	struct fx *x = *state;
	struct mq_queue *q;
	static const struct {
		const char *raw, *why;
	} bad[] = {
		{ "receipt:7\n", "header 'receipt' is written by the library" },
		{ "a:b\ncontent-length:9\n", "header 'content-length' is written by the library" },
		{ "a:b", "raw headers must end with a line feed" },
		{ "nocolon\n", "raw header line 'nocolon' is not name:value" },
		{ ":v\n", "raw header line ':v' is not name:value" },
	};
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/f", MQ_WRITE, NULL);
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		assert_int_equal(mq_post_raw(q, "p", 1, NULL, 0, bad[i].raw, strlen(bad[i].raw), 0, NULL, NULL), -1);
		assert_contains(mq_session_error(x->s), bad[i].why);
	}
	fake_expect_nothing(x->fake, 30);
	mq_session_abort(x->s);
	assert_int_equal(mq_post_raw(q, "p", 1, NULL, 0, "a:b\n", 4, 0, rec_ack_cb, &x->rec), -1);
	assert_contains(mq_session_error(x->s), "raw headers need a connection");
}

static void test_connected_headers_are_kept(void **state)
{
	/* Every CONNECTED header can be read back, a broker's own too. */
	struct fx *x = *state;
	fx_connect(x, "CONNECTED\nversion:1.2\nserver:mqbroker/1\nbroker-id:site-a\n\n");
	assert_string_equal(mq_session_connected_header(x->s, "broker-id"), "site-a");
	assert_string_equal(mq_session_connected_header(x->s, "version"), "1.2");
	assert_null(mq_session_connected_header(x->s, "session"));
}

static void test_post_binary_and_large_bodies(void **state)
{
	/* Bodies are binary-safe (content-length), and a body larger than the
	 * inline limit arrives intact. */
	struct fx *x = *state;
	struct mq_queue *q;
	size_t big = 200 * 1024, len;
	char *body = malloc(big), *got;
	char head[96];
	int n;
	for (size_t i = 0; i < big; i++)
		body[i] = (char)(i * 7);
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/b", MQ_WRITE, NULL);
	assert_int_equal(mq_post(q, "a\0b", 3, NULL, 0, 0, NULL, NULL), 0);
	fake_expect(x->fake, "SEND\ndestination:/queue/b\ncontent-length:3\n\na\0b");
	assert_int_equal(mq_post(q, body, big, NULL, 0, 0, NULL, NULL), 0);
	got = fake_next(x->fake, &len, FAKE_WAIT_MS);
	assert_non_null(got);
	n = snprintf(head, sizeof head, "SEND\ndestination:/queue/b\ncontent-length:%zu\n\n", big);
	assert_int_equal(len, (size_t)n + big + 1);
	assert_memory_equal(got, head, (size_t)n);
	assert_memory_equal(got + n, body, big);
	assert_int_equal(got[len - 1], 0);
	free(got);
	free(body);
}

static void repost_on_ack(struct mq_session *s, const struct mq_ack *ack, void *arg)
{
	struct fx *x = arg;
	struct mq_queue *q = x->data;
	rec_ack_cb(s, ack, &x->rec);
	if (x->rec.nacks < 3)
		assert_int_equal(mq_post(q, "again", 5, NULL, 0, 0, repost_on_ack, x), 0);
}

static void test_ack_callback_may_post(void **state)
{
	/* A producer with a window of one posts from its on_ack. */
	struct fx *x = *state;
	struct mq_queue *q;
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/w", MQ_WRITE, NULL);
	x->data = q;
	assert_int_equal(mq_post(q, "first", 5, NULL, 0, 0, repost_on_ack, x), 0);
	fake_expect(x->fake, "SEND\ndestination:/queue/w\nreceipt:1\ncontent-length:5\n\nfirst");
	fake_send(x->fake, "RECEIPT\nreceipt-id:1\n\n");
	fake_expect(x->fake, "SEND\ndestination:/queue/w\nreceipt:2\ncontent-length:5\n\nagain");
	fake_send(x->fake, "RECEIPT\nreceipt-id:2\n\n");
	fake_expect(x->fake, "SEND\ndestination:/queue/w\nreceipt:3\ncontent-length:5\n\nagain");
	fake_send(x->fake, "RECEIPT\nreceipt-id:3\n\n");
	rec_wait_ack(x->base, &x->rec, 3);
	fake_expect_nothing(x->fake, 50);
}

static void test_transaction_frames_and_receipts(void **state)
{
	/* BEGIN, SEND in it, COMMIT with a receipt and ABORT with an ERROR. */
	struct fx *x = *state;
	struct mq_queue *q;
	const struct mq_header tx[] = { { "transaction", "t1" } };
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/t", MQ_WRITE, NULL);
	assert_int_equal(mq_tx_begin(x->s, "t1"), 0);
	assert_int_equal(mq_post(q, "in", 2, tx, 1, 0, NULL, NULL), 0);
	assert_int_equal(mq_tx_commit(x->s, "t1", rec_ack_cb, &x->rec), 0);
	assert_int_equal(mq_tx_begin(x->s, "t2"), 0);
	assert_int_equal(mq_tx_abort(x->s, "t2", rec_ack_cb, &x->rec), 0);
	assert_int_equal(mq_tx_begin(x->s, ""), -1);
	fake_expect(x->fake, "BEGIN\ntransaction:t1\n\n");
	fake_expect(x->fake, "SEND\ndestination:/queue/t\ntransaction:t1\ncontent-length:2\n\nin");
	fake_expect(x->fake, "COMMIT\ntransaction:t1\nreceipt:1\n\n");
	fake_expect(x->fake, "BEGIN\ntransaction:t2\n\n");
	fake_expect(x->fake, "ABORT\ntransaction:t2\nreceipt:2\n\n");
	fake_send(x->fake, "RECEIPT\nreceipt-id:1\n\n");
	fake_send(x->fake, "ERROR\nreceipt-id:2\nmessage:unknown transaction 't2'\n\n");
	rec_wait_ack(x->base, &x->rec, 2);
	assert_int_equal(x->rec.ack[0].status, MQ_ACK_OK);
	assert_int_equal(x->rec.ack[1].status, MQ_ACK_FAILED);
	assert_string_equal(x->rec.ack[1].text, "unknown transaction 't2'");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_post_with_receipt_acked_ok, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_post_without_ack_has_no_receipt, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_post_error_with_receipt_fails_with_text, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_error_frame_event_carries_body, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_post_pipelined_acks_any_order, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_post_outstanding_acks_failed_on_disconnect, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_post_acks_failed_by_free, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_post_persistent_and_escaped_headers, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_post_headers_under_10_are_raw, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_post_refuses_reserved_headers_and_wrong_mode, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_post_raw_headers_go_out_as_given, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_post_raw_refuses_what_the_library_writes, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_connected_headers_are_kept, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_post_binary_and_large_bodies, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_ack_callback_may_post, fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_transaction_frames_and_receipts, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
