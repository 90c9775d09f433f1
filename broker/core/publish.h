/* publish.h: the one way a message enters the core.
 *
 * Every producer goes through here, whatever carried the message: a STOMP
 * SEND (over TCP, TLS or WebSocket), an HTTP POST, a /command/ reply, a
 * bridge from another broker. publish() does everything a SEND means:
 * the name checks, authorization, route(), temporary-queue names, the
 * message itself (headers, expiry, persistence), the destinations
 * (created as needed), and the fan-out, which delivers every copy or none.
 *
 * It answers at once: accepted, dropped (nobody takes it), or refused with
 * the reason the producer should read. An accepted message that had to be
 * journaled is durable only once the journal reaches r->seq: a caller that
 * promises durability (a STOMP RECEIPT, an HTTP 201, a bridge's upstream
 * ACK) registers a completion for it with store_when_durable().
 *
 * Two drops protect bridged traffic (docs/bridges.md): a message whose
 * mq-via header names this broker has been here before and is dropped
 * (a loop), and one whose mq-post-id a dedup window holds is a repeat.
 *
 * Transactions split the two halves: publish_prepare() makes the message
 * and checks everything when the SEND arrives, publish_names() delivers it
 * at COMMIT. */
#ifndef MQ_PUBLISH_H
#define MQ_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/frame.h"

struct broker;
struct dedup;
struct dest;
struct msg;
struct principal;
struct sink;
struct vhost;

/* What a producer hands in. All borrowed for the call. */
struct draft {
	const char *dest;		/* the destination as the producer named it */
	const struct frame_hdr *hdrs;	/* its headers, decoded; frame-level ones are left out */
	unsigned nhdrs;
	const void *body;
	size_t body_len;
	/* The headers publish acts on, found by the caller (a STOMP frame
	 * has them at hand from parsing); NULL when absent. */
	const char *expires;		/* absolute ms since the epoch */
	const char *ttl;		/* expiration or x-message-ttl: relative ms */
	const char *persistent;		/* "true" journals it */
	const char *reply_to;		/* a local temporary queue is mapped to its broker-wide name */
	/* A window of recent mq-post-ids of the producer's own (an inbound
	 * bridge's dedup option): a message whose id it holds is dropped as
	 * a repeat, and an accepted one is added. NULL: none. (A queue's
	 * dedup-window option applies whatever the producer.) */
	struct dedup *dedup;
};

enum publish_status {
	PUBLISH_OK,		/* held or delivered; durable once the journal reaches r->seq */
	PUBLISH_DROPPED,	/* nobody takes it: route() dropped it, or no target exists */
	PUBLISH_REFUSED,	/* r->err says why; r->refusal says what kind of no it is */
};

enum publish_refusal {
	REFUSED_BAD_REQUEST,	/* a bad name or header value: the producer's mistake */
	REFUSED_FORBIDDEN,	/* not permitted, or route() refused it */
	REFUSED_UNAVAILABLE,	/* no room (a full queue) or the journal failed: try later */
	REFUSED_INTERNAL,	/* the routing rule failed */
};

struct publish_result {
	enum publish_status status;
	enum publish_refusal refusal;
	uint64_t msg_id;		/* 0 when no message was made */
	uint64_t seq;			/* journal sequence to wait for; 0 when nothing was journaled */
	bool rerouted;			/* route() chose other destinations than the one named */
	bool slow_down;			/* a topic subscriber took it over its output limit, or
					 * a queue's backlog waits behind a consumer that is
					 * full but reading: the producer should wait for room
					 * (sink_wait_for_room) */
	bool duplicate;			/* dropped (or not given to some queue): a repeat of an
					 * mq-post-id taken within a dedup window */
	bool looped;			/* dropped: its mq-via header says it has been here before */
	char err[400];
};

/* A message made and checked, its destinations resolved, not delivered. */
struct publication {
	struct msg *m;			/* ref held */
	struct dest **dests;		/* borrowed; may point to dests_inline */
	size_t ndests;
	struct dest *dests_inline[4];
};

/* Prepare, then deliver. who: the producer (a sink's own principal when
 * it is one). owner: the sink whose temporary queues /temp-queue/NAME
 * means (NULL: the producer has none, such names are dropped). */
enum publish_status publish(struct broker *b, const struct principal *who, struct sink *owner,
                            const struct draft *d, struct publish_result *r);

/* The first half: everything but delivery. On PUBLISH_OK pub holds the
 * message and its destinations; release it with publication_fini(). */
enum publish_status publish_prepare(struct broker *b, const struct principal *who, struct sink *owner,
                                    const struct draft *d, struct publication *pub, struct publish_result *r);
/* The second half: every copy or none (a full queue refuses them all). */
enum publish_status publish_commit(struct broker *b, struct publication *pub, struct publish_result *r);
void publication_fini(struct publication *pub);

/* Does a comma-separated mq-via value (via_len bytes) name broker `id`? */
bool publish_via_names(const char *via, size_t via_len, const char *id);

/* Delivers an already made message to destinations named again now (a
 * transaction's COMMIT: a destination may have gone since the SEND). */
enum publish_status publish_names(struct broker *b, struct vhost *vh, struct msg *m,
                                  char *const *names, size_t n, struct publish_result *r);

#endif
