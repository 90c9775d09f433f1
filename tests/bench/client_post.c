/* client_post.c: posts with acknowledgements through the installed client
 * library, for comparing the shared library with the static one
 * (tests/bench/client_link.py builds it both ways).
 *
 *   client_post HOST PORT COUNT [SIZE] [WINDOW]
 *
 * Posts COUNT messages of SIZE bytes (default 100) to /queue/bench-c, each
 * with an on_ack callback, keeping WINDOW (default 10000) unacknowledged
 * at a time, and prints "msgs_per_s N" from the first post to the last
 * acknowledgement. Exit status 1 if any acknowledgement failed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>

#include <mqclient.h>

struct bench {
	struct event_base *base;
	struct mq_session *s;
	struct mq_queue *q;
	long count, posted, acked, failed, window;
	char *body;
	size_t size;
	struct timespec t0;
};

static void on_ack(struct mq_session *s, const struct mq_ack *ack, void *arg);

static void pump(struct bench *b)
{
	while (b->posted < b->count && b->posted - b->acked - b->failed < b->window) {
		if (mq_post(b->q, b->body, b->size, NULL, 0, 0, on_ack, b) < 0) {
			fprintf(stderr, "post: %s\n", mq_session_error(b->s));
			exit(1);
		}
		b->posted++;
	}
}

static void on_ack(struct mq_session *s, const struct mq_ack *ack, void *arg)
{
	struct bench *b = arg;
	(void)s;
	if (ack->status == MQ_ACK_OK)
		b->acked++;
	else
		b->failed++;
	if (b->acked + b->failed == b->count)
		mq_session_stop(b->s);
	else
		pump(b);
}

static void on_event(struct mq_session *s, const struct mq_event *ev, void *arg)
{
	struct bench *b = arg;
	(void)s;
	if (ev->type == MQ_EVENT_CONNECTED) {
		b->q = mq_open(b->s, "/queue/bench-c", MQ_WRITE, NULL);
		clock_gettime(CLOCK_MONOTONIC, &b->t0);
		pump(b);
	} else if (ev->type == MQ_EVENT_CONNECT_FAILED || ev->type == MQ_EVENT_DISCONNECTED) {
		if (!ev->requested)
			fprintf(stderr, "%s\n", ev->text);
		event_base_loopbreak(b->base);
	}
}

int main(int argc, char **argv)
{
	struct bench b = { 0 };
	struct mq_session_opts o = { 0 };
	struct timespec t1;
	double secs;

	if (argc < 4) {
		fprintf(stderr, "usage: client_post HOST PORT COUNT [SIZE] [WINDOW]\n");
		return 2;
	}
	b.count = atol(argv[3]);
	b.size = argc > 4 ? (size_t)atol(argv[4]) : 100;
	b.window = argc > 5 ? atol(argv[5]) : 10000;
	b.body = malloc(b.size ? b.size : 1);
	memset(b.body, 'x', b.size);
	b.base = event_base_new();
	o.host = argv[1];
	o.port = (uint16_t)atoi(argv[2]);
	o.on_event = on_event;
	o.arg = &b;
	b.s = mq_session_new(b.base, &o);
	if (mq_session_start(b.s) < 0) {
		fprintf(stderr, "%s\n", mq_session_error(b.s));
		return 1;
	}
	event_base_dispatch(b.base);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	secs = (double)(t1.tv_sec - b.t0.tv_sec) + (double)(t1.tv_nsec - b.t0.tv_nsec) / 1e9;
	printf("msgs_per_s %.0f\nacked %ld\nfailed %ld\n", (double)b.acked / secs, b.acked, b.failed);
	mq_session_free(b.s);
	event_base_free(b.base);
	free(b.body);
	return b.failed || b.acked != b.count;
}
