/* test_client_reconnect.c: a session that reconnects by itself, against
 * a fake broker: the events (CONNECTION_LOST, RECONNECTED, QUEUE_REOPENED,
 * STATE_RESTORED), the queues subscribed again, posts sent again with a
 * stable id or failed by choice, confirms of old messages refused as
 * stale, the host list and its back-off, giving up on the first
 * connection, and mq_close_then settling what is outstanding. */
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

static int rc_setup(void **state)
{
	struct fx *x;
	fx_setup(state);
	x = *state;
	x->o.reconnect = true;
	x->o.reconnect_min_ms = 10;
	x->o.reconnect_max_ms = 40;
	return 0;
}

/* The value of header `name` in a frame, copied into buf. */
static const char *header_of(const char *frame, const char *name, char *buf, size_t len)
{
	char key[64];
	const char *p, *end = strstr(frame, "\n\n");
	snprintf(key, sizeof key, "\n%s:", name);
	p = strstr(frame, key);
	if (!p || (end && p > end))
		return NULL;
	p += strlen(key);
	snprintf(buf, len, "%.*s", (int)strcspn(p, "\n"), p);
	return buf;
}

/* The next frame, which must start with `cmd`; the caller frees it. */
static char *expect_cmd(struct fake *f, const char *cmd)
{
	size_t n;
	char *fr = fake_next(f, &n, FAKE_WAIT_MS);
	if (!fr)
		fail_msg("no %s frame arrived", cmd);
	if (strncmp(fr, cmd, strlen(cmd)) != 0 || fr[strlen(cmd)] != '\n') {
		fake_show("received", fr, n);
		fail_msg("expected a %s frame", cmd);
	}
	return fr;
}

static void send_receipt(struct fake *f, const char *id)
{
	char buf[64];
	int n = snprintf(buf, sizeof buf, "RECEIPT\nreceipt-id:%s\n\n", id);
	fake_sendn(f, buf, (size_t)n + 1);
}

/* Drops the connection and waits for the session to come back: the fake
 * gets its CONNECT and answers it. Returns the index of RECONNECTED. */
static int lose_and_reconnect(struct fx *x, int lost_at)
{
	struct rec_event *e;
	char *fr;
	fake_close(x->fake);
	e = rec_wait_event(x->base, &x->rec, lost_at);
	assert_int_equal(e->type, MQ_EVENT_CONNECTION_LOST);
	assert_false(e->requested);
	fr = expect_cmd(x->fake, "CONNECT");
	free(fr);
	fake_send(x->fake, CONNECTED_12);
	e = rec_wait_event(x->base, &x->rec, lost_at + 1);
	assert_int_equal(e->type, MQ_EVENT_RECONNECTED);
	return lost_at + 1;
}

static void test_loss_reopens_queues_then_restores(void **state)
{
	/* Losing the connection is CONNECTION_LOST (not DISCONNECTED); once
	 * back, RECONNECTED, each reading queue subscribed again with its
	 * options and a receipt, QUEUE_REOPENED for it on the RECEIPT, and
	 * STATE_RESTORED after the last one. A write-only queue needs no
	 * reopening. */
	struct fx *x = *state;
	struct mq_queue_opts qo = { .ack = MQ_ACK_CLIENT_INDIVIDUAL, .max_unconfirmed_messages = 7 };
	struct mq_queue *r, *w;
	struct rec_event *e;
	char *fr, rid[32];
	int i;

	fx_connect(x, CONNECTED_12);
	r = mq_open(x->s, "/queue/in", MQ_READ, &qo);
	w = mq_open(x->s, "/queue/out", MQ_WRITE, NULL);
	assert_non_null(r);
	assert_non_null(w);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/in\nack:client-individual\n"
	                     "max-unconfirmed-messages:7\n\n");
	i = lose_and_reconnect(x, 2);
	assert_int_equal(mq_session_state(x->s), MQ_SESSION_CONNECTED);
	fr = expect_cmd(x->fake, "SUBSCRIBE");
	assert_non_null(strstr(fr, "\nid:sub-1\ndestination:/queue/in\nack:client-individual\n"
	                           "max-unconfirmed-messages:7\nreceipt:"));
	header_of(fr, "receipt", rid, sizeof rid);
	free(fr);
	test_sleep(x->base, 20);
	assert_int_equal(x->rec.nevents, i);	/* nothing restored before the RECEIPT */
	send_receipt(x->fake, rid);
	e = rec_wait_event(x->base, &x->rec, i + 2);
	assert_int_equal(x->rec.ev[i].type, MQ_EVENT_QUEUE_REOPENED);
	assert_ptr_equal(x->rec.ev[i].queue, r);
	assert_contains(x->rec.ev[i].text, "/queue/in");
	assert_int_equal(e->type, MQ_EVENT_STATE_RESTORED);
	fake_expect_nothing(x->fake, 30);
	{
		struct mq_stats st;
		mq_session_stats(x->s, &st);
		assert_int_equal(st.connects, 2);
		assert_int_equal(st.reconnects, 1);
	}
}

static void test_reopen_refused_is_reported(void **state)
{
	/* An ERROR naming the reopening SUBSCRIBE's receipt gives
	 * QUEUE_REOPEN_FAILED with the broker's text, and still STATE_RESTORED
	 * (every queue has an outcome). The queue is not subscribed again at
	 * the next reconnection (the broker would refuse it, and close, every
	 * time), until it is configured. */
	struct fx *x = *state;
	struct mq_queue *q;
	char *fr, rid[32], err[128];
	int i, n;

	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/gone", MQ_READ, NULL);
	assert_non_null(q);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/gone\nack:auto\n\n");
	i = lose_and_reconnect(x, 2);
	fr = expect_cmd(x->fake, "SUBSCRIBE");
	header_of(fr, "receipt", rid, sizeof rid);
	free(fr);
	n = snprintf(err, sizeof err, "ERROR\nreceipt-id:%s\nmessage:not allowed\n\n", rid);
	fake_sendn(x->fake, err, (size_t)n + 1);
	rec_wait_event(x->base, &x->rec, i + 2);
	assert_int_equal(x->rec.ev[i].type, MQ_EVENT_QUEUE_REOPEN_FAILED);
	assert_contains(x->rec.ev[i].text, "not allowed");
	assert_int_equal(x->rec.ev[i + 1].type, MQ_EVENT_STATE_RESTORED);

	i = lose_and_reconnect(x, x->rec.nevents + 1);
	rec_wait_event(x->base, &x->rec, i + 1);
	assert_int_equal(x->rec.ev[i].type, MQ_EVENT_STATE_RESTORED);
	fake_expect_nothing(x->fake, 30);
	assert_int_equal(mq_configure(q, NULL), 0);
	fake_expect(x->fake, "SUBSCRIBE\nid:sub-1\ndestination:/queue/gone\nack:auto\n\n");
}

static void test_no_reading_queue_restores_at_once(void **state)
{
	/* With nothing to subscribe, STATE_RESTORED follows RECONNECTED at once. */
	struct fx *x = *state;
	struct rec_event *e;
	int i;
	fx_connect(x, CONNECTED_12);
	i = lose_and_reconnect(x, 2);
	e = rec_wait_event(x->base, &x->rec, i + 1);
	assert_int_equal(e->type, MQ_EVENT_STATE_RESTORED);
}

static void test_posts_sent_again_with_stable_id(void **state)
{
	/* MQ_REPOST_RESEND (the default): every post with on_ack carries
	 * mq-post-id; one unanswered when the connection drops is sent again
	 * on the new connection with the same receipt and the same id, and
	 * one made while reconnecting waits and goes after it, in order.
	 * Each gets exactly one acknowledgement. */
	struct fx *x = *state;
	struct mq_queue *q;
	char *fr, id1[64], id2[64], again[64], r[32];
	struct mq_stats st;

	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/w", MQ_WRITE, NULL);
	assert_int_equal(mq_post(q, "one", 3, NULL, 0, 0, rec_ack_cb, &x->rec), 0);
	assert_int_equal(mq_post(q, "two", 3, NULL, 0, 0, rec_ack_cb, &x->rec), 0);
	fr = expect_cmd(x->fake, "SEND");
	assert_non_null(header_of(fr, MQ_POST_ID_HEADER, id1, sizeof id1));
	assert_string_equal(header_of(fr, "receipt", r, sizeof r), "1");
	free(fr);
	fr = expect_cmd(x->fake, "SEND");
	assert_non_null(header_of(fr, MQ_POST_ID_HEADER, id2, sizeof id2));
	free(fr);
	assert_string_not_equal(id1, id2);
	assert_non_null(strstr(id1, "-1"));
	send_receipt(x->fake, "1");
	rec_wait_ack(x->base, &x->rec, 1);
	assert_int_equal(x->rec.ack[0].status, MQ_ACK_OK);

	fake_close(x->fake);
	rec_wait_event(x->base, &x->rec, 2);
	assert_int_equal(x->rec.ev[1].type, MQ_EVENT_CONNECTION_LOST);
	assert_int_equal(x->rec.nacks, 1);	/* post 2 is kept, not failed */
	assert_int_equal(mq_session_state(x->s), MQ_SESSION_RECONNECTING);
	/* Posted while away: kept for the next connection. */
	assert_int_equal(mq_post(q, "three", 5, NULL, 0, 0, rec_ack_cb, &x->rec), 0);
	assert_int_equal(mq_post(q, "lost", 4, NULL, 0, 0, NULL, NULL), -1);
	assert_contains(mq_session_error(x->s), "reconnecting");

	fr = expect_cmd(x->fake, "CONNECT");
	free(fr);
	fake_send(x->fake, CONNECTED_12);
	fr = expect_cmd(x->fake, "SEND");
	assert_string_equal(header_of(fr, "receipt", r, sizeof r), "2");
	assert_string_equal(header_of(fr, MQ_POST_ID_HEADER, again, sizeof again), id2);
	assert_non_null(strstr(fr, "\n\ntwo"));
	free(fr);
	fr = expect_cmd(x->fake, "SEND");
	assert_string_equal(header_of(fr, "receipt", r, sizeof r), "3");
	assert_non_null(strstr(fr, "\n\nthree"));
	free(fr);
	send_receipt(x->fake, "2");
	send_receipt(x->fake, "3");
	rec_wait_ack(x->base, &x->rec, 3);
	assert_int_equal(x->rec.ack[1].status, MQ_ACK_OK);
	assert_int_equal(x->rec.ack[1].receipt, 2);
	assert_int_equal(x->rec.ack[2].status, MQ_ACK_OK);
	assert_int_equal(x->rec.ack[2].receipt, 3);
	mq_session_stats(x->s, &st);
	assert_int_equal(st.reposted, 1);
	assert_int_equal(st.acks_pending, 0);
	test_sleep(x->base, 20);
	assert_int_equal(x->rec.nacks, 3);
}

static void test_own_post_id_kept(void **state)
{
	/* A post that names its own mq-post-id keeps it (a forwarder passes on
	 * the id it received). */
	struct fx *x = *state;
	struct mq_queue *q;
	const struct mq_header h[] = { { MQ_POST_ID_HEADER, "upstream-42" } };
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/w", MQ_WRITE, NULL);
	assert_int_equal(mq_post(q, "x", 1, h, 1, 0, rec_ack_cb, &x->rec), 0);
	fake_expect(x->fake, "SEND\ndestination:/queue/w\nreceipt:1\nmq-post-id:upstream-42\ncontent-length:1\n\nx");
}

static void test_posts_failed_on_loss_by_choice(void **state)
{
	/* MQ_REPOST_FAIL: no post id, and a post unanswered when the
	 * connection drops fails with MQ_ACK_CONNECTION (the broker may or may
	 * not have it), after CONNECTION_LOST; posting while away is refused. */
	struct fx *x = *state;
	struct mq_queue *q;
	struct rec_ack *a;
	x->o.repost = MQ_REPOST_FAIL;
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/w", MQ_WRITE, NULL);
	assert_int_equal(mq_post(q, "one", 3, NULL, 0, 0, rec_ack_cb, &x->rec), 0);
	fake_expect(x->fake, "SEND\ndestination:/queue/w\nreceipt:1\ncontent-length:3\n\none");
	fake_close(x->fake);
	a = rec_wait_ack(x->base, &x->rec, 1);
	assert_int_equal(a->status, MQ_ACK_FAILED);
	assert_int_equal(a->reason, MQ_ACK_CONNECTION);
	assert_contains(a->text, "closed by the broker");
	assert_int_equal(x->rec.ev[1].type, MQ_EVENT_CONNECTION_LOST);
	assert_true(x->rec.ev[1].seq < a->seq);
	assert_int_equal(mq_post(q, "two", 3, NULL, 0, 0, rec_ack_cb, &x->rec), -1);
}

struct kept {
	struct mq_message *m;
};

static void keep_message(struct mq_session *s, struct mq_message *m, void *arg)
{
	((struct kept *)arg)->m = mq_message_ref(m);
}

static bool have_kept(void *arg) { return ((struct kept *)arg)->m != NULL; }

static void test_confirm_of_old_message_is_stale(void **state)
{
	/* A message that arrived before the loss cannot be confirmed after it:
	 * MQ_ERR_STALE, with a text saying the broker delivers it again, and
	 * no ACK is sent. */
	struct fx *x = *state;
	struct kept k = { 0 };
	struct mq_queue_opts qo = { .ack = MQ_ACK_CLIENT_INDIVIDUAL, .on_message = keep_message, .arg = &k };
	char *fr;
	fx_connect(x, CONNECTED_12);
	assert_non_null(mq_open(x->s, "/queue/in", MQ_READ, &qo));
	fr = expect_cmd(x->fake, "SUBSCRIBE");
	free(fr);
	fake_send(x->fake, "MESSAGE\nsubscription:sub-1\nmessage-id:7\nack:7\ndestination:/queue/in\n\nbody");
	assert_true(test_run(x->base, have_kept, &k, FAKE_WAIT_MS));
	lose_and_reconnect(x, 2);
	fr = expect_cmd(x->fake, "SUBSCRIBE");
	free(fr);
	assert_int_equal(mq_confirm(k.m), MQ_ERR_STALE);
	assert_contains(mq_session_error(x->s), "earlier connection");
	assert_contains(mq_session_error(x->s), "delivered again");
	fake_expect_nothing(x->fake, 30);
	mq_message_unref(k.m);
}

static void test_host_list_tries_the_next_host(void **state)
{
	/* The first host refuses; the session goes on to the second without
	 * reporting a failure, and says where it is connected. */
	struct fx *x = *state;
	char a[32], b[32];
	const char *hosts[2];
	struct rec_event *e;
	char *fr;
	snprintf(a, sizeof a, "127.0.0.1:%u", closed_port());
	snprintf(b, sizeof b, "127.0.0.1:%u", x->fake->port);
	hosts[0] = a;
	hosts[1] = b;
	x->o.hosts = hosts;
	x->o.nhosts = 2;
	x->s = mq_session_new(x->base, &x->o);
	assert_int_equal(mq_session_start(x->s), 0);
	fr = expect_cmd(x->fake, "CONNECT");
	free(fr);
	fake_send(x->fake, CONNECTED_12);
	e = rec_wait_event(x->base, &x->rec, 1);
	assert_int_equal(e->type, MQ_EVENT_CONNECTED);
	assert_string_equal(mq_session_address(x->s), b);
	assert_contains(e->text, b);
}

static void test_host_list_entries_checked(void **state)
{
	/* A malformed entry makes start fail, naming it. */
	struct fx *x = *state;
	const char *hosts[] = { "127.0.0.1:61613", "broker:http" };
	x->o.hosts = hosts;
	x->o.nhosts = 2;
	x->s = mq_session_new(x->base, &x->o);
	assert_int_equal(mq_session_start(x->s), -1);
	assert_contains(mq_session_error(x->s), "host 'broker:http': port 'http'");
	assert_int_equal(x->fake->accepted, 0);
}

static void test_first_connection_gives_up_after_timeout(void **state)
{
	/* Nobody listens: with reconnect, attempts go on with back-off until
	 * connect_timeout_ms, then one CONNECT_FAILED saying so. */
	struct fx *x = *state;
	struct rec_event *e;
	uint64_t t0;
	x->o.port = closed_port();
	x->o.connect_timeout_ms = 300;
	x->s = mq_session_new(x->base, &x->o);
	t0 = mono_ms();
	assert_int_equal(mq_session_start(x->s), 0);
	e = rec_wait_event(x->base, &x->rec, 1);
	assert_int_equal(e->type, MQ_EVENT_CONNECT_FAILED);
	assert_contains(e->text, "no connection within 300 ms");
	assert_contains(e->text, "Connection refused");
	assert_true(mono_ms() - t0 >= 250);
	assert_int_equal(mq_session_state(x->s), MQ_SESSION_IDLE);
	test_sleep(x->base, 60);
	assert_int_equal(x->rec.nevents, 1);
}

static void test_refused_first_connect_is_final(void **state)
{
	/* An ERROR answering the first CONNECT (a wrong passcode) ends it:
	 * CONNECT_FAILED at once, no retry. */
	struct fx *x = *state;
	struct rec_event *e;
	fx_start(x);
	fake_send(x->fake, "ERROR\nmessage:bad passcode for alice\n\n");
	e = rec_wait_event(x->base, &x->rec, 1);
	assert_int_equal(e->type, MQ_EVENT_CONNECT_FAILED);
	assert_contains(e->text, "bad passcode");
	fake_wait_eof(x->fake);
	test_sleep(x->base, 100);
	assert_int_equal(x->fake->accepted, 1);
}

static void test_backoff_grows_to_its_limit(void **state)
{
	/* Once up, a broker that stays away is retried until stopped, each
	 * delay between half of and all of min * 2^n, capped at max: with min
	 * 10 ms and max 40 ms the delays are at least 5, 10, then 20 ms, so E
	 * ms hold at most 2 + E / 20 attempts, and at least a few (a loaded
	 * machine's timers fire late, never early). Failed attempts are not
	 * events. */
	struct fx *x = *state;
	struct mq_stats st;
	uint64_t t0, elapsed;
	fx_connect(x, CONNECTED_12);
	fake_free(x->fake);	/* the broker is gone: nothing listens */
	x->fake = NULL;
	rec_wait_event(x->base, &x->rec, 2);
	assert_int_equal(x->rec.ev[1].type, MQ_EVENT_CONNECTION_LOST);
	mq_session_stats(x->s, &st);
	assert_int_equal(st.attempts, 1);
	t0 = mono_ms();
	test_sleep(x->base, 300);
	elapsed = mono_ms() - t0;
	mq_session_stats(x->s, &st);
	assert_true(mq_session_state(x->s) == MQ_SESSION_RECONNECTING ||
	            mq_session_state(x->s) == MQ_SESSION_CONNECTING);
	if (st.attempts - 1 < 3 || st.attempts - 1 > 2 + elapsed / 20)
		fail_msg("%llu attempts in %llu ms", (unsigned long long)st.attempts - 1,
		         (unsigned long long)elapsed);
	assert_int_equal(x->rec.nevents, 2);
	mq_session_stop(x->s);
	assert_int_equal(x->rec.nevents, 3);
	assert_int_equal(x->rec.ev[2].type, MQ_EVENT_DISCONNECTED);
	assert_true(x->rec.ev[2].requested);
}

static void test_raw_posts_are_not_kept(void **state)
{
	/* Under MQ_REPOST_RESEND a raw post is still failed by a loss (its
	 * block was escaped for the lost connection), while a plain post is
	 * kept and sent again. */
	struct fx *x = *state;
	struct mq_queue *q;
	char *fr;
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/o", MQ_WRITE, NULL);
	assert_int_equal(mq_post_raw(q, "r", 1, NULL, 0, "k:v\n", 4, 0, rec_ack_cb, &x->rec), 0);
	assert_int_equal(mq_post(q, "p", 1, NULL, 0, 0, rec_ack_cb, &x->rec), 0);
	free(expect_cmd(x->fake, "SEND"));
	free(expect_cmd(x->fake, "SEND"));
	lose_and_reconnect(x, 2);
	assert_int_equal(x->rec.nacks, 1);
	assert_int_equal(x->rec.ack[0].status, MQ_ACK_FAILED);
	assert_int_equal(x->rec.ack[0].reason, MQ_ACK_CONNECTION);
	assert_int_equal(x->rec.ack[0].receipt, 1);
	fr = expect_cmd(x->fake, "SEND");
	assert_non_null(strstr(fr, "\nreceipt:2\n"));
	assert_null(strstr(fr, "k:v"));
	free(fr);
}

static void test_stop_while_reconnecting_fails_kept_posts(void **state)
{
	/* Stopping while away: DISCONNECTED (requested) at once, and every kept
	 * post fails: MQ_ACK_CONNECTION for one that was sent, MQ_ACK_CANCELED
	 * for one that never was. */
	struct fx *x = *state;
	struct mq_queue *q;
	char *fr;
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/w", MQ_WRITE, NULL);
	assert_int_equal(mq_post(q, "sent", 4, NULL, 0, 0, rec_ack_cb, &x->rec), 0);
	fr = expect_cmd(x->fake, "SEND");
	free(fr);
	fake_close(x->fake);
	rec_wait_event(x->base, &x->rec, 2);
	assert_int_equal(mq_post(q, "never", 5, NULL, 0, 0, rec_ack_cb, &x->rec), 0);
	mq_session_stop(x->s);
	assert_int_equal(x->rec.nevents, 3);
	assert_int_equal(x->rec.ev[2].type, MQ_EVENT_DISCONNECTED);
	assert_true(x->rec.ev[2].requested);
	assert_int_equal(x->rec.nacks, 2);
	assert_int_equal(x->rec.ack[0].reason, MQ_ACK_CONNECTION);
	assert_int_equal(x->rec.ack[1].reason, MQ_ACK_CANCELED);
	assert_int_equal(mq_session_state(x->s), MQ_SESSION_IDLE);
}

static void test_stop_after_connection_lost(void **state)
{
	/* mq_session_stop right after CONNECTION_LOST: DISCONNECTED follows,
	 * and no attempt is made. */
	struct fx *x = *state;
	fx_connect(x, CONNECTED_12);
	fake_close(x->fake);
	rec_wait_event(x->base, &x->rec, 2);
	mq_session_stop(x->s);
	assert_int_equal(x->rec.ev[2].type, MQ_EVENT_DISCONNECTED);
	test_sleep(x->base, 100);
	assert_int_equal(x->fake->accepted, 1);
}

/* ---- mq_close_then ---- */

struct closed {
	int n;
	enum mq_ack_status status;
	char text[256];
	int acks_before;	/* acknowledgements reported when on_closed ran */
	struct rec *rec;
};

static void on_closed(struct mq_session *s, const struct mq_ack *ack, void *arg)
{
	struct closed *c = arg;
	c->n++;
	c->status = ack->status;
	snprintf(c->text, sizeof c->text, "%s", ack->text);
	c->acks_before = c->rec->nacks;
}

static bool closed_done(void *arg) { return ((struct closed *)arg)->n > 0; }

static void test_close_then_waits_for_acks(void **state)
{
	/* mq_close_then on a queue with posts outstanding reports once their
	 * RECEIPTs are in, after their acknowledgements; for a reading queue,
	 * after the UNSUBSCRIBE's RECEIPT too. */
	struct fx *x = *state;
	struct closed c = { .rec = &x->rec };
	struct mq_queue *q;
	char *fr, rid[32];
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/rw", MQ_READ | MQ_WRITE, NULL);
	fr = expect_cmd(x->fake, "SUBSCRIBE");
	free(fr);
	assert_int_equal(mq_post(q, "a", 1, NULL, 0, 0, rec_ack_cb, &x->rec), 0);
	assert_int_equal(mq_post(q, "b", 1, NULL, 0, 0, rec_ack_cb, &x->rec), 0);
	assert_int_equal(mq_close_then(q, 0, on_closed, &c), 0);
	assert_int_equal(mq_close_then(q, 0, on_closed, &c), -1);	/* handle gone: refused */
	free(expect_cmd(x->fake, "SEND"));
	free(expect_cmd(x->fake, "SEND"));
	fr = expect_cmd(x->fake, "UNSUBSCRIBE");
	header_of(fr, "receipt", rid, sizeof rid);
	free(fr);
	send_receipt(x->fake, "1");
	send_receipt(x->fake, "2");
	test_sleep(x->base, 30);
	assert_int_equal(c.n, 0);	/* the UNSUBSCRIBE is not answered yet */
	send_receipt(x->fake, rid);
	assert_true(test_run(x->base, closed_done, &c, FAKE_WAIT_MS));
	assert_int_equal(c.status, MQ_ACK_OK);
	assert_int_equal(c.acks_before, 2);
	assert_int_equal(x->rec.ack[0].status, MQ_ACK_OK);
	assert_int_equal(x->rec.ack[1].status, MQ_ACK_OK);
}

static void test_close_then_times_out_and_cancels(void **state)
{
	/* A broker that does not answer: after the timeout the posts fail with
	 * MQ_ACK_CANCELED, then on_closed reports FAILED. */
	struct fx *x = *state;
	struct closed c = { .rec = &x->rec };
	struct mq_queue *q;
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/w", MQ_WRITE, NULL);
	assert_int_equal(mq_post(q, "a", 1, NULL, 0, 0, rec_ack_cb, &x->rec), 0);
	assert_int_equal(mq_close_then(q, 80, on_closed, &c), 0);
	assert_true(test_run(x->base, closed_done, &c, FAKE_WAIT_MS));
	assert_int_equal(c.status, MQ_ACK_FAILED);
	assert_contains(c.text, "unanswered");
	assert_int_equal(c.acks_before, 1);
	assert_int_equal(x->rec.ack[0].status, MQ_ACK_FAILED);
	assert_int_equal(x->rec.ack[0].reason, MQ_ACK_CANCELED);
	/* A late RECEIPT is ignored. */
	send_receipt(x->fake, "1");
	test_sleep(x->base, 30);
	assert_int_equal(x->rec.nacks, 1);
}

static void test_close_then_while_reconnecting(void **state)
{
	/* While away, closing fails the queue's kept posts at once and reports
	 * before it returns; they are not sent on the next connection. */
	struct fx *x = *state;
	struct closed c = { .rec = &x->rec };
	struct mq_queue *q;
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/w", MQ_WRITE, NULL);
	assert_int_equal(mq_post(q, "a", 1, NULL, 0, 0, rec_ack_cb, &x->rec), 0);
	free(expect_cmd(x->fake, "SEND"));
	fake_close(x->fake);
	rec_wait_event(x->base, &x->rec, 2);
	assert_int_equal(mq_close_then(q, 1000, on_closed, &c), 0);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.acks_before, 1);
	assert_int_equal(x->rec.ack[0].reason, MQ_ACK_CONNECTION);
	free(expect_cmd(x->fake, "CONNECT"));
	fake_send(x->fake, CONNECTED_12);
	fake_expect_nothing(x->fake, 50);
}

static void test_close_then_and_free(void **state)
{
	/* Freeing the session with a close under way still reports it (so that
	 * its argument can be released), and the posts first. */
	struct fx *x = *state;
	struct closed c = { .rec = &x->rec };
	struct mq_queue *q;
	fx_connect(x, CONNECTED_12);
	q = mq_open(x->s, "/queue/w", MQ_WRITE, NULL);
	assert_int_equal(mq_post(q, "a", 1, NULL, 0, 0, rec_ack_cb, &x->rec), 0);
	assert_int_equal(mq_close_then(q, 0, on_closed, &c), 0);
	mq_session_free(x->s);
	x->s = NULL;
	assert_int_equal(c.n, 1);
	assert_int_equal(c.acks_before, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_loss_reopens_queues_then_restores, rc_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_reopen_refused_is_reported, rc_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_no_reading_queue_restores_at_once, rc_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_posts_sent_again_with_stable_id, rc_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_own_post_id_kept, rc_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_posts_failed_on_loss_by_choice, rc_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_confirm_of_old_message_is_stale, rc_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_host_list_tries_the_next_host, rc_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_host_list_entries_checked, rc_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_first_connection_gives_up_after_timeout, rc_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_refused_first_connect_is_final, rc_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_backoff_grows_to_its_limit, rc_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_raw_posts_are_not_kept, rc_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_stop_while_reconnecting_fails_kept_posts, rc_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_stop_after_connection_lost, rc_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_close_then_waits_for_acks, rc_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_close_then_times_out_and_cancels, rc_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_close_then_while_reconnecting, rc_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_close_then_and_free, rc_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
