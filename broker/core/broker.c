/* broker.c: the core's broker-wide services: virtual hosts, message ids,
 * the clock, events, the memory high-watermark, the tick, reload. */
#include "core/broker.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "common/log.h"
#include "common/util.h"
#include "core/dedup.h"
#include "core/auth.h"
#include "core/dest.h"
#include "core/events.h"
#include "core/msg.h"
#include "core/store.h"
#include "rules/router.h"

uint64_t broker_next_msg_id(struct broker *b)
{
	return b->next_msg_id++;
}

uint64_t broker_now_ms(struct broker *b)
{
	struct timeval tv;
	if (event_base_gettimeofday_cached(b->base, &tv) < 0)
		return wall_ms();
	return (uint64_t)tv.tv_sec * 1000u + (uint64_t)tv.tv_usec / 1000u;
}

static struct vhost *vhost_new(struct broker *b, const char *name)
{
	struct vhost *vh = xcalloc(1, sizeof *vh);
	vh->name = xstrdup(name);
	vh->broker = b;
	strmap_put(&b->vhosts, vh->name, vh);
	return vh;
}

struct vhost *broker_vhost_find(struct broker *b, const char *name)
{
	return strmap_get(&b->vhosts, name);
}

struct vhost *broker_vhost_ensure(struct broker *b, const char *name)
{
	struct vhost *vh = strmap_get(&b->vhosts, name);
	return vh ? vh : vhost_new(b, name);
}

int broker_vhost_delete(struct broker *b, struct vhost *vh, const char *why, char *err, size_t errlen)
{
	struct sink *k, *next;
	size_t n = 0;
	struct dest **all;
	if (vh == b->default_vhost) {
		snprintf(err, errlen, "virtual host '%s' is the default one: it cannot be deleted", vh->name);
		return -1;
	}
	for (k = TAILQ_FIRST(&b->sinks); k; k = next) {
		next = TAILQ_NEXT(k, link);
		if (k->who.vhost == vh) {
			k->ops->close(k, why);
			/* A closed sink lingers until it is freed: it must not
			 * point at the virtual host freed below. */
			k->who.vhost = b->default_vhost;
		}
	}
	/* Durable subscriptions before their topics, which refuse to go
	 * while they have them. */
	{
		size_t it = 0;
		void *v;
		all = xcalloc(vh->dests.count + 1, sizeof *all);
		while (strmap_next(&vh->dests, &it, NULL, &v))
			all[n++] = v;
	}
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < n; i++) {
			struct dest *d = all[i];
			if (!d || (pass == 0) != (d->durable_topic != NULL))
				continue;
			all[i] = NULL;
			if (dest_find(vh, d->name) != d)
				continue;	/* went with another one */
			if (dest_delete(d, true, err, errlen) < 0) {
				free(all);
				return -1;
			}
		}
	}
	free(all);
	dest_free_all(vh);
	strmap_del(&b->vhosts, vh->name);
	strmap_fini(&vh->dests);
	free(vh->name);
	free(vh);
	return 0;
}

void broker_event(struct broker *b, const char *name, const char *const *fields)
{
	events_publish(b, name, fields);
}

static int by_vhost_and_name(const void *a, const void *b)
{
	const struct dest *x = *(const struct dest *const *)a, *y = *(const struct dest *const *)b;
	int c = strcmp(x->vhost->name, y->vhost->name);
	return c ? c : strcmp(x->name, y->name);
}

struct dest **broker_dests(struct broker *b, int type, size_t *n)
{
	struct dest **all = NULL;
	size_t cap = 0, vit = 0;
	void *vv;
	*n = 0;
	while (strmap_next(&b->vhosts, &vit, NULL, &vv)) {
		struct vhost *vh = vv;
		size_t it = 0;
		void *v;
		while (strmap_next(&vh->dests, &it, NULL, &v)) {
			struct dest *d = v;
			if (type >= 0 ? d->type != (enum dest_type)type : d->type == DEST_COMMAND)
				continue;
			if (*n == cap) {
				cap = cap ? cap * 2 : 64;
				all = xrealloc(all, cap * sizeof *all);
			}
			all[(*n)++] = d;
		}
	}
	if (*n)
		qsort(all, *n, sizeof *all, by_vhost_and_name);
	return all;
}

static void mem_check_cb(evutil_socket_t fd, short what, void *arg)
{
	struct broker *b = arg;
	struct sink *k, *next;
	uint64_t live = msg_live_bytes();
	(void)fd;
	(void)what;
	if (live > b->mem_high / 10 * 9) {
		struct timeval again = { 0, 20000 };
		evtimer_add(b->mem_ev, &again);
		return;
	}
	b->mem_blocked = false;
	log_warn("message memory back to %" PRIu64 " bytes (high-watermark %" PRIu64 "): reading from producers again",
	         live, b->mem_high);
	broker_event(b, "memory-ok", NULL);
	for (k = TAILQ_FIRST(&b->sinks); k; k = next) {
		next = TAILQ_NEXT(k, link);
		if (k->ops->resume)
			k->ops->resume(k);
	}
}

bool broker_memory_blocked(struct broker *b)
{
	uint64_t live;
	if (b->mem_blocked)
		return true;
	live = msg_live_bytes();
	if (live <= b->mem_high)
		return false;
	b->mem_blocked = true;
	log_warn("message memory at %" PRIu64 " bytes, over the high-watermark %" PRIu64
	         ": producers are slowed while consumers drain", live, b->mem_high);
	broker_event(b, "memory-high", NULL);
	{
		struct timeval soon = { 0, 20000 };
		evtimer_add(b->mem_ev, &soon);
	}
	return true;
}

static uint64_t default_watermark(void)
{
	long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
	if (pages <= 0 || size <= 0)
		return 1ULL << 30;
	return (uint64_t)pages * (uint64_t)size / 10 * 4;	/* 40%, as RabbitMQ does */
}

static void sweep_queues(struct broker *b)
{
	uint64_t now = wall_ms();
	size_t n;
	/* A snapshot: expiry may dead-letter into a queue it creates. */
	struct dest **queues = broker_dests(b, DEST_QUEUE, &n);
	for (size_t i = 0; i < n; i++)
		if (queue_depth(queues[i]))
			queue_sweep(queues[i], now);
	free(queues);
}

static void update_rates(struct broker *b, double secs)
{
	size_t n;
	struct dest **all = broker_dests(b, -1, &n);
	for (size_t i = 0; i < n; i++) {
		struct dest *d = all[i];
		d->rate_in = (double)(d->messages_in - d->rate_in_prev) / secs;
		d->rate_out = (double)(d->messages_out - d->rate_out_prev) / secs;
		d->rate_in_prev = d->messages_in;
		d->rate_out_prev = d->messages_out;
	}
	free(all);
	b->rate_in = (double)(b->stats.messages_in - b->rate_in_prev) / secs;
	b->rate_out = (double)(b->stats.messages_out - b->rate_out_prev) / secs;
	b->rate_in_prev = b->stats.messages_in;
	b->rate_out_prev = b->stats.messages_out;
}

void broker_tick(struct broker *b, double secs)
{
	if (secs > 0)
		update_rates(b, secs);
	sweep_queues(b);
	dedup_sweep(b);
	auth_tick(b);
}

void broker_shutdown(struct broker *b, const char *reason)
{
	if (b->shutdown_hook)
		b->shutdown_hook(b, reason);
}

int broker_core_init(struct broker *b, char *err, size_t errlen)
{
	TAILQ_INIT(&b->sinks);
	TAILQ_INIT(&b->waiting);
	broker_apply_limits(b);
	b->mem_ev = evtimer_new(b->base, mem_check_cb, b);
	b->mem_high = b->cfg.memory_high_watermark ? b->cfg.memory_high_watermark : default_watermark();
	b->default_vhost = vhost_new(b, b->cfg.default_vhost ? b->cfg.default_vhost : "/");
	events_init(b);
	for (size_t i = 0; i < b->cfg.nvhosts; i++)
		if (!strmap_get(&b->vhosts, b->cfg.vhosts[i].name))
			vhost_new(b, b->cfg.vhosts[i].name);
	/* The users and the virtual hosts of the user store. */
	if (auth_init(b, err, errlen) < 0)
		return -1;
	/* The journal first, the configuration after: what the file says
	 * about a destination wins over what was recorded. */
	if (store_open(b, err, errlen) < 0 || broker_create_configured(b, err, errlen) < 0)
		return -1;
	dedup_seed_recovered(b);
	return 0;
}

void broker_core_fini(struct broker *b)
{
	size_t it = 0;
	void *v;
	/* Closed before the destinations go: freeing them must not write
	 * removals of messages that are meant to survive the restart. */
	store_close(b);
	auth_fini(b);
	while (strmap_next(&b->vhosts, &it, NULL, &v)) {
		struct vhost *vh = v;
		dest_free_all(vh);
	}
	it = 0;
	while (strmap_next(&b->vhosts, &it, NULL, &v)) {
		struct vhost *vh = v;
		free(vh->name);
		free(vh);
	}
	strmap_fini(&b->vhosts);
	dedup_fini(b);
	u64map_fini(&b->sinks_by_id);
	events_fini(b);
	if (b->mem_ev)
		event_free(b->mem_ev);
	b->mem_ev = NULL;
	if (b->room_ev)
		event_free(b->room_ev);
	b->room_ev = NULL;
	if (b->doom_ev)
		event_free(b->doom_ev);
	b->doom_ev = NULL;
}

/* Settings a running broker cannot change: the new configuration takes the
 * running values, and a change is reported once. */
static void note_pending(char *pending, size_t len, const char *name)
{
	size_t n = strlen(pending);
	snprintf(pending + n, len - n, "%s%s", n ? ", " : "", name);
}

static void keep_running(struct config *nw, struct config *old, char *pending, size_t plen)
{
	static const char *const restart_only[] = {
		"data_dir", "control_socket", "connection_file", "log_file", "tls_cert_key", "tls_port",
		"http_port", "http_max_connections", "http_path", "admin_port", "fsync", "fsync_interval_ms",
		"segment_size", "max_events", "ws_port", "wss_port", "control_socket_group", "broker_id",
	};
	for (size_t i = 0; i < ARRAY_LEN(restart_only); i++) {
		const struct config_option *o = config_option_find(restart_only[i]);
		char a[512], b[512], err[256];
		config_get(old, o, a, sizeof a);
		config_get(nw, o, b, sizeof b);
		if (strcmp(a, b) != 0) {
			log_warn("reload: %s changed from '%s' to '%s': takes effect at the next restart", o->name, a, b);
			note_pending(pending, plen, o->name);
			if (o->type == CONFIG_STRING && !*(char **)((char *)old + o->offset)) {
				free(*(char **)((char *)nw + o->offset));
				*(char **)((char *)nw + o->offset) = NULL;
			} else {
				config_set(nw, o->name, a, err, sizeof err);
			}
		}
	}
	{
		bool same = nw->nlisteners == old->nlisteners;
		for (size_t i = 0; same && i < nw->nlisteners; i++)
			same = nw->listeners[i].port == old->listeners[i].port && nw->listeners[i].tls == old->listeners[i].tls &&
			       !strcmp(nw->listeners[i].address ? nw->listeners[i].address : "*",
			               old->listeners[i].address ? old->listeners[i].address : "*");
		if (!same) {
			log_warn("reload: listeners changed: take effect at the next restart");
			note_pending(pending, plen, "listeners");
		}
		/* swap: the running listeners' description stays with the broker */
		struct listener_cfg *l = nw->listeners;
		size_t n = nw->nlisteners;
		nw->listeners = old->listeners;
		nw->nlisteners = old->nlisteners;
		nw->port_given = old->port_given;
		nw->http_any_port = old->http_any_port;
		old->listeners = l;
		old->nlisteners = n;
	}
	{
		char **ca = nw->ca_chains;
		size_t n = nw->nca_chains;
		nw->ca_chains = old->ca_chains;
		nw->nca_chains = old->nca_chains;
		old->ca_chains = ca;
		old->nca_chains = n;
	}
}

/* What broker_create_configured() would refuse in the running broker:
 * a configured destination that exists as another kind (a client made
 * /jobs/x a topic before the new file calls it a queue). Checked before
 * the new configuration replaces the old, so a refused reload changes
 * nothing. */
static int check_configured(struct broker *b, const struct config *nw, char *err, size_t errlen)
{
	for (size_t i = 0; i < nw->ndests; i++) {
		const struct dest_cfg *dc = &nw->dests[i];
		struct vhost *vh = dc->vhost ? broker_vhost_find(b, dc->vhost) : b->default_vhost;
		struct dest *d = vh ? dest_find(vh, dc->name) : NULL;
		if (d && d->type != dc->type) {
			snprintf(err, errlen, "destination %s exists as a %s; the file makes it a %s", dc->name,
			         dest_type_name(d->type), dest_type_name(dc->type));
			return -1;
		}
		for (size_t j = 0; vh && j < dc->nchildren; j++) {
			struct dest *child = dest_find(vh, dc->children[j]);
			if (child && child->type == DEST_PUBSUB) {
				snprintf(err, errlen, "pubsub %s: child %s exists as a pubsub", dc->name, dc->children[j]);
				return -1;
			}
		}
	}
	return 0;
}

int broker_reload(struct broker *b, char *err, size_t errlen)
{
	struct config nw, old;
	struct router *router = NULL;
	if (!b->load_config) {
		snprintf(err, errlen, "this broker cannot reload its configuration");
		return -1;
	}
	if (b->load_config(&nw, &router, err, errlen) < 0) {
		b->reload_failures++;
		return -1;
	}
	/* The users last: it is the one check that changes something. */
	if (check_configured(b, &nw, err, errlen) < 0 || auth_config_changed(b, &nw, err, errlen) < 0) {
		b->reload_failures++;
		config_fini(&nw);
		router_free(router);
		return -1;
	}
	b->restart_pending[0] = 0;
	keep_running(&nw, &b->cfg, b->restart_pending, sizeof b->restart_pending);
	old = b->cfg;
	b->cfg = nw;
	config_fini(&old);
	router_free(b->router);
	b->router = router;
	broker_apply_limits(b);
	log_set_level(b->cfg.log_level);
	if (b->cfg.memory_high_watermark)
		b->mem_high = b->cfg.memory_high_watermark;
	for (size_t i = 0; i < b->cfg.nvhosts; i++)
		broker_vhost_ensure(b, b->cfg.vhosts[i].name);
	b->reloads++;
	if (broker_create_configured(b, err, errlen) < 0) {
		log_error("reload: %s", err);
		return -1;
	}
	log_info("configuration reloaded%s%s", b->cfg.path ? " from " : "", b->cfg.path ? b->cfg.path : "");
	{
		const char *fields[] = { "file", b->cfg.path ? b->cfg.path : "", NULL };
		broker_event(b, "config-reloaded", fields);
	}
	return 0;
}

void broker_apply_limits(struct broker *b)
{
	b->limits.max_frame = b->cfg.max_frame;
	b->limits.max_headers = (unsigned)b->cfg.max_headers;
	b->limits.max_header_line = b->cfg.max_header_line;
}

int broker_create_configured(struct broker *b, char *err, size_t errlen)
{
	/* Queues and topics first, then pubsubs, so children exist to attach. */
	for (int pass = 0; pass < 2; pass++) {
		for (size_t i = 0; i < b->cfg.ndests; i++) {
			const struct dest_cfg *dc = &b->cfg.dests[i];
			struct vhost *vh = dc->vhost ? broker_vhost_find(b, dc->vhost) : b->default_vhost;
			struct dest *d;
			char why[256];
			if ((dc->type == DEST_PUBSUB) != (pass == 1))
				continue;
			if (!vh) {
				snprintf(err, errlen, "destination %s: unknown virtual host '%s'", dc->name, dc->vhost);
				return -1;
			}
			d = dest_create(vh, dc->name, dc->type, &dc->opts, why, sizeof why);
			if (!d) {
				snprintf(err, errlen, "destination %s: %s", dc->name, why);
				return -1;
			}
			for (size_t j = 0; j < dc->nchildren; j++) {
				struct dest *child = dest_get(vh, dc->children[j], why, sizeof why);
				if (!child || (pubsub_attach(d, child, why, sizeof why) < 0 &&
				               !strstr(why, "already a child"))) {
					snprintf(err, errlen, "pubsub %s: child %s: %s", dc->name, dc->children[j], why);
					return -1;
				}
			}
		}
	}
	return 0;
}

