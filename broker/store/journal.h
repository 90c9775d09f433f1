/* journal.h: the store seam under the queues. An append-only journal in
 * segment files, with group commit, recovery and compaction.
 *
 * The journal knows nothing of STOMP, queues or messages beyond ids and
 * opaque bytes:
 *   - a MESSAGE record stores a payload (the broker's serialised headers and
 *     body) under a 64-bit message id, enqueued on one queue id;
 *   - an ENQUEUE record adds an already stored message to another queue
 *     (pubsub fan-out, dead-lettering);
 *   - a REMOVE record takes a message off one queue (ack, expiry, purge);
 *     when it is off every queue it is dead and its bytes become garbage;
 *   - META records are key/value upserts and deletes for the topology
 *     (queues created, pubsub children, paused state); the journal keeps
 *     the live set in memory and rewrites it at the head of every new
 *     segment, so deleting old segments never loses topology.
 * Every record carries its length and a CRC32C. Recovery cuts a torn tail,
 * skips damaged records (resynchronising on the next valid one), sets a
 * damaged file aside before rewriting it, and reports what it lost.
 *
 * Appends never block the event loop: records are buffered and written
 * once per loop iteration (or when the buffer fills); a worker thread runs
 * fdatasync so that one fsync covers everything written since the last
 * (group commit). Durability is reported through on_durable on the loop's
 * thread, in sequence order.
 *
 * Lifetime: journal_open() -> journal_recover() (exactly once, before any
 * append) -> appends ... -> journal_close() (flushes and syncs). */
#ifndef MQ_JOURNAL_H
#define MQ_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"	/* enum fsync_policy */

struct event_base;
struct journal;

struct journal_opts {
	const char *dir;		/* journal directory; created if missing */
	enum fsync_policy fsync;
	unsigned fsync_interval_ms;	/* FSYNC_INTERVAL */
	uint64_t segment_size;		/* roll to a new segment past this size */
};

/* Called on the loop thread once records up to and including `seq` are
 * durable under the policy (for FSYNC_NEVER: once written). When a write or
 * sync fails, it is called with err != 0 (an errno value) for the records
 * in [first_failed, seq] that did not make it; those records are not in the
 * journal, and later appends fail fast with the same errno until a probe
 * write succeeds again (the journal retries by itself every second). */
typedef void (*journal_durable_cb)(void *arg, uint64_t seq, uint64_t first_failed, int err);
/* Each sequence number is reported exactly once, either durable or failed,
 * and reports only move forward: a failure report comes after the durable
 * report for everything before first_failed, and a later on_durable(seq)
 * covers only the records after the failed range, never revives them.
 * The journal appends records of its own (META snapshots at the head of a
 * new segment, compaction copies), so reports also cover numbers that no
 * append returned. on_durable may append; it must not close the journal. */

/* Opens (creating if needed) the journal in opts->dir. The broker holds the
 * data directory's lock before it calls this; the journal takes none. */
struct journal *journal_open(struct event_base *base, const struct journal_opts *opts,
                             journal_durable_cb on_durable, void *arg,
                             char *err, size_t errlen);
/* Flushes, syncs, joins the worker. NULL is fine. No callback runs from
 * here on: records that become durable during close are not reported. */
void journal_close(struct journal *j);

/* ---- recovery ---- */

struct journal_recovery {
	uint64_t segments;		/* segment files read */
	uint64_t records;		/* valid records read */
	uint64_t messages;		/* live messages (per queue) handed back */
	uint64_t dropped_bytes;		/* torn tail of the newest segment cut off */
	uint64_t dropped_records;	/* ... and how many records that was, at least 1 if bytes > 0 */
	uint64_t skipped_bytes;		/* damage skipped anywhere else */
	uint64_t skipped_records;	/* ... at least one record per damaged place */
	uint64_t damaged_segments;	/* rewritten without their damage, the originals set aside */
	uint64_t max_msg_id;		/* highest message id seen, for the id generator */
	double seconds;
};

struct journal_replay {
	/* Each live META key with its latest value, in no particular order. */
	void (*meta)(void *arg, const char *key, const void *val, size_t len);
	/* Each live (queue, message) pair, grouped by queue id and in message
	 * id order within a queue. `payload` is only valid during the call.
	 * A message on several queues is handed back once per queue. */
	void (*message)(void *arg, uint32_t qid, uint64_t msg_id, const void *payload, size_t len);
};

/* Reads every segment, cuts a torn tail, skips damage, and replays the
 * live state. */
int journal_recover(struct journal *j, const struct journal_replay *cb, void *arg,
                    struct journal_recovery *stats, char *err, size_t errlen);

/* ---- appending ---- (each returns the record's sequence number, > 0;
 * 0 when the journal is failing, with errno set to the cause)
 *
 * An append that cannot mean anything is refused the same way, with its
 * own errno, and nothing is written:
 *   put_message  EEXIST  the id is already stored (use journal_enqueue)
 *                EMSGSIZE  the payload is larger than a record holds (1 GiB)
 *   enqueue      ENOENT  the id is not a live message
 *   remove       ENOENT  the message is not on that queue
 *   meta_put     EINVAL  empty key, or a key over 65535 bytes
 *   meta_del     ENOENT  the key is not set
 * A message's queues are a set: enqueuing it on a queue it is already on
 * changes nothing. */

uint64_t journal_put_message(struct journal *j, uint32_t qid, uint64_t msg_id,
                             const void *payload, size_t len);
uint64_t journal_enqueue(struct journal *j, uint32_t qid, uint64_t msg_id);
uint64_t journal_remove(struct journal *j, uint32_t qid, uint64_t msg_id);
uint64_t journal_meta_put(struct journal *j, const char *key, const void *val, size_t len);
uint64_t journal_meta_del(struct journal *j, const char *key);

/* Highest sequence number known durable. */
uint64_t journal_durable_seq(const struct journal *j);
/* Writes buffered records now (normally done once per loop iteration). */
void journal_flush(struct journal *j);

/* ---- reading back ---- */

/* Copies a live message's payload into a new malloc'd buffer (for queues
 * whose bodies were paged out of memory). -1 if the id is not live. */
int journal_read_message(struct journal *j, uint64_t msg_id, void **payload, size_t *len);

/* ---- figures, for stats and /metrics ---- */

struct journal_stats {
	uint64_t segments;
	uint64_t disk_bytes;		/* all segment files */
	uint64_t live_bytes;		/* payloads still referenced */
	uint64_t live_messages;
	uint64_t appends;
	uint64_t fsyncs;
	uint64_t bytes_written;
	uint64_t compactions;		/* segments rewritten */
	uint64_t segments_deleted;
	int failing_errno;		/* 0 when healthy */
};
void journal_get_stats(const struct journal *j, struct journal_stats *st);

#endif
