/* cmd.c: the dispatcher and a handler per admin command. */
#include "admin/cmd.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bridge/bridge.h"
#include "auth/userdb.h"
#include "core/auth.h"
#include "core/broker.h"
#include "common/cmdline.h"
#include "core/selector.h"
#include "core/sink.h"
#include "core/dest.h"
#include "net/listener.h"
#include "common/log.h"
#include "store/journal.h"
#include "core/msg.h"
#include "core/publish.h"
#include "core/store.h"
#include "core/sub.h"
#include "common/util.h"

typedef int (*cmd_fn)(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r);

#define CMD(name, usage, help, min, max, flags, complete, handler) \
	static int handler(struct cmd_ctx *, int, char **, struct cmd_reply *);
#include "common/cmd_table.h"
#undef CMD

static const struct {
	const char *name;
	cmd_fn fn;
} handlers[] = {
#define CMD(name, usage, help, min, max, flags, complete, handler) { name, handler },
#include "common/cmd_table.h"
#undef CMD
};

void cmd_reply_init(struct cmd_reply *r)
{
	memset(r, 0, sizeof *r);
	r->status = CMD_OK;
	sbuf_init(&r->data);
	jw_init(&r->w, &r->data);
}

void cmd_reply_fini(struct cmd_reply *r)
{
	sbuf_fini(&r->data);
}

int cmd_fail(struct cmd_reply *r, int status, const char *fmt, ...)
{
	va_list ap;
	r->status = status;
	va_start(ap, fmt);
	vsnprintf(r->message, sizeof r->message, fmt, ap);
	va_end(ap);
	sbuf_reset(&r->data);
	jw_init(&r->w, &r->data);
	return status;
}

static int ok(struct cmd_reply *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int ok(struct cmd_reply *r, const char *fmt, ...)
{
	va_list ap;
	r->status = CMD_OK;
	va_start(ap, fmt);
	vsnprintf(r->message, sizeof r->message, fmt, ap);
	va_end(ap);
	return CMD_OK;
}

void cmd_reply_json(const struct cmd_reply *r, struct sbuf *out)
{
	struct jw w;
	jw_init(&w, out);
	jw_obj_begin(&w);
	jw_kint(&w, "status", r->status);
	jw_kbool(&w, "ok", r->status == CMD_OK);
	jw_kstr(&w, "message", r->message);
	if (r->data.len) {
		jw_key(&w, "data");
		jw_raw(&w, r->data.buf);
	}
	jw_obj_end(&w);
}

void cmd_exec(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	const struct cmd_info *info;
	size_t n;
	int nargs = argc - 1;

	if (argc == 0) {
		cmd_fail(r, CMD_SYNTAX, "empty command (try: help)");
		return;
	}
	info = cmd_lookup(argv[0]);
	if (!info) {
		/* Unambiguous prefixes are accepted, as relayctl does. */
		const struct cmd_info *t = cmd_table(&n), *match = NULL;
		size_t len = strlen(argv[0]);
		int matches = 0;
		for (size_t i = 0; i < n; i++) {
			if (strncmp(t[i].name, argv[0], len) == 0) {
				match = &t[i];
				matches++;
			}
		}
		if (matches == 1) {
			info = match;
		} else {
			cmd_fail(r, CMD_NO_COMMAND, "unknown command '%s' (try: help)", argv[0]);
			return;
		}
	}
	if (nargs < info->min_args || (info->max_args >= 0 && nargs > info->max_args)) {
		cmd_fail(r, CMD_SYNTAX, "%s: %s (usage: %s)", info->name,
		         nargs < info->min_args ? "missing argument" : "too many arguments", info->usage);
		return;
	}
	if ((info->flags & CMD_WRITE) && !ctx->admin) {
		cmd_fail(r, CMD_FORBIDDEN, "%s: not permitted: admin rights needed", info->name);
		return;
	}
	for (size_t i = 0; i < sizeof handlers / sizeof handlers[0]; i++) {
		if (strcmp(handlers[i].name, info->name) == 0) {
			if (info->flags & CMD_WRITE)
				log_info("admin command from %s: %s", ctx->who ? ctx->who : "?", info->name);
			handlers[i].fn(ctx, nargs, argv + 1, r);
			return;
		}
	}
	cmd_fail(r, CMD_INTERNAL, "%s: no handler", info->name);
}

void cmd_exec_line(struct cmd_ctx *ctx, const char *line, struct cmd_reply *r)
{
	char **argv;
	char err[128];
	int argc = cmdline_split(line, &argv, err, sizeof err);
	if (argc < 0) {
		cmd_fail(r, CMD_SYNTAX, "%s", err);
		return;
	}
	cmd_exec(ctx, argc, argv, r);
	free(argv);
}

/* ---- argument helpers ---- */

/* Pulls a trailing vhost=V out of the arguments. */
static struct vhost *take_vhost(struct cmd_ctx *ctx, int *argc, char **argv, struct cmd_reply *r)
{
	for (int i = 0; i < *argc; i++) {
		if (strncmp(argv[i], "vhost=", 6) == 0) {
			struct vhost *vh = broker_vhost_find(ctx->b, argv[i] + 6);
			if (!vh) {
				cmd_fail(r, CMD_NOT_FOUND, "unknown virtual host '%s'", argv[i] + 6);
				return NULL;
			}
			memmove(&argv[i], &argv[i + 1], (size_t)(*argc - i - 1) * sizeof *argv);
			(*argc)--;
			return vh;
		}
	}
	return ctx->b->default_vhost;
}

static struct dest *need_dest(struct vhost *vh, const char *name, int type, struct cmd_reply *r)
{
	struct dest *d = dest_find(vh, name);
	if (!d) {
		cmd_fail(r, CMD_NOT_FOUND, "no destination named %s%s%s", name,
		         strcmp(vh->name, "/") ? " in virtual host " : "", strcmp(vh->name, "/") ? vh->name : "");
		return NULL;
	}
	if (type >= 0 && d->type != (enum dest_type)type) {
		cmd_fail(r, CMD_BAD_ARG, "%s is a %s, not a %s", name, dest_type_name(d->type),
		         dest_type_name((enum dest_type)type));
		return NULL;
	}
	return d;
}

static struct sink *need_client(struct broker *b, const char *id, struct cmd_reply *r)
{
	uint64_t n;
	struct sink *k;
	if (!parse_u64(id, 1, UINT64_MAX, &n)) {
		cmd_fail(r, CMD_BAD_ARG, "'%s' is not a client id: expected the number shown by 'list clients'", id);
		return NULL;
	}
	if (!(k = sink_find(b, n))) {
		cmd_fail(r, CMD_NOT_FOUND, "no client with id %s", id);
		return NULL;
	}
	return k;
}

/* Commands that create, delete or attach destinations need the configure
 * grant of whoever runs them (the control socket is the operator). */
static bool may_configure(struct cmd_ctx *ctx, struct vhost *vh, const char *name, struct cmd_reply *r)
{
	struct principal p;
	char err[400];
	if (!ctx->principal)
		return true;
	p = *ctx->principal;	/* borrowed fields: not finished */
	p.vhost = vh;
	if (auth_allow(ctx->b, &p, AUTHZ_CONFIGURE, name, err, sizeof err))
		return true;
	cmd_fail(r, CMD_FORBIDDEN, "%s", err);
	return false;
}

/* ---- rows ---- */

static void dest_row(struct jw *w, const struct dest *d, bool detail)
{
	jw_obj_begin(w);
	jw_kstr(w, "name", d->name);
	jw_kstr(w, "type", dest_type_name(d->type));
	jw_kstr(w, "vhost", d->vhost->name);
	jw_kuint(w, "depth", queue_depth(d));
	jw_kuint(w, "unacked", d->unacked);
	jw_kint(w, "consumers", d->nsubs);
	jw_kuint(w, "messages_in", d->messages_in);
	jw_kuint(w, "messages_out", d->messages_out);
	jw_kdouble(w, "rate_in", d->rate_in);
	jw_kdouble(w, "rate_out", d->rate_out);
	if (d->type == DEST_QUEUE) {
		jw_kbool(w, "paused", d->paused);
		jw_kbool(w, "persistent", d->opts.persistent);
		if (d->opts.single_active_consumer)
			jw_kbool(w, "single_active_consumer", true);
	}
	if (d->type == DEST_PUBSUB)
		jw_kuint(w, "children", d->nchildren);
	if (detail) {
		jw_kuint(w, "bytes", d->bytes);
		jw_kuint(w, "paged", d->paged);
		jw_kuint(w, "paged_bytes", d->paged_bytes);
		jw_kuint(w, "dropped", d->dropped);
		jw_kuint(w, "expired", d->expired);
		jw_kuint(w, "dead_lettered", d->dead_lettered);
		jw_kuint(w, "redelivered", d->redelivered);
		jw_kbool(w, "configured", d->configured);
		if (d->type == DEST_QUEUE) {
			jw_kuint(w, "max_length", d->opts.max_length);
			jw_kuint(w, "max_bytes", d->opts.max_bytes);
			jw_kstr(w, "overflow", d->opts.overflow == OVERFLOW_REJECT ? "reject" : "drop-oldest");
			jw_kuint(w, "ttl_ms", d->opts.ttl_ms);
			jw_kuint(w, "max_deliveries", d->opts.max_deliveries);
			{
				char buf[1100];
				/* where messages past max_deliveries go; null: dropped */
				jw_kstr(w, "dead_letter", queue_dead_letter_name(d, false, buf, sizeof buf));
			}
		}
		if (d->type == DEST_PUBSUB) {
			jw_key(w, "child_names");
			jw_arr_begin(w);
			for (size_t i = 0; i < d->nchildren; i++)
				jw_str(w, d->children[i]->name);
			jw_arr_end(w);
		}
		if (d->type == DEST_QUEUE) {
			/* set aside: nobody's selector matches them yet */
			jw_kuint(w, "waiting_for_selector", d->nparked);
		}
		jw_key(w, "subscribers");
		jw_arr_begin(w);
		const struct sub *s;
		TAILQ_FOREACH(s, &d->subs, dest_link) {
			jw_obj_begin(w);
			jw_kuint(w, "client", s->sink->id);
			jw_kstr(w, "id", s->id);
			jw_kstr(w, "ack", ack_mode_name(s->opts.ack));
			jw_kuint(w, "unacked", s->unacked);
			jw_kint(w, "priority", s->opts.priority);
			if (s->opts.selector)
				jw_kstr(w, "selector", selector_text(s->opts.selector));
			if (d->type == DEST_QUEUE && d->opts.single_active_consumer)
				jw_kbool(w, "active", s == TAILQ_FIRST(&d->subs));
			jw_obj_end(w);
		}
		jw_arr_end(w);
		if (d->type == DEST_QUEUE && d->groups_owned.count) {
			/* message groups and the consumer each belongs to */
			size_t it = 0;
			void *v;
			jw_key(w, "groups");
			jw_arr_begin(w);
			while (strmap_next(&d->groups_owned, &it, NULL, &v)) {
				const struct qgroup *g = v;
				jw_obj_begin(w);
				jw_kstr(w, "group", g->name);
				jw_kuint(w, "client", g->owner->sink->id);
				jw_kstr(w, "subscription", g->owner->id);
				jw_kuint(w, "messages", g->messages);
				jw_obj_end(w);
			}
			jw_arr_end(w);
		}
	}
	jw_obj_end(w);
}

static void client_row(struct jw *w, const struct sink *k, bool detail)
{
	uint64_t now = wall_ms();
	const struct principal *p = &k->who;
	jw_obj_begin(w);
	jw_kuint(w, "id", k->id);
	jw_kstr(w, "peer", p->peer);
	jw_kstr(w, "login", p->login ? p->login : "");
	jw_kstr(w, "vhost", p->vhost ? p->vhost->name : "");
	jw_kstr(w, "version", k->ops->version(k));
	jw_kstr(w, "transport", k->transport);
	jw_kstr(w, "state", k->ops->state(k));
	jw_kuint(w, "subscriptions", k->subs.count);
	jw_kuint(w, "unacked", sink_unacked(k));
	jw_kuint(w, "messages_in", k->messages_in);
	jw_kuint(w, "messages_out", k->messages_out);
	jw_kuint(w, "connected_s", (now - k->connected_ms) / 1000);
	if (detail) {
		jw_kstr(w, "client_id", k->client_id ? k->client_id : "");
		jw_kbool(w, "authenticated", p->authenticated);
		jw_kbool(w, "admin", p->admin);
		k->ops->describe(k, w);
		jw_key(w, "subscription_list");
		jw_arr_begin(w);
		size_t it = 0;
		void *v;
		while (strmap_next(&k->subs, &it, NULL, &v)) {
			const struct sub *s = v;
			jw_obj_begin(w);
			jw_kstr(w, "id", s->id);
			jw_kstr(w, "destination", s->dest->name);
			jw_kstr(w, "ack", ack_mode_name(s->opts.ack));
			jw_kuint(w, "unacked", s->unacked);
			jw_obj_end(w);
		}
		jw_arr_end(w);
	}
	jw_obj_end(w);
}

/* ---- handlers ---- */

static int cmd_help(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	size_t n;
	const struct cmd_info *t = cmd_table(&n);
	(void)ctx;
	if (argc == 1) {
		const struct cmd_info *i = cmd_lookup(argv[0]);
		if (!i)
			return cmd_fail(r, CMD_NO_COMMAND, "unknown command '%s' (try: help)", argv[0]);
		jw_obj_begin(&r->w);
		jw_kstr(&r->w, "command", i->name);
		jw_kstr(&r->w, "usage", i->usage);
		jw_kstr(&r->w, "help", i->help);
		jw_obj_end(&r->w);
		return ok(r, "%s", i->usage);
	}
	jw_arr_begin(&r->w);
	for (size_t i = 0; i < n; i++) {
		jw_obj_begin(&r->w);
		jw_kstr(&r->w, "command", t[i].name);
		jw_kstr(&r->w, "help", t[i].help);
		jw_obj_end(&r->w);
	}
	jw_arr_end(&r->w);
	return ok(r, "%zu commands", n);
}

static const char *const listings[] = { "destinations", "queues", "topics", "pubsubs", "clients",
                                         "subscriptions", "durables", "users", "vhosts", "permissions",
                                         "bridges" };

static int list_users(struct cmd_ctx *ctx, struct cmd_reply *r);
static int list_vhosts(struct cmd_ctx *ctx, struct cmd_reply *r);
static int list_permissions(struct cmd_ctx *ctx, const char *user, const char *vhost, struct cmd_reply *r);
static bool may_see_users(struct cmd_ctx *ctx, struct cmd_reply *r);

static int cmd_list(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	struct broker *b = ctx->b;
	const char *what = argc ? argv[0] : "destinations";
	size_t count = 0;
	int type = -1;
	bool known = false;

	for (size_t i = 0; i < ARRAY_LEN(listings); i++)
		if (strncmp(listings[i], what, strlen(what)) == 0 && *what) {
			what = listings[i];
			known = true;
			break;
		}
	if (!known)
		return cmd_fail(r, CMD_BAD_ARG, "list: unknown listing '%s' (known: destinations, queues, topics, "
		                "pubsubs, clients, subscriptions, durables, users, vhosts, permissions, bridges)", what);
	if (strcmp(what, "users") == 0)
		return may_see_users(ctx, r) ? list_users(ctx, r) : r->status;
	if (strcmp(what, "permissions") == 0)
		return may_see_users(ctx, r) ? list_permissions(ctx, NULL, NULL, r) : r->status;
	if (strcmp(what, "vhosts") == 0)
		return list_vhosts(ctx, r);
	if (strcmp(what, "bridges") == 0) {
		count = bridges_list(b, &r->w);
		return ok(r, count ? "%zu bridge%s" : "no bridges", count, count == 1 ? "" : "s");
	}
	if (strcmp(what, "durables") == 0) {
		size_t n;
		struct dest **all = broker_dests(b, DEST_QUEUE, &n);
		jw_arr_begin(&r->w);
		for (size_t i = 0; i < n; i++) {
			const struct dest *d = all[i];
			if (!d->durable_topic)
				continue;
			jw_obj_begin(&r->w);
			jw_kstr(&r->w, "name", d->name + strlen("/durable/"));
			jw_kstr(&r->w, "topic", d->durable_topic);
			jw_kstr(&r->w, "vhost", d->vhost->name);
			jw_kuint(&r->w, "depth", queue_depth(d));
			jw_kuint(&r->w, "unacked", d->unacked);
			jw_kint(&r->w, "consumers", d->nsubs);
			jw_kbool(&r->w, "active", d->nsubs > 0);
			jw_obj_end(&r->w);
			count++;
		}
		free(all);
		jw_arr_end(&r->w);
		return ok(r, "%zu durable subscription%s", count, count == 1 ? "" : "s");
	}
	if (strcmp(what, "clients") == 0) {
		struct sink *k;
		jw_arr_begin(&r->w);
		TAILQ_FOREACH(k, &b->sinks, link) {
			client_row(&r->w, k, false);
			count++;
		}
		jw_arr_end(&r->w);
		return ok(r, "%zu client%s", count, count == 1 ? "" : "s");
	}
	if (strcmp(what, "subscriptions") == 0) {
		struct sink *k;
		jw_arr_begin(&r->w);
		TAILQ_FOREACH(k, &b->sinks, link) {
			size_t it = 0;
			void *v;
			while (strmap_next(&k->subs, &it, NULL, &v)) {
				const struct sub *s = v;
				jw_obj_begin(&r->w);
				jw_kuint(&r->w, "client", k->id);
				jw_kstr(&r->w, "id", s->id);
				jw_kstr(&r->w, "destination", s->dest->name);
				jw_kstr(&r->w, "vhost", s->dest->vhost->name);
				jw_kstr(&r->w, "ack", ack_mode_name(s->opts.ack));
				jw_kuint(&r->w, "unacked", s->unacked);
				jw_kuint(&r->w, "max_unacked", s->opts.max_unacked);
				jw_kint(&r->w, "priority", s->opts.priority);
				jw_kuint(&r->w, "delivered", s->delivered);
				jw_obj_end(&r->w);
				count++;
			}
		}
		jw_arr_end(&r->w);
		return ok(r, "%zu subscription%s", count, count == 1 ? "" : "s");
	}
	if (strcmp(what, "queues") == 0)
		type = DEST_QUEUE;
	else if (strcmp(what, "topics") == 0)
		type = DEST_TOPIC;
	else if (strcmp(what, "pubsubs") == 0)
		type = DEST_PUBSUB;
	{
		/* Sorted by virtual host and name, so that listings read (and
		 * diff) the same way every time. */
		size_t n;
		struct dest **rows = broker_dests(b, type, &n);
		jw_arr_begin(&r->w);
		for (size_t i = 0; i < n; i++)
			dest_row(&r->w, rows[i], false);
		jw_arr_end(&r->w);
		count = n;
		free(rows);
	}
	{
		/* "1 queue", "2 queues": the listing's name without its plural s */
		int len = (int)strlen(what) - (count == 1);
		return ok(r, "%zu %.*s", count, len, what);
	}
}

static int cmd_show(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	struct vhost *vh;
	struct dest *d;
	if (strcmp(argv[0], "client") == 0 && argc == 2) {
		struct sink *k = need_client(ctx->b, argv[1], r);
		if (!k)
			return r->status;
		client_row(&r->w, k, true);
		return ok(r, "client %s", argv[1]);
	}
	if (strcmp(argv[0], "bridge") == 0 && argc == 2) {
		const struct bridge *br = bridge_find(ctx->b, argv[1]);
		if (!br)
			return cmd_fail(r, CMD_NOT_FOUND, "no bridge named %s (see: list bridges)", argv[1]);
		bridge_row(br, &r->w, true);
		return ok(r, "bridge %s", argv[1]);
	}
	vh = take_vhost(ctx, &argc, argv, r);
	if (!vh)
		return r->status;
	if (argc != 1)
		return cmd_fail(r, CMD_SYNTAX, "show: usage: show NAME | show client ID | show bridge NAME");
	if (!(d = need_dest(vh, argv[0], -1, r)))
		return r->status;
	dest_row(&r->w, d, true);
	return ok(r, "%s %s", dest_type_name(d->type), d->name);
}

static uint64_t rss_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	unsigned long size, rss = 0;
	if (f) {
		if (fscanf(f, "%lu %lu", &size, &rss) != 2)
			rss = 0;
		fclose(f);
	}
	return (uint64_t)rss * (uint64_t)sysconf(_SC_PAGESIZE);
}

static int cmd_stats(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	struct broker *b = ctx->b;
	const struct broker_stats *s = &b->stats;
	struct jw *w = &r->w;
	uint64_t depth = 0, unacked = 0, ndest = 0;
	(void)argc;
	(void)argv;
	{
		size_t n;
		struct dest **all = broker_dests(b, -1, &n);
		for (size_t i = 0; i < n; i++) {
			depth += queue_depth(all[i]);
			unacked += all[i]->unacked;
		}
		ndest = n;
		free(all);
	}
	jw_obj_begin(w);
	jw_kstr(w, "version", MQ_VERSION);
	jw_kint(w, "pid", (int64_t)getpid());
	jw_kstr(w, "host", listeners_host(b));
	jw_kint(w, "port", listeners_port(b, false));
	jw_kint(w, "tls_port", listeners_port(b, true));
	jw_kint(w, "http_port", b->http ? b->http_port_bound : 0);
	jw_kuint(w, "uptime_s", (mono_ms() - b->started_mono_ms) / 1000);
	jw_kint(w, "connections", b->nsinks);
	jw_kuint(w, "connections_total", s->connections_total);
	jw_kuint(w, "connections_refused", s->connections_refused);
	{
		struct auth_stats as;
		auth_get_stats(b, &as);
		jw_kuint(w, "users", auth_user_count(b));
		jw_kuint(w, "logins_failed", as.logins_failed);
		jw_kuint(w, "logins_delayed", as.logins_delayed);
		jw_kuint(w, "logins_busy", as.logins_busy);
		jw_kuint(w, "login_cache_hits", as.login_cache_hits);
		jw_kuint(w, "password_checks", as.password_checks);
		jw_kuint(w, "slowed_peers", as.slowed_peers);
	}
	jw_kdouble(w, "rate_in", b->rate_in);
	jw_kdouble(w, "rate_out", b->rate_out);
	jw_kuint(w, "messages_in", s->messages_in);
	jw_kuint(w, "messages_out", s->messages_out);
	jw_kuint(w, "destinations", ndest);
	jw_kuint(w, "depth", depth);
	jw_kuint(w, "unacked", unacked);
	jw_kuint(w, "frames_in", s->frames_in);
	jw_kuint(w, "frames_out", s->frames_out);
	jw_kuint(w, "bytes_in", s->bytes_in);
	jw_kuint(w, "bytes_out", s->bytes_out);
	jw_kuint(w, "acks", s->acks);
	jw_kuint(w, "nacks", s->nacks);
	jw_kuint(w, "redelivered", s->redelivered);
	jw_kuint(w, "dropped", s->dropped);
	jw_kuint(w, "dropped_slow", s->dropped_slow);
	jw_kuint(w, "expired", s->expired);
	jw_kuint(w, "dead_lettered", s->dead_lettered);
	jw_kuint(w, "rejected", s->rejected);
	jw_kuint(w, "duplicates", s->duplicates);
	jw_kuint(w, "looped", s->looped);
	jw_kuint(w, "bridges", bridges_count(b));
	jw_kstr(w, "broker_id", b->id);
	jw_kuint(w, "errors_sent", s->errors_sent);
	jw_kuint(w, "lenient_acks", s->lenient_acks);
	jw_kuint(w, "receipts", s->receipts);
	jw_kuint(w, "heartbeat_timeouts", s->heartbeat_timeouts);
	jw_kuint(w, "messages_held", msg_live_count());
	jw_kuint(w, "message_bytes", msg_live_bytes());
	jw_kuint(w, "rss_bytes", rss_bytes());
	jw_kuint(w, "memory_high_watermark", b->mem_high);
	jw_kbool(w, "memory_alarm", b->mem_blocked);
	{
		struct journal_stats js;
		if (store_stats(b, &js)) {
			jw_kuint(w, "journal_segments", js.segments);
			jw_kuint(w, "journal_disk_bytes", js.disk_bytes);
			jw_kuint(w, "journal_live_bytes", js.live_bytes);
			jw_kuint(w, "journal_live_messages", js.live_messages);
			jw_kuint(w, "journal_appends", js.appends);
			jw_kuint(w, "journal_fsyncs", js.fsyncs);
			jw_kuint(w, "journal_bytes_written", js.bytes_written);
			jw_kuint(w, "journal_compactions", js.compactions);
			jw_kbool(w, "journal_failing", js.failing_errno != 0);
			/* what is wrong, in words ("No space left on device") */
			if (js.failing_errno)
				jw_kstr(w, "journal_error", strerror(js.failing_errno));
		}
	}
	jw_kint(w, "log_level", log_get_level());
	jw_kbool(w, "persistent_server", b->cfg.persistent_server);
	jw_obj_end(w);
	return ok(r, "%d connection%s, %.0f msg/s in, %.0f msg/s out", b->nsinks, b->nsinks == 1 ? "" : "s",
	          b->rate_in, b->rate_out);
}

static int cmd_create(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	struct vhost *vh = take_vhost(ctx, &argc, argv, r);
	struct queue_opts opts;
	struct dest *d;
	int type;
	char err[256];

	if (!vh)
		return r->status;
	if (argc < 2)
		return cmd_fail(r, CMD_SYNTAX, "create: usage: create queue|topic|pubsub NAME [options]");
	type = dest_type_from(argv[0]);
	if (type < 0 || type == DEST_COMMAND)
		return cmd_fail(r, CMD_BAD_ARG, "create: unknown kind '%s' (expected queue, topic or pubsub)", argv[0]);
	if (type != DEST_QUEUE && argc > 2)
		return cmd_fail(r, CMD_BAD_ARG, "create: options such as '%s' apply to queues only", argv[2]);
	d = dest_find(vh, argv[1]);
	queue_opts_copy(&opts, d && d->type == DEST_QUEUE ? &d->opts : &ctx->b->cfg.queue_defaults);
	for (int i = 2; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		if (eq)
			*eq = 0;
		if (queue_opts_set(&opts, argv[i], eq ? eq + 1 : NULL, err, sizeof err) < 0) {
			queue_opts_fini(&opts);
			return cmd_fail(r, CMD_BAD_ARG, "create: %s", err);
		}
	}
	if (!dest_name_ok(argv[1], err, sizeof err) || (!d && !dest_name_open(argv[1], err, sizeof err))) {
		queue_opts_fini(&opts);
		return cmd_fail(r, CMD_BAD_ARG, "create: %s", err);
	}
	if (!d && strncmp(argv[1], "/temp-queue/", 12) == 0) {
		queue_opts_fini(&opts);
		return cmd_fail(r, CMD_BAD_ARG, "create: %s: temporary queues are made by their connection", argv[1]);
	}
	{
		/* A name whose prefix or type rule says what it is cannot be
		 * created as something else: clients would disagree with it. */
		const struct type_rule *rule;
		enum dest_type by_name = config_dest_type(&ctx->b->cfg, argv[1], &rule);
		bool typed = rule || by_name != DEST_TOPIC || strncmp(argv[1], "/topic/", 7) == 0;
		if (!d && typed && by_name != (enum dest_type)type) {
			queue_opts_fini(&opts);
			return cmd_fail(r, CMD_CONFLICT, "create: %s is a %s by its name%s", argv[1],
			                dest_type_name(by_name), rule ? " (a destination-type rule)" : "");
		}
	}
	if (d && d->type != (enum dest_type)type) {
		queue_opts_fini(&opts);
		return cmd_fail(r, CMD_CONFLICT, "create: %s already exists as a %s", argv[1], dest_type_name(d->type));
	}
	if (!may_configure(ctx, vh, argv[1], r)) {
		queue_opts_fini(&opts);
		return r->status;
	}
	{
		bool existed = d != NULL;
		d = dest_create(vh, argv[1], (enum dest_type)type, &opts, err, sizeof err);
		queue_opts_fini(&opts);
		if (!d)
			return cmd_fail(r, CMD_CONFLICT, "create: %s", err);
		dest_row(&r->w, d, true);
		return ok(r, "%s %s %s", dest_type_name(d->type), d->name, existed ? "updated" : "created");
	}
}

static int cmd_delete(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	struct vhost *vh = take_vhost(ctx, &argc, argv, r);
	struct dest *d;
	bool force = false;
	char err[256], name[1100];
	if (!vh)
		return r->status;
	if (argc == 2) {
		if (strcmp(argv[1], "force") != 0)
			return cmd_fail(r, CMD_SYNTAX, "delete: unexpected '%s' (usage: delete NAME [force] [vhost=V])", argv[1]);
		force = true;
	}
	if (!(d = need_dest(vh, argv[0], -1, r)))
		return r->status;
	if (d->type == DEST_COMMAND)
		return cmd_fail(r, CMD_FORBIDDEN, "delete: %s is built in", d->name);
	if (!may_configure(ctx, vh, d->name, r))
		return r->status;
	snprintf(name, sizeof name, "%s", d->name);
	if (d->type == DEST_TOPIC && d->nchildren) {
		/* Its durable subscriptions live by the topic: they go with it,
		 * and only when asked to, like subscribers. */
		if (!force)
			return cmd_fail(r, CMD_CONFLICT, "delete: topic %s has %zu durable subscription%s; "
			                "remove them first (unsubscribe) or add 'force'", d->name, d->nchildren,
			                d->nchildren == 1 ? "" : "s");
		while (d->nchildren)
			if (dest_delete(d->children[0], true, err, sizeof err) < 0)
				return cmd_fail(r, CMD_CONFLICT, "delete: %s", err);
	}
	if (dest_delete(d, force, err, sizeof err) < 0)
		return cmd_fail(r, CMD_CONFLICT, "delete: %s", err);
	return ok(r, "%s deleted", name);
}

static int cmd_purge(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	struct vhost *vh = take_vhost(ctx, &argc, argv, r);
	struct dest *d;
	uint64_t n;
	if (!vh || !(d = need_dest(vh, argv[0], DEST_QUEUE, r)))
		return r->status;
	n = queue_purge(d);
	jw_obj_begin(&r->w);
	jw_kstr(&r->w, "name", d->name);
	jw_kuint(&r->w, "purged", n);
	jw_obj_end(&r->w);
	return ok(r, "%s: %" PRIu64 " message%s removed", d->name, n, n == 1 ? "" : "s");
}

static int attach_detach(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r, bool attach)
{
	struct vhost *vh = take_vhost(ctx, &argc, argv, r);
	struct dest *p, *child;
	char err[256];
	if (!vh)
		return r->status;
	if (argc != 2)
		return cmd_fail(r, CMD_SYNTAX, "usage: %s PUBSUB CHILD [vhost=V]", attach ? "attach" : "detach");
	if (!(p = need_dest(vh, argv[0], DEST_PUBSUB, r)))
		return r->status;
	if (!may_configure(ctx, vh, argv[0], r) || !may_configure(ctx, vh, argv[1], r))
		return r->status;
	if (attach) {
		/* Checked before dest_get(), which would create the child. */
		if (!dest_name_open(argv[1], err, sizeof err))
			return cmd_fail(r, CMD_BAD_ARG, "attach: %s", err);
		if (strncmp(argv[1], "/temp-queue/", 12) == 0 ||
		    config_dest_type(&ctx->b->cfg, argv[1], NULL) == DEST_COMMAND)
			return cmd_fail(r, CMD_BAD_ARG, "attach: %s cannot be a pubsub's child: %s", argv[1],
			                strncmp(argv[1], "/temp-queue/", 12) == 0 ? "temporary queues belong to their connection"
			                                                         : "it is a command destination");
		if (!dest_find(vh, argv[1]) && config_dest_type(&ctx->b->cfg, argv[1], NULL) == DEST_PUBSUB)
			return cmd_fail(r, CMD_CONFLICT, "attach: a pubsub cannot have pubsub %s as a child", argv[1]);
		if (!(child = dest_get(vh, argv[1], err, sizeof err)))
			return cmd_fail(r, CMD_BAD_ARG, "attach: %s", err);
		if (pubsub_attach(p, child, err, sizeof err) < 0)
			return cmd_fail(r, CMD_CONFLICT, "attach: %s", err);
		return ok(r, "%s attached to %s", child->name, p->name);
	}
	if (!(child = need_dest(vh, argv[1], -1, r)))
		return r->status;
	if (pubsub_detach(p, child, err, sizeof err) < 0)
		return cmd_fail(r, CMD_NOT_FOUND, "detach: %s", err);
	return ok(r, "%s detached from %s", child->name, p->name);
}

static int cmd_attach(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	return attach_detach(ctx, argc, argv, r, true);
}

static int cmd_detach(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	return attach_detach(ctx, argc, argv, r, false);
}

static int pause_resume(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r, bool pause)
{
	struct vhost *vh = take_vhost(ctx, &argc, argv, r);
	struct dest *d;
	if (!vh || !(d = need_dest(vh, argv[0], DEST_QUEUE, r)))
		return r->status;
	if (d->paused == pause)
		return ok(r, "%s was already %s", d->name, pause ? "paused" : "delivering");
	d->paused = pause;
	store_dest_changed(d);
	{
		const char *fields[] = { "name", d->name, "vhost", vh->name, NULL };
		broker_event(ctx->b, pause ? "queue-paused" : "queue-resumed", fields);
	}
	log_info("vhost %s: queue %s %s", vh->name, d->name, pause ? "paused" : "resumed");
	if (!pause)
		queue_dispatch(d);
	return ok(r, "%s %s", d->name, pause ? "paused" : "resumed");
}

static int cmd_pause(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	return pause_resume(ctx, argc, argv, r, true);
}

static int cmd_resume(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	return pause_resume(ctx, argc, argv, r, false);
}

static int cmd_disconnect(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	struct sink *k = need_client(ctx->b, argv[0], r);
	struct sbuf reason;
	char why[600];
	if (!k)
		return r->status;
	sbuf_init(&reason);
	for (int i = 1; i < argc; i++) {
		if (i > 1)
			sbuf_addc(&reason, ' ');
		sbuf_adds(&reason, argv[i]);
	}
	snprintf(why, sizeof why, "disconnected by an administrator%s%s", reason.len ? ": " : "", sbuf_str(&reason));
	k->ops->close(k, why);
	sbuf_fini(&reason);
	return ok(r, "client %s disconnected", argv[0]);
}

/* Where redrive may put messages: a queue or a pubsub that clients may
 * name (a topic would drop them; an original-destination header is the
 * sender's word, so it gets the same checks). */
static bool redrive_target_ok(struct broker *b, struct vhost *vh, const char *name, char *err, size_t errlen)
{
	struct dest *d = dest_find(vh, name);
	enum dest_type t = d ? d->type : config_dest_type(&b->cfg, name, NULL);
	if (!dest_name_ok(name, err, errlen) || !dest_name_open(name, err, errlen))
		return false;
	if (strncmp(name, "/temp-queue/", 12) == 0 && !d) {
		snprintf(err, errlen, "%s: the temporary queue is gone", name);
		return false;
	}
	if (t != DEST_QUEUE && t != DEST_PUBSUB) {
		snprintf(err, errlen, "%s is a %s, which keeps nothing: redrive into a queue or a pubsub", name,
		         dest_type_name(t));
		return false;
	}
	return true;
}

static int cmd_redrive(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	struct vhost *vh = take_vhost(ctx, &argc, argv, r);
	struct dest *dlq, *target = NULL;
	uint64_t moved = 0, kept = 0;
	char err[256];
	static const struct msg_edit strip[] = {
		{ "original-destination", NULL },
		{ "original-message-id", NULL },
		{ "dead-letter-reason", NULL },
		{ "original-delivery-count", NULL },
	};
	size_t n;

	if (!vh || !(dlq = need_dest(vh, argv[0], DEST_QUEUE, r)))
		return r->status;
	if (argc == 2 && (!redrive_target_ok(ctx->b, vh, argv[1], err, sizeof err) ||
	                  !(target = dest_get(vh, argv[1], err, sizeof err))))
		return cmd_fail(r, CMD_BAD_ARG, "redrive: %s", err);
	if (target == dlq)
		return cmd_fail(r, CMD_BAD_ARG, "redrive: %s is the dead-letter queue itself", dlq->name);
	/* Take the whole backlog first: sending may route back into dlq. */
	n = queue_depth(dlq);
	for (size_t i = 0; i < n; i++) {
		uint32_t deliveries;
		bool journaled;
		struct msg *m = queue_take_head(dlq, &deliveries, &journaled);
		struct dest *to = target;
		char origin[1100];
		if (!m)
			break;
		if (!to && msg_header(m, "original-destination", origin, sizeof origin) &&
		    redrive_target_ok(ctx->b, vh, origin, err, sizeof err))
			to = dest_get(vh, origin, err, sizeof err);
		if (!to || to == dlq) {
			queue_push(dlq, m, deliveries, journaled);	/* back at the tail, unchanged */
			msg_unref(m);
			kept++;
			continue;
		}
		{
			struct msg *copy = msg_clone_for(m, to->name, strip, ARRAY_LEN(strip));
			uint64_t seq = 0;
			copy->id = broker_next_msg_id(ctx->b);
			if (dest_send(to, copy, &seq, err, sizeof err) == SEND_REJECTED) {
				queue_push(dlq, m, deliveries, journaled);
				kept++;
			} else {
				queue_acked(dlq, m->id, journaled);
				moved++;
			}
			msg_unref(copy);
			msg_unref(m);
		}
	}
	jw_obj_begin(&r->w);
	jw_kstr(&r->w, "name", dlq->name);
	jw_kuint(&r->w, "moved", moved);
	jw_kuint(&r->w, "kept", kept);
	jw_obj_end(&r->w);
	return ok(r, "%s: %" PRIu64 " message%s moved back%s", dlq->name, moved, moved == 1 ? "" : "s",
	          kept ? " (some kept: no usable origin, or the target refused them)" : "");
}

static int cmd_unsubscribe(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	struct vhost *vh = take_vhost(ctx, &argc, argv, r);
	struct dest *d;
	char err[256];
	if (!vh)
		return r->status;
	d = durable_find(vh, argv[0]);
	if (!d || !d->durable_topic)
		return cmd_fail(r, CMD_NOT_FOUND, "no durable subscription named '%s' (see: list durables)", argv[0]);
	if (dest_delete(d, true, err, sizeof err) < 0)
		return cmd_fail(r, CMD_CONFLICT, "unsubscribe: %s", err);
	return ok(r, "durable subscription %s removed", argv[0]);
}

static int cmd_bridge(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	const char *verb = argv[0], *name = argv[1];
	char err[600];
	int status = CMD_BAD_ARG;
	if (strcmp(verb, "add") == 0) {
		struct bridge_spec spec;
		bridge_spec_init(&spec, name);
		if (!bridge_name_ok(name, err, sizeof err)) {
			bridge_spec_fini(&spec);
			return cmd_fail(r, CMD_BAD_ARG, "bridge add: %s", err);
		}
		for (int i = 2; i < argc; i++) {
			char *eq = strchr(argv[i], '=');
			if (eq)
				*eq = 0;
			if (bridge_spec_set(&spec, argv[i], eq ? eq + 1 : NULL, err, sizeof err) < 0) {
				bridge_spec_fini(&spec);
				return cmd_fail(r, CMD_BAD_ARG, "bridge add: %s", err);
			}
		}
		if (bridge_add(ctx->b, &spec, &status, err, sizeof err) < 0) {
			bridge_spec_fini(&spec);
			return cmd_fail(r, status, "bridge add: %s", err);
		}
		bridge_spec_fini(&spec);
		bridge_row(bridge_find(ctx->b, name), &r->w, true);
		return ok(r, "bridge %s added", name);
	}
	if (argc != 2)
		return cmd_fail(r, CMD_SYNTAX, "bridge %s: expected one name (usage: bridge %s NAME)", verb, verb);
	if (strcmp(verb, "delete") == 0) {
		if (bridge_delete(ctx->b, name, &status, err, sizeof err) < 0)
			return cmd_fail(r, status, "bridge delete: %s", err);
		return ok(r, "bridge %s deleted", name);
	}
	if (strcmp(verb, "pause") == 0 || strcmp(verb, "resume") == 0) {
		bool pause = verb[0] == 'p';
		if (bridge_set_paused(ctx->b, name, pause, &status, err, sizeof err) < 0)
			return cmd_fail(r, status, "bridge %s: %s", verb, err);
		bridge_row(bridge_find(ctx->b, name), &r->w, false);
		return ok(r, "bridge %s %s", name, pause ? "paused" : "resumed");
	}
	return cmd_fail(r, CMD_BAD_ARG, "bridge: unknown action '%s' (known: add, delete, pause, resume)", verb);
}

static int cmd_reload(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	char err[1024];
	(void)argc;
	(void)argv;
	if (broker_reload(ctx->b, err, sizeof err) < 0)
		return cmd_fail(r, CMD_BAD_ARG, "reload failed, the running configuration stays: %s", err);
	jw_obj_begin(&r->w);
	jw_kstr(&r->w, "file", ctx->b->cfg.path ? ctx->b->cfg.path : "");
	jw_kuint(&r->w, "reloads", ctx->b->reloads);
	jw_kstr(&r->w, "restart_needed_for", ctx->b->restart_pending);
	jw_obj_end(&r->w);
	return ok(r, "configuration reloaded%s%s%s%s", ctx->b->cfg.path ? " from " : "",
	          ctx->b->cfg.path ? ctx->b->cfg.path : "",
	          ctx->b->restart_pending[0] ? "; these changes take effect at the next restart: " : "",
	          ctx->b->restart_pending);
}

static int cmd_loglevel(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	uint64_t n;
	(void)ctx;
	if (argc == 1) {
		if (!parse_u64(argv[0], 0, 4, &n))
			return cmd_fail(r, CMD_BAD_ARG, "loglevel: expected 0 to 4, got '%s'", argv[0]);
		log_set_level((int)n);
		ctx->b->cfg.log_level = (int)n;
	}
	jw_obj_begin(&r->w);
	jw_kint(&r->w, "log_level", log_get_level());
	jw_obj_end(&r->w);
	return ok(r, "log level %d", log_get_level());
}

static void config_option_json(struct jw *w, const struct config *c, const struct config_option *o)
{
	char value[1024], kind[64];
	if (strcmp(o->name, "control_socket") == 0) {
		char path[1024];	/* the path in use, default or not */
		snprintf(value, sizeof value, "%s", config_control_socket(c, path, sizeof path));
	} else
		config_get(c, o, value, sizeof value);
	config_option_kind(o, kind, sizeof kind);
	jw_obj_begin(w);
	jw_kstr(w, "name", o->name);
	jw_kstr(w, "value", value);
	jw_kstr(w, "default", o->dflt);
	jw_kstr(w, "kind", kind);
	jw_kstr(w, "help", o->help);
	jw_obj_end(w);
}

static int cmd_config(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	size_t n;
	const struct config_option *opts = config_options(&n);
	if (argc == 1) {
		const struct config_option *o = config_option_find(argv[0]);
		const char *near;
		if (!o && (near = config_option_nearest(argv[0])))
			return cmd_fail(r, CMD_NOT_FOUND, "config: no option '%s' (did you mean %s?)", argv[0], near);
		if (!o)
			return cmd_fail(r, CMD_NOT_FOUND, "config: no option '%s'", argv[0]);
		config_option_json(&r->w, &ctx->b->cfg, o);
		return ok(r, "%s", o->name);
	}
	jw_arr_begin(&r->w);
	for (size_t i = 0; i < n; i++)
		config_option_json(&r->w, &ctx->b->cfg, &opts[i]);
	jw_arr_end(&r->w);
	return ok(r, "%zu options", n);
}

static int cmd_shutdown(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	(void)argc;
	(void)argv;
	if (ctx->b->cfg.persistent_server)
		return cmd_fail(r, CMD_FORBIDDEN, "shutdown refused: the broker runs as a persistent server (-s)");
	r->shutdown = true;
	return ok(r, "shutting down");
}

static int cmd_events(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	(void)ctx;
	(void)argc;
	(void)argv;
	r->stream = true;
	return ok(r, "streaming events; one JSON object per line");
}

/* What logrotate's postrotate runs: SIGHUP reopens the file too, but it
 * also reloads the configuration. */
static int cmd_logreopen(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	char err[512];
	int rc = log_reopen_file(err, sizeof err);
	(void)ctx;
	(void)argc;
	(void)argv;
	if (rc < 0)
		return cmd_fail(r, CMD_INTERNAL, "logreopen: %s; logging goes on to the old file", err);
	jw_obj_begin(&r->w);
	jw_kstr(&r->w, "log_file", rc ? log_file_path() : "");
	jw_obj_end(&r->w);
	if (rc == 0)
		return ok(r, "logging goes to stderr: no log file to reopen");
	log_info("log file %s reopened", log_file_path());
	return ok(r, "reopened %s", log_file_path());
}

/* ---- users, virtual hosts, permissions ---- */

/* The status family of a user store error (userdb.h words them). */
static int userdb_status(const char *err)
{
	if (strstr(err, "cannot write the user store"))
		return CMD_INTERNAL;
	if (strstr(err, "unknown user") || strstr(err, "unknown virtual host") || strstr(err, "has no permissions"))
		return CMD_NOT_FOUND;
	if (strstr(err, "already exists") || strstr(err, "comes from the configuration file") ||
	    strstr(err, "is the default one"))
		return CMD_CONFLICT;
	return CMD_BAD_ARG;
}

/* Users and their grants are for admins: the control socket, or an admin
 * principal (or loopback while no user exists). */
static bool may_see_users(struct cmd_ctx *ctx, struct cmd_reply *r)
{
	char err[400];
	if (!ctx->principal || auth_allow(ctx->b, ctx->principal, AUTHZ_ADMIN, NULL, err, sizeof err))
		return true;
	cmd_fail(r, CMD_FORBIDDEN, "%s", err);
	return false;
}

static const char *cred_name(enum userdb_cred c)
{
	switch (c) {
	case USERDB_CRED_HASH: return "password";
	case USERDB_CRED_PLAIN: return "plain-text password";
	case USERDB_CRED_NONE: return "certificate";
	}
	return "?";
}

/* Connections logged in as `login` now. */
static size_t sinks_of(struct broker *b, const char *login)
{
	struct sink *k;
	size_t n = 0;
	TAILQ_FOREACH(k, &b->sinks, link)
		if (k->who.authenticated && k->who.login && strcmp(k->who.login, login) == 0)
			n++;
	return n;
}

static int list_users(struct cmd_ctx *ctx, struct cmd_reply *r)
{
	struct userdb *db = auth_userdb(ctx->b);
	size_t n, np;
	struct userdb_user *u = userdb_user_list(db, &n);
	jw_arr_begin(&r->w);
	for (size_t i = 0; i < n; i++) {
		struct userdb_perm *p = userdb_perm_list(db, u[i].name, NULL, &np);
		jw_obj_begin(&r->w);
		jw_kstr(&r->w, "name", u[i].name);
		jw_kstr(&r->w, "source", userdb_source_name(u[i].source));
		jw_kbool(&r->w, "admin", u[i].admin);
		jw_kstr(&r->w, "login", cred_name(u[i].cred));
		jw_kuint(&r->w, "permissions", np);
		jw_kuint(&r->w, "connections", u[i].shadowed ? 0 : sinks_of(ctx->b, u[i].name));
		jw_kbool(&r->w, "hidden", u[i].shadowed);
		jw_obj_end(&r->w);
		free(p);
	}
	jw_arr_end(&r->w);
	free(u);
	return ok(r, "%zu user%s", n, n == 1 ? "" : "s");
}

static int list_vhosts(struct cmd_ctx *ctx, struct cmd_reply *r)
{
	struct broker *b = ctx->b;
	size_t n, it = 0;
	struct userdb_vhost *v = userdb_vhost_list(auth_userdb(b), &n);
	const char *name;
	void *vv;
	size_t count = 0;

	jw_arr_begin(&r->w);
	for (size_t i = 0; i <= n; i++) {
		/* the user store's view, then any the journal alone knows */
		struct vhost *vh;
		const char *source;
		bool hidden = false;
		size_t dests = 0, clients = 0;
		struct sink *k;
		if (i < n) {
			vh = broker_vhost_find(b, v[i].name);
			name = v[i].name;
			source = userdb_source_name(v[i].source);
			hidden = v[i].shadowed;
		} else {
			if (!strmap_next(&b->vhosts, &it, &name, &vv))
				break;
			if (userdb_vhost_exists(auth_userdb(b), name))
				continue;
			vh = vv;
			source = "journal";
			i--;	/* come back for the next one */
		}
		if (vh) {
			size_t dit = 0;
			void *dv;
			while (strmap_next(&vh->dests, &dit, NULL, &dv))
				dests += ((struct dest *)dv)->type != DEST_COMMAND;
			TAILQ_FOREACH(k, &b->sinks, link)
				clients += k->who.vhost == vh;
		}
		jw_obj_begin(&r->w);
		jw_kstr(&r->w, "name", name);
		jw_kstr(&r->w, "source", source);
		jw_kuint(&r->w, "destinations", dests);
		jw_kuint(&r->w, "clients", clients);
		jw_kbool(&r->w, "hidden", hidden);
		jw_obj_end(&r->w);
		count++;
	}
	jw_arr_end(&r->w);
	free(v);
	return ok(r, "%zu virtual host%s", count, count == 1 ? "" : "s");
}

static int list_permissions(struct cmd_ctx *ctx, const char *user, const char *vhost, struct cmd_reply *r)
{
	size_t n;
	struct userdb_perm *p = userdb_perm_list(auth_userdb(ctx->b), user, vhost, &n);
	jw_arr_begin(&r->w);
	for (size_t i = 0; i < n; i++) {
		jw_obj_begin(&r->w);
		jw_kstr(&r->w, "user", p[i].user);
		jw_kstr(&r->w, "vhost", p[i].vhost);
		jw_kstr(&r->w, "configure", p[i].grant[USERDB_CONFIGURE]);
		jw_kstr(&r->w, "send", p[i].grant[USERDB_SEND]);
		jw_kstr(&r->w, "consume", p[i].grant[USERDB_CONSUME]);
		jw_kbool(&r->w, "unused", !p[i].live);
		jw_obj_end(&r->w);
	}
	jw_arr_end(&r->w);
	free(p);
	return ok(r, "%zu permission%s", n, n == 1 ? " entry" : " entries");
}

/* Closes every connection logged in as login. */
static size_t close_user(struct broker *b, const char *login, const char *why)
{
	struct sink *k, *next;
	size_t n = 0;
	for (k = TAILQ_FIRST(&b->sinks); k; k = next) {
		next = TAILQ_NEXT(k, link);
		if (k->who.authenticated && k->who.login && strcmp(k->who.login, login) == 0) {
			k->ops->close(k, why);
			n++;
		}
	}
	return n;
}

static void user_event(struct broker *b, const char *event, const char *name)
{
	const char *fields[] = { "user", name, NULL };
	broker_event(b, event, fields);
}

static int cmd_user(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	struct broker *b = ctx->b;
	struct userdb *db = auth_userdb(b);
	const char *op = argv[0], *name = argc > 1 ? argv[1] : NULL, *hash = NULL;
	bool admin = false, certificate = false;
	char err[600];

	if (strcmp(op, "list") == 0) {
		if (argc != 1)
			return cmd_fail(r, CMD_SYNTAX, "user list: takes no arguments");
		return list_users(ctx, r);
	}
	if (strcmp(op, "add") && strcmp(op, "passwd") && strcmp(op, "delete"))
		return cmd_fail(r, CMD_SYNTAX, "user: unknown operation '%s' (expected add, passwd, delete or list)", op);
	if (!name)
		return cmd_fail(r, CMD_SYNTAX, "user %s: missing argument NAME", op);
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "admin") == 0 && strcmp(op, "add") == 0)
			admin = true;
		else if (strcmp(argv[i], "certificate") == 0 && strcmp(op, "add") == 0)
			certificate = true;
		else if (strncmp(argv[i], "password=", 9) == 0 && strcmp(op, "delete") != 0)
			hash = argv[i] + 9;
		else
			return cmd_fail(r, CMD_SYNTAX, "user %s: unexpected '%s' (usage: %s)", op, argv[i],
			                cmd_lookup("user")->usage);
	}
	if (strcmp(op, "delete") == 0) {
		char why[300];
		size_t closed;
		if (userdb_user_delete(db, name, err, sizeof err) < 0)
			return cmd_fail(r, userdb_status(err), "user delete: %s", err);
		auth_forget(b, name);
		snprintf(why, sizeof why, "user '%s' was deleted by an administrator", name);
		closed = close_user(b, name, why);
		log_info("user %s deleted (%zu connection%s closed)", name, closed, closed == 1 ? "" : "s");
		user_event(b, "user-deleted", name);
		jw_obj_begin(&r->w);
		jw_kstr(&r->w, "name", name);
		jw_kuint(&r->w, "connections_closed", closed);
		jw_obj_end(&r->w);
		return ok(r, "user %s deleted%s", name, closed ? "; its connections were closed" : "");
	}
	if (certificate && hash)
		return cmd_fail(r, CMD_SYNTAX, "user add: give 'certificate' or password=HASH, not both");
	if (!certificate && !hash)
		return cmd_fail(r, CMD_SYNTAX, "user %s %s: no password: mqsh asks for one; other ways in give "
		                "password=HASH (mqbroker --hash-password prints one)%s", op, name,
		                strcmp(op, "add") == 0 ? ", or 'certificate' for a certificate login" : "");
	if (hash && !*hash)
		return cmd_fail(r, CMD_BAD_ARG, "user %s %s: the password hash is empty", op, name);
	if (strcmp(op, "add") == 0) {
		if (userdb_user_add(db, name, hash, admin, err, sizeof err) < 0)
			return cmd_fail(r, userdb_status(err), "user add: %s", err);
		log_info("user %s added%s%s", name, admin ? " (admin)" : "", certificate ? ", certificate login" : "");
		user_event(b, "user-added", name);
		return ok(r, "user %s added%s%s; it has no permissions yet (permit %s ...)", name,
		          admin ? " as an admin" : "", certificate ? ", logging in with a certificate" : "", name);
	}
	if (userdb_user_passwd(db, name, hash, err, sizeof err) < 0)
		return cmd_fail(r, userdb_status(err), "user passwd: %s", err);
	auth_forget(b, name);
	log_info("password of user %s changed", name);
	user_event(b, "password-changed", name);
	return ok(r, "password of %s changed", name);
}

/* vhost=V among the arguments, taken out; the default one otherwise. */
static const char *take_vhost_name(struct cmd_ctx *ctx, int *argc, char **argv)
{
	for (int i = 0; i < *argc; i++) {
		if (strncmp(argv[i], "vhost=", 6) == 0) {
			const char *v = argv[i] + 6;
			memmove(&argv[i], &argv[i + 1], (size_t)(*argc - i - 1) * sizeof *argv);
			(*argc)--;
			return v;
		}
	}
	return userdb_default_vhost(auth_userdb(ctx->b));
}

static void perm_event(struct broker *b, const char *user, const char *vhost)
{
	const char *fields[] = { "user", user, "vhost", vhost, NULL };
	broker_event(b, "permissions-changed", fields);
}

static int cmd_permit(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	const char *vhost = take_vhost_name(ctx, &argc, argv);
	char err[600];
	if (argc != 4)
		return cmd_fail(r, CMD_SYNTAX, "permit: expected USER CONFIGURE SEND CONSUME%s (usage: %s)",
		                argc > 4 ? " and at most one vhost=V" : "", cmd_lookup("permit")->usage);
	if (userdb_permit(auth_userdb(ctx->b), argv[0], vhost, argv[1], argv[2], argv[3], err, sizeof err) < 0)
		return cmd_fail(r, userdb_status(err), "permit: %s", err);
	log_info("permissions of %s on virtual host %s: configure '%s' send '%s' consume '%s'", argv[0], vhost,
	         argv[1], argv[2], argv[3]);
	perm_event(ctx->b, argv[0], vhost);
	list_permissions(ctx, argv[0], vhost, r);
	return ok(r, "%s may now, in virtual host %s: configure '%s', send '%s', consume '%s'", argv[0], vhost,
	          argv[1], argv[2], argv[3]);
}

static int cmd_unpermit(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	const char *vhost = take_vhost_name(ctx, &argc, argv);
	char err[600];
	if (argc != 1)
		return cmd_fail(r, CMD_SYNTAX, "unpermit: expected USER (usage: %s)", cmd_lookup("unpermit")->usage);
	if (userdb_unpermit(auth_userdb(ctx->b), argv[0], vhost, err, sizeof err) < 0)
		return cmd_fail(r, userdb_status(err), "unpermit: %s", err);
	log_info("permissions of %s on virtual host %s removed", argv[0], vhost);
	perm_event(ctx->b, argv[0], vhost);
	return ok(r, "%s has no permissions on virtual host %s any more", argv[0], vhost);
}

static int cmd_vhost(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	struct broker *b = ctx->b;
	struct userdb *db = auth_userdb(b);
	const char *op = argv[0], *name = argc > 1 ? argv[1] : NULL;
	char err[600];
	struct vhost *vh;

	if (strcmp(op, "list") == 0) {
		if (argc != 1)
			return cmd_fail(r, CMD_SYNTAX, "vhost list: takes no arguments");
		return list_vhosts(ctx, r);
	}
	if (strcmp(op, "add") && strcmp(op, "delete"))
		return cmd_fail(r, CMD_SYNTAX, "vhost: unknown operation '%s' (expected add, delete or list)", op);
	if (!name)
		return cmd_fail(r, CMD_SYNTAX, "vhost %s: missing argument NAME", op);
	if (strcmp(op, "add") == 0) {
		if (argc > 2)
			return cmd_fail(r, CMD_SYNTAX, "vhost add: unexpected '%s' (usage: vhost add NAME)", argv[2]);
		if (userdb_vhost_add(db, name, err, sizeof err) < 0)
			return cmd_fail(r, userdb_status(err), "vhost add: %s", err);
		broker_vhost_ensure(b, name);
		log_info("virtual host %s added", name);
		{
			const char *fields[] = { "vhost", name, NULL };
			broker_event(b, "vhost-added", fields);
		}
		return ok(r, "virtual host %s added; clients choose it with the host header (CONNECT host:%s)", name,
		          name);
	}
	{
		bool force = false;
		size_t dests = 0, clients = 0, it = 0;
		void *dv;
		struct sink *k;
		char why[300];
		if (argc == 3) {
			if (strcmp(argv[2], "force") != 0)
				return cmd_fail(r, CMD_SYNTAX, "vhost delete: unexpected '%s' (usage: vhost delete NAME [force])",
				                argv[2]);
			force = true;
		}
		vh = broker_vhost_find(b, name);
		if (!vh && !userdb_vhost_exists(db, name))
			return cmd_fail(r, CMD_NOT_FOUND, "vhost delete: unknown virtual host '%s' (vhost list shows them "
			                "all)", name);
		if (vh == b->default_vhost || strcmp(name, userdb_default_vhost(db)) == 0)
			return cmd_fail(r, CMD_CONFLICT, "vhost delete: virtual host '%s' is the default one: it cannot be "
			                "deleted", name);
		if (vh) {
			while (strmap_next(&vh->dests, &it, NULL, &dv))
				dests += ((struct dest *)dv)->type != DEST_COMMAND;
			TAILQ_FOREACH(k, &b->sinks, link)
				clients += k->who.vhost == vh;
		}
		if ((dests || clients) && !force)
			return cmd_fail(r, CMD_CONFLICT, "vhost delete: virtual host '%s' has %zu destination%s and %zu "
			                "client%s: add 'force' to delete its destinations with their messages and disconnect "
			                "its clients", name, dests, dests == 1 ? "" : "s", clients, clients == 1 ? "" : "s");
		/* The store first: when it cannot be written nothing changes. */
		if (userdb_vhost_exists(db, name) && userdb_vhost_delete(db, name, err, sizeof err) < 0)
			return cmd_fail(r, userdb_status(err), "vhost delete: %s", err);
		snprintf(why, sizeof why, "virtual host '%s' was deleted by an administrator", name);
		if (vh && broker_vhost_delete(b, vh, why, err, sizeof err) < 0)
			return cmd_fail(r, CMD_INTERNAL, "vhost delete: %s", err);
		log_info("virtual host %s deleted (%zu destinations, %zu clients)", name, dests, clients);
		{
			const char *fields[] = { "vhost", name, NULL };
			broker_event(b, "vhost-deleted", fields);
		}
		return ok(r, "virtual host %s deleted%s", name,
		          dests || clients ? " with its destinations; its clients were disconnected" : "");
	}
}

/* A message from an administrator goes through the one publish entry
 * point like any producer's: the same name checks, authorization, route()
 * and fan-out, as whoever runs the command (the web console's logged-in
 * user, an admin STOMP client, an HTTP Basic user), or, on the control
 * socket, as the administrator on this machine, who sends as a loopback
 * client would. */
#define SEND_MAX_HEADERS 64

static const char *send_header(const struct frame_hdr *h, unsigned n, const char *name)
{
	for (unsigned i = 0; i < n; i++)
		if (strcmp(h[i].name, name) == 0)
			return h[i].value;	/* the first wins, as in a frame */
	return NULL;
}

static int cmd_send(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r)
{
	struct vhost *vh = take_vhost(ctx, &argc, argv, r);
	struct frame_hdr hdrs[SEND_MAX_HEADERS];
	unsigned nhdrs = 0;
	struct principal p;
	struct publish_result res;
	struct draft d;

	if (!vh)
		return r->status;
	if (argc < 2)
		return cmd_fail(r, CMD_SYNTAX, "send: missing argument (usage: send DEST BODY [NAME=VALUE ...] [vhost=V])");
	if (argc - 2 > SEND_MAX_HEADERS)
		return cmd_fail(r, CMD_BAD_ARG, "send: %d headers (at most %d)", argc - 2, SEND_MAX_HEADERS);
	for (int i = 2; i < argc; i++) {
		char *eq = strchr(argv[i], '=');
		if (!eq || eq == argv[i])
			return cmd_fail(r, CMD_BAD_ARG, "send: header '%s' is not NAME=VALUE", argv[i]);
		*eq = 0;
		if (msg_is_control_header(argv[i], (size_t)(eq - argv[i])))
			return cmd_fail(r, CMD_BAD_ARG, "send: header '%s' is the broker's to set", argv[i]);
		hdrs[nhdrs++] = (struct frame_hdr){ argv[i], eq + 1, (uint32_t)(eq - argv[i]), (uint32_t)strlen(eq + 1) };
	}
	if (ctx->principal) {
		p = *ctx->principal;	/* borrowed login: not finished here */
	} else {
		memset(&p, 0, sizeof p);
		snprintf(p.peer, sizeof p.peer, "%s", "admin");
		p.loopback = true;
		p.admin = true;
	}
	p.vhost = vh;
	d = (struct draft){
		.dest = argv[0],
		.hdrs = hdrs,
		.nhdrs = nhdrs,
		.body = argv[1],
		.body_len = strlen(argv[1]),
		.expires = send_header(hdrs, nhdrs, "expires"),
		.ttl = send_header(hdrs, nhdrs, "expiration"),
		.persistent = send_header(hdrs, nhdrs, "persistent"),
		.reply_to = send_header(hdrs, nhdrs, "reply-to"),
	};
	if (!d.ttl)
		d.ttl = send_header(hdrs, nhdrs, "x-message-ttl");
	/* No sink: the admin owns no temporary queues. */
	switch (publish(ctx->b, &p, NULL, &d, &res)) {
	case PUBLISH_REFUSED:
		switch (res.refusal) {
		case REFUSED_BAD_REQUEST: return cmd_fail(r, CMD_BAD_ARG, "send: %s", res.err);
		case REFUSED_FORBIDDEN: return cmd_fail(r, CMD_FORBIDDEN, "send: %s", res.err);
		case REFUSED_UNAVAILABLE: return cmd_fail(r, CMD_CONFLICT, "send: %s", res.err);
		case REFUSED_INTERNAL: return cmd_fail(r, CMD_INTERNAL, "send: %s", res.err);
		}
		return cmd_fail(r, CMD_INTERNAL, "send: %s", res.err);
	case PUBLISH_DROPPED:
	case PUBLISH_OK:
		break;
	}
	jw_obj_begin(&r->w);
	jw_kstr(&r->w, "destination", argv[0]);
	jw_kstr(&r->w, "vhost", vh->name);
	jw_kstr(&r->w, "status", res.status == PUBLISH_OK ? "accepted" : "dropped");
	if (res.msg_id) {
		char id[24];
		u64_to_dec(res.msg_id, id);
		jw_kstr(&r->w, "message_id", id);
	}
	jw_kbool(&r->w, "journaled", res.seq != 0);
	jw_kuint(&r->w, "bytes", d.body_len);
	jw_obj_end(&r->w);
	if (res.status == PUBLISH_DROPPED)
		return ok(r, "%s: dropped: nothing takes it (no subscriber, or route() dropped it)", argv[0]);
	return ok(r, "sent %zu byte%s to %s", d.body_len, d.body_len == 1 ? "" : "s", argv[0]);
}
