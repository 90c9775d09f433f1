/* sink.c: attaching sinks to the broker, and their delivery index. */
#include "core/sink.h"

#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "core/broker.h"
#include "core/sub.h"
#include "core/tempq.h"
#include "core/msg.h"
#include "common/util.h"

void sink_attach(struct sink *k, struct broker *b, const struct sink_ops *ops, const char *transport)
{
	k->ops = ops;
	k->b = b;
	k->id = ++b->next_sink_id;
	k->transport = transport;
	k->full = true;
	k->attached = true;
	k->connected_ms = wall_ms();
	TAILQ_INSERT_TAIL(&b->sinks, k, link);
	u64map_put(&b->sinks_by_id, k->id, k);
	b->nsinks++;
}

void sink_detach(struct sink *k)
{
	struct broker *b = k->b;
	size_t it = 0, n, i;
	void *v;
	struct sub **subs;

	if (!k->attached)
		return;
	k->attached = false;
	k->full = true;
	if (k->waiting) {
		TAILQ_REMOVE(&b->waiting, k, wait_link);
		k->waiting = false;
	}
	TAILQ_REMOVE(&b->sinks, k, link);
	u64map_del(&b->sinks_by_id, k->id);
	b->nsinks--;
	/* sub_free edits k->subs, so collect first. */
	n = k->subs.count;
	subs = xcalloc(n ? n : 1, sizeof *subs);
	for (i = 0; strmap_next(&k->subs, &it, NULL, &v);)
		subs[i++] = v;
	for (i = 0; i < n; i++)
		sub_free(subs[i]);
	free(subs);
	tempq_release_all(k);
	/* Whoever waited for this one to read has nothing to wait for. */
	sink_room_freed(b);
}

void sink_fini(struct sink *k)
{
	strmap_fini(&k->subs);
	u64map_fini(&k->unacked);
	strmap_fini(&k->temp_queues);
	principal_fini(&k->who);
	free(k->client_id);
	k->client_id = NULL;
	free(k->doomed);
	k->doomed = NULL;
}

struct sink *sink_find(struct broker *b, uint64_t id)
{
	return u64map_get(&b->sinks_by_id, id);
}

void sink_track_delivery(struct sink *k, struct delivery *d)
{
	struct delivery *head = u64map_get(&k->unacked, d->m->id);
	if (!head) {
		u64map_put(&k->unacked, d->m->id, d);
		return;
	}
	/* The same message on two subscriptions of one sink (two
	 * subscriptions to one topic): chain them, oldest first. */
	while (head->same_id)
		head = head->same_id;
	head->same_id = d;
}

void sink_untrack_delivery(struct sink *k, struct delivery *d)
{
	struct delivery *head = u64map_get(&k->unacked, d->m->id), *p;
	if (head == d) {
		if (d->same_id)
			u64map_put(&k->unacked, d->m->id, d->same_id);
		else
			u64map_del(&k->unacked, d->m->id);
		return;
	}
	for (p = head; p && p->same_id != d; p = p->same_id)
		;
	if (p)
		p->same_id = d->same_id;
}

struct delivery *sink_find_delivery(struct sink *k, const char *id, const char *sub_id)
{
	uint64_t mid;
	struct delivery *d;
	if (!parse_u64(id, 0, UINT64_MAX, &mid))
		return NULL;
	for (d = u64map_get(&k->unacked, mid); d; d = d->same_id)
		if (!sub_id || strcmp(d->sub->id, sub_id) == 0)
			return d;
	return NULL;
}

uint64_t sink_unacked(const struct sink *k)
{
	size_t it = 0;
	void *v;
	uint64_t n = 0;
	while (strmap_next(&k->subs, &it, NULL, &v))
		n += ((const struct sub *)v)->unacked;
	return n;
}

void sink_wait_for_room(struct sink *k)
{
	if (k->waiting || !k->attached)
		return;
	k->waiting = true;
	TAILQ_INSERT_TAIL(&k->b->waiting, k, wait_link);
}

static void resume_waiting(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;
	struct sink *k;
	(void)fd;
	(void)what;
	/* Each resumed producer sends at most one more frame before it finds
	 * a full subscriber again and comes back. */
	while ((k = TAILQ_FIRST(&b->waiting))) {
		TAILQ_REMOVE(&b->waiting, k, wait_link);
		k->waiting = false;
		if (k->ops->resume)
			k->ops->resume(k);
	}
}

void sink_room_freed(struct broker *b)
{
	if (TAILQ_EMPTY(&b->waiting))
		return;
	if (!b->room_ev)
		b->room_ev = event_new(b->base, -1, 0, resume_waiting, b);
	event_active(b->room_ev, EV_TIMEOUT, 0);
}

static void close_doomed(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;
	struct sink *k, *next;
	(void)fd;
	(void)what;
	for (k = TAILQ_FIRST(&b->sinks); k; k = next) {
		next = TAILQ_NEXT(k, link);
		if (k->doomed) {
			char *why = k->doomed;
			k->doomed = NULL;
			k->ops->close(k, why);
			free(why);
			next = TAILQ_FIRST(&b->sinks);	/* closing may have detached others */
		}
	}
}

void sink_close_later(struct sink *k, const char *reason)
{
	struct broker *b = k->b;
	if (k->doomed || !k->attached)
		return;
	k->doomed = xstrdup(reason);
	if (!b->doom_ev)
		b->doom_ev = event_new(b->base, -1, 0, close_doomed, b);
	event_active(b->doom_ev, EV_TIMEOUT, 0);
}
