/* groups.c: message groups on a queue (ActiveMQ's JMSXGroupID).
 *
 * A message that names a group goes to the consumer that owns the group,
 * so that related messages stay in order on one consumer while the rest
 * spread. A group is given to a consumer with its first message and moves
 * only when that consumer leaves: its unacknowledged messages then go back
 * to the head of the queue in order (sub_free), and the next owner gets
 * them first. Ownership is not journaled: after a restart groups are
 * given out anew, and the order within each group is the queue's. */
#include "core/dest.h"

#include <stdlib.h>
#include <string.h>

#include "core/sub.h"
#include "common/util.h"

struct sub *groups_owner(struct dest *q, const char *group)
{
	struct qgroup *g = strmap_get(&q->groups_owned, group);
	return g ? g->owner : NULL;
}

void groups_assign(struct dest *q, const char *group, struct sub *s)
{
	struct qgroup *g = strmap_get(&q->groups_owned, group);
	if (!g) {
		g = xcalloc(1, sizeof *g + strlen(group) + 1);
		strcpy(g->name, group);
		strmap_put(&q->groups_owned, g->name, g);
		g->owner = s;
	}
	/* another consumer takes a message its owner's selector turned down:
	 * the group stays where it is */
	if (g->owner == s)
		g->messages++;
}

void groups_forget_sub(struct dest *q, struct sub *s)
{
	size_t it = 0;
	void *v;
	/* The map changes as groups go: collect first. */
	size_t n = 0;
	struct qgroup **gone = NULL;
	while (strmap_next(&q->groups_owned, &it, NULL, &v)) {
		struct qgroup *g = v;
		if (g->owner != s)
			continue;
		gone = xrealloc(gone, (n + 1) * sizeof *gone);
		gone[n++] = g;
	}
	for (size_t i = 0; i < n; i++) {
		strmap_del(&q->groups_owned, gone[i]->name);
		free(gone[i]);
	}
	free(gone);
}

void groups_free(struct dest *q)
{
	size_t it = 0;
	void *v;
	while (strmap_next(&q->groups_owned, &it, NULL, &v))
		free(v);
	strmap_fini(&q->groups_owned);
}
