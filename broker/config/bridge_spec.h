/* bridge_spec.h: what a bridge is told to do, as data.
 *
 * A bridge is described by NAME=VALUE words, the same whichever way it
 * comes in: the `bridges` table of the configuration file (router_config.c
 * turns each entry into words), `bridge add NAME WORD...` from mqsh, and
 * the bridge's META record in the journal (its words again). One parser
 * checks them all, so that the three share their error text. The bridge
 * layer (bridge/) runs what a spec describes; docs/bridges.md lists every
 * word. */
#ifndef MQ_BRIDGE_SPEC_H
#define MQ_BRIDGE_SPEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum bridge_direction {
	BRIDGE_OUT,		/* local destinations -> a remote broker */
	BRIDGE_IN,		/* a remote subscription -> a local destination */
};

struct bridge_header {
	char *name;		/* owned */
	char *value;		/* owned */
};

struct bridge_spec {
	char *name;			/* owned */
	enum bridge_direction direction;
	bool direction_set;
	char *from;			/* owned; out: a local destination or a pattern with '*';
					 * in: the remote destination subscribed to */
	char *to;			/* owned; out: the remote destination (NULL: the local
					 * name); in: the local destination */
	char **hosts;			/* owned; "host", "host:port", "[v6]:port" */
	size_t nhosts;
	char *login, *passcode;		/* owned; for the remote broker */
	char *remote_vhost;		/* owned; CONNECT's host header (NULL: the host's name) */
	char *vhost;			/* owned; the local virtual host (NULL: the default one) */
	char *local_login;		/* owned; inbound: the login its messages are published
					 * under (NULL: "bridge:NAME") */
	bool tls;
	char *tls_cert_key, *tls_ca_chain, *tls_server_name;	/* owned */
	uint32_t window;		/* unconfirmed messages at once, each way */
	uint64_t heartbeat_ms;		/* 0: none */
	uint64_t reconnect_min_ms, reconnect_max_ms;
	uint64_t connect_timeout_ms;	/* one attempt (TCP, TLS, CONNECTED); the first connection
					 * tries host after host this long before it reports failing */
	uint64_t stall_ms;		/* alarm when nothing moves this long with messages
					 * pending; 0: never */
	uint64_t dedup_ms;		/* inbound: drop repeats of an mq-post-id seen this
					 * recently; 0: keep them */
	struct bridge_header *subscribe_headers;	/* owned; inbound SUBSCRIBE */
	size_t nsubscribe_headers;
	struct bridge_header *send_headers;		/* owned; outbound SEND */
	size_t nsend_headers;
	bool paused;			/* created paused */
	bool configured;		/* from the configuration file (else added at run time) */
};

/* Defaults: window 1000, heart-beats 10 s, reconnection 100 ms..30 s,
 * connect timeout 10 s, stall alarm 60 s, no deduplication. */
void bridge_spec_init(struct bridge_spec *s, const char *name);
void bridge_spec_fini(struct bridge_spec *s);
void bridge_spec_copy(struct bridge_spec *dst, const struct bridge_spec *src);

/* One word: -1 with the reason ("window: expected a number 1..100000,
 * got 'x'"). Names take '-' or '_'. Repeatable words (subscribe-header,
 * send-header) add; hosts replaces. */
int bridge_spec_set(struct bridge_spec *s, const char *key, const char *value, char *err, size_t errlen);
/* After the last word: what is required is there and fits together. */
int bridge_spec_check(const struct bridge_spec *s, char *err, size_t errlen);

/* Is this a name a bridge may have? (letters, digits, '-', '_', '.';
 * 1..64 characters) */
/* The longest bridge name bridge_name_ok() accepts. */
#define BRIDGE_NAME_MAX 64
bool bridge_name_ok(const char *name, char *err, size_t errlen);

/* Calls fn for every word that describes s, in the form bridge_spec_set
 * takes back (the passcode included: for the journal, never for listings). */
void bridge_spec_words(const struct bridge_spec *s, void (*fn)(void *arg, const char *key, const char *value),
                       void *arg);

/* Does `name` match a pattern of bridge_spec.from ('*' matches any run of
 * characters, '/' included)? A name without '*' matches only itself. */
bool bridge_pattern_match(const char *pattern, const char *name);
static inline bool bridge_is_pattern(const char *from)
{
	return strchr(from, '*') != NULL;
}

const char *bridge_direction_name(enum bridge_direction d);

#endif
