/* topic.c: transient fan-out to whoever subscribes right now. */
#include "dest.h"

#include "conn.h"
#include "msg.h"
#include "sub.h"

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
	return SEND_OK;
}
