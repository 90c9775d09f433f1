/* dest.c: the destination registry of a virtual host. */
#include "core/dest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core/msg.h"
#include "core/sink.h"
#include "core/store.h"
#include "core/sub.h"
#include "common/util.h"

#define DEST_NAME_MAX 1024

bool dest_name_ok(const char *name, char *err, size_t errlen)
{
	size_t len = strlen(name);
	if (len == 0) {
		snprintf(err, errlen, "empty destination name");
		return false;
	}
	if (len > DEST_NAME_MAX) {
		snprintf(err, errlen, "destination name too long: %zu bytes (limit %d)", len, DEST_NAME_MAX);
		return false;
	}
	for (size_t i = 0; i < len; i++) {
		if ((unsigned char)name[i] < 0x20 || name[i] == 0x7f) {
			snprintf(err, errlen, "destination name contains a control character at byte %zu", i);
			return false;
		}
	}
	return true;
}

bool dest_name_open(const char *name, char *err, size_t errlen)
{
	/* "/queue/" alone names a kind, not a destination. (Checked on every
	 * SEND: only a name that ends in '/' is compared.) */
	static const char *const prefixes[] = { "/queue/", "/topic/", "/pubsub/", "/command/",
	                                        "/temp-queue/", "/durable/" };
	size_t len = strlen(name);
	for (size_t i = 0; len && name[len - 1] == '/' && i < ARRAY_LEN(prefixes); i++) {
		if (strcmp(name, prefixes[i]) == 0) {
			snprintf(err, errlen, "destination name '%s' has nothing after its prefix", name);
			return false;
		}
	}
	if (name[0] == '/' && name[1] == 'd' && strncmp(name, "/durable/", 9) == 0) {
		snprintf(err, errlen, "%s: names under /durable/ belong to durable topic subscriptions; "
		         "subscribe to the topic with a durable name instead", name);
		return false;
	}
	return true;
}

struct dest *dest_find(struct vhost *vh, const char *name)
{
	return strmap_get(&vh->dests, name);
}

static struct dest *dest_alloc(struct vhost *vh, const char *name, enum dest_type type,
                               const struct queue_opts *opts)
{
	struct dest *d = xcalloc(1, sizeof *d);
	d->type = type;
	d->name = xstrdup(name);
	d->vhost = vh;
	TAILQ_INIT(&d->subs);
	queue_opts_copy(&d->opts, opts ? opts : &vh->broker->cfg.queue_defaults);
	strmap_put(&vh->dests, d->name, d);
	log_info("vhost %s: %s %s created", vh->name, dest_type_name(type), name);
	store_dest_changed(d);
	{
		const char *fields[] = { "name", d->name, "type", dest_type_name(type), "vhost", vh->name, NULL };
		broker_event(vh->broker, "destination-created", fields);
	}
	return d;
}

/* A pubsub created by a rule gets the rule's children, created as needed. */
static void attach_rule_children(struct dest *p, const struct type_rule *rule)
{
	char err[256];
	for (size_t i = 0; rule && i < rule->nchildren; i++) {
		struct dest *child = dest_get(p->vhost, rule->children[i], err, sizeof err);
		if (!child || pubsub_attach(p, child, err, sizeof err) < 0)
			log_warn("vhost %s: pubsub %s: cannot attach %s: %s", p->vhost->name, p->name,
			         rule->children[i], err);
	}
}

struct dest *dest_get(struct vhost *vh, const char *name, char *err, size_t errlen)
{
	struct dest *d = strmap_get(&vh->dests, name);
	const struct type_rule *rule;
	enum dest_type type;
	if (d)
		return d;
	if (!dest_name_ok(name, err, errlen))
		return NULL;
	type = config_dest_type(&vh->broker->cfg, name, &rule);
	if (type == DEST_COMMAND) {
		snprintf(err, errlen, "%s is a command destination", name);
		return NULL;
	}
	d = dest_alloc(vh, name, type, NULL);
	if (type == DEST_PUBSUB)
		attach_rule_children(d, rule);
	return d;
}

struct dest *dest_for_send(struct vhost *vh, const char *name, bool *absent_topic, char *err, size_t errlen)
{
	struct dest *d = strmap_get(&vh->dests, name);
	*absent_topic = false;
	if (d)
		return d;
	/* A topic exists only while someone subscribes: sending to one that
	 * does not exist drops the message instead of leaving a destination
	 * behind for every name ever used. */
	if (dest_name_ok(name, err, errlen) &&
	    (config_dest_type(&vh->broker->cfg, name, NULL) == DEST_TOPIC ||
	     strncmp(name, "/temp-queue/", 12) == 0)) {
		/* Likewise a temporary queue whose owner has gone. */
		*absent_topic = true;
		return NULL;
	}
	return dest_get(vh, name, err, errlen);
}

struct dest *dest_create_builtin(struct vhost *vh, const char *name, enum dest_type type)
{
	struct dest *d = dest_alloc(vh, name, type, NULL);
	d->configured = true;
	return d;
}

struct dest *dest_create(struct vhost *vh, const char *name, enum dest_type type,
                         const struct queue_opts *opts, char *err, size_t errlen)
{
	struct dest *d = strmap_get(&vh->dests, name);
	if (!dest_name_ok(name, err, errlen))
		return NULL;
	if (type == DEST_COMMAND) {
		snprintf(err, errlen, "command destinations are built in and cannot be created");
		return NULL;
	}
	if (d) {
		if (d->type != type) {
			snprintf(err, errlen, "%s already exists as a %s", name, dest_type_name(d->type));
			return NULL;
		}
		if (opts) {
			queue_opts_fini(&d->opts);
			queue_opts_copy(&d->opts, opts);
		}
		d->configured = true;
		store_dest_changed(d);
		return d;
	}
	d = dest_alloc(vh, name, type, opts);
	d->configured = true;
	store_dest_changed(d);
	return d;
}

static void dest_free(struct dest *d)
{
	const char *fields[] = { "name", d->name, "type", dest_type_name(d->type), "vhost", d->vhost->name, NULL };
	broker_event(d->vhost->broker, "destination-deleted", fields);
	log_info("vhost %s: %s %s deleted", d->vhost->name, dest_type_name(d->type), d->name);
	strmap_del(&d->vhost->dests, d->name);
	if (d->owner)
		strmap_del(&d->owner->temp_queues, d->name);
	if (d->type == DEST_QUEUE) {
		queue_purge(d);
		free(d->items);
		free(d->parked);
		groups_free(d);
	}
	store_dest_deleted(d);
	pubsub_forget_child(d);
	free(d->children);
	strmap_fini(&d->groups);
	queue_opts_fini(&d->opts);
	free(d->durable_topic);
	free(d->name);
	free(d);
}

int dest_delete(struct dest *d, bool force, char *err, size_t errlen)
{
	if (d->nsubs && !force) {
		snprintf(err, errlen, "%s %s has %d subscriber%s; disconnect them first or add 'force'",
		         dest_type_name(d->type), d->name, d->nsubs, d->nsubs == 1 ? "" : "s");
		return -1;
	}
	/* Paused, so that deliveries coming back from the subscribers we drop
	 * stay in the queue and die with it instead of being handed around. */
	d->paused = true;
	/* Pinned: the last sub_free() would otherwise release an idle
	 * unconfigured topic under our feet. And no longer its owner's: the
	 * owner closing below would delete a temporary queue again. */
	d->configured = true;
	if (d->owner) {
		strmap_del(&d->owner->temp_queues, d->name);
		d->owner = NULL;
	}
	while (!TAILQ_EMPTY(&d->subs)) {
		struct sub *s = TAILQ_FIRST(&d->subs);
		struct sink *k = s->sink;
		char why[1200];
		sub_free(s);
		snprintf(why, sizeof why, "destination %s was deleted by an administrator", d->name);
		k->ops->close(k, why);
	}
	dest_free(d);
	return 0;
}

void dest_release_if_idle(struct dest *d)
{
	if (d->configured || d->nsubs || d->nchildren)
		return;
	if (d->type == DEST_TOPIC)
		dest_free(d);
}

void dest_free_all(struct vhost *vh)
{
	/* Collect first: freeing edits the map. */
	size_t n = vh->dests.count, i = 0, it = 0;
	struct dest **all = xcalloc(n ? n : 1, sizeof *all);
	void *v;
	while (strmap_next(&vh->dests, &it, NULL, &v))
		all[i++] = v;
	for (i = 0; i < n; i++) {
		all[i]->nchildren = 0;	/* children are freed on their own */
		all[i]->configured = true;
	}
	for (i = 0; i < n; i++) {
		struct dest *d = all[i];
		strmap_del(&vh->dests, d->name);
		if (d->type == DEST_QUEUE) {
			queue_purge(d);
			free(d->items);
			free(d->parked);
			groups_free(d);
		}
		free(d->children);
		strmap_fini(&d->groups);
		queue_opts_fini(&d->opts);
		free(d->durable_topic);
		free(d->name);
		free(d);
	}
	free(all);
	strmap_fini(&vh->dests);
}

/* A queue with overflow=reject that has no room for m. */
static bool queue_refuses(const struct dest *d, const struct msg *m, char *err, size_t errlen)
{
	if (d->opts.overflow != OVERFLOW_REJECT)
		return false;
	if (d->opts.max_length && queue_depth(d) >= d->opts.max_length) {
		snprintf(err, errlen, "queue %s is full: %zu message%s (max-length %llu)", d->name, queue_depth(d),
		         queue_depth(d) == 1 ? "" : "s", (unsigned long long)d->opts.max_length);
		return true;
	}
	if (d->opts.max_bytes && d->bytes + m->body_len > d->opts.max_bytes) {
		snprintf(err, errlen, "queue %s is full: %llu bytes (max-bytes %llu)", d->name,
		         (unsigned long long)d->bytes, (unsigned long long)d->opts.max_bytes);
		return true;
	}
	return false;
}

bool dest_would_refuse(const struct dest *d, const struct msg *m, char *err, size_t errlen)
{
	switch (d->type) {
	case DEST_QUEUE:
		return queue_refuses(d, m, err, errlen);
	case DEST_PUBSUB:
		/* refused only when every child refuses its copy */
		for (size_t i = 0; i < d->nchildren; i++)
			if (!dest_would_refuse(d->children[i], m, err, errlen))
				return false;
		return d->nchildren > 0;
	case DEST_TOPIC:
		return false;
	case DEST_COMMAND:
		break;
	}
	snprintf(err, errlen, "%s is a command destination", d->name);
	return true;
}

enum send_status dest_send(struct dest *d, struct msg *m, uint64_t *seq, char *err, size_t errlen)
{
	switch (d->type) {
	case DEST_QUEUE:
		if (queue_refuses(d, m, err, errlen))
			return SEND_REJECTED;
		{
			bool journaled = store_wants(d, m);
			if (journaled) {
				uint64_t s = store_enqueue(d, m, err, errlen);
				if (!s)
					return SEND_REJECTED;
				if (s > *seq)
					*seq = s;
			}
			d->messages_in++;
			if (!queue_push(d, m, 0, journaled) && journaled)
				store_remove(d, m->id);	/* expired on arrival */
		}
		queue_dispatch(d);
		if (queue_wants_slowdown(d))
			d->vhost->broker->pressed = true;
		return SEND_OK;
	case DEST_TOPIC:
		d->messages_in++;
		return topic_publish(d, m);
	case DEST_PUBSUB:
		d->messages_in++;
		return pubsub_publish(d, m, seq, err, errlen);
	case DEST_COMMAND:
		break;
	}
	snprintf(err, errlen, "%s is a command destination", d->name);
	return SEND_REJECTED;
}
