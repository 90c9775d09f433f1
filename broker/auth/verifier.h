/* verifier.h: password checks that never stall the event loop.
 *
 * A PBKDF2 verification at the default cost takes about 0.2 s of CPU
 * (docs/security.md has the figure measured by tests/bench/auth_bench), so
 * the loop could afford a handful per second; a reconnect storm brings
 * thousands. Two things keep the loop free:
 *
 * - Worker threads run the hash and hand the result back to the loop
 *   through an eventfd. Logins waiting for the same (login, password,
 *   stored hash) share one computation.
 * - A cache of recently verified logins answers at once. It keeps no
 *   password: an entry is named by HMAC-SHA256 under a key drawn at random
 *   when the verifier is made, over login and password, and holds the
 *   stored hash it was checked against, so it stops matching the moment
 *   that hash changes (passwd, delete). It is bounded
 *   (least recently used dropped first) and an entry unused for
 *   cache_idle_ms is dropped. Only successes are cached.
 *
 * Plain-text passcodes (old configuration files) are compared at once.
 *
 * Everything here but the workers runs on the loop's thread, and every
 * callback is called from the loop, never from inside verifier_check(). */
#ifndef MQ_VERIFIER_H
#define MQ_VERIFIER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct verifier;
struct verify_req;

enum verify_status {
	VERIFY_OK = 0,		/* the password is right */
	VERIFY_WRONG,		/* it is not */
	VERIFY_PENDING,		/* a worker is on it: the callback will say */
	VERIFY_BUSY,		/* too many hashes waiting for a worker: refuse this login for now */
	VERIFY_ERROR,		/* the stored hash does not parse (passwd_parse says why) */
};

const char *verify_status_name(enum verify_status s);

/* The outcome of a VERIFY_PENDING check: VERIFY_OK, VERIFY_WRONG or VERIFY_ERROR. */
typedef void (*verify_cb)(enum verify_status status, void *arg);
/* The outcome of verifier_hash(): a hash string, or NULL and the reason. */
typedef void (*verify_hash_cb)(const char *hash, const char *err, void *arg);

struct verifier_opts {
	unsigned threads;		/* workers (default 1) */
	size_t cache_size;		/* entries (default 1024) */
	uint64_t cache_idle_ms;		/* an entry unused this long is dropped (default 600000) */
	size_t max_queue;		/* hashes waiting for a worker before new ones are refused (default 256) */
	uint64_t (*clock_ms)(void);	/* monotonic milliseconds; NULL = mono_ms (tests set their own) */
};

struct verifier_stats {
	uint64_t hits;			/* answered from the cache */
	uint64_t computed;		/* hashes a worker ran */
	uint64_t joined;		/* checks that waited on a hash already under way */
	uint64_t wrong;			/* wrong passwords */
	uint64_t busy;			/* refused: the queue was full */
	size_t cached;			/* entries in the cache now */
	size_t queued;			/* hashes waiting for a worker now */
};

/* Starts the workers and watches their eventfd on base. NULL opts, or zero
 * fields, take the defaults. NULL with the reason. */
struct verifier *verifier_new(struct event_base *base, const struct verifier_opts *opts, char *err,
                              size_t errlen);
/* Stops the workers (a hash under way is finished first) and drops every
 * outstanding request without calling its callback. */
void verifier_free(struct verifier *v);

/* Is `password` right for `login`, whose stored credential is `stored` (a
 * hash string, or a plain-text passcode from an old configuration file)?
 * The answer is returned at once unless it is VERIFY_PENDING: then cb(arg)
 * gets it from the loop later, and *req identifies the request until then,
 * for verifier_cancel(). The strings are copied. */
enum verify_status verifier_check(struct verifier *v, const char *login, const char *password,
                                  const char *stored, verify_cb cb, void *arg, struct verify_req **req);

/* Hashes a new password on a worker (user add, user passwd): cb(arg) gets
 * the string from the loop. iterations 0 = the default. Never refused. */
struct verify_req *verifier_hash(struct verifier *v, const char *password, unsigned iterations,
                                 verify_hash_cb cb, void *arg);

/* The callback of req will not be called (its connection went away). A
 * hash nobody waits for any more is not started. */
void verifier_cancel(struct verifier *v, struct verify_req *req);

/* Drops the cache entries of login (after user passwd or user delete; the
 * stored-hash digest already keeps them from matching, this frees them). */
void verifier_forget(struct verifier *v, const char *login);

void verifier_get_stats(struct verifier *v, struct verifier_stats *out);

#endif
