/* topic.c: transient fan-out to whoever subscribes right now. */
#include "dest.h"

#include "conn.h"
#include "msg.h"
#include "sub.h"

/* -r: each group of connections sharing a client-id gets the message
 * once, at the member after the one served last that has room. */
static void publish_to_groups(struct dest *t, struct msg *m)
{
	struct broker *b = t->vhost->broker;
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
			b->stats.dropped_slow++;
			t->dropped++;
			continue;
		}
		g->last = pick;
		t->messages_out++;
		sub_deliver(pick, m, 1);
	}
}

enum send_status topic_publish(struct dest *t, struct msg *m)
{
	struct broker *b = t->vhost->broker;
	struct sub *s;
	if (!t->nsubs) {
		t->dropped++;
		b->stats.dropped++;
		return SEND_DROPPED;
	}
	TAILQ_FOREACH(s, &t->subs, dest_link) {
		if (s->group)
			continue;	/* served below, one member per group */
		if (!sub_has_room(s)) {
			/* A topic keeps nothing: a consumer that cannot take the
			 * message now misses it, rather than growing our memory. */
			b->stats.dropped_slow++;
			t->dropped++;
			continue;
		}
		t->messages_out++;
		sub_deliver(s, m, 1);
	}
	if (t->groups.count)
		publish_to_groups(t, m);
	return SEND_OK;
}
