/* config.c: defaults, the option table, and the structured-setting helpers. */
#include "config/config.h"

#include <errno.h>
#include <inttypes.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/util.h"

static const char *const type_names[] = { "topic", "queue", "pubsub", "command" };

const char *dest_type_name(enum dest_type t)
{
	return (unsigned)t < ARRAY_LEN(type_names) ? type_names[t] : "?";
}

int dest_type_from(const char *s)
{
	for (size_t i = 0; i < ARRAY_LEN(type_names); i++)
		if (strcmp(s, type_names[i]) == 0)
			return (int)i;
	return -1;
}

#define OPT(name, type, field, min, max, dflt, help) \
	{ name, type, offsetof(struct config, field), min, max, dflt, help }

static const struct config_option options[] = {
	OPT("data_dir", CONFIG_STRING, data_dir, 0, 0, "(see docs/operations.md)",
	    "directory for the journal, the lock file and the control socket"),
	OPT("control_socket", CONFIG_STRING, control_socket, 0, 0, "(<data_dir>/mqbroker.sock)",
	    "Unix socket for mqsh and other admin tools"),
	OPT("control_socket_group", CONFIG_STRING, control_socket_group, 0, 0, "(none)",
	    "group whose members may use the control socket (mode 0660); none: the broker's user only (0600)"),
	OPT("connection_file", CONFIG_STRING, connection_file, 0, 0, "(none)",
	    "write a JSON file with the broker's addresses once it listens (-c)"),
	OPT("log_file", CONFIG_STRING, log_file, 0, 0, "(stderr)", "send all logging to this file (-g)"),
	OPT("broker_id", CONFIG_STRING, broker_id, 0, 0, "(none: generated once, kept in <data_dir>/broker-id)",
	    "this broker's name in the mq-via header of bridged messages (docs/bridges.md)"),
	OPT("log_level", CONFIG_INT, log_level, 0, 4, "1",
	    "0 none, 1 errors, 2 warnings, 3 all, 4 debug (-l)"),
	OPT("max_connections", CONFIG_INT, max_connections, 1, 1000000, "1024",
	    "client connections at once; more are refused with an ERROR (-n). The soft open-files limit is "
	    "raised towards the hard one to fit them"),
	OPT("max_events", CONFIG_INT, max_events, 1, 100000, "50",
	    "callbacks handled per event-loop iteration (-m)"),
	OPT("idle_timeout", CONFIG_INT, idle_timeout_s, 0, 100000000, "0",
	    "shut down after this many seconds without network activity; 0 never (-t)"),
	OPT("persistent_server", CONFIG_BOOL, persistent_server, 0, 0, "false",
	    "refuse remote shutdown and never time out (-s)"),
	OPT("round_robin", CONFIG_BOOL, round_robin_names, 0, 0, "false",
	    "connections sharing a client-id share topic subscriptions (-r)"),
	OPT("tls_cert_key", CONFIG_STRING, tls_cert_key, 0, 0, "(none)",
	    "PEM file holding the server certificate and private key (-k)"),
	OPT("tls_port", CONFIG_INT, tls_port, 0, 65535, "61614", "port of the STOMP over TLS listener"),
	OPT("http_port", CONFIG_INT, http_port, 0, 65535, "0", "HTTP endpoint port; 0 = no HTTP (-w)"),
	OPT("http_max_connections", CONFIG_INT, http_max_connections, 1, 100000, "64",
	    "HTTP connections at once (-w)"),
	OPT("http_path", CONFIG_STRING, http_path, 0, 0, "", "URL path messages are POSTed under (-w)"),
	OPT("http_public_metrics", CONFIG_BOOL, http_public_metrics, 0, 0, "true",
	    "/health and /metrics answer anyone; false: other machines need a user (HTTP Basic)"),
	OPT("ws_port", CONFIG_INT, ws_port, 0, 65535, "0",
	    "STOMP over WebSocket port, on the STOMP listener's address; 0 = none (--ws-port)"),
	OPT("wss_port", CONFIG_INT, wss_port, 0, 65535, "0",
	    "STOMP over secure WebSocket (TLS, needs tls_cert_key) port; 0 = none (--wss-port)"),
	OPT("ws_max_handshake", CONFIG_SIZE, ws_max_handshake, 1024, 1 << 20, "8KiB",
	    "largest WebSocket upgrade request; a longer one is refused with HTTP 431"),
	OPT("ws_handshake_timeout", CONFIG_INT, ws_handshake_timeout_s, 1, 3600, "10",
	    "seconds a new WebSocket connection has to complete its upgrade request"),
	OPT("ws_idle_timeout", CONFIG_INT, ws_idle_timeout_s, 0, 86400, "60",
	    "seconds a WebSocket may receive nothing (a ping at half time lets live clients answer); 0 = never"),
	OPT("ws_origins", CONFIG_STRING, ws_origins, 0, 0, "",
	    "comma-separated Origin values a browser may open a WebSocket from; empty = any"),
	OPT("ws_binary_frames", CONFIG_BOOL, ws_binary_frames, 0, 0, "false",
	    "send every STOMP frame as a binary WebSocket message (default: text when valid UTF-8)"),
	OPT("admin_port", CONFIG_INT, admin_port, 0, 65535, "0",
	    "TCP port for admin commands with an admin login; 0 = none"),
	OPT("max_frame", CONFIG_SIZE, max_frame, 64, (int64_t)1 << 28, "16MiB",
	    "largest body of a frame"),
	OPT("max_headers", CONFIG_INT, max_headers, 1, 100000, "128", "header lines in one frame"),
	OPT("max_header_line", CONFIG_SIZE, max_header_line, 64, 1 << 24, "8KiB",
	    "longest header line (and command line)"),
	OPT("max_subscriptions", CONFIG_INT, max_subscriptions, 1, 1000000, "1024",
	    "subscriptions one connection may hold"),
	OPT("max_transactions", CONFIG_INT, max_transactions, 1, 1000000, "64",
	    "transactions one connection may have open"),
	OPT("max_transaction_frames", CONFIG_U64, max_transaction_frames, 1, INT64_MAX, "100000",
	    "SEND, ACK and NACK frames one transaction may hold"),
	OPT("max_transaction_bytes", CONFIG_SIZE, max_transaction_bytes, 4096, INT64_MAX, "64MiB",
	    "message bytes one connection's open transactions may hold (at most a quarter of the memory "
	    "high-watermark)"),
	OPT("max_output", CONFIG_SIZE, max_output, 4096, INT64_MAX, "4MiB",
	    "bytes waiting to be written to one connection before deliveries to it stop; a topic, or a queue holding "
	    "more than this behind such a connection, then slows its producers"),
	OPT("max_output_hard", CONFIG_SIZE, max_output_hard, 4096, INT64_MAX, "64MiB",
	    "bytes waiting to be written to one connection before it is closed"),
	OPT("slow_consumer_timeout", CONFIG_INT, slow_consumer_timeout_ms, 100, 86400000, "10000",
	    "ms a consumer's full output may go without moving before it counts as slow"),
	OPT("slow_consumer_disconnect", CONFIG_BOOL, slow_consumer_disconnect, 0, 0, "false",
	    "disconnect a slow topic subscriber with an ERROR instead of skipping its messages"),
	OPT("handshake_timeout", CONFIG_INT, handshake_timeout_ms, 100, 3600000, "10000",
	    "ms a new connection has to send CONNECT"),
	OPT("max_handshakes_per_address", CONFIG_INT, max_handshakes_per_address, 1, 1000000, "64",
	    "at -n, connections from one address without a CONNECT past which that address's oldest gives way"),
	OPT("frame_timeout", CONFIG_INT, frame_timeout_ms, 100, 86400000, "60000",
	    "ms within which a frame that has started arriving must be complete"),
	OPT("heartbeat_min_ms", CONFIG_INT, heartbeat_min_ms, 1, 3600000, "100",
	    "shortest heart-beat interval the broker agrees to, either way"),
	OPT("heartbeat_grace_pct", CONFIG_INT, heartbeat_grace_pct, 0, 10000, "100",
	    "extra silence allowed past the agreed interval before a peer is dropped, in percent"),
	OPT("lenient_transactions", CONFIG_BOOL, lenient_transactions, 0, 0, "true",
	    "an ACK or NACK naming an unknown transaction is performed outside any (stomp.py/DIRAC)"),
	OPT("default_vhost", CONFIG_STRING, default_vhost, 0, 0, "/",
	    "virtual host for clients that send no host header, host:/ or this broker's own name"),
	OPT("allow_anonymous", CONFIG_BOOL, allow_anonymous, 0, 0, "false",
	    "clients that do not log in as a user may connect from other machines, not only from loopback"),
	OPT("fsync", CONFIG_FSYNC, fsync, 0, 0, "always", "journal fsync policy: always, interval, never"),
	OPT("fsync_interval_ms", CONFIG_INT, fsync_interval_ms, 1, 3600000, "100",
	    "fsync period under the interval policy"),
	OPT("segment_size", CONFIG_SIZE, segment_size, 1 << 16, (int64_t)1 << 40, "64MiB",
	    "size at which a journal segment is closed and a new one started"),
	OPT("queue_memory_budget", CONFIG_SIZE, queue_memory_budget, 0, INT64_MAX, "64MiB",
	    "bodies a persistent queue keeps in memory; beyond it they are read back from the journal"),
	OPT("memory_high_watermark", CONFIG_SIZE, memory_high_watermark, 0, INT64_MAX, "0",
	    "message memory above which producers are slowed; 0 = 40% of physical memory"),
	OPT("lua_budget", CONFIG_U64, lua_budget, 1000, INT64_MAX, "1000000",
	    "instructions one call of a Lua rule may run before it is stopped"),
	OPT("lua_memory", CONFIG_SIZE, lua_memory, 1 << 20, INT64_MAX, "64MiB",
	    "memory the Lua state may allocate"),
};

const struct config_option *config_options(size_t *count)
{
	*count = ARRAY_LEN(options);
	return options;
}

const char *config_option_nearest(const char *name)
{
	size_t best = 3;	/* at most two edits away */
	const char *near = NULL;
	for (size_t i = 0; i < ARRAY_LEN(options); i++) {
		size_t d = edit_distance(name, options[i].name);
		if (d < best)
			best = d, near = options[i].name;
	}
	return near;
}

/* 65536 -> "64 KiB": bounds are powers of two, shown in the largest unit
 * that divides them exactly. */
static void exact_bytes(int64_t n, char *buf, size_t len)
{
	static const char *unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	size_t u = 0;
	while (n >= 1024 && n % 1024 == 0 && u + 1 < ARRAY_LEN(unit))
		n /= 1024, u++;
	snprintf(buf, len, "%" PRId64 " %s", n, unit[u]);
}

void config_option_kind(const struct config_option *o, char *buf, size_t len)
{
	char lo[32], hi[32];
	switch (o->type) {
	case CONFIG_INT:
	case CONFIG_U64:
		if (o->max == INT64_MAX)
			snprintf(buf, len, "integer %" PRId64 "..", o->min);
		else
			snprintf(buf, len, "integer %" PRId64 "..%" PRId64, o->min, o->max);
		break;
	case CONFIG_SIZE:
		exact_bytes(o->min, lo, sizeof lo);
		exact_bytes(o->max, hi, sizeof hi);
		if (o->min == 0 && o->max == INT64_MAX)
			snprintf(buf, len, "size");
		else if (o->max == INT64_MAX)
			snprintf(buf, len, "size %s..", lo);
		else
			snprintf(buf, len, "size %s..%s", lo, hi);
		break;
	case CONFIG_BOOL: snprintf(buf, len, "boolean"); break;
	case CONFIG_STRING: snprintf(buf, len, "string"); break;
	case CONFIG_FSYNC: snprintf(buf, len, "always|interval|never"); break;
	case CONFIG_OVERFLOW: snprintf(buf, len, "drop-oldest|reject"); break;
	}
}

const struct config_option *config_option_find(const char *name)
{
	for (size_t i = 0; i < ARRAY_LEN(options); i++)
		if (strcmp(options[i].name, name) == 0)
			return &options[i];
	return NULL;
}

static char *default_data_dir(void)
{
	const char *state = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");
	char buf[4096];
	if (geteuid() == 0)
		return xstrdup("/var/lib/mqbroker");
	if (state && *state)
		snprintf(buf, sizeof buf, "%s/mqbroker", state);
	else if (home && *home)
		snprintf(buf, sizeof buf, "%s/.local/state/mqbroker", home);
	else
		snprintf(buf, sizeof buf, "./mqbroker-data");
	return xstrdup(buf);
}

void config_init(struct config *c)
{
	char err[256];
	memset(c, 0, sizeof *c);
	for (size_t i = 0; i < ARRAY_LEN(options); i++) {
		const struct config_option *o = &options[i];
		if (o->dflt[0] == '(' )
			continue;	/* no default, or a computed one */
		if (config_set(c, o->name, o->dflt, err, sizeof err) < 0) {
			fprintf(stderr, "built-in default: %s\n", err);
			abort();
		}
	}
	c->data_dir = default_data_dir();
	config_add_listener(c, NULL, 61613, false);
	c->queue_defaults.overflow = OVERFLOW_DROP_OLDEST;
}

static void free_strv(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void queue_opts_fini(struct queue_opts *o)
{
	free(o->dead_letter);
	o->dead_letter = NULL;
}

void queue_opts_copy(struct queue_opts *dst, const struct queue_opts *src)
{
	*dst = *src;
	dst->dead_letter = src->dead_letter ? xstrdup(src->dead_letter) : NULL;
}

void config_fini(struct config *c)
{
	for (size_t i = 0; i < ARRAY_LEN(options); i++)
		if (options[i].type == CONFIG_STRING)
			free(*(char **)((char *)c + options[i].offset));
	free(c->path);
	for (size_t i = 0; i < c->nlisteners; i++)
		free(c->listeners[i].address);
	free(c->listeners);
	free_strv(c->ca_chains, c->nca_chains);
	queue_opts_fini(&c->queue_defaults);
	for (size_t i = 0; i < c->nvhosts; i++)
		free(c->vhosts[i].name);
	free(c->vhosts);
	for (size_t i = 0; i < c->nusers; i++) {
		free(c->users[i].login);
		free(c->users[i].passcode);
	}
	free(c->users);
	for (size_t i = 0; i < c->ndests; i++) {
		free(c->dests[i].name);
		free(c->dests[i].vhost);
		queue_opts_fini(&c->dests[i].opts);
		free_strv(c->dests[i].children, c->dests[i].nchildren);
	}
	free(c->dests);
	for (size_t i = 0; i < c->nrules; i++) {
		free(c->rules[i].pattern);
		free_strv(c->rules[i].children, c->rules[i].nchildren);
		if (c->rules[i].compiled) {
			regfree(c->rules[i].compiled);
			free(c->rules[i].compiled);
		}
	}
	free(c->rules);
	for (size_t i = 0; i < c->nbridges; i++)
		bridge_spec_fini(&c->bridges[i]);
	free(c->bridges);
	memset(c, 0, sizeof *c);
}

bool parse_duration_ms(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mult = 1;
	if (!s || *s < '0' || *s > '9')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return false;
	if (strcmp(end, "") == 0 || strcmp(end, "ms") == 0)
		mult = 1;
	else if (strcmp(end, "s") == 0)
		mult = 1000;
	else if (strcmp(end, "m") == 0 || strcmp(end, "min") == 0)
		mult = 60000;
	else if (strcmp(end, "h") == 0)
		mult = 3600000;
	else if (strcmp(end, "d") == 0)
		mult = 86400000;
	else
		return false;
	if (v > UINT64_MAX / mult)
		return false;
	*out = v * mult;
	return true;
}

int config_set(struct config *c, const char *name, const char *value, char *err, size_t errlen)
{
	const struct config_option *o = config_option_find(name);
	void *field;
	if (!o) {
		const char *near = config_option_nearest(name);
		if (near)
			snprintf(err, errlen, "unknown option '%s' (did you mean %s?)", name, near);
		else
			snprintf(err, errlen, "unknown option '%s'", name);
		return -1;
	}
	field = (char *)c + o->offset;
	switch (o->type) {
	case CONFIG_INT: {
		int64_t v;
		if (!parse_i64(value, o->min, o->max, &v)) {
			snprintf(err, errlen, "%s: expected an integer %" PRId64 "..%" PRId64 ", got '%s'",
			         name, o->min, o->max, value);
			return -1;
		}
		*(int *)field = (int)v;
		return 0;
	}
	case CONFIG_SIZE: {
		uint64_t v;
		if (!parse_size(value, &v) || v < (uint64_t)o->min || v > (uint64_t)o->max) {
			snprintf(err, errlen, "%s: expected a size such as 16MiB between %" PRId64 " and %" PRId64
			         " bytes, got '%s'", name, o->min, o->max, value);
			return -1;
		}
		*(uint64_t *)field = v;
		return 0;
	}
	case CONFIG_U64: {
		uint64_t v;
		if (!parse_u64(value, (uint64_t)o->min, (uint64_t)o->max, &v)) {
			snprintf(err, errlen, "%s: expected a number %" PRId64 "..%" PRId64 ", got '%s'",
			         name, o->min, o->max, value);
			return -1;
		}
		*(uint64_t *)field = v;
		return 0;
	}
	case CONFIG_BOOL: {
		bool v;
		if (!parse_bool(value, &v)) {
			snprintf(err, errlen, "%s: expected true or false, got '%s'", name, value);
			return -1;
		}
		*(bool *)field = v;
		return 0;
	}
	case CONFIG_STRING:
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return 0;
	case CONFIG_FSYNC:
		if (strcmp(value, "always") == 0)
			*(enum fsync_policy *)field = FSYNC_ALWAYS;
		else if (strcmp(value, "interval") == 0)
			*(enum fsync_policy *)field = FSYNC_INTERVAL;
		else if (strcmp(value, "never") == 0)
			*(enum fsync_policy *)field = FSYNC_NEVER;
		else {
			snprintf(err, errlen, "%s: expected always, interval or never, got '%s'", name, value);
			return -1;
		}
		return 0;
	case CONFIG_OVERFLOW:
		break;
	}
	snprintf(err, errlen, "%s: cannot be set", name);
	return -1;
}

void config_get(const struct config *c, const struct config_option *o, char *buf, size_t len)
{
	const void *field = (const char *)c + o->offset;
	switch (o->type) {
	case CONFIG_INT: snprintf(buf, len, "%d", *(const int *)field); break;
	case CONFIG_SIZE:
	case CONFIG_U64: snprintf(buf, len, "%" PRIu64, *(const uint64_t *)field); break;
	case CONFIG_BOOL: snprintf(buf, len, "%s", *(const bool *)field ? "true" : "false"); break;
	case CONFIG_STRING: snprintf(buf, len, "%s", *(char *const *)field ? *(char *const *)field : ""); break;
	case CONFIG_FSYNC: {
		static const char *n[] = { "always", "interval", "never" };
		snprintf(buf, len, "%s", n[*(const enum fsync_policy *)field]);
		break;
	}
	case CONFIG_OVERFLOW:
		snprintf(buf, len, "%s", *(const enum overflow_policy *)field == OVERFLOW_REJECT ? "reject" : "drop-oldest");
		break;
	}
}

static bool name_is(const char *name, const char *want)
{
	/* Accept max-length, max_length and maxLength alike. */
	for (; *name && *want; name++, want++) {
		char a = *name == '-' ? '_' : *name;
		if (a != *want)
			return false;
	}
	return !*name && !*want;
}

int queue_opts_set(struct queue_opts *o, const char *name, const char *value, char *err, size_t errlen)
{
	uint64_t v;
	if (name_is(name, "persistent") || name_is(name, "durable")) {
		bool b = true;
		if (value && !parse_bool(value, &b)) {
			snprintf(err, errlen, "%s: expected true or false, got '%s'", name, value);
			return -1;
		}
		o->persistent = b;
		return 0;
	}
	if (name_is(name, "single_active_consumer") || name_is(name, "x_single_active_consumer") ||
	    name_is(name, "exclusive")) {
		bool b = true;
		if (value && !parse_bool(value, &b)) {
			snprintf(err, errlen, "%s: expected true or false, got '%s'", name, value);
			return -1;
		}
		o->single_active_consumer = b;
		return 0;
	}
	if (!value) {
		snprintf(err, errlen, "%s: needs a value (%s=...)", name, name);
		return -1;
	}
	if (name_is(name, "max_length")) {
		if (!parse_u64(value, 0, UINT64_MAX, &v)) {
			snprintf(err, errlen, "%s: expected a number of messages, got '%s'", name, value);
			return -1;
		}
		o->max_length = v;
	} else if (name_is(name, "max_bytes")) {
		if (!parse_size(value, &v)) {
			snprintf(err, errlen, "%s: expected a size such as 64MiB, got '%s'", name, value);
			return -1;
		}
		o->max_bytes = v;
	} else if (name_is(name, "overflow")) {
		if (strcmp(value, "drop-oldest") == 0 || strcmp(value, "drop_oldest") == 0 || strcmp(value, "drop-head") == 0)
			o->overflow = OVERFLOW_DROP_OLDEST;
		else if (strcmp(value, "reject") == 0 || strcmp(value, "reject-publish") == 0)
			o->overflow = OVERFLOW_REJECT;
		else {
			snprintf(err, errlen, "%s: expected drop-oldest or reject, got '%s'", name, value);
			return -1;
		}
	} else if (name_is(name, "ttl") || name_is(name, "message_ttl") || name_is(name, "x_message_ttl")) {
		if (!parse_duration_ms(value, &v)) {
			snprintf(err, errlen, "%s: expected a duration such as 500ms, 60s or 1h, got '%s'", name, value);
			return -1;
		}
		o->ttl_ms = v;
	} else if (name_is(name, "max_deliveries") || name_is(name, "delivery_limit")) {
		if (!parse_u64(value, 0, UINT32_MAX, &v)) {
			snprintf(err, errlen, "%s: expected a number of deliveries, got '%s'", name, value);
			return -1;
		}
		o->max_deliveries = (uint32_t)v;
	} else if (name_is(name, "dead_letter") || name_is(name, "dlq")) {
		/* Where dead letters can live: not a broker-owned or
		 * connection-owned queue, not a command, not a bare prefix. */
		static const char *const refused[] = { "/durable/", "/temp-queue/", "/command/" };
		for (size_t i = 0; strcmp(value, "none") != 0 && i < ARRAY_LEN(refused); i++) {
			size_t n = strlen(refused[i]);
			if (strncmp(value, refused[i], n) == 0 || (*value && value[strlen(value) - 1] == '/' &&
			                                           strchr(value + 1, '/') == value + strlen(value) - 1)) {
				snprintf(err, errlen, "%s: '%s' cannot hold dead letters (a queue or pubsub, or none)",
				         name, value);
				return -1;
			}
		}
		free(o->dead_letter);
		o->dead_letter = strcmp(value, "none") == 0 ? xstrdup("") : xstrdup(value);
	} else if (name_is(name, "dedup_window") || name_is(name, "dedup")) {
		if (!parse_duration_ms(value, &v)) {
			snprintf(err, errlen, "%s: expected a duration such as 10m (0: off), got '%s'", name, value);
			return -1;
		}
		o->dedup_ms = v;
	} else {
		snprintf(err, errlen, "unknown queue option '%s' (known: persistent, max-length, max-bytes, "
		         "overflow, ttl, max-deliveries, dead-letter, single-active-consumer, dedup-window)", name);
		return -1;
	}
	return 0;
}

#define GROW(arr, n) ((arr) = xrealloc((arr), ((n) + 1) * sizeof *(arr)), memset(&(arr)[n], 0, sizeof *(arr)), &(arr)[(n)++])

struct listener_cfg *config_add_listener(struct config *c, const char *address, int port, bool tls)
{
	struct listener_cfg *l = GROW(c->listeners, c->nlisteners);
	l->address = address ? xstrdup(address) : NULL;
	l->port = port;
	l->tls = tls;
	return l;
}

struct bridge_spec *config_add_bridge(struct config *c, const char *name)
{
	struct bridge_spec *b = GROW(c->bridges, c->nbridges);
	bridge_spec_init(b, name);
	b->configured = true;
	return b;
}

struct vhost_cfg *config_add_vhost(struct config *c, const char *name)
{
	struct vhost_cfg *v = GROW(c->vhosts, c->nvhosts);
	v->name = xstrdup(name);
	return v;
}

struct user_cfg *config_add_user(struct config *c, const char *login, const char *passcode, bool admin)
{
	struct user_cfg *u = GROW(c->users, c->nusers);
	u->login = xstrdup(login);
	u->passcode = passcode ? xstrdup(passcode) : NULL;
	u->admin = admin;
	return u;
}

struct dest_cfg *config_add_dest(struct config *c, const char *name, enum dest_type type)
{
	struct dest_cfg *d = GROW(c->dests, c->ndests);
	d->name = xstrdup(name);
	d->type = type;
	queue_opts_copy(&d->opts, &c->queue_defaults);
	return d;
}

void dest_cfg_add_child(struct dest_cfg *d, const char *child)
{
	char **slot = GROW(d->children, d->nchildren);
	*slot = xstrdup(child);
}

struct type_rule *config_add_rule(struct config *c, const char *pattern, enum dest_type type,
                                  int line, char *err, size_t errlen)
{
	regex_t *re = xmalloc(sizeof *re);
	int rc = regcomp(re, pattern, REG_EXTENDED | REG_NOSUB);
	struct type_rule *r;
	if (rc != 0) {
		char why[200];
		regerror(rc, re, why, sizeof why);
		snprintf(err, errlen, "bad regular expression '%s': %s", pattern, why);
		free(re);
		return NULL;
	}
	r = GROW(c->rules, c->nrules);
	r->pattern = xstrdup(pattern);
	r->type = type;
	r->compiled = re;
	r->line = line;
	return r;
}

void type_rule_add_child(struct type_rule *r, const char *child)
{
	char **slot = GROW(r->children, r->nchildren);
	*slot = xstrdup(child);
}

enum dest_type config_dest_type(const struct config *c, const char *name, const struct type_rule **rule)
{
	if (rule)
		*rule = NULL;
	for (size_t i = 0; i < c->nrules; i++) {
		if (regexec(c->rules[i].compiled, name, 0, NULL, 0) == 0) {
			if (rule)
				*rule = &c->rules[i];
			return c->rules[i].type;
		}
	}
	if (strncmp(name, "/queue/", 7) == 0 || strncmp(name, "/temp-queue/", 12) == 0)
		return DEST_QUEUE;
	if (strncmp(name, "/pubsub/", 8) == 0)
		return DEST_PUBSUB;
	if (strncmp(name, "/command/", 9) == 0)
		return DEST_COMMAND;
	return DEST_TOPIC;
}

const char *config_control_socket(const struct config *c, char *buf, size_t len)
{
	if (c->control_socket && *c->control_socket)
		return c->control_socket;
	snprintf(buf, len, "%s/mqbroker.sock", c->data_dir);
	return buf;
}
