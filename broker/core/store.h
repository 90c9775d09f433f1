/* store.h: persistence of queues, between the destinations and the journal.
 *
 * Which copies are durable: every message in a queue configured persistent,
 * and every message sent with persistent:true to any queue (never topics,
 * never temporary queues). Each such queue has a journal queue id (qid) and
 * a META record describing it (name, type, options, paused, pubsub
 * children, the topic of a durable subscription); so do configured
 * destinations, so that the topology comes back after a restart.
 *
 * A receipt for a durable SEND waits for the journal: dest_send() hands
 * back the sequence number, conn_receipt() holds the receipt until
 * store reports it durable. */
#ifndef MQ_STORE_H
#define MQ_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* Highest sequence known durable; 0 without a store. */
uint64_t store_durable_seq(const struct broker *b);

/* Figures for stats and /metrics; false without a store. */
struct journal_stats;
bool store_stats(const struct broker *b, struct journal_stats *st);

#endif
