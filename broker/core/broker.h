/* broker.h: the one struct that owns all state, passed explicitly, and the
 * core's broker-wide services: virtual hosts, message ids, the clock,
 * events, the memory high-watermark, the rates and expiry tick, reload.
 *
 * One libevent loop owns everything here; no other thread touches it
 * (the journal's fsync worker only ever sees a file descriptor). The
 * process wiring (server/server.h) creates and frees it; the faces keep
 * their own state behind the opaque pointers at the end. */
#ifndef MQ_BROKER_H
#define MQ_BROKER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "config/config.h"
#include "common/frame.h"
#include "common/hmap.h"
#include "core/sink.h"
#include "core/stats.h"

struct event_base;
struct event;
struct router;
struct store;
struct dest;
struct conns;
struct listener;
struct control;
struct http_server;
struct tls_ctx;
struct events_tap;
struct auth;

/* A virtual host: its own namespace of destinations. */
struct vhost {
	char *name;			/* owned */
	struct strmap dests;		/* name -> struct dest *, owned */
	struct broker *broker;
};

struct broker {
	struct event_base *base;
	struct config cfg;		/* owned; replaced wholesale on reload */
	struct router *router;		/* owned; NULL without a configuration file */
	struct auth *auth;		/* owned; users, the password verifier, failed logins (auth.h) */
	struct store *store;		/* owned; persistence (store.h) */
	struct frame_limits limits;	/* derived from cfg */

	struct strmap vhosts;		/* name -> struct vhost *, owned */
	struct vhost *default_vhost;	/* borrowed from vhosts */

	struct sink_list sinks;		/* every attached sink (sink.h): connections, ... */
	struct u64map sinks_by_id;	/* id -> struct sink *, borrowed */
	int nsinks;
	uint64_t next_sink_id;
	TAILQ_HEAD(, sink) waiting;	/* producers paused by topic backpressure */
	struct event *room_ev;		/* resumes them, once a loop turn */
	struct event *doom_ev;		/* closes sinks marked by sink_close_later() */
	bool pressed;			/* the current publish reached a full subscriber */

	/* Message ids: the boot number (from the data directory) in the high
	 * bits, a counter in the low bits, so ids never repeat across runs. */
	uint64_t next_msg_id;
	/* This broker's stable name, from the configuration or generated once
	 * and kept in the data directory: what bridges write in a message's
	 * mq-via header, so that it never comes back here (docs/bridges.md). */
	char id[65];
	struct strmap dedups;		/* queues' windows of recent mq-post-ids (dedup.h), owned */
	struct bridges *bridges;	/* owned by the bridge layer (bridge/bridge.h) */

	struct broker_stats stats;
	uint64_t started_ms;		/* wall clock */
	uint64_t started_mono_ms;
	uint64_t last_activity_ms;	/* monotonic; for -t */
	uint64_t last_tick_ms;
	double rate_in, rate_out;	/* messages/s over the last tick */
	uint64_t rate_in_prev, rate_out_prev;
	bool shutting_down;
	char shutdown_reason[128];
	struct dest *events_dest;	/* /command/events, in the default vhost */
	struct events_tap *taps;	/* owned; other listeners of events (events.h) */
	size_t ntaps;

	/* Builds the configuration afresh (file, then command line), for
	 * reloads; set by main, which owns the command line. */
	int (*load_config)(struct config *cfg, struct router **router, char *err, size_t errlen);
	uint64_t reloads, reload_failures;
	char restart_pending[512];	/* options the last reload changed that wait for a restart */

	/* Memory high-watermark: above it, publishing sinks are not read
	 * (they pause themselves after a publish, see broker_memory_blocked)
	 * until message memory falls back under 90% of it; then each is
	 * resumed through its sink operations. */
	uint64_t mem_high;		/* bytes of message memory */
	bool mem_blocked;
	struct event *mem_ev;		/* polls for the way down while blocked */

	/* The process and the faces: owned and used by them, opaque to the
	 * core (server/server.c creates them). */
	int lock_fd;			/* data directory lock */
	struct conns *conns;		/* every STOMP connection (the stomp face) */
	struct listener *listeners;	/* the listening sockets (net) */
	struct lobby *lobby;		/* handshakes wait behind the connected (net) */
	struct control *control;	/* the admin socket (admin) */
	struct http_server *http;	/* -w (the http face) */
	struct tls_ctx *tls;		/* -k (net) */
	int http_port_bound;		/* the HTTP port actually bound */
	struct event *tick_ev;		/* once a second: broker_tick(), idle timeout */
	struct event *signal_ev[3];	/* SIGTERM, SIGINT, SIGHUP */
	/* The graceful shutdown the process performs (stop accepting, tell
	 * every sink, flush): what broker_shutdown() asks for. */
	void (*shutdown_hook)(struct broker *b, const char *reason);
};

/* Sets up the core's own state on b (the loop and cfg are there): the
 * virtual hosts, the built-in destinations, the journal, the configured
 * destinations. NULL-safe teardown in broker_core_fini(). */
int broker_core_init(struct broker *b, char *err, size_t errlen);
void broker_core_fini(struct broker *b);
/* Asks the process to shut down gracefully: stop accepting, tell every
 * client, flush. */
void broker_shutdown(struct broker *b, const char *reason);
/* Once a second: rates over the last `secs`, expired messages swept. */
void broker_tick(struct broker *b, double secs);

uint64_t broker_next_msg_id(struct broker *b);
/* Wall clock in ms as of this loop turn: no system call per message. */
uint64_t broker_now_ms(struct broker *b);
/* Every destination of every virtual host (only `type`, or all but the
 * built-in command ones when type < 0), sorted by virtual host and name,
 * in an array the caller frees. A snapshot: safe to create or delete
 * destinations while walking it (not to free the ones in it). */
struct dest **broker_dests(struct broker *b, int type, size_t *n);
/* Frame limits from cfg (after a reload too). */
void broker_apply_limits(struct broker *b);
/* Creates the destinations the configuration lists. */
int broker_create_configured(struct broker *b, char *err, size_t errlen);
/* After a SEND: starts blocking producers when over the watermark, and
 * says whether the producer should stop being read. */
bool broker_memory_blocked(struct broker *b);
/* SIGHUP and the reload command: loads the configuration and its rules
 * again and swaps them in only if they load; -1 with the reason otherwise,
 * the running configuration untouched. Settings that need a restart
 * (listeners, TLS, HTTP, files, journal) keep their running values, with
 * a warning when the file changed them. */
int broker_reload(struct broker *b, char *err, size_t errlen);

struct vhost *broker_vhost_find(struct broker *b, const char *name);	/* NULL if not configured */
/* Finds or creates (recovery: a virtual host the journal knows; vhost add). */
struct vhost *broker_vhost_ensure(struct broker *b, const char *name);
/* Deletes a virtual host (vhost delete): its clients are closed with
 * `why`, its destinations deleted with what they hold. -1 with the
 * reason when a destination cannot go; the default one never goes. */
int broker_vhost_delete(struct broker *b, struct vhost *vh, const char *why, char *err, size_t errlen);

/* Broadcasts an event (events.h): admin listeners, /command/events and
 * the Lua on_event hook. fields: NULL-terminated key, value list. */
void broker_event(struct broker *b, const char *name, const char *const *fields);

#endif
