/* queue.c: a queue holds messages until one consumer takes each.
 *
 * Storage is a ring buffer of 16-byte slots (message, delivery count,
 * flags), so pushing at the tail, popping at the head and putting a
 * returned delivery back at the head are all O(1). Dispatch hands the head
 * to the highest-priority subscriber with room, round-robin among equals.
 *
 * Queues larger than memory: beyond queue_memory_budget bytes of bodies,
 * a slot whose message is in the journal keeps only the message id (it is
 * "paged out"); the message is read back when its turn comes. The newest
 * messages page out first, so the head, which goes next, stays in memory.
 *
 * Selectors, message groups and a single active consumer make dispatch
 * choosy: the head may be for a consumer that is busy while the next
 * message is for one that is free. Such a queue looks past the head (a
 * window of DISPATCH_WINDOW slots) and takes what it can deliver from the
 * middle, leaving an empty slot (taken) that is skipped and trimmed when
 * it reaches the head. A message that no subscriber's selector matches at
 * all is set aside (parked) so that it blocks nothing, and comes back to
 * the head, in order, when a subscriber arrives. A queue without any of
 * these keeps the plain path: the head to the next subscriber with room. */
#include "core/dest.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core/msg.h"
#include "core/sink.h"
#include "core/store.h"
#include "core/sub.h"
#include "common/util.h"

/* Slots a choosy dispatch looks at past the head (ActiveMQ pages 200). */
#define DISPATCH_WINDOW 1000

/* Moves the slots, head first, into a ring of `cap` (a power of two). */
static void resize(struct dest *q, size_t cap)
{
	struct qitem *items = xmalloc(cap * sizeof *items);
	for (size_t i = 0; i < q->count; i++)
		items[i] = q->items[(q->head + i) & (q->cap - 1)];
	free(q->items);
	q->items = items;
	q->cap = cap;
	q->head = 0;
}

static void grow(struct dest *q)
{
	resize(q, q->cap ? q->cap * 2 : 16);
}

static inline void maybe_shrink(struct dest *q)
{
	/* Give memory back after a backlog drains, but not for small queues. */
	if (q->cap > 1024 && q->count < q->cap / 8) {
		resize(q, q->cap / 4);
	} else if (q->count == 0 && q->cap > 16) {
		free(q->items);
		q->items = NULL;
		q->cap = 0;
		q->head = 0;
	}
}

/* Only choosy dispatch leaves empty slots: out of the plain path. */
static void __attribute__((noinline)) trim_holes(struct dest *q)
{
	while (q->count && q->items[q->head].taken) {
		q->head = (q->head + 1) & (q->cap - 1);
		q->count--;
		q->holes--;
	}
}

static inline struct qitem pop_head(struct dest *q)
{
	struct qitem it = q->items[q->head];
	q->head = (q->head + 1) & (q->cap - 1);
	q->count--;
	q->bytes -= it.len;
	if (it.paged) {
		q->paged--;
		q->paged_bytes -= it.len;
	}
	/* The head is never an empty slot. */
	if (q->holes)
		trim_holes(q);
	return it;
}

/* Takes slot i (0 = the head) out of the ring: the head is popped, any
 * other slot left empty. Its bytes leave the queue's count. */
static struct qitem take_at(struct dest *q, size_t i)
{
	struct qitem *slot, it;
	if (i == 0)
		return pop_head(q);
	slot = &q->items[(q->head + i) & (q->cap - 1)];
	it = *slot;
	q->bytes -= it.len;
	if (it.paged) {
		q->paged--;
		q->paged_bytes -= it.len;
	}
	*slot = (struct qitem){ .taken = 1 };
	q->holes++;
	return it;
}

uint64_t qitem_id(const struct qitem *it)
{
	return it->paged ? it->id : it->m->id;
}

/* The slot's message, read back from the journal if it was paged out (the
 * slot then holds it in memory again). NULL when it cannot be read: the
 * slot is then useless and the caller drops it. */
static struct msg *item_msg(struct dest *q, struct qitem *it)
{
	struct msg *m;
	if (!it->paged)
		return it->m;
	m = store_load(q, it->id);
	if (!m)
		return NULL;
	if (it->recovered)
		m->flags |= MSG_RECOVERED;
	q->paged--;
	q->paged_bytes -= it->len;
	q->bytes -= it->len;
	it->len = m->body_len;
	q->bytes += it->len;
	it->m = m;
	it->paged = 0;
	return m;
}

/* A slot that went away: its journal record too, and its reference. */
static void discard(struct dest *q, struct qitem *it)
{
	queue_acked(q, qitem_id(it), it->journaled);
	if (!it->paged)
		msg_unref(it->m);
}

/* Where q's dead letters go, or NULL to drop them. Messages past their
 * delivery limit go to the default /queue/DLQ.<name> unless told
 * otherwise; expired and overflowing ones only when a dead-letter
 * destination is set explicitly, so that a bounded queue does not grow an
 * unbounded twin by default. */
const char *queue_dead_letter_name(const struct dest *q, bool explicit_only, char *buf, size_t len)
{
	const char *dl = q->opts.dead_letter;
	if (dl)
		return *dl && strcmp(dl, q->name) != 0 ? dl : NULL;
	if (explicit_only || strncmp(q->name, "/queue/DLQ.", 11) == 0)
		return NULL;
	snprintf(buf, len, "/queue/DLQ.%s",
	         strncmp(q->name, "/queue/", 7) == 0 ? q->name + 7 : q->name + (q->name[0] == '/'));
	return buf;
}

void queue_dead_letter(struct dest *q, struct msg *m, uint32_t deliveries, bool journaled,
                       const char *reason, bool explicit_only)
{
	struct broker *b = q->vhost->broker;
	char buf[1200], err[256], idbuf[24], count[24];
	const char *name = queue_dead_letter_name(q, explicit_only, buf, sizeof buf);
	struct dest *dlq;

	queue_acked(q, m->id, journaled);	/* gone from this queue either way */
	/* One hop only: a dead letter is not dead-lettered again but dropped,
	 * so that queues naming each other (or a full DLQ with a DLQ of its
	 * own) cannot bounce messages between them forever. */
	if ((m->flags & MSG_DEAD_LETTER) || !name || !(dlq = dest_get(q->vhost, name, err, sizeof err)) ||
	    dlq == q) {
		q->dropped++;
		b->stats.dropped++;
		return;
	}
	u64_to_dec(m->id, idbuf);
	u64_to_dec(deliveries, count);
	{
		/* A copy with a new id: the original may still sit in other
		 * queues (pubsub), and the headers say where it came from. */
		const struct msg_edit edits[] = {
			{ "original-destination", q->name },
			{ "original-message-id", idbuf },
			{ "dead-letter-reason", reason },
			{ "original-delivery-count", count },
		};
		struct msg *copy = msg_clone_for(m, name, edits, ARRAY_LEN(edits));
		uint64_t seq = 0;
		enum send_status st;
		copy->id = broker_next_msg_id(b);
		copy->flags |= MSG_DEAD_LETTER;
		/* As durable as it was: a persistent queue's dead letter is
		 * journaled in its dead-letter queue, whatever that queue is. */
		if (q->opts.persistent)
			copy->flags |= MSG_PERSISTENT;
		/* As RabbitMQ does: a dead letter does not expire again (an
		 * expired message would otherwise die on arrival). */
		copy->expires = 0;
		st = dest_send(dlq, copy, &seq, err, sizeof err);
		if (st == SEND_OK) {
			q->dead_lettered++;
			b->stats.dead_lettered++;
		} else {
			q->dropped++;
			b->stats.dropped++;
		}
		msg_unref(copy);
	}
}

bool queue_expired(const struct dest *q, const struct msg *m, uint64_t now)
{
	if (m->expires && m->expires <= now)
		return true;
	return q->opts.ttl_ms && m->timestamp + q->opts.ttl_ms <= now;
}

static void expire(struct dest *q, struct msg *m, uint32_t deliveries, bool journaled)
{
	q->expired++;
	q->vhost->broker->stats.expired++;
	queue_dead_letter(q, m, deliveries, journaled, "expired", true);
}

/* Takes the oldest parked message out (overflow, redrive, purge). */
static struct qitem unpark_first(struct dest *q)
{
	struct qitem it = q->parked[0];
	memmove(q->parked, q->parked + 1, (q->nparked - 1) * sizeof *q->parked);
	q->nparked--;
	q->bytes -= it.len;
	if (it.paged) {
		q->paged--;
		q->paged_bytes -= it.len;
	}
	return it;
}

/* Makes room at the head for `incoming` more bytes (overflow drop-oldest). */
static void drop_head_for_room(struct dest *q, size_t incoming)
{
	char buf[1200];
	bool to_dlq = queue_dead_letter_name(q, true, buf, sizeof buf) != NULL;
	while (queue_depth(q) && ((q->opts.max_length && queue_depth(q) >= q->opts.max_length) ||
	                          (q->opts.max_bytes && q->bytes + incoming > q->opts.max_bytes))) {
		/* the oldest first: what was set aside is older than the ring */
		struct qitem it = q->nparked ? unpark_first(q) : pop_head(q);
		struct msg *m = to_dlq ? item_msg(q, &it) : (it.paged ? NULL : it.m);
		if (m) {
			queue_dead_letter(q, m, it.deliveries, it.journaled, "overflow", true);
			msg_unref(m);
		} else {
			/* paged out and nowhere to go: its id is all we need */
			queue_acked(q, it.id, it.journaled);
			q->dropped++;
			q->vhost->broker->stats.dropped++;
		}
	}
}

void queue_sweep(struct dest *q, uint64_t now)
{
	/* What is set aside waits for a subscriber that may never come: it
	 * expires like the rest (in memory: parking read it back). */
	for (size_t i = 0; i < q->nparked;) {
		struct qitem *p = &q->parked[i];
		if (p->paged || !queue_expired(q, p->m, now)) {
			i++;
			continue;
		}
		{
			struct qitem it = *p;
			memmove(p, p + 1, (q->nparked - i - 1) * sizeof *p);
			q->nparked--;
			q->bytes -= it.len;
			expire(q, it.m, it.deliveries, it.journaled);
			msg_unref(it.m);
		}
	}
	/* Only the head: expiry costs nothing for messages at rest, and a
	 * queue in order of arrival expires from the head in the common case. */
	while (q->count) {
		struct qitem *head = &q->items[q->head];
		struct msg *m = item_msg(q, head);
		struct qitem it;
		if (m && !queue_expired(q, m, now))
			break;
		it = pop_head(q);
		if (m) {
			expire(q, m, it.deliveries, it.journaled);
			msg_unref(m);
		} else {
			discard(q, &it);	/* unreadable */
		}
	}
	maybe_shrink(q);
}

static void page_out_tail(struct dest *q)
{
	struct qitem *it = &q->items[(q->head + q->count - 1) & (q->cap - 1)];
	uint64_t id;
	if (!it->journaled || it->paged)
		return;
	id = it->m->id;
	it->recovered = (it->m->flags & MSG_RECOVERED) != 0;
	msg_unref(it->m);
	it->id = id;
	it->paged = 1;
	q->paged++;
	q->paged_bytes += it->len;
}

bool queue_push(struct dest *q, struct msg *m, uint32_t deliveries, bool journaled)
{
	uint64_t budget = q->vhost->broker->cfg.queue_memory_budget;
	if ((m->expires || q->opts.ttl_ms) && queue_expired(q, m, wall_ms())) {
		expire(q, m, deliveries, journaled);
		return false;
	}
	if (q->opts.max_length || q->opts.max_bytes)
		drop_head_for_room(q, m->body_len);
	if (q->count == q->cap)
		grow(q);
	q->items[(q->head + q->count) & (q->cap - 1)] = (struct qitem){
		.m = msg_ref(m), .deliveries = deliveries, .len = m->body_len, .journaled = journaled,
	};
	q->count++;
	q->bytes += m->body_len;
	/* Over the memory budget, and the journal has it: keep the id only. */
	if (journaled && budget && q->bytes - q->paged_bytes > budget)
		page_out_tail(q);
	return true;
}

void queue_push_paged(struct dest *q, uint64_t id, size_t len, bool recovered)
{
	if (q->count == q->cap)
		grow(q);
	q->items[(q->head + q->count) & (q->cap - 1)] = (struct qitem){
		.id = id, .len = (uint32_t)len, .journaled = 1, .paged = 1, .recovered = recovered,
	};
	q->count++;
	q->bytes += len;
	q->paged++;
	q->paged_bytes += len;
}

bool queue_over_budget(const struct dest *q)
{
	uint64_t budget = q->vhost->broker->cfg.queue_memory_budget;
	return budget && q->bytes - q->paged_bytes > budget;
}

/* Consumers looked at per publish while a backlog waits: a queue with
 * more of them that are all full is rare, and the look is per message. */
#define SLOWDOWN_SCAN 64

bool queue_wants_slowdown(const struct dest *q)
{
	/* A backlog behind a consumer that is reading, only slower than the
	 * producers send: the producers wait for it, as for a topic, instead
	 * of the queue growing until the memory high-watermark stops every
	 * producer. Consumers at their prefetch window, stalled or absent do
	 * not slow anyone: that backlog is the application's choice. */
	const struct sub *s;
	uint64_t now = 0;
	int n = 0;
	if (q->bytes - q->paged_bytes <= q->vhost->broker->cfg.max_output)
		return false;
	TAILQ_FOREACH(s, &q->subs, dest_link) {
		if (s->sink->full && !s->sink->stalled && sub_window_open(s)) {
			if (!now)
				now = mono_ms();
			if (now - s->sink->moved_ms <= QUEUE_MOVING_MS)
				return true;
		}
		if (++n == SLOWDOWN_SCAN)
			break;
	}
	return false;
}

void queue_push_front(struct dest *q, struct msg *m, uint32_t deliveries, bool journaled)
{
	if (q->count == q->cap)
		grow(q);
	q->head = (q->head - 1) & (q->cap - 1);
	q->items[q->head] = (struct qitem){
		.m = msg_ref(m), .deliveries = deliveries, .len = m->body_len, .journaled = journaled,
	};
	q->count++;
	q->bytes += m->body_len;
}

/* Highest priority with room, round-robin among that priority. Under a
 * single active consumer only the first subscriber (highest priority,
 * earliest) receives. */
static struct sub *pick(struct dest *q)
{
	struct sub *s, *t;
	int prio;

	if (q->opts.single_active_consumer) {
		s = TAILQ_FIRST(&q->subs);
		return s && sub_has_room(s) ? s : NULL;
	}
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

/* Some subscriber may receive now (under a single active consumer: the
 * active one). */
static bool any_room(const struct dest *q)
{
	const struct sub *s;
	if (q->opts.single_active_consumer)
		return (s = TAILQ_FIRST(&q->subs)) && sub_has_room(s);
	TAILQ_FOREACH(s, &q->subs, dest_link)
		if (sub_has_room(s))
			return true;
	return false;
}

/* Who takes m: its group's owner, or the highest-priority subscriber with
 * room whose selector matches (round-robin among equals). NULL when nobody
 * can now; *wanted says whether some subscriber would, given room. */
static struct sub *choose(struct dest *q, struct msg *m, uint32_t deliveries, const char *group, bool *wanted)
{
	struct sub *s, *first = NULL, *after_rr = NULL;
	bool past_rr = false;
	int prio = 0;

	*wanted = false;
	if (group && (s = groups_owner(q, group))) {
		if (sub_accepts(s, m, deliveries)) {
			*wanted = true;
			return sub_has_room(s) ? s : NULL;
		}
		/* the owner's selector turned it down: anyone else may take it */
	}
	TAILQ_FOREACH(s, &q->subs, dest_link) {
		if (q->opts.single_active_consumer && s != TAILQ_FIRST(&q->subs))
			break;
		if (first && s->opts.priority != prio)
			break;	/* lower priority: only when the higher ones cannot */
		if (s == q->rr)
			past_rr = true;
		if (!sub_accepts(s, m, deliveries))
			continue;
		*wanted = true;
		if (!sub_has_room(s))
			continue;
		if (!first) {
			first = s;
			prio = s->opts.priority;
		}
		if (past_rr && s != q->rr && !after_rr)
			after_rr = s;
	}
	if (!first) {
		/* nobody at the top priority could: the next ones may */
		TAILQ_FOREACH(s, &q->subs, dest_link) {
			if (q->opts.single_active_consumer && s != TAILQ_FIRST(&q->subs))
				break;
			if (sub_has_room(s) && sub_accepts(s, m, deliveries))
				return s;
		}
		return NULL;
	}
	return after_rr ? after_rr : first;
}

/* Sets slot i aside: nobody's selector matches its message. */
static void park(struct dest *q, size_t i)
{
	struct qitem it = q->items[(q->head + i) & (q->cap - 1)];
	size_t len = it.len;
	take_at(q, i);
	q->bytes += len;	/* still held, only elsewhere */
	if (it.paged) {
		q->paged++;
		q->paged_bytes += len;
	}
	if (q->nparked == q->parked_cap) {
		q->parked_cap = q->parked_cap ? q->parked_cap * 2 : 16;
		q->parked = xrealloc(q->parked, q->parked_cap * sizeof *q->parked);
	}
	q->parked[q->nparked++] = it;
}

void queue_unpark(struct dest *q)
{
	/* Newest first, each to the head: they end in their order, ahead of
	 * everything that came after them. */
	while (q->nparked) {
		struct qitem it = q->parked[--q->nparked];
		if (q->count == q->cap)
			grow(q);
		q->head = (q->head - 1) & (q->cap - 1);
		q->items[q->head] = it;
		q->count++;
	}
}

/* A choosy queue's dispatch: looks past the head for what it can deliver. */
static void dispatch_choosy(struct dest *q)
{
	uint64_t now = 0;
	size_t i = 0, looked = 0;
	while (i < q->count && looked < DISPATCH_WINDOW && any_room(q)) {
		struct qitem *slot = &q->items[(q->head + i) & (q->cap - 1)];
		struct qitem it;
		struct msg *m;
		struct sub *s;
		char gbuf[256];
		const char *group;
		bool wanted;
		if (slot->taken) {
			i++;
			continue;
		}
		looked++;
		if (!(m = item_msg(q, slot))) {
			it = take_at(q, i);
			discard(q, &it);
			q->dropped++;
			continue;
		}
		if (m->expires || q->opts.ttl_ms) {
			if (!now)
				now = wall_ms();
			if (queue_expired(q, m, now)) {
				it = take_at(q, i);
				expire(q, m, it.deliveries, it.journaled);
				msg_unref(m);
				continue;
			}
		}
		group = msg_group(m, gbuf, sizeof gbuf);
		s = choose(q, m, slot->deliveries + 1, group, &wanted);
		if (!s) {
			if (!wanted && q->nsel)
				park(q, i);	/* for nobody here: set aside, blocking nothing */
			else
				i++;		/* for someone busy: the next may be for another */
			continue;
		}
		if (group)
			groups_assign(q, group, s);
		it = take_at(q, i);
		q->rr = s;
		q->messages_out++;
		sub_deliver(s, m, it.deliveries + 1, it.journaled);
		msg_unref(m);	/* the queue's reference; the delivery holds its own */
	}
}

void queue_dispatch(struct dest *q)
{
	uint64_t now = 0;

	if (q->paused || q->dispatching || !q->count || !q->nsubs)
		return;
	q->dispatching = true;
	if (q->nsel || q->groups_owned.count) {
		dispatch_choosy(q);
		q->dispatching = false;
		maybe_shrink(q);
		return;
	}
	while (q->count) {
		struct sub *s = pick(q);
		struct qitem it;
		struct msg *m;
		if (!s)
			break;
		m = item_msg(q, &q->items[q->head]);
		if (m && (m->flags & MSG_GROUPED)) {
			/* a message group from here on: its owner decides */
			dispatch_choosy(q);
			break;
		}
		it = pop_head(q);
		if (!m) {
			discard(q, &it);
			q->dropped++;
			continue;
		}
		if (m->expires || q->opts.ttl_ms) {
			if (!now)
				now = wall_ms();
			if (queue_expired(q, m, now)) {
				expire(q, m, it.deliveries, it.journaled);
				msg_unref(m);
				continue;
			}
		}
		q->rr = s;
		q->messages_out++;
		sub_deliver(s, m, it.deliveries + 1, it.journaled);
		msg_unref(m);	/* the queue's reference; the delivery holds its own */
	}
	q->dispatching = false;
	maybe_shrink(q);
}

uint64_t queue_purge(struct dest *q)
{
	uint64_t n = queue_depth(q);
	while (q->nparked) {
		struct qitem it = unpark_first(q);
		discard(q, &it);
	}
	while (q->count) {
		struct qitem it = pop_head(q);
		discard(q, &it);
	}
	q->bytes = 0;
	maybe_shrink(q);
	return n;
}

uint64_t queue_oldest_ms(const struct dest *q)
{
	/* The ring holds messages in arrival order and never has a hole at
	 * its head; parked ones are older than anything behind them: the
	 * oldest of the two heads. */
	uint64_t oldest = 0;
	if (q->count && !q->items[q->head].paged)
		oldest = q->items[q->head].m->timestamp;
	if (q->nparked && !q->parked[0].paged && (!oldest || q->parked[0].m->timestamp < oldest))
		oldest = q->parked[0].m->timestamp;
	return oldest;
}

struct msg *queue_take_head(struct dest *q, uint32_t *deliveries, bool *journaled)
{
	while (q->nparked) {
		struct qitem it = unpark_first(q);
		struct msg *m = it.paged ? store_load(q, it.id) : it.m;
		if (!m) {
			discard(q, &it);
			continue;
		}
		*deliveries = it.deliveries;
		*journaled = it.journaled;
		return m;
	}
	while (q->count) {
		struct msg *m = item_msg(q, &q->items[q->head]);
		struct qitem it = pop_head(q);
		if (!m) {
			discard(q, &it);
			continue;
		}
		*deliveries = it.deliveries;
		*journaled = it.journaled;
		return m;
	}
	return NULL;
}

void queue_return(struct dest *q, struct msg *m, uint32_t deliveries, bool journaled)
{
	if (q->opts.max_deliveries && deliveries >= q->opts.max_deliveries) {
		char reason[64];
		snprintf(reason, sizeof reason, "delivered %u times (max-deliveries %u)", deliveries,
		         q->opts.max_deliveries);
		queue_dead_letter(q, m, deliveries, journaled, reason, false);
		return;
	}
	q->redelivered++;
	q->vhost->broker->stats.redelivered++;
	queue_push_front(q, m, deliveries, journaled);
}

void queue_acked(struct dest *q, uint64_t id, bool journaled)
{
	if (journaled)
		store_remove(q, id);
}
