/* slowdown.h: failed logins per peer address, and how long to make that
 * peer wait for its next answer.
 *
 * The caller asks slowdown_delay() when a login attempt arrives and holds
 * the answer back that long, whatever the outcome: were a success
 * answered at once, a guesser could give up on any attempt that takes
 * longer and lose nothing to the delay. A failure is then recorded with
 * slowdown_failed(). The first few failures cost nothing (people mistype),
 * then each one doubles the delay up to a ceiling. A success does not
 * clear the record: someone holding one valid account could otherwise
 * reset it between guesses at others. Instead, failures are forgotten one
 * per decay period of quiet.
 *
 * Peers are keyed by address without the port: an IPv4 address whole, an
 * IPv6 address by its /64 (one subscriber's prefix, as cheap to an
 * attacker as one address). The table holds at most `capacity` records;
 * a failure from a new peer when it is full drops the record whose last
 * failure is oldest, so memory stays bounded however many addresses an
 * attack comes from.
 *
 * A pure data structure: time is passed in (milliseconds, monotonic), and
 * nothing here sleeps or logs. */
#ifndef MQ_SLOWDOWN_H
#define MQ_SLOWDOWN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct slowdown_opts {
	size_t capacity;		/* records kept (default 4096) */
	unsigned free_failures;		/* failures answered without delay (default 3) */
	uint64_t base_ms;		/* the first delay (default 250) */
	uint64_t max_ms;		/* the ceiling (default 8000) */
	uint64_t decay_ms;		/* one failure forgotten per this much quiet (default 60000) */
};

struct slowdown_stats {
	uint64_t failures;		/* recorded since start */
	uint64_t delayed;		/* answers held back (slowdown_delay() > 0) */
	uint64_t evicted;		/* records dropped to make room */
	size_t records;			/* peers with a record now */
	size_t peak;			/* most records held at once */
};

/* A peer address reduced to what identifies it here. */
struct slowdown_key {
	unsigned char b[16];
};

struct slowdown;

/* NULL opts, or zero fields, take the defaults. */
struct slowdown *slowdown_new(const struct slowdown_opts *opts);
void slowdown_free(struct slowdown *s);

/* The key of a peer written as the broker writes it: "192.0.2.7:50122",
 * "[2001:db8::1]:50122", or an address alone. Text that is no address
 * ("unix") gets a key of its own that no address can have. */
void slowdown_key(const char *peer, struct slowdown_key *k);

/* How long this peer's next answer must wait, in milliseconds. */
uint64_t slowdown_delay(struct slowdown *s, const char *peer, uint64_t now_ms);
/* Records a failed login; returns the peer's failures now counted. */
unsigned slowdown_failed(struct slowdown *s, const char *peer, uint64_t now_ms);
/* Failures counted against the peer now (after decay). */
unsigned slowdown_failures(struct slowdown *s, const char *peer, uint64_t now_ms);
/* Drops records whose failures have all decayed: call from a timer. */
void slowdown_expire(struct slowdown *s, uint64_t now_ms);
void slowdown_get_stats(const struct slowdown *s, struct slowdown_stats *out);

#endif
