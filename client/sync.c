/* sync.c: blocking helpers for sequential tools (mqsh publish and tail):
 * each starts an operation and runs the session's loop until it is done. */
#include <stdio.h>
#include <string.h>

#include <event2/event.h>

#include "client_int.h"

static void expire_cb(evutil_socket_t fd, short what, void *arg)
{
	*(bool *)arg = true;
}

/* *freed tells the caller not to touch s again: a callback freed it. */
static enum mq_run_status run(struct mq_session *s, bool (*done)(void *), void *arg,
                              unsigned timeout_ms, bool *freed)
{
	struct event *t = NULL;
	bool expired = false;
	enum mq_run_status st;

	*freed = false;
	if (s->busy) {
		client_set_err(s, "the event loop cannot be run from inside a callback of session %s", s->addr);
		return MQ_RUN_ERROR;
	}
	if (timeout_ms) {
		struct timeval tv = { .tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000 };
		t = evtimer_new(s->base, expire_cb, &expired);
		evtimer_add(t, &tv);
	}
	s->running++;
	for (;;) {
		if (done && done(arg)) {
			st = MQ_RUN_DONE;
			break;
		}
		if (s->free_requested || s->state == MQ_SESSION_IDLE) {
			st = MQ_RUN_CLOSED;
			break;
		}
		if (expired) {
			st = MQ_RUN_TIMEOUT;
			break;
		}
		if (event_base_loop(s->base, EVLOOP_ONCE) < 0) {
			client_set_err(s, "the event loop of session %s failed", s->addr);
			st = MQ_RUN_ERROR;
			break;
		}
	}
	s->running--;
	if (t)
		event_free(t);
	/* A free asked for while we ran happens now that nobody runs. */
	client_enter(s);
	*freed = client_leave(s);
	return st;
}

enum mq_run_status mq_session_run_until(struct mq_session *s, bool (*done)(void *arg),
                                        void *arg, unsigned timeout_ms)
{
	bool freed;
	return run(s, done, arg, timeout_ms, &freed);
}

static bool is_connected(void *arg)
{
	return ((struct mq_session *)arg)->state == MQ_SESSION_CONNECTED;
}

static bool is_idle(void *arg)
{
	return ((struct mq_session *)arg)->state == MQ_SESSION_IDLE;
}

static bool wait_done(void *arg) { return ((struct sync_wait *)arg)->done; }

int mq_session_connect_sync(struct mq_session *s, unsigned timeout_ms)
{
	bool freed;
	enum mq_run_status st;

	if (mq_session_start(s) < 0)
		return -1;
	st = run(s, is_connected, s, timeout_ms, &freed);
	if (st == MQ_RUN_DONE)
		return 0;
	if (!freed && st == MQ_RUN_TIMEOUT) {
		mq_session_abort(s);
		client_set_err(s, "no CONNECTED from %s within %u ms", s->addr, timeout_ms);
	}
	return -1;	/* CLOSED: s->err holds the CONNECT_FAILED text */
}

void mq_session_stop_sync(struct mq_session *s, unsigned timeout_ms)
{
	bool freed;
	mq_session_stop(s);
	if (run(s, is_idle, s, timeout_ms, &freed) == MQ_RUN_TIMEOUT && !freed)
		mq_session_abort(s);
}

struct mq_queue *mq_open_sync(struct mq_session *s, const char *destination, unsigned flags,
                              const struct mq_queue_opts *opts, unsigned timeout_ms)
{
	struct sync_wait w = { 0 };
	struct mq_queue *q;
	enum mq_run_status st;
	bool freed;
	char why[sizeof s->err];

	q = client_open(s, destination, flags, opts, (flags & MQ_READ) ? &w : NULL);
	if (!q || !(flags & MQ_READ))
		return q;
	st = run(s, wait_done, &w, timeout_ms, &freed);
	if (freed)
		return NULL;
	if (st == MQ_RUN_DONE && w.status == MQ_ACK_OK)
		return q;
	if (st == MQ_RUN_DONE)
		snprintf(why, sizeof why, "%s", w.text);
	else if (st == MQ_RUN_TIMEOUT)
		snprintf(why, sizeof why, "no RECEIPT for SUBSCRIBE within %u ms", timeout_ms);
	else
		snprintf(why, sizeof why, "%s", s->err);
	mq_close(q);
	client_set_err(s, "cannot subscribe to %s: %s", destination, why);
	return NULL;
}

static void sync_ack(struct mq_session *s, const struct mq_ack *ack, void *arg)
{
	struct sync_wait *w = arg;
	w->done = true;
	w->status = ack->status;
	snprintf(w->text, sizeof w->text, "%s", ack->text);
}

int mq_post_sync(struct mq_queue *q, const void *body, size_t len,
                 const struct mq_header *headers, size_t nheaders, unsigned flags,
                 unsigned timeout_ms)
{
	struct mq_session *s = q->s;
	struct sync_wait w = { 0 };
	uint64_t receipt = 0;
	enum mq_run_status st;
	bool freed;

	if (client_post(q, body, len, NULL, 0, headers, nheaders, flags, sync_ack, &w, &receipt) < 0)
		return -1;
	st = run(s, wait_done, &w, timeout_ms, &freed);
	if (st == MQ_RUN_DONE && w.status == MQ_ACK_OK)
		return 0;
	if (freed)
		return -1;
	if (st == MQ_RUN_DONE) {
		client_set_err(s, "post to %s failed: %s", q->dest, w.text);
	} else {
		/* w lives on this stack: the receipt must not find it later. */
		client_pending_drop(s, receipt);
		if (st == MQ_RUN_TIMEOUT)
			client_set_err(s, "post to %s: no RECEIPT within %u ms", q->dest, timeout_ms);
	}
	return -1;
}
