/* broker.h: the one struct that owns all state, passed explicitly.
 *
 * One libevent loop owns everything here; no other thread touches it
 * (the journal's fsync worker only ever sees a file descriptor). */
#ifndef MQ_BROKER_H
#define MQ_BROKER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "config/config.h"
#include "common/frame.h"
#include "common/hmap.h"
#include "core/stats.h"

struct event_base;
struct event;
struct router;
struct store;
struct conn;
struct dest;
struct listener;
struct control;
struct http_server;
struct tls_ctx;

TAILQ_HEAD(conn_list, conn);

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
	struct store *store;		/* owned; persistence (store.h) */
	struct frame_limits limits;	/* derived from cfg */

	struct strmap vhosts;		/* name -> struct vhost *, owned */
	struct vhost *default_vhost;	/* borrowed from vhosts */

	struct conn_list conns;		/* every live connection */
	struct conn_list graveyard;	/* closed, waiting to be freed outside their callbacks */
	struct u64map conns_by_id;	/* id -> struct conn *, borrowed */
	int nconns;
	uint64_t next_conn_id;
	struct event *reap_ev;		/* frees the graveyard */

	struct listener *listeners;	/* owned list */
	struct control *control;	/* owned; the admin socket */
	struct http_server *http;	/* owned; -w */
	struct tls_ctx *tls;		/* owned; -k */

	/* Message ids: the boot number (from the data directory) in the high
	 * bits, a counter in the low bits, so ids never repeat across runs. */
	uint64_t next_msg_id;
	int lock_fd;			/* data directory lock */

	struct frame frame;		/* the one parse scratch: frames are handled one at a time */
	struct broker_stats stats;
	uint64_t started_ms;		/* wall clock */
	uint64_t started_mono_ms;
	uint64_t last_activity_ms;	/* monotonic; for -t */
	uint64_t last_tick_ms;
	double rate_in, rate_out;	/* messages/s over the last tick */
	uint64_t rate_in_prev, rate_out_prev;
	int http_port_bound;		/* the HTTP port actually bound */
	struct event *tick_ev;		/* once a second: rates, idle timeout */
	struct event *signal_ev[3];	/* SIGTERM, SIGINT, SIGHUP */
	bool shutting_down;
	char shutdown_reason[128];
	struct dest *events_dest;	/* /command/events, in the default vhost */

	/* Builds the configuration afresh (file, then command line), for
	 * reloads; set by main, which owns the command line. */
	int (*load_config)(struct config *cfg, struct router **router, char *err, size_t errlen);
	uint64_t reloads, reload_failures;
	char restart_pending[512];	/* options the last reload changed that wait for a restart */

	/* Memory high-watermark: above it, publishing connections are not
	 * read until message memory falls back under 90% of it. */
	uint64_t mem_high;		/* bytes of message memory */
	bool mem_blocked;
	struct event *mem_ev;		/* polls for the way down while blocked */
};

/* Sets up the loop, listeners and data directory from cfg (taken over).
 * NULL with a reason that names the file or address at fault. */
struct broker *broker_new(struct config *cfg, struct router *router, char *err, size_t errlen);
int  broker_run(struct broker *b);		/* until shutdown */
void broker_free(struct broker *b);
/* Starts a graceful shutdown: stop accepting, tell clients, flush. */
void broker_shutdown(struct broker *b, const char *reason);

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
 * says whether this connection should stop being read. */
bool broker_memory_blocked(struct broker *b);
/* SIGHUP and the reload command: loads the configuration and its rules
 * again and swaps them in only if they load; -1 with the reason otherwise,
 * the running configuration untouched. Settings that need a restart
 * (listeners, TLS, HTTP, files, journal) keep their running values, with
 * a warning when the file changed them. */
int broker_reload(struct broker *b, char *err, size_t errlen);
/* -c: JSON with the addresses, written once the broker listens. */
int broker_write_connection_file(struct broker *b, char *err, size_t errlen);

struct vhost *broker_vhost(struct broker *b, const char *host);	/* never NULL */
struct vhost *broker_vhost_find(struct broker *b, const char *name);	/* NULL if not configured */
/* Finds or creates (recovery: a virtual host the journal knows). */
struct vhost *broker_vhost_ensure(struct broker *b, const char *name);

/* Broadcast an event to admin subscribers and the Lua on_event hook.
 * fields: NULL-terminated key, value list. */
void broker_event(struct broker *b, const char *name, const char *const *fields);

#endif
