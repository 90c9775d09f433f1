/* queue.c: a queue holds messages until one consumer takes each.
 *
 * Storage is a ring buffer of (message, delivery count) slots, so pushing
 * at the tail, popping at the head and putting a returned delivery back at
 * the head are all O(1). Dispatch hands the head to the highest-priority
 * subscriber with room, round-robin among equals. */
#include "dest.h"

#include <stdlib.h>
#include <string.h>

#include "conn.h"
#include "log.h"
#include "msg.h"
#include "sub.h"
#include "util.h"

static void grow(struct dest *q)
{
	size_t cap = q->cap ? q->cap * 2 : 16;
	struct qitem *items = xmalloc(cap * sizeof *items);
	for (size_t i = 0; i < q->count; i++)
		items[i] = q->items[(q->head + i) & (q->cap - 1)];
	free(q->items);
	q->items = items;
	q->cap = cap;
	q->head = 0;
}

static void maybe_shrink(struct dest *q)
{
	/* Give memory back after a backlog drains, but not for small queues. */
	if (q->cap > 1024 && q->count < q->cap / 8) {
		size_t cap = q->cap / 4;
		struct qitem *items = xmalloc(cap * sizeof *items);
		for (size_t i = 0; i < q->count; i++)
			items[i] = q->items[(q->head + i) & (q->cap - 1)];
		free(q->items);
		q->items = items;
		q->cap = cap;
		q->head = 0;
	} else if (q->count == 0 && q->cap > 16) {
		free(q->items);
		q->items = NULL;
		q->cap = 0;
		q->head = 0;
	}
}

static void drop_head_for_room(struct dest *q, size_t incoming)
{
	struct broker *b = q->vhost->broker;
	while (q->count && ((q->opts.max_length && q->count >= q->opts.max_length) ||
	                    (q->opts.max_bytes && q->bytes + incoming > q->opts.max_bytes))) {
		struct qitem it = q->items[q->head];
		q->head = (q->head + 1) & (q->cap - 1);
		q->count--;
		q->bytes -= it.m->body_len;
		q->dropped++;
		b->stats.dropped++;
		queue_acked(q, it.m);
		msg_unref(it.m);
	}
}

void queue_push(struct dest *q, struct msg *m, uint32_t deliveries)
{
	if (q->opts.max_length || q->opts.max_bytes)
		drop_head_for_room(q, m->body_len);
	if (q->count == q->cap)
		grow(q);
	q->items[(q->head + q->count) & (q->cap - 1)] = (struct qitem){ msg_ref(m), deliveries, 0 };
	q->count++;
	q->bytes += m->body_len;
}

void queue_push_front(struct dest *q, struct msg *m, uint32_t deliveries)
{
	if (q->count == q->cap)
		grow(q);
	q->head = (q->head - 1) & (q->cap - 1);
	q->items[q->head] = (struct qitem){ msg_ref(m), deliveries, 0 };
	q->count++;
	q->bytes += m->body_len;
}

/* Highest priority with room, round-robin among that priority. */
static struct sub *pick(struct dest *q)
{
	struct sub *s, *t;
	int prio;

	TAILQ_FOREACH(s, &q->subs, dest_link)
		if (sub_has_room(s))
			break;
	if (!s)
		return NULL;
	prio = s->opts.priority;
	if (q->rr && q->rr->opts.priority == prio) {
		for (t = TAILQ_NEXT(q->rr, dest_link); t && t->opts.priority == prio; t = TAILQ_NEXT(t, dest_link))
			if (sub_has_room(t))
				return t;
	}
	return s;
}

void queue_dispatch(struct dest *q)
{
	struct broker *b = q->vhost->broker;
	uint64_t now = 0;

	if (q->paused || q->dispatching || !q->count || !q->nsubs)
		return;
	q->dispatching = true;
	while (q->count) {
		struct sub *s = pick(q);
		struct qitem it;
		if (!s)
			break;
		it = q->items[q->head];
		q->head = (q->head + 1) & (q->cap - 1);
		q->count--;
		q->bytes -= it.m->body_len;
		if (it.m->expires) {
			if (!now)
				now = wall_ms();
			if (it.m->expires <= now) {
				q->expired++;
				b->stats.expired++;
				queue_acked(q, it.m);
				msg_unref(it.m);
				continue;
			}
		}
		q->rr = s;
		q->messages_out++;
		sub_deliver(s, it.m, it.deliveries + 1);
		msg_unref(it.m);	/* the queue's reference; the delivery holds its own */
	}
	q->dispatching = false;
	maybe_shrink(q);
}

uint64_t queue_purge(struct dest *q)
{
	uint64_t n = q->count;
	while (q->count) {
		struct qitem it = q->items[q->head];
		q->head = (q->head + 1) & (q->cap - 1);
		q->count--;
		queue_acked(q, it.m);
		msg_unref(it.m);
	}
	q->bytes = 0;
	maybe_shrink(q);
	return n;
}

void queue_return(struct dest *q, struct msg *m, uint32_t deliveries)
{
	q->redelivered++;
	q->vhost->broker->stats.redelivered++;
	queue_push_front(q, m, deliveries);
}

void queue_acked(struct dest *q, struct msg *m)
{
	/* The journal's removal record goes here once persistence lands. */
	(void)q;
	(void)m;
}
