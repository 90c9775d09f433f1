/* store.h: persistence of queues, between the destinations and the journal.
 *
 * Which copies are durable: every message in a queue configured persistent,
 * and every message sent with persistent:true to any queue (never topics,
 * never temporary queues). Each such queue has a journal queue id (qid) and
 * a META record describing it (name, type, options, paused, pubsub
 * children, the topic of a durable subscription); so do configured
 * destinations, so that the topology comes back after a restart.
 *
 * Whoever must wait for a write to be durable (a STOMP receipt, an HTTP
 * reply, a bridge's upstream acknowledgement) registers a completion for
 * the journal sequence the publish handed back; the store calls it once
 * the journal has synced that far, or has failed to. */
#ifndef MQ_STORE_H
#define MQ_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/queue.h>

struct broker;
struct dest;
struct msg;

/* Opens DATA_DIR/journal and rebuilds every journaled destination and
 * message. Logs what it recovered and how long it took. */
int store_open(struct broker *b, char *err, size_t errlen);
/* Flushes and syncs. NULL-safe. */
void store_close(struct broker *b);

/* Should q's copy of m be journaled? */
bool store_wants(const struct dest *q, const struct msg *m);
/* Journals q's copy of m; returns the sequence a receipt waits for, or 0
 * with the reason in err (disk full, I/O error): the message must then be
 * refused. */
uint64_t store_enqueue(struct dest *q, struct msg *m, char *err, size_t errlen);
/* q's copy of message `id` is gone (acknowledged, expired, dropped, purged). */
void store_remove(struct dest *q, uint64_t id);
/* Reads a paged-out message back; NULL (logged) when it cannot be read. */
struct msg *store_load(struct dest *q, uint64_t id);

/* Topology: a destination was created or changed (options, paused,
 * children), or deleted. */
void store_dest_changed(struct dest *d);
void store_dest_deleted(struct dest *d);

/* Topology records of the layers above the core (bridges), each under a
 * key prefix of its own ("b:NAME"): a JSON value kept with the
 * destinations' records across restarts. No-ops without a store. */
void store_meta_put(struct broker *b, const char *key, const char *json, size_t len);
void store_meta_del(struct broker *b, const char *key);
/* The records recovery found under `prefix`, for the layer that owns
 * them (asked once, after broker_core_init). */
void store_meta_each(struct broker *b, const char *prefix,
                     void (*fn)(void *arg, const char *key, const char *val, size_t len), void *arg);

/* Highest sequence known durable; 0 without a store. */
uint64_t store_durable_seq(const struct broker *b);

/* Someone waiting for the journal. */
struct completion {
	TAILQ_ENTRY(completion) link;	/* the store's waiting list, while waiting */
	uint64_t seq;			/* the journal sequence waited for */
	bool waiting;
	/* err 0: durable; else the errno of the write that failed. Called
	 * from the loop; may cancel other completions, not this one. */
	void (*done)(struct completion *c, int err);
};
TAILQ_HEAD(completion_list, completion);

/* Calls c->done once seq is durable. Returns false, registering nothing,
 * when it already is (or nothing was journaled: seq 0). */
bool store_when_durable(struct broker *b, struct completion *c, uint64_t seq);
/* Stops waiting (the waiter is going away); fine when not waiting. */
void store_cancel(struct broker *b, struct completion *c);

/* Figures for stats and /metrics; false without a store. */
struct journal_stats;
bool store_stats(const struct broker *b, struct journal_stats *st);

#endif
