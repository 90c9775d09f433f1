/* bridge.h: bridges to and from other STOMP brokers (docs/bridges.md).
 *
 * A bridge is a sink of local destinations and a publisher into one, with
 * a session of the client library (client/mqclient.h) on the broker's own
 * event loop for the remote side:
 *
 *   outbound  subscribes (client acks) to a local queue, a topic, or every
 *             destination matching a pattern, those created later too, and
 *             SENDs each message persistent with a receipt to the remote
 *             broker; the local delivery is acknowledged (sub_ack, and for a
 *             journaled copy the journal's REMOVE) only when the RECEIPT
 *             arrives, and given back (sub_nack) when the post fails.
 *   inbound   subscribes on the remote broker with client-individual acks
 *             and publishes each message through publish() under the
 *             bridge's own principal; the upstream ACK goes only once the
 *             local broker holds it, durably for a journaled copy
 *             (store_when_durable).
 *
 * Both keep at most `window` messages unconfirmed. A full outbound window
 * (or a remote that does not read) keeps the sink full, so the core stops
 * delivering to it; a local slowdown (memory high-watermark, a full queue,
 * a slow topic subscriber) holds inbound messages unpublished and
 * unconfirmed, so the remote's window fills and its flow stops.
 *
 * Every forwarded message carries mq-post-id (kept when it has one) and
 * mq-via, the brokers it has passed through; publish() drops a message
 * whose mq-via names this broker, and an outbound bridge does not send a
 * message to a remote broker its mq-via names.
 *
 * Bridges come from the configuration file's bridges table and from the
 * `bridge` admin command; both are kept in the journal (META records
 * "b:NAME") so that they, and their paused state, survive a restart. */
#ifndef MQ_BRIDGE_H
#define MQ_BRIDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/bridge_spec.h"

struct broker;
struct bridge;
struct jw;
struct sbuf;

enum bridge_state {
	BRIDGE_CONNECTING,	/* no connection to the remote broker yet, or reconnecting */
	BRIDGE_RUNNING,		/* connected, forwarding */
	BRIDGE_PAUSED,		/* an administrator paused it: nothing new is taken */
	BRIDGE_BLOCKED,		/* connected, but held back: a full window, a remote that does
				 * not read, or the local broker slowing producers down */
	BRIDGE_FAILING,		/* the last attempt failed (last_error says why); retrying */
};

const char *bridge_state_name(enum bridge_state s);

/* Starts the configured bridges and those the journal recorded. After
 * broker_core_init(); -1 with the reason for a bridge that cannot be made
 * (an unknown virtual host). */
int bridges_init(struct broker *b, char *err, size_t errlen);
/* Stops and frees every bridge: unconfirmed outbound deliveries go back to
 * their queues. NULL-safe; before broker_core_fini(). */
void bridges_free(struct broker *b);
/* Once a second: lag, rates, the stall alarm, reconnection timers. */
void bridges_tick(struct broker *b);

/* The admin faces. Each returns 0, or -1 with a sentence in err and a
 * status for the admin reply in *status (CMD_NOT_FOUND, CMD_CONFLICT,
 * CMD_BAD_ARG). */
int bridge_add(struct broker *b, const struct bridge_spec *spec, int *status, char *err, size_t errlen);
int bridge_delete(struct broker *b, const char *name, int *status, char *err, size_t errlen);
int bridge_set_paused(struct broker *b, const char *name, bool paused, int *status, char *err, size_t errlen);
struct bridge *bridge_find(struct broker *b, const char *name);
size_t bridges_count(const struct broker *b);

/* A JSON object for `list bridges` (detail false) and `show bridge`. */
void bridge_row(const struct bridge *br, struct jw *w, bool detail);
/* Every bridge, sorted by name, as a JSON array; returns how many. */
size_t bridges_list(struct broker *b, struct jw *w);
/* Prometheus families for /metrics. */
void bridges_metrics(struct broker *b, struct sbuf *out);

#endif
