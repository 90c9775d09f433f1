/* client_example.c: a producer and a consumer in one program, on the
 * mqclient library (see docs/client.md).
 *
 *   client_example HOST PORT DESTINATION [COUNT]
 *
 * It subscribes to DESTINATION (ack mode client-individual, at most 16
 * messages unconfirmed at a time), waits until the broker has confirmed
 * the subscription, posts COUNT messages (default 10) with an
 * acknowledgement callback each, prints and confirms every message as it
 * arrives, and stops once every post is acknowledged and every message
 * received. TLS is used when MQ_CLIENT_CERT_KEY, MQ_CLIENT_CA_CHAIN or
 * MQ_CLIENT_SERVER_NAME (or their PDG_ twins) are set.
 *
 * Exit status: 0 when everything posted came back, 1 otherwise. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "mqclient.h"

#define TIMEOUT_S 30

struct app {
	struct event_base *base;
	struct mq_session *s;
	struct mq_queue *q;
	int count;		/* messages to post */
	int acked, failed;	/* posts settled so far */
	int received;
	int status;		/* exit status */
	bool stopping;
};

static void finish_if_done(struct app *a)
{
	if (a->stopping || a->acked + a->failed < a->count || a->received < a->acked)
		return;
	a->stopping = true;
	if (a->failed)
		a->status = 1;
	printf("done: %d posted, %d acknowledged, %d failed, %d received\n",
	       a->count, a->acked, a->failed, a->received);
	mq_session_stop(a->s);	/* DISCONNECT, then DISCONNECTED */
}

/* The broker has the message (OK), or it may not (FAILED): exactly one
 * call per post made with this callback. */
static void on_ack(struct mq_session *s, const struct mq_ack *ack, void *arg)
{
	struct app *a = arg;
	(void)s;
	if (ack->status == MQ_ACK_OK) {
		a->acked++;
	} else {
		a->failed++;
		fprintf(stderr, "post with receipt %llu failed: %s\n", (unsigned long long)ack->receipt, ack->text);
	}
	finish_if_done(a);
}

/* The subscription is in place: post now, so that none of our own
 * messages can miss it (on a topic they would). */
static void on_ready(struct mq_queue *q, const struct mq_ack *result, void *arg)
{
	struct app *a = arg;
	char body[64];

	if (result->status != MQ_ACK_OK) {
		fprintf(stderr, "cannot subscribe to %s: %s\n", mq_queue_destination(q), result->text);
		a->status = 1;
		mq_session_stop(a->s);
		return;
	}
	for (int i = 0; i < a->count; i++) {
		const struct mq_header h[] = { { "content-type", "text/plain" } };
		int n = snprintf(body, sizeof body, "message %d of %d", i + 1, a->count);
		/* Posts are pipelined: all of them go out now, and their
		 * receipts come back in any order. */
		if (mq_post(q, body, (size_t)n, h, 1, MQ_PERSISTENT, on_ack, a) < 0) {
			fprintf(stderr, "%s\n", mq_session_error(a->s));
			a->failed++;
		}
	}
	finish_if_done(a);
}

/* Runs for every message; m is valid until we return. */
static void on_message(struct mq_session *s, struct mq_message *m, void *arg)
{
	struct app *a = arg;
	size_t len;
	const char *body = mq_message_body(m, &len);

	printf("%s %s%s: %.*s\n", mq_message_destination(m), mq_message_id(m),
	       mq_message_redelivered(m) ? " (redelivered)" : "", (int)len, body);
	if (mq_confirm(m) < 0)
		fprintf(stderr, "%s\n", mq_session_error(s));
	a->received++;
	finish_if_done(a);
}

static void on_event(struct mq_session *s, const struct mq_event *ev, void *arg)
{
	struct app *a = arg;
	(void)s;
	switch (ev->type) {
	case MQ_EVENT_CONNECTED:
		printf("%s\n", ev->text);
		break;
	case MQ_EVENT_CONNECT_FAILED:
		fprintf(stderr, "%s\n", ev->text);
		a->status = 1;
		event_base_loopbreak(a->base);
		break;
	case MQ_EVENT_DISCONNECTED:
		if (!ev->requested) {
			fprintf(stderr, "%s\n", ev->text);
			a->status = 1;
		}
		event_base_loopbreak(a->base);
		break;
	case MQ_EVENT_ERROR_FRAME:
		fprintf(stderr, "broker error: %s\n", ev->text);
		break;
	default:
		break;	/* DRAINED; reconnection and host health are not turned on here */
	}
}

static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct app *a = arg;
	(void)fd;
	(void)what;
	fprintf(stderr, "gave up after %d s: %d of %d acknowledged, %d received\n",
	        TIMEOUT_S, a->acked, a->count, a->received);
	a->status = 1;
	mq_session_abort(a->s);	/* fails what is outstanding, reports DISCONNECTED */
	event_base_loopbreak(a->base);
}

int main(int argc, char **argv)
{
	struct app a = { .count = 10 };
	struct mq_session_opts so = { 0 };
	struct mq_queue_opts qo = { 0 };
	struct timeval limit = { TIMEOUT_S, 0 };
	struct event *timer;
	long port;

	if (argc < 4 || argc > 5) {
		fprintf(stderr, "usage: %s HOST PORT DESTINATION [COUNT]\n", argv[0]);
		return 2;
	}
	port = strtol(argv[2], NULL, 10);
	if (port < 1 || port > 65535) {
		fprintf(stderr, "invalid port '%s': expected 1..65535\n", argv[2]);
		return 2;
	}
	if (argc == 5 && (a.count = atoi(argv[4])) < 1) {
		fprintf(stderr, "invalid count '%s': expected a positive number\n", argv[4]);
		return 2;
	}

	a.base = event_base_new();
	so.host = argv[1];
	so.port = (uint16_t)port;
	so.tls_env = true;		/* MQ_CLIENT_* turn TLS on */
	so.heartbeat_send_ms = 10000;
	so.heartbeat_recv_ms = 10000;
	so.on_event = on_event;
	so.arg = &a;
	a.s = mq_session_new(a.base, &so);

	qo.ack = MQ_ACK_CLIENT_INDIVIDUAL;
	qo.max_unconfirmed_messages = 16;	/* flow control: at most 16 in flight to us */
	qo.on_message = on_message;
	qo.on_ready = on_ready;
	qo.arg = &a;
	/* Opened before the connection: SUBSCRIBE goes out once CONNECTED. */
	a.q = mq_open(a.s, argv[3], MQ_READ | MQ_WRITE, &qo);
	if (!a.q || mq_session_start(a.s) < 0) {
		fprintf(stderr, "%s\n", mq_session_error(a.s));
		mq_session_free(a.s);
		event_base_free(a.base);
		return 1;
	}

	timer = evtimer_new(a.base, on_timeout, &a);
	evtimer_add(timer, &limit);
	event_base_dispatch(a.base);

	event_free(timer);
	mq_session_free(a.s);	/* closes the queue too */
	event_base_free(a.base);
	return a.status;
}
