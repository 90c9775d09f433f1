/* sub.h: subscriptions, in-flight deliveries, flow control, acks.
 *
 * A subscription belongs to one sink (sink.h: a connection, a bridge...)
 * and one destination. With the client and client-individual ack modes
 * each delivery stays on the subscription's pending list (in delivery
 * order) and in the sink's id index until it is acknowledged; a NACK, the
 * end of the subscription or of its sink return it to its queue. Flow
 * control (BlazingMQ's queue options) bounds how many deliveries and bytes
 * may be outstanding per subscriber. */
#ifndef MQ_SUB_H
#define MQ_SUB_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

struct dest;
struct msg;
struct selector;
struct sink;

enum ack_mode {
	ACK_AUTO,		/* delivered = acknowledged */
	ACK_CLIENT,		/* an ACK covers every earlier delivery too */
	ACK_CLIENT_INDIVIDUAL,	/* an ACK covers exactly one delivery */
};

struct delivery {
	TAILQ_ENTRY(delivery) link;	/* sub->pending, oldest first */
	bool journaled;			/* the queue's copy is in the journal */
	struct delivery *same_id;	/* next pending delivery with this message id on the sink */
	struct msg *m;			/* ref held */
	struct sub *sub;		/* borrowed */
	uint32_t deliveries;		/* including this one */
};

TAILQ_HEAD(delivery_list, delivery);

struct sub_opts {
	enum ack_mode ack;
	uint32_t max_unacked;		/* 0 = unlimited */
	uint64_t max_unacked_bytes;	/* 0 = unlimited */
	int priority;			/* higher first */
	struct selector *selector;	/* which messages it takes; NULL = all. sub_new and
					 * sub_configure take it over */
};

/* -r: subscriptions to one topic from sinks sharing a client-id
 * form a group, and each message goes to one member in turn. */
struct rr_group {
	char *client_id;		/* owned; the key in dest->groups */
	TAILQ_HEAD(, sub) members;
	int nmembers;
	struct sub *last;		/* served last */
};

struct sub {
	TAILQ_ENTRY(sub) dest_link;	/* dest->subs */
	TAILQ_ENTRY(sub) group_link;	/* group->members */
	struct rr_group *group;		/* borrowed; NULL unless -r grouped it */
	struct sink *sink;		/* borrowed: the sink owns the sub */
	struct dest *dest;		/* borrowed */
	char *id;			/* owned; the SUBSCRIBE id header */
	char *shown;			/* owned; the destination deliveries name when it is not
					 * dest->name (a durable subscription's topic, a temporary
					 * queue's local name); NULL otherwise */
	struct sub_opts opts;
	char *head;			/* owned; what the sink writes before every delivery of this
					 * subscription (a STOMP MESSAGE's first lines), built by the
					 * sink on first use */
	uint32_t head_len;
	uint32_t unacked;
	uint64_t unacked_bytes;
	struct delivery_list pending;
	uint64_t delivered;
};

/* Creates, attaches to the destination and delivers what is waiting.
 * shown: the name deliveries carry, when not d->name (may be NULL). */
struct sub *sub_new(struct sink *k, struct dest *d, const char *id, const struct sub_opts *o,
                    const char *shown);
/* Detaches and frees. Pending deliveries go back to their queue (queues),
 * or are dropped (topics). */
void sub_free(struct sub *s);
/* Changes flow control, priority and selector in place (a SUBSCRIBE
 * reusing the same id: what it sends now replaces what it sent before). */
void sub_configure(struct sub *s, const struct sub_opts *o);

/* Room for one more delivery? (the sink's, then flow control) */
bool sub_has_room(const struct sub *s);
/* Flow control alone: the subscriber's own window (max unacknowledged
 * messages and bytes) has room. */
bool sub_window_open(const struct sub *s);
/* Does its selector take m (on its `deliveries`th delivery)? True
 * without a selector, at no cost. */
bool sub_accepts(const struct sub *s, const struct msg *m, uint32_t deliveries);
/* Hands m to the sink; keeps it pending unless auto ack. */
void sub_deliver(struct sub *s, struct msg *m, uint32_t deliveries, bool journaled);

/* Acknowledges d (and, cumulative, every earlier delivery on its sub). */
void sub_ack(struct delivery *d, bool cumulative);
/* Returns d (and, cumulative, every earlier one) to the queue. */
void sub_nack(struct delivery *d, bool cumulative);

const char *ack_mode_name(enum ack_mode m);

#endif
