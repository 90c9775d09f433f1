/* stomp_aliases.c: other brokers' spellings of what a SUBSCRIBE asks, so
 * that clients written for them work unchanged: flow control and
 * priority (BlazingMQ, RabbitMQ, ActiveMQ, Artemis, Apollo) and durable
 * topic subscriptions (ActiveMQ, Artemis, RabbitMQ). docs/protocol.md
 * lists every alias. */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "core/sub.h"
#include "stomp/conn.h"
#include "stomp/handlers.h"

static int parse_count(struct conn *c, const struct frame *f, const char *name, uint64_t max,
                       uint64_t *out, const char *receipt)
{
	const char *v = frame_get(f, name);
	int64_t n;
	if (!v)
		return 0;
	if (!parse_i64(v, -1, (int64_t)MIN(max, (uint64_t)INT64_MAX), &n)) {
		conn_close(c, receipt, "invalid %s '%s' in SUBSCRIBE frame: expected a number 0..%" PRIu64
		           " (0 or -1: unlimited)",
		           name, v, max);
		return -1;
	}
	*out = n < 0 ? 0 : (uint64_t)n;	/* -1 (Artemis, ActiveMQ) means unlimited */
	return 1;
}

/* Flow control and priority from our headers or the aliases other brokers use. */
int stomp_sub_opts(struct conn *c, const struct frame *f, struct sub_opts *o, const char *receipt)
{
	static const char *const count_names[] = { "max-unconfirmed-messages", "prefetch-count",
	                                           "activemq.prefetchSize" };
	static const char *const prio_names[] = { "consumer-priority", "activemq.priority", "x-priority" };
	const char *v;
	uint64_t n;
	int r;

	for (size_t i = 0; i < ARRAY_LEN(count_names); i++) {
		if ((r = parse_count(c, f, count_names[i], UINT32_MAX, &n, receipt)) < 0)
			return -1;
		if (r) {
			o->max_unacked = (uint32_t)n;
			break;
		}
	}
	if ((r = parse_count(c, f, "max-unconfirmed-bytes", UINT64_MAX, &n, receipt)) < 0)
		return -1;
	if (r)
		o->max_unacked_bytes = n;
	if ((v = frame_get(f, "consumer-window-size"))) {
		/* Artemis: a byte window; 0 means one message at a time. */
		int64_t w;
		if (!parse_i64(v, -1, INT64_MAX, &w)) {
			conn_close(c, receipt, "invalid consumer-window-size '%s' in SUBSCRIBE frame: expected a byte count", v);
			return -1;
		}
		if (w == 0)
			o->max_unacked = 1;
		else if (w > 0)
			o->max_unacked_bytes = (uint64_t)w;
	}
	if ((v = frame_get(f, "credit"))) {
		/* Apollo: "messages[,bytes]" */
		char a[24];
		const char *comma = strchr(v, ',');
		size_t len = comma ? (size_t)(comma - v) : strlen(v);
		uint64_t msgs, bytes = 0;
		if (len >= sizeof a || (memcpy(a, v, len), a[len] = 0, !parse_u64(a, 0, UINT32_MAX, &msgs)) ||
		    (comma && !parse_u64(comma + 1, 0, UINT64_MAX, &bytes))) {
			conn_close(c, receipt, "invalid credit '%s' in SUBSCRIBE frame: expected messages[,bytes]", v);
			return -1;
		}
		o->max_unacked = (uint32_t)msgs;
		if (comma)
			o->max_unacked_bytes = bytes;
	}
	for (size_t i = 0; i < ARRAY_LEN(prio_names); i++) {
		int64_t p;
		if (!(v = frame_get(f, prio_names[i])))
			continue;
		if (!parse_i64(v, -1000000, 1000000, &p)) {
			conn_close(c, receipt, "invalid %s '%s' in SUBSCRIBE frame: expected an integer", prio_names[i], v);
			return -1;
		}
		o->priority = (int)p;
		break;
	}
	return 0;
}

/* A durable topic subscription, by any broker's spelling: ActiveMQ's
 * activemq.subscriptionName, Artemis's durable-subscription-name, or
 * RabbitMQ's persistent:true (or durable:true) with the id as the name.
 * The key scopes the name by client-id (else login). */
bool stomp_durable_key(struct conn *c, const struct frame *f, const char *id, char *key, size_t len)
{
	const char *name = frame_get(f, "activemq.subscriptionName");
	const char *v;
	if (!name)
		name = frame_get(f, "durable-subscription-name");
	if (!name && (((v = frame_known(f, HDR_PERSISTENT)) && strcmp(v, "true") == 0) ||
	              ((v = frame_get(f, "durable")) && strcmp(v, "true") == 0)))
		name = id;
	if (!name || !*name)
		return false;
	snprintf(key, len, "%s:%s", c->sink.client_id ? c->sink.client_id : c->sink.who.login ? c->sink.who.login : "", name);
	return true;
}

