/* dest.h: destinations (topic, queue, pubsub, command) and the registry
 * of each virtual host.
 *
 * A destination's type comes from its name (config_dest_type: the Lua
 * rules first, then the /queue/, /pubsub/, /command/ prefixes, else
 * topic). Topics are transient: created by a SUBSCRIBE and gone with their
 * last subscriber, unless configured. Queues hold messages until a
 * consumer takes them and live until deleted. A pubsub replicates into its
 * child queues. queue.c, topic.c and pubsub.c hold each kind's behaviour. */
#ifndef MQ_DEST_H
#define MQ_DEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

#include "core/broker.h"
#include "config/config.h"

struct msg;
struct sub;
struct sink;

TAILQ_HEAD(sub_list, sub);

/* One message held by a queue. The queue's own state for it (delivery
 * count) lives here, not in the message, since a message may sit in
 * several queues at once. */
struct qitem {
	union {
		struct msg *m;		/* ref held, while in memory */
		uint64_t id;		/* while paged out: read back from the journal */
	};
	uint32_t deliveries;		/* times delivered so far */
	uint32_t len : 28;		/* body bytes (record bytes while paged out after a restart) */
	uint32_t taken : 1;		/* delivered out of order: an empty slot, skipped */
	uint32_t journaled : 1;		/* this queue's copy has a journal record to remove */
	uint32_t paged : 1;		/* only the id is in memory */
	uint32_t recovered : 1;		/* came back after a restart: delivered as redelivered */
};

struct dest {
	enum dest_type type;
	char *name;			/* owned; the key in vhost->dests */
	struct vhost *vhost;		/* borrowed */
	uint32_t qid;			/* journal queue id; 0 until registered */
	bool configured;		/* created by configuration or admin: kept when idle */
	bool paused;			/* queues: accept, but do not deliver */
	bool dispatching;		/* queue_dispatch is on the stack: do not re-enter */
	struct sink *owner;		/* temporary queues: the sink they die with (tempq.h) */
	char *durable_topic;		/* owned; durable subscription queues: the topic they collect */
	struct queue_opts opts;		/* queues */

	struct sub_list subs;		/* queues: by priority, highest first */
	int nsubs;
	struct sub *rr;			/* queues: the subscriber served last */

	struct qitem *items;		/* queues: ring buffer, owned */
	size_t head, count, cap;	/* count includes the taken slots */
	size_t holes;			/* queues: taken slots in the ring (never at its head) */
	struct qitem *parked;		/* queues: messages no subscriber's selector matches, oldest
					 * first, set aside until a new subscriber comes; owned */
	size_t nparked, parked_cap;
	int nsel;			/* queues: subscribers with a selector */
	struct strmap groups_owned;	/* queues: message group -> struct qgroup *, owned (groups.c) */
	uint64_t bytes;			/* body bytes held */
	uint64_t paged;			/* messages paged out to the journal */
	uint64_t paged_bytes;
	uint64_t unacked;		/* deliveries in flight */

	struct strmap groups;		/* topics under -r: client-id -> struct rr_group *, owned */
	struct dest **children;		/* pubsub: child queues; topic: durable subscription
					 * queues. Borrowed; owned by the vhost */
	size_t nchildren;

	/* counters; rates are derived by the stats tick from these */
	uint64_t messages_in;
	uint64_t messages_out;
	uint64_t dropped;
	uint64_t expired;
	uint64_t dead_lettered;
	uint64_t redelivered;
	uint64_t rate_in_prev, rate_out_prev;	/* counters at the last tick */
	double rate_in, rate_out;		/* messages/s over the last tick */
};

enum send_status {
	SEND_OK,		/* held or delivered */
	SEND_DROPPED,		/* nobody to take it (topic without subscriber...), counted */
	SEND_REJECTED,		/* refused: err says why (full queue, command, ...) */
};

/* Looks a destination up; NULL if it does not exist. */
struct dest *dest_find(struct vhost *vh, const char *name);
/* Finds or creates (by the type rules). Never NULL for a valid name;
 * NULL with err for a name that is not acceptable. */
struct dest *dest_get(struct vhost *vh, const char *name, char *err, size_t errlen);
/* Where a SEND goes: found or created, except a topic nobody subscribes
 * to, which is not created (*absent_topic is set and NULL returned: the
 * message is dropped and counted). NULL with err for a bad name. */
struct dest *dest_for_send(struct vhost *vh, const char *name, bool *absent_topic, char *err, size_t errlen);
/* Creates explicitly (configuration, admin). NULL with err if it exists
 * with another type or the name is bad. An existing destination of the same type is
 * marked configured and its options updated. */
struct dest *dest_create(struct vhost *vh, const char *name, enum dest_type type,
                         const struct queue_opts *opts, char *err, size_t errlen);
/* The built-in command destinations (/command/events). */
struct dest *dest_create_builtin(struct vhost *vh, const char *name, enum dest_type type);
/* Deletes; refuses when it has subscribers unless force. */
int dest_delete(struct dest *d, bool force, char *err, size_t errlen);
/* Frees a topic that nobody subscribes to any more (unless configured). */
void dest_release_if_idle(struct dest *d);
/* Frees every destination of a vhost (shutdown). */
void dest_free_all(struct vhost *vh);
/* Is this a syntactically acceptable destination name? */
bool dest_name_ok(const char *name, char *err, size_t errlen);
/* False, with the reason, for names clients and operators may not use
 * for new destinations (checked where names come in; recovery from the
 * journal does not): a bare prefix such as "/queue/", and the queues
 * behind durable subscriptions (/durable/...), reached through their
 * topic, never by name. */
bool dest_name_open(const char *name, char *err, size_t errlen);

/* Would dest_send() refuse m (a full queue with overflow=reject)? Asked of
 * every target of a fan-out first, so that a refusal delivers nothing
 * rather than some copies. (A journal write can still fail later.) */
bool dest_would_refuse(const struct dest *d, const struct msg *m, char *err, size_t errlen);
/* Sends one message (reference borrowed; holders take their own). *seq is
 * raised to the journal sequence a durable copy must wait for (unchanged
 * when nothing was journaled). Only publish.c and the core's own moves
 * (dead letters, redrive, durable subscriptions) call it: producers go
 * through publish(). */
enum send_status dest_send(struct dest *d, struct msg *m, uint64_t *seq, char *err, size_t errlen);

/* ---- queue.c ---- */
/* Messages the queue holds (in the ring and set aside). */
static inline size_t queue_depth(const struct dest *q)
{
	return q->count - q->holes + q->nparked;
}
/* A subscriber came, or changed what it takes: messages set aside because
 * nobody's selector matched them go back to the head, in order. */
void queue_unpark(struct dest *q);
/* Appends a message; false when it was not kept (already expired).
 * journaled: the journal holds this queue's copy (see store.h); such a
 * message is paged out when the queue is over its memory budget. */
bool queue_push(struct dest *q, struct msg *m, uint32_t deliveries, bool journaled);
/* Appends a journaled message by id only (recovery beyond the budget). */
void queue_push_paged(struct dest *q, uint64_t id, size_t len, bool recovered);
bool queue_over_budget(const struct dest *q);
/* Producer flow control: more than max_output waits in q behind a
 * consumer that is full but still reading (its output moved within
 * QUEUE_MOVING_MS). The producer should slow down as for a topic
 * (publish_result.slow_down). */
#define QUEUE_MOVING_MS 1000
bool queue_wants_slowdown(const struct dest *q);
/* When the broker took the oldest message q holds (ms since the epoch);
 * 0 when it holds none, or when that one is paged out to the journal. */
uint64_t queue_oldest_ms(const struct dest *q);
/* Pops the head, read back if paged out; NULL when empty. Reference is the caller's. */
struct msg *queue_take_head(struct dest *q, uint32_t *deliveries, bool *journaled);
uint64_t qitem_id(const struct qitem *it);
/* Prepends: a delivery that came back. */
void queue_push_front(struct dest *q, struct msg *m, uint32_t deliveries, bool journaled);
/* Delivers as much as subscribers have room for. */
void queue_dispatch(struct dest *q);
/* Removes every held message; returns how many. */
uint64_t queue_purge(struct dest *q);
/* A delivery that came back unacknowledged (NACK, disconnect, unsubscribe). */
void queue_return(struct dest *q, struct msg *m, uint32_t deliveries, bool journaled);
/* An acknowledged delivery: the queue forgets it for good. */
void queue_acked(struct dest *q, uint64_t id, bool journaled);
/* Past its expiry (the message's expires header or the queue's ttl)? */
bool queue_expired(const struct dest *q, const struct msg *m, uint64_t now);
/* Drops expired messages from the head (the broker's tick calls it). */
void queue_sweep(struct dest *q, uint64_t now);
/* Moves m (off q) to q's dead-letter queue with headers saying where it
 * came from and why; drops it when there is none. explicit_only: only
 * when the queue names a dead-letter destination itself. */
/* Where q's dead letters go (buf may be used), or NULL when they are
 * dropped. explicit_only: only a configured dead-letter destination counts
 * (expired and overflowing messages); else the default DLQ.<name> too
 * (messages past their delivery limit). */
const char *queue_dead_letter_name(const struct dest *q, bool explicit_only, char *buf, size_t len);
void queue_dead_letter(struct dest *q, struct msg *m, uint32_t deliveries, bool journaled,
                       const char *reason, bool explicit_only);

/* ---- groups.c ---- */
struct qgroup {
	struct sub *owner;		/* borrowed */
	uint64_t messages;		/* given to its owners so far */
	char name[];			/* the key in q->groups_owned */
};
/* The consumer that owns `group` on q, or NULL. */
struct sub *groups_owner(struct dest *q, const char *group);
/* s takes a message of `group`: the group is s's if nobody owns it, and
 * its owner's count of messages goes up. */
void groups_assign(struct dest *q, const char *group, struct sub *s);
/* s leaves: the groups it owned are free to be given again. */
void groups_forget_sub(struct dest *q, struct sub *s);
void groups_free(struct dest *q);

/* ---- topic.c ---- */
enum send_status topic_publish(struct dest *t, struct msg *m);

/* ---- pubsub.c ---- */
enum send_status pubsub_publish(struct dest *p, struct msg *m, uint64_t *seq, char *err, size_t errlen);
int pubsub_attach(struct dest *p, struct dest *child, char *err, size_t errlen);
int pubsub_detach(struct dest *p, struct dest *child, char *err, size_t errlen);
/* Removes child from every pubsub or topic of its vhost (child deleted). */
void pubsub_forget_child(struct dest *child);

/* ---- durable topic subscriptions (topic.c) ---- */
/* The queue that collects `topic`'s messages for durable subscription
 * `key` (client-id:name), created and attached as needed. A durable name
 * reused for another topic moves there, its backlog purged. */
struct dest *durable_get(struct dest *topic, const char *key, char *err, size_t errlen);
struct dest *durable_find(struct vhost *vh, const char *key);

#endif
