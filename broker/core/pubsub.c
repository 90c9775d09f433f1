/* pubsub.c: replicate each message into the child queues.
 *
 * The message itself is shared: each child takes a reference, nothing is
 * copied. A child attached later sees only later messages. */
#include "core/dest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core/msg.h"
#include "core/store.h"
#include "common/util.h"

enum send_status pubsub_publish(struct dest *p, struct msg *m, uint64_t *seq, char *err, size_t errlen)
{
	struct broker *b = p->vhost->broker;
	enum send_status st = SEND_DROPPED;
	if (!p->nchildren) {
		p->dropped++;
		b->stats.dropped++;
		return SEND_DROPPED;
	}
	for (size_t i = 0; i < p->nchildren; i++) {
		char why[256];
		/* A full child refuses only its own copy; the others still get theirs. */
		enum send_status cst = dest_send(p->children[i], m, seq, why, sizeof why);
		if (cst == SEND_OK)
			st = SEND_OK;
		else if (cst == SEND_REJECTED && st != SEND_OK) {
			snprintf(err, errlen, "%s", why);
			st = SEND_REJECTED;
		}
	}
	if (st == SEND_OK)
		p->messages_out++;
	return st;
}

int pubsub_attach(struct dest *p, struct dest *child, char *err, size_t errlen)
{
	if (p->type != DEST_PUBSUB) {
		snprintf(err, errlen, "%s is a %s, not a pubsub", p->name, dest_type_name(p->type));
		return -1;
	}
	if (child == p || child->type == DEST_PUBSUB) {
		snprintf(err, errlen, "a pubsub cannot have %s %s as a child", dest_type_name(child->type), child->name);
		return -1;
	}
	if (child->vhost != p->vhost) {
		snprintf(err, errlen, "%s and %s are in different virtual hosts", p->name, child->name);
		return -1;
	}
	for (size_t i = 0; i < p->nchildren; i++) {
		if (p->children[i] == child) {
			snprintf(err, errlen, "%s is already a child of %s", child->name, p->name);
			return -1;
		}
	}
	p->children = xrealloc(p->children, (p->nchildren + 1) * sizeof *p->children);
	p->children[p->nchildren++] = child;
	/* Both are part of the topology now: kept when idle, and recorded. */
	child->configured = true;
	p->configured = true;
	store_dest_changed(child);
	store_dest_changed(p);
	log_info("vhost %s: %s attached to pubsub %s", p->vhost->name, child->name, p->name);
	{
		const char *fields[] = { "pubsub", p->name, "child", child->name, "vhost", p->vhost->name, NULL };
		broker_event(p->vhost->broker, "child-attached", fields);
	}
	return 0;
}

int pubsub_detach(struct dest *p, struct dest *child, char *err, size_t errlen)
{
	for (size_t i = 0; i < p->nchildren; i++) {
		if (p->children[i] == child) {
			memmove(&p->children[i], &p->children[i + 1], (p->nchildren - i - 1) * sizeof *p->children);
			p->nchildren--;
			store_dest_changed(p);
			log_info("vhost %s: %s detached from pubsub %s", p->vhost->name, child->name, p->name);
			{
				const char *fields[] = { "pubsub", p->name, "child", child->name, "vhost", p->vhost->name, NULL };
				broker_event(p->vhost->broker, "child-detached", fields);
			}
			return 0;
		}
	}
	snprintf(err, errlen, "%s is not a child of %s", child->name, p->name);
	return -1;
}

void pubsub_forget_child(struct dest *child)
{
	size_t it = 0;
	void *v;
	while (strmap_next(&child->vhost->dests, &it, NULL, &v)) {
		struct dest *p = v;
		for (size_t i = 0; i < p->nchildren; i++) {
			if (p->children[i] == child) {
				memmove(&p->children[i], &p->children[i + 1],
				        (p->nchildren - i - 1) * sizeof *p->children);
				p->nchildren--;
				i--;
				if (p->type == DEST_PUBSUB)
					store_dest_changed(p);
			}
		}
	}
}
