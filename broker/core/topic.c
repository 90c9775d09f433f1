/* topic.c: transient fan-out to whoever subscribes right now.
 *
 * A topic keeps nothing, so a subscriber that cannot take a message now
 * would miss it. One whose output is over max_output but still moving
 * takes it anyway, and the publish tells its producer to slow down
 * (b->pressed: the producer stops reading until some subscriber has room,
 * sink_wait_for_room). Only a subscriber that has taken nothing for
 * slow_consumer_timeout (stalled) misses messages, or is disconnected
 * when slow_consumer_disconnect says so: one stalled subscriber holds the
 * others up for that long at most. A subscriber's own window (prefetch,
 * max unacknowledged) is its choice: past it, it misses messages. */
#include "core/dest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/msg.h"
#include "core/sink.h"
#include "core/store.h"
#include "core/sub.h"
#include "common/util.h"

/* A subscriber the topic cannot hand m to normally: the rules above. */
static void deliver_past_full(struct dest *t, struct sub *s, struct msg *m)
{
	struct broker *b = t->vhost->broker;
	struct sink *k = s->sink;
	if (k->full && !k->stalled && sub_window_open(s)) {
		b->pressed = true;
		t->messages_out++;
		sub_deliver(s, m, 1, false);
		return;
	}
	b->stats.dropped_slow++;
	t->dropped++;
	if (k->stalled && b->cfg.slow_consumer_disconnect) {
		char why[200];
		snprintf(why, sizeof why, "slow consumer: took nothing from %s for %d ms (slow_consumer_timeout); "
		         "messages would be lost", t->name, b->cfg.slow_consumer_timeout_ms);
		sink_close_later(k, why);
	}
}

/* -r: each group of sinks sharing a client-id gets the message
 * once, at the member after the one served last that has room. */
static void publish_to_groups(struct dest *t, struct msg *m)
{
	size_t it = 0;
	void *v;
	while (strmap_next(&t->groups, &it, NULL, &v)) {
		struct rr_group *g = v;
		struct sub *start = g->last ? TAILQ_NEXT(g->last, group_link) : NULL, *s = start, *pick = NULL;
		if (!s)
			s = TAILQ_FIRST(&g->members);
		for (int i = 0; i < g->nmembers; i++) {
			if (sub_has_room(s)) {
				pick = s;
				break;
			}
			s = TAILQ_NEXT(s, group_link);
			if (!s)
				s = TAILQ_FIRST(&g->members);
		}
		if (!pick) {
			/* Nobody has room: the member whose turn it is takes it
			 * as a full subscriber would. */
			struct sub *turn = start ? start : TAILQ_FIRST(&g->members);
			g->last = turn;
			deliver_past_full(t, turn, m);
			continue;
		}
		g->last = pick;
		t->messages_out++;
		sub_deliver(pick, m, 1, false);
	}
}

/* Durable subscriptions are queues the topic feeds: they hold messages
 * while their subscriber is away. */
static bool feed_durables(struct dest *t, struct msg *m)
{
	bool fed = false;
	for (size_t i = 0; i < t->nchildren; i++) {
		char err[256];
		uint64_t seq = 0;
		if (dest_send(t->children[i], m, &seq, err, sizeof err) == SEND_OK)
			fed = true;
	}
	return fed;
}

#define DURABLE_PREFIX "/durable/"

struct dest *durable_find(struct vhost *vh, const char *key)
{
	char name[1200];
	snprintf(name, sizeof name, DURABLE_PREFIX "%s", key);
	return dest_find(vh, name);
}

struct dest *durable_get(struct dest *topic, const char *key, char *err, size_t errlen)
{
	struct vhost *vh = topic->vhost;
	struct dest *q = durable_find(vh, key);
	char name[1200];

	if (q && q->type != DEST_QUEUE) {
		/* Clients cannot name /durable/ destinations; a configuration
		 * rule could still have made one a topic, which must never feed
		 * itself. */
		snprintf(err, errlen, "%s exists as a %s, not as a durable subscription's queue", q->name,
		         dest_type_name(q->type));
		return NULL;
	}
	if (q && q->durable_topic && strcmp(q->durable_topic, topic->name) == 0) {
		for (size_t i = 0; i < topic->nchildren; i++)
			if (topic->children[i] == q)
				return q;
	} else if (q) {
		/* The name now follows another topic: what it held for the old
		 * one is not wanted any more. */
		pubsub_forget_child(q);
		queue_purge(q);
	} else {
		struct queue_opts o;
		snprintf(name, sizeof name, DURABLE_PREFIX "%s", key);
		queue_opts_copy(&o, &vh->broker->cfg.queue_defaults);
		o.persistent = true;	/* a durable subscription survives a restart */
		q = dest_create(vh, name, DEST_QUEUE, &o, err, errlen);
		queue_opts_fini(&o);
		if (!q)
			return NULL;
	}
	free(q->durable_topic);
	q->durable_topic = xstrdup(topic->name);
	store_dest_changed(q);
	topic->children = xrealloc(topic->children, (topic->nchildren + 1) * sizeof *topic->children);
	topic->children[topic->nchildren++] = q;
	return q;
}

enum send_status topic_publish(struct dest *t, struct msg *m)
{
	struct broker *b = t->vhost->broker;
	struct sub *s;
	if (t->nchildren && feed_durables(t, m) && !t->nsubs)
		return SEND_OK;
	if (!t->nsubs) {
		t->dropped++;
		b->stats.dropped++;
		return SEND_DROPPED;
	}
	if (m->expires && m->expires <= wall_ms()) {
		t->expired++;
		b->stats.expired++;
		return SEND_DROPPED;
	}
	TAILQ_FOREACH(s, &t->subs, dest_link) {
		if (s->group)
			continue;	/* served below, one member per group */
		if (s->opts.selector && !sub_accepts(s, m, 1))
			continue;	/* not for this one: not a miss either */
		if (!sub_has_room(s)) {
			deliver_past_full(t, s, m);
			continue;
		}
		t->messages_out++;
		sub_deliver(s, m, 1, false);
	}
	if (t->groups.count)
		publish_to_groups(t, m);
	return SEND_OK;
}
