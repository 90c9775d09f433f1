/* sub.c: subscriptions and the deliveries they have in flight. */
#include "core/sub.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "core/broker.h"
#include "core/dest.h"
#include "core/msg.h"
#include "core/selector.h"
#include "core/sink.h"
#include "common/frame.h"
#include "common/util.h"

const char *ack_mode_name(enum ack_mode m)
{
	switch (m) {
	case ACK_AUTO: return "auto";
	case ACK_CLIENT: return "client";
	case ACK_CLIENT_INDIVIDUAL: return "client-individual";
	}
	return "?";
}

static void insert_by_priority(struct dest *d, struct sub *s)
{
	struct sub *t;
	/* Highest priority first; a newcomer goes after its equals so that
	 * round-robin order stays the order of arrival. */
	TAILQ_FOREACH(t, &d->subs, dest_link) {
		if (t->opts.priority < s->opts.priority) {
			TAILQ_INSERT_BEFORE(t, s, dest_link);
			return;
		}
	}
	TAILQ_INSERT_TAIL(&d->subs, s, dest_link);
}

static void join_group(struct dest *d, struct sub *s, const char *client_id)
{
	struct rr_group *g = strmap_get(&d->groups, client_id);
	if (!g) {
		g = xcalloc(1, sizeof *g);
		g->client_id = xstrdup(client_id);
		TAILQ_INIT(&g->members);
		strmap_put(&d->groups, g->client_id, g);
	}
	TAILQ_INSERT_TAIL(&g->members, s, group_link);
	g->nmembers++;
	s->group = g;
}

static void leave_group(struct dest *d, struct sub *s)
{
	struct rr_group *g = s->group;
	if (!g)
		return;
	if (g->last == s)
		g->last = NULL;
	TAILQ_REMOVE(&g->members, s, group_link);
	s->group = NULL;
	if (--g->nmembers == 0) {
		strmap_del(&d->groups, g->client_id);
		free(g->client_id);
		free(g);
	}
}

struct sub *sub_new(struct sink *k, struct dest *d, const char *id, const struct sub_opts *o,
                    const char *shown)
{
	struct sub *s = xcalloc(1, sizeof *s);
	s->sink = k;
	s->dest = d;
	s->id = xstrdup(id);
	s->shown = shown && strcmp(shown, d->name) != 0 ? xstrdup(shown) : NULL;
	s->opts = *o;
	TAILQ_INIT(&s->pending);
	strmap_put(&k->subs, s->id, s);
	insert_by_priority(d, s);
	d->nsubs++;
	if (s->opts.selector && d->type == DEST_QUEUE)
		d->nsel++;
	if (d->type == DEST_QUEUE && d->nparked)
		queue_unpark(d);	/* what nobody wanted may be for this one */
	if (d->type == DEST_TOPIC && k->client_id && k->b->cfg.round_robin_names)
		join_group(d, s, k->client_id);
	if (d->type == DEST_QUEUE)
		queue_dispatch(d);
	return s;
}

void sub_configure(struct sub *s, const struct sub_opts *o)
{
	struct dest *d = s->dest;
	bool reorder = o->priority != s->opts.priority;
	s->opts.max_unacked = o->max_unacked;
	s->opts.max_unacked_bytes = o->max_unacked_bytes;
	s->opts.priority = o->priority;
	if (d->type == DEST_QUEUE)
		d->nsel += (o->selector != NULL) - (s->opts.selector != NULL);
	selector_free(s->opts.selector);
	s->opts.selector = o->selector;
	if (d->type == DEST_QUEUE && d->nparked)
		queue_unpark(d);
	if (reorder) {
		if (d->rr == s)
			d->rr = NULL;
		TAILQ_REMOVE(&d->subs, s, dest_link);
		insert_by_priority(d, s);
	}
	if (d->type == DEST_QUEUE)
		queue_dispatch(d);
}

static void forget(struct delivery *d)
{
	struct sub *s = d->sub;
	TAILQ_REMOVE(&s->pending, d, link);
	sink_untrack_delivery(s->sink, d);
	s->unacked--;
	s->unacked_bytes -= d->m->body_len;
	if (s->dest->type == DEST_QUEUE)
		s->dest->unacked--;
}

void sub_free(struct sub *s)
{
	struct dest *d = s->dest;
	struct delivery *dl;

	/* Back to the queue newest first, each at the head, so that they end
	 * up in their original order ahead of newer messages. */
	while ((dl = TAILQ_LAST(&s->pending, delivery_list))) {
		forget(dl);
		if (d->type == DEST_QUEUE)
			queue_return(d, dl->m, dl->deliveries, dl->journaled);
		msg_unref(dl->m);
		free(dl);
	}
	if (d->rr == s)
		d->rr = NULL;
	leave_group(d, s);
	if (d->type == DEST_QUEUE) {
		if (s->opts.selector)
			d->nsel--;
		if (d->groups_owned.count)
			groups_forget_sub(d, s);	/* its groups move with their messages */
	}
	selector_free(s->opts.selector);
	TAILQ_REMOVE(&d->subs, s, dest_link);
	d->nsubs--;
	strmap_del(&s->sink->subs, s->id);
	free(s->id);
	free(s->shown);
	free(s->head);
	free(s);
	if (d->type == DEST_QUEUE)
		queue_dispatch(d);
	else
		dest_release_if_idle(d);
}

bool sub_window_open(const struct sub *s)
{
	if (s->opts.max_unacked && s->unacked >= s->opts.max_unacked)
		return false;
	if (s->opts.max_unacked_bytes && s->unacked_bytes >= s->opts.max_unacked_bytes)
		return false;
	return true;
}

/* What a selector reads of a message: its headers as stored (decoded
 * into arena when they hold escapes), and what the broker knows. */
struct eval_ctx {
	const struct msg *m;
	uint32_t deliveries;
	char arena[2048];
	size_t used;
};

static const char *answer(void *arg, const struct selector_name *nm, char *scratch, size_t *len)
{
	struct eval_ctx *cx = arg;
	const struct msg *m = cx->m;
	const char *v;
	switch (nm->field) {
	case SELECTOR_HEADER:
		if (!(v = msg_header_raw(m, nm->name, nm->len, len)))
			return NULL;
		if (m->flags & MSG_HDR_HAS_ESC) {
			long n;
			if (*len > sizeof cx->arena - cx->used)
				return NULL;	/* longer than any selector compares: as absent */
			memcpy(cx->arena + cx->used, v, *len);
			n = frame_unescape(cx->arena + cx->used, *len, STOMP_1_2);
			if (n < 0)
				return NULL;
			v = cx->arena + cx->used;
			cx->used += *len;
			*len = (size_t)n;
		}
		return v;
	case SELECTOR_MESSAGE_ID:
		*len = u64_to_dec(m->id, scratch);
		return scratch;
	case SELECTOR_TIMESTAMP:
		*len = u64_to_dec(m->timestamp, scratch);
		return scratch;
	case SELECTOR_EXPIRES:
		*len = u64_to_dec(m->expires, scratch);
		return scratch;
	case SELECTOR_DESTINATION:
		*len = m->dest_len;
		return m->dest;
	case SELECTOR_DELIVERY_MODE:
		v = (m->flags & MSG_PERSISTENT) ? "PERSISTENT" : "NON_PERSISTENT";
		*len = strlen(v);
		return v;
	case SELECTOR_REDELIVERED:
		v = cx->deliveries > 1 || (m->flags & MSG_RECOVERED) ? "true" : "false";
		*len = strlen(v);
		return v;
	case SELECTOR_DELIVERY_COUNT:
		*len = u64_to_dec(cx->deliveries, scratch);
		return scratch;
	}
	return NULL;
}

bool sub_accepts(const struct sub *s, const struct msg *m, uint32_t deliveries)
{
	struct eval_ctx cx;
	if (!s->opts.selector)
		return true;
	cx.m = m;
	cx.deliveries = deliveries;
	cx.used = 0;
	return selector_match(s->opts.selector, answer, &cx);
}

bool sub_has_room(const struct sub *s)
{
	return !s->sink->full && sub_window_open(s);
}

void sub_deliver(struct sub *s, struct msg *m, uint32_t deliveries, bool journaled)
{
	struct sink *k = s->sink;
	struct dest *d = s->dest;

	k->ops->deliver(k, s, m, deliveries);
	s->delivered++;
	k->messages_out++;
	k->b->stats.messages_out++;
	if (s->opts.ack == ACK_AUTO) {
		if (d->type == DEST_QUEUE)
			queue_acked(d, m->id, journaled);
		return;
	}
	struct delivery *dl = xmalloc(sizeof *dl);
	dl->m = msg_ref(m);
	dl->sub = s;
	dl->deliveries = deliveries;
	dl->journaled = journaled;
	dl->same_id = NULL;
	TAILQ_INSERT_TAIL(&s->pending, dl, link);
	sink_track_delivery(k, dl);
	s->unacked++;
	s->unacked_bytes += m->body_len;
	if (d->type == DEST_QUEUE)
		d->unacked++;
}

void sub_ack(struct delivery *target, bool cumulative)
{
	struct sub *s = target->sub;
	struct dest *d = s->dest;
	struct delivery *dl;
	bool done = false;

	while (!done && (dl = cumulative ? TAILQ_FIRST(&s->pending) : target)) {
		done = dl == target;
		forget(dl);
		if (d->type == DEST_QUEUE)
			queue_acked(d, dl->m->id, dl->journaled);
		s->sink->b->stats.acks++;
		msg_unref(dl->m);
		free(dl);
	}
	if (d->type == DEST_QUEUE)
		queue_dispatch(d);
}

void sub_nack(struct delivery *target, bool cumulative)
{
	struct sub *s = target->sub;
	struct dest *d = s->dest;
	struct delivery *dl = target, *prev;

	/* From the target back to the oldest, each to the head of the queue,
	 * so that the queue sees them again in their original order. */
	for (;;) {
		prev = cumulative ? TAILQ_PREV(dl, delivery_list, link) : NULL;
		forget(dl);
		s->sink->b->stats.nacks++;
		if (d->type == DEST_QUEUE)
			queue_return(d, dl->m, dl->deliveries, dl->journaled);
		msg_unref(dl->m);
		free(dl);
		if (!prev)
			break;
		dl = prev;
	}
	if (d->type == DEST_QUEUE)
		queue_dispatch(d);
}
