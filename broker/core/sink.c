/* sink.c: attaching sinks to the broker, and their delivery index. */
#include "core/sink.h"

#include <stdlib.h>
#include <string.h>

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
}

void sink_fini(struct sink *k)
{
	strmap_fini(&k->subs);
	u64map_fini(&k->unacked);
	strmap_fini(&k->temp_queues);
	principal_fini(&k->who);
	free(k->client_id);
	k->client_id = NULL;
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
