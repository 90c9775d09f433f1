/* bridge_in.c: an inbound bridge, a subscription on the remote broker
 * (client-individual acks) whose messages are published here through
 * publish(), each confirmed upstream only once this broker holds it, and
 * durably for a journaled copy. See bridge.h. */
#include "bridge/bridge_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>

#include "common/frame.h"
#include "common/log.h"
#include "core/broker.h"
#include "core/publish.h"

/* A held message is offered again this often: the local refusal (a full
 * queue) usually ends as soon as a consumer takes one. */
#define HOLD_RETRY_MS 100

enum outcome {
	DONE,		/* confirmed upstream, or dropped and confirmed */
	WAIT,		/* published; confirm once the journal reaches seq */
	HOLD,		/* not published: keep it and try again */
};

/* Headers of a MESSAGE frame that describe the frame, not the message. */
static bool frame_only(const char *name)
{
	static const char *const names[] = { "message-id", "subscription", "ack", "destination", "redelivered",
	                                     "content-length", "receipt" };
	for (size_t i = 0; i < ARRAY_LEN(names); i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

static void confirm(struct bridge *br, struct mq_message *m)
{
	int rc = mq_confirm(m);
	if (rc == 0) {
		br->acknowledged++;
		bridge_moved(br);
	}
	/* MQ_ERR_STALE: it came on a connection that is gone; the remote
	 * delivers it again, and its mq-post-id lets a dedup window drop it. */
}

static enum outcome try_publish(struct bridge *br, struct mq_message *m, uint64_t *seq)
{
	struct broker *b = br->b;
	size_t n = mq_message_header_count(m), nh = 0, body_len;
	struct frame_hdr stack[32], *hdrs = n > ARRAY_LEN(stack) ? xcalloc(n, sizeof *hdrs) : stack;
	struct draft d;
	struct publish_result r;
	const char *persistent = NULL, *expires = NULL, *ttl = NULL;
	const void *body = mq_message_body(m, &body_len);

	for (size_t i = 0; i < n; i++) {
		const char *name, *value;
		mq_message_header_at(m, i, &name, &value);
		if (frame_only(name))
			continue;
		if (!persistent && strcmp(name, "persistent") == 0)
			persistent = value;
		else if (!expires && strcmp(name, "expires") == 0)
			expires = value;
		else if (!ttl && (strcmp(name, "expiration") == 0 || strcmp(name, "x-message-ttl") == 0))
			ttl = value;
		hdrs[nh].name = (char *)name;
		hdrs[nh].value = (char *)value;
		hdrs[nh].name_len = (uint32_t)strlen(name);
		hdrs[nh].value_len = (uint32_t)strlen(value);
		nh++;
	}
	d = (struct draft){
		.dest = br->spec.to,
		.hdrs = hdrs,
		.nhdrs = (unsigned)nh,
		.body = body,
		.body_len = body_len,
		.expires = expires,
		.ttl = ttl,
		.persistent = persistent,
		.dedup = br->dedup,
	};
	publish(b, &br->sink.who, NULL, &d, &r);
	if (hdrs != stack)
		free(hdrs);
	switch (r.status) {
	case PUBLISH_OK:
		br->forwarded++;
		if (r.slow_down) {
			/* A topic subscriber is behind: take nothing more until it
			 * has room (the sink's resume). */
			br->throttled = true;
			sink_wait_for_room(&br->sink);
		}
		if (broker_memory_blocked(b))
			br->throttled = true;	/* resumed when memory falls back */
		*seq = r.seq;
		return r.seq ? WAIT : DONE;
	case PUBLISH_DROPPED:
		if (r.duplicate)
			br->duplicates++;
		if (r.looped)
			br->looped++;
		*seq = 0;
		return DONE;
	case PUBLISH_REFUSED:
		break;
	}
	br->failed++;
	{
		char why[600];
		snprintf(why, sizeof why, "%s %s: %s", r.refusal == REFUSED_UNAVAILABLE ? "held back by" : "refused by",
		         br->spec.to, r.err);
		if (strcmp(why, br->last_error) != 0)
			log_warn("bridge %s: %s", br->spec.name, why);
		snprintf(br->last_error, sizeof br->last_error, "%s", why);
	}
	if (r.refusal != REFUSED_UNAVAILABLE)
		br->in_failed = true;	/* shows as failing until one goes through */
	return HOLD;
}

static void durable_done(struct completion *c, int err)
{
	struct held *h = (struct held *)((char *)c - offsetof(struct held, c));
	struct bridge *br = h->br;
	TAILQ_REMOVE(&br->durable, h, link);
	br->pending--;
	if (err == 0) {
		confirm(br, h->m);
	} else {
		/* Not stored: the remote keeps it and gives it again. */
		br->failed++;
		snprintf(br->last_error, sizeof br->last_error, "the journal could not store a message for %s: %s",
		         br->spec.to, strerror(err));
		log_error("bridge %s: %s", br->spec.name, br->last_error);
		mq_reject(h->m);
	}
	mq_message_unref(h->m);
	free(h);
}

static struct held *keep(struct bridge *br, struct mq_message *m)
{
	struct held *h = xcalloc(1, sizeof *h);
	h->br = br;
	h->m = mq_message_ref(m);
	h->since_ms = wall_ms();
	h->c.done = durable_done;
	br->pending++;
	return h;
}

/* After a publish: confirm now, or once the journal has it. h is the
 * message's record when it has one (a held message), else NULL. */
static void settle(struct bridge *br, struct mq_message *m, struct held *h, enum outcome o, uint64_t seq)
{
	if (o == WAIT) {
		if (!h)
			h = keep(br, m);
		if (store_when_durable(br->b, &h->c, seq)) {
			TAILQ_INSERT_TAIL(&br->durable, h, link);
			return;
		}
	}
	confirm(br, h ? h->m : m);
	if (h) {
		br->pending--;
		mq_message_unref(h->m);
		free(h);
	}
}

static void hold(struct bridge *br, struct mq_message *m)
{
	struct held *h = keep(br, m);
	bool first = TAILQ_EMPTY(&br->held);
	TAILQ_INSERT_TAIL(&br->held, h, link);
	if (first && !br->throttled)
		bridge_arm_retry(br, HOLD_RETRY_MS);
	bridge_set_state(br, br->state, NULL);
}

static void in_message(struct mq_session *s, struct mq_message *m, void *arg)
{
	struct bridge *br = arg;
	enum outcome o;
	uint64_t seq;
	(void)s;
	if (br->stopping || br->draining || br->paused)
		return;	/* unconfirmed: the remote gives it again */
	if (mq_message_redelivered(m))
		br->redelivered++;
	/* In order: nothing overtakes what is held. */
	if (br->throttled || !TAILQ_EMPTY(&br->held)) {
		hold(br, m);
		return;
	}
	o = try_publish(br, m, &seq);
	if (o == HOLD)
		hold(br, m);
	else
		settle(br, m, NULL, o, seq);
}

static void in_ready(struct mq_queue *q, const struct mq_ack *result, void *arg)
{
	struct bridge *br = arg;
	(void)q;
	if (br->stopping)
		return;
	if (result->status == MQ_ACK_OK) {
		if (br->in_failed && TAILQ_EMPTY(&br->held)) {
			br->in_failed = false;
			br->failures = 0;
		}
		log_info("bridge %s: subscribed to %s on %s", br->spec.name, br->spec.from, mq_session_address(br->s));
		bridge_set_state(br, br->state, NULL);
		return;
	}
	br->in_failed = true;
	br->failures++;
	{
		char why[600];
		snprintf(why, sizeof why, "the remote broker refused the subscription to %s: %s", br->spec.from,
		         result->text);
		log_warn("bridge %s: %s", br->spec.name, why);
		bridge_set_state(br, BRIDGE_FAILING, why);
	}
	bridge_arm_retry(br, bridge_backoff_ms(br));
}

/* The queue options, with the SUBSCRIBE headers in hdrs (nhdrs + 1 long). */
static void queue_opts(struct bridge *br, struct mq_queue_opts *qo, struct mq_header *hdrs, char *prefetch)
{
	const struct bridge_spec *sp = &br->spec;
	size_t n = 0;
	memset(qo, 0, sizeof *qo);
	for (size_t i = 0; i < sp->nsubscribe_headers; i++)
		hdrs[n++] = (struct mq_header){ sp->subscribe_headers[i].name, sp->subscribe_headers[i].value };
	/* RabbitMQ reads prefetch-count; mqbroker both, as one. */
	snprintf(prefetch, 24, "%u", sp->window);
	hdrs[n++] = (struct mq_header){ "prefetch-count", prefetch };
	qo->ack = MQ_ACK_CLIENT_INDIVIDUAL;
	qo->max_unconfirmed_messages = sp->window;
	qo->paused = br->paused;
	qo->headers = hdrs;
	qo->nheaders = n;
	qo->on_message = in_message;
	qo->on_ready = in_ready;
	qo->arg = br;
}

int bridge_in_open(struct bridge *br)
{
	struct mq_queue_opts qo;
	struct mq_header *hdrs = xcalloc(br->spec.nsubscribe_headers + 1, sizeof *hdrs);
	char prefetch[24];
	queue_opts(br, &qo, hdrs, prefetch);
	br->in_q = mq_open(br->s, br->spec.from, MQ_READ, &qo);
	free(hdrs);
	if (!br->in_q) {
		snprintf(br->last_error, sizeof br->last_error, "cannot subscribe to %s: %s", br->spec.from,
		         mq_session_error(br->s));
		br->in_failed = true;
		return -1;
	}
	return 0;
}

static void drop_held(struct bridge *br)
{
	struct held *h;
	while ((h = TAILQ_FIRST(&br->held))) {
		TAILQ_REMOVE(&br->held, h, link);
		br->pending--;
		mq_message_unref(h->m);
		free(h);
	}
}

void bridge_in_connection_lost(struct bridge *br)
{
	/* What was held is the remote's again: it gives it once more. */
	drop_held(br);
}

void bridge_in_set_paused(struct bridge *br, bool paused)
{
	struct mq_queue_opts qo;
	struct mq_header *hdrs = xcalloc(br->spec.nsubscribe_headers + 1, sizeof *hdrs);
	char prefetch[24];
	if (paused)
		drop_held(br);	/* the UNSUBSCRIBE gives them back */
	queue_opts(br, &qo, hdrs, prefetch);
	if (br->in_q && mq_configure(br->in_q, &qo) < 0)
		log_warn("bridge %s: %s", br->spec.name, mq_session_error(br->s));
	free(hdrs);
}

/* Publishes what is held, in order, until one is held back again. */
static void publish_held(struct bridge *br)
{
	struct held *h;
	while (!br->throttled && (h = TAILQ_FIRST(&br->held))) {
		uint64_t seq;
		enum outcome o = try_publish(br, h->m, &seq);
		if (o == HOLD) {
			bridge_arm_retry(br, HOLD_RETRY_MS);
			break;
		}
		TAILQ_REMOVE(&br->held, h, link);
		settle(br, h->m, h, o, seq);
	}
	if (TAILQ_EMPTY(&br->held) && br->in_failed && br->connected) {
		br->in_failed = false;
		br->last_error[0] = 0;
	}
	bridge_set_state(br, br->state, NULL);
}

void bridge_in_retry(struct bridge *br)
{
	if (!br->in_q && bridge_in_open(br) < 0)
		return;
	if (br->in_failed && TAILQ_EMPTY(&br->held) && br->connected && !br->paused) {
		/* The subscription was refused: ask again. */
		struct mq_queue_opts qo;
		struct mq_header *hdrs = xcalloc(br->spec.nsubscribe_headers + 1, sizeof *hdrs);
		char prefetch[24];
		queue_opts(br, &qo, hdrs, prefetch);
		mq_configure(br->in_q, &qo);
		free(hdrs);
		return;
	}
	if (br->throttled && !br->b->mem_blocked && !br->sink.waiting)
		br->throttled = false;
	publish_held(br);
}

void bridge_in_resume(struct bridge *br)
{
	if (br->stopping)
		return;
	br->throttled = false;
	publish_held(br);
}

void bridge_in_stop(struct bridge *br)
{
	struct held *h;
	drop_held(br);
	while ((h = TAILQ_FIRST(&br->durable))) {
		TAILQ_REMOVE(&br->durable, h, link);
		store_cancel(br->b, &h->c);
		br->pending--;
		mq_message_unref(h->m);
		free(h);
	}
}

uint64_t bridge_in_oldest_ms(const struct bridge *br)
{
	const struct held *a = TAILQ_FIRST(&br->held), *b = TAILQ_FIRST(&br->durable);
	if (a && b)
		return a->since_ms < b->since_ms ? a->since_ms : b->since_ms;
	return a ? a->since_ms : b ? b->since_ms : 0;
}
