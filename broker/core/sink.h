/* sink.h: what the core delivers to, and who it acts for.
 *
 * A sink is anyone attached to the core for longer than one call: a STOMP
 * connection (over TCP, TLS or WebSocket), a bridge, a console viewer. The
 * core knows it only through this struct and its operations: whether it
 * has room for another message (a flag the transport keeps current, read
 * on every dispatch), how to hand it one, how to end it, and how to
 * describe it in listings. What the core needs to remember about it lives
 * here too: its subscriptions, the deliveries it has not acknowledged,
 * its temporary queues. Everything about the wire (sockets, frames,
 * heart-beats, receipts) stays with the transport, which embeds a struct
 * sink in its own object.
 *
 * A sink acknowledges or gives back a delivery through sub.h (sub_ack,
 * sub_nack), finding it by message id with sink_find_delivery(). */
#ifndef MQ_SINK_H
#define MQ_SINK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "common/hmap.h"
#include "core/auth.h"

struct broker;
struct delivery;
struct jw;
struct msg;
struct sub;
struct sink;

struct sink_ops {
	/* Hands one message to the sink for subscription s; deliveries
	 * counts this one. Called only while the sink has room. */
	void (*deliver)(struct sink *k, struct sub *s, struct msg *m, uint32_t deliveries);
	/* The core ends the sink: an administrator disconnected it, deleted
	 * a destination it consumes from, or the broker is shutting down.
	 * The reason is for the peer and the log. Must not free k. */
	void (*close)(struct sink *k, const char *reason);
	/* Message memory fell back under the high-watermark: a transport
	 * that stopped reading from this producer may read again. */
	void (*resume)(struct sink *k);
	/* For listings: the protocol version spoken ("1.2"; "" before the
	 * handshake), the session's state ("open"), and the transport's own
	 * figures for `show client` (heart-beats, frames, bytes). */
	const char *(*version)(const struct sink *k);
	const char *(*state)(const struct sink *k);
	void (*describe)(const struct sink *k, struct jw *w);
};

struct sink {
	const struct sink_ops *ops;
	struct broker *b;
	TAILQ_ENTRY(sink) link;		/* b->sinks, while attached */
	uint64_t id;			/* unique for the broker's life: the client id in listings */
	const char *transport;		/* "tcp", "tls", "ws", "wss": a static string */
	struct principal who;		/* what every permission check reads */
	char *client_id;		/* owned; the producer's client-id, NULL when none */
	bool full;			/* no room for deliveries now (output over its limit, or
					 * not open): kept current by the transport */
	bool stalled;			/* full, and has taken nothing for slow_consumer_timeout:
					 * kept current by the transport; topics stop waiting for it */
	uint64_t moved_ms;		/* while full: when its output was last seen moving
					 * (mono_ms), kept by the transport; queues slow their
					 * producers only for a consumer that moved lately */
	bool waiting;			/* a producer paused until subscribers have room */
	char *doomed;			/* owned; the reason it is to be closed from the loop */
	TAILQ_ENTRY(sink) wait_link;	/* b->waiting, while waiting */
	bool attached;			/* in b->sinks: listed, found by id, receives deliveries */
	struct strmap subs;		/* subscription id -> struct sub *, owned */
	struct u64map unacked;		/* message id -> struct delivery * (chained through same_id) */
	struct strmap temp_queues;	/* broker-wide name -> struct dest *, owned by the vhost */
	uint64_t connected_ms;		/* wall clock */
	uint64_t messages_in, messages_out;
};

TAILQ_HEAD(sink_list, sink);

/* Attaches k to the broker: it gets its id and is listed. Starts full
 * (nothing is delivered until the transport says it has room). */
void sink_attach(struct sink *k, struct broker *b, const struct sink_ops *ops, const char *transport);
/* Detaches: every subscription goes (unacknowledged deliveries back to
 * their queues), its temporary queues are deleted, and it is no longer
 * listed. Safe to call twice. */
void sink_detach(struct sink *k);
/* Frees what the core allocated for k (after sink_detach). */
void sink_fini(struct sink *k);

/* An attached sink by id; NULL when there is none. */
struct sink *sink_find(struct broker *b, uint64_t id);

/* The delivery index: every unacknowledged delivery by message id. */
void sink_track_delivery(struct sink *k, struct delivery *d);
void sink_untrack_delivery(struct sink *k, struct delivery *d);
/* id is the message id as the peer wrote it; sub_id narrows to one
 * subscription (NULL: any). NULL when nothing matches. */
struct delivery *sink_find_delivery(struct sink *k, const char *id, const char *sub_id);

/* Unacknowledged deliveries across k's subscriptions. */
uint64_t sink_unacked(const struct sink *k);

/* Topic backpressure. A producer whose publish reached a subscriber
 * that is full but still reading (publish_result.slow_down) stops reading
 * and waits here; it is resumed (ops->resume) once some sink has room
 * again or has been found stalled. */
void sink_wait_for_room(struct sink *k);
/* The transport of a sink that was full has room again, or found it
 * stalled: waiting producers are resumed (from the loop, once a turn). */
void sink_room_freed(struct broker *b);
/* Closes k from the loop, outside the call that found it must go (a slow
 * subscriber found while a topic delivers). */
void sink_close_later(struct sink *k, const char *reason);

#endif
