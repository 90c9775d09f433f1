/* config.h: every setting of the broker, with its default, in one struct.
 *
 * Scalar settings are described by one table (config.c, in the manner of
 * Redis's static_configs[]): name, type, bounds, default and help. The
 * command line, the Lua configuration file and the admin commands all set
 * them through config_set(), so they share validation and error text.
 * Structured settings (listeners, virtual hosts, users, destinations and
 * destination-type rules) are filled by the Lua loader (router.c) with
 * the helpers below. */
#ifndef MQ_CONFIG_H
#define MQ_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/bridge_spec.h"

enum dest_type {
	DEST_TOPIC = 0,		/* transient fan-out to current subscribers */
	DEST_QUEUE,		/* stored until consumed, one consumer per message */
	DEST_PUBSUB,		/* replicates into its child queues */
	DEST_COMMAND,		/* the administrative interface */
};

const char *dest_type_name(enum dest_type t);
/* "topic", "queue", "pubsub", "command"; -1 if unknown */
int dest_type_from(const char *s);

enum overflow_policy {
	OVERFLOW_DROP_OLDEST = 0,	/* make room by dropping (or dead-lettering) the head */
	OVERFLOW_REJECT,		/* refuse the new message with an ERROR */
};

enum fsync_policy {
	FSYNC_ALWAYS = 0,	/* group commit: a receipt waits for the fsync that covers it */
	FSYNC_INTERVAL,		/* fsync every journal_fsync_interval_ms */
	FSYNC_NEVER,		/* leave it to the kernel */
};

/* Per-queue policy; the broker-wide defaults live in config.queue_defaults. */
struct queue_opts {
	bool persistent;		/* journal every message (DIRAC's Persistent = True) */
	uint64_t max_length;		/* messages; 0 = unbounded */
	uint64_t max_bytes;		/* body bytes; 0 = unbounded */
	enum overflow_policy overflow;
	uint64_t ttl_ms;		/* default time-to-live; 0 = none */
	uint32_t max_deliveries;	/* then dead-letter; 0 = unlimited */
	char *dead_letter;		/* owned; NULL = "/queue/DLQ.<name>", "" = drop */
	bool single_active_consumer;	/* only one subscriber receives; the next takes over */
	uint64_t dedup_ms;		/* drop a message whose mq-post-id this queue took this
					 * recently (bridges, client reposts); 0 = keep repeats */
};

struct listener_cfg {
	char *address;			/* owned; NULL or "*" = every address */
	int port;			/* 0 = let the kernel choose */
	bool tls;
};

struct type_rule {
	char *pattern;			/* owned; POSIX extended regular expression */
	enum dest_type type;
	char **children;		/* owned; for pubsub rules */
	size_t nchildren;
	void *compiled;			/* owned regex_t, compiled at load */
	int line;			/* where the rule was written, for errors */
};

struct dest_cfg {
	char *name;			/* owned */
	char *vhost;			/* owned; NULL = default virtual host */
	enum dest_type type;
	struct queue_opts opts;		/* starts as a copy of queue_defaults */
	char **children;		/* owned; pubsub children */
	size_t nchildren;
};

struct user_cfg {
	char *login;			/* owned */
	char *passcode;			/* owned; a password hash (passwd.h), or plain text (warned about); NULL = certificate only */
	bool admin;
};

struct vhost_cfg {
	char *name;			/* owned; matched against CONNECT's host header */
};

struct config {
	char *path;			/* owned; the file loaded, NULL for built-ins */

	/* listeners: -i and -p override the first plain one */
	struct listener_cfg *listeners;	/* owned */
	size_t nlisteners;
	bool port_given;		/* -p or the file's listeners: bind exactly, no scanning */

	/* TLS (-k, -a) */
	char *tls_cert_key;		/* owned; PEM with certificate and key */
	int tls_port;
	char **ca_chains;		/* owned; files after glob expansion */
	size_t nca_chains;

	/* HTTP (-w PORT MAXCONN URLPATH) */
	int http_port;			/* 0 = no HTTP server... */
	bool http_any_port;		/* ...unless -w 0 asked for one on a port the kernel chooses */
	int http_max_connections;
	char *http_path;		/* owned; without leading or trailing '/' */

	/* STOMP over WebSocket (docs/websocket.md) */
	int ws_port;			/* 0 = no WebSocket listener */
	int wss_port;			/* 0 = none; TLS with tls_cert_key */
	uint64_t ws_max_handshake;	/* bytes of the HTTP upgrade request */
	int ws_handshake_timeout_s;
	int ws_idle_timeout_s;		/* 0 = never */
	char *ws_origins;		/* owned; comma-separated allow-list, "" = any */
	bool ws_binary_frames;		/* every message binary, not text when valid UTF-8 */

	/* files */
	char *data_dir;			/* owned */
	char *control_socket;		/* owned; NULL = <data_dir>/mqbroker.sock */
	char *control_socket_group;	/* owned; NULL = the broker's user only */
	char *connection_file;		/* owned; -c */
	char *log_file;			/* owned; -g */
	int log_level;			/* -l */

	/* lifecycle */
	int idle_timeout_s;		/* -t; 0 = never */
	bool persistent_server;		/* -s */
	bool round_robin_names;		/* -r */
	int admin_port;			/* TCP admin port; 0 = none */

	/* limits */
	int max_connections;		/* -n */
	int max_events;			/* -m: callbacks per loop iteration */
	uint64_t max_frame;
	int max_headers;
	uint64_t max_header_line;
	int max_subscriptions;		/* per connection */
	int max_transactions;		/* open at once, per connection */
	uint64_t max_transaction_frames;/* frames held by one transaction */
	uint64_t max_transaction_bytes;	/* message bytes held by one connection's open transactions */
	uint64_t max_output;		/* bytes queued to one connection before deliveries stop */
	uint64_t max_output_hard;	/* ... and before the connection is closed */
	int slow_consumer_timeout_ms;	/* a full output that has not moved for this long is slow */
	bool slow_consumer_disconnect;	/* slow topic subscribers are disconnected, not skipped */
	int handshake_timeout_ms;	/* from accept to CONNECT */
	int max_handshakes_per_address;	/* connections from one address still before CONNECT */
	int frame_timeout_ms;		/* a frame that has started must be complete within this */
	bool http_public_metrics;	/* /health and /metrics answer anyone who reaches the port */
	int heartbeat_min_ms;		/* shortest heart-beat interval we agree to */
	int heartbeat_grace_pct;	/* tolerance before a silent peer is dropped */

	/* protocol */
	bool lenient_transactions;	/* ACK/NACK naming an unknown transaction runs outside one */
	char *default_vhost;		/* owned; name of the default virtual host */
	bool allow_anonymous;		/* clients without a user may connect from other machines */

	/* journal */
	enum fsync_policy fsync;
	int fsync_interval_ms;
	uint64_t segment_size;
	uint64_t queue_memory_budget;	/* per queue: beyond it, bodies stay on disk */
	uint64_t memory_high_watermark;	/* broker-wide: producers are slowed above it; 0 = off */

	/* Lua */
	uint64_t lua_budget;		/* instructions per call of route(), authorize(), hooks */
	uint64_t lua_memory;		/* bytes the Lua state may allocate */

	struct queue_opts queue_defaults;

	struct vhost_cfg *vhosts;	/* owned; configured virtual hosts */
	size_t nvhosts;
	struct user_cfg *users;		/* owned */
	size_t nusers;
	struct dest_cfg *dests;		/* owned; created at start-up */
	size_t ndests;
	struct type_rule *rules;	/* owned; in order */
	size_t nrules;
	struct bridge_spec *bridges;	/* owned; the bridges table (docs/bridges.md) */
	size_t nbridges;
	char *broker_id;		/* owned; NULL = generated once, kept in <data_dir>/broker-id */
};

enum config_type {
	CONFIG_INT,		/* int, with min and max */
	CONFIG_SIZE,		/* uint64_t bytes, "64KiB" accepted */
	CONFIG_U64,		/* uint64_t plain number */
	CONFIG_BOOL,
	CONFIG_STRING,		/* char *, owned */
	CONFIG_FSYNC,		/* enum fsync_policy by name */
	CONFIG_OVERFLOW,	/* enum overflow_policy by name */
};

struct config_option {
	const char *name;	/* as written in the Lua file: max_frame */
	enum config_type type;
	size_t offset;		/* in struct config */
	int64_t min, max;	/* for CONFIG_INT/CONFIG_SIZE/CONFIG_U64 */
	const char *dflt;	/* shown by --help and in lua/broker.lua */
	const char *help;
};

/* Fills c with the built-in defaults. */
void config_init(struct config *c);
void config_fini(struct config *c);

const struct config_option *config_options(size_t *count);
const struct config_option *config_option_find(const char *name);
/* Sets a scalar option from its text form. -1 with the reason, e.g.
 * "max_frame: expected a size such as 16MiB, got 'abc'". */
int config_set(struct config *c, const char *name, const char *value, char *err, size_t errlen);
/* The kind and bounds as the docs write them: "integer 1..1000000",
 * "size 64 B..256 MiB", "size 4 KiB.." (no upper bound), "boolean". */
void config_option_kind(const struct config_option *o, char *buf, size_t len);
/* The option name at most two edits from `name`, for "did you mean"; or NULL. */
const char *config_option_nearest(const char *name);
/* The current value as text, for the `config` command and reload's diff. */
void config_get(const struct config *c, const struct config_option *o, char *buf, size_t len);

/* Queue options given as NAME=VALUE words (create queue NAME persistent
 * max-length=1000 ttl=60s dead-letter=/queue/x). Accepts '-' or '_'. */
int queue_opts_set(struct queue_opts *o, const char *name, const char *value, char *err, size_t errlen);
void queue_opts_copy(struct queue_opts *dst, const struct queue_opts *src);
void queue_opts_fini(struct queue_opts *o);

/* Helpers for the structured parts. Each takes ownership of nothing: the
 * strings are copied. */
struct listener_cfg *config_add_listener(struct config *c, const char *address, int port, bool tls);
struct vhost_cfg *config_add_vhost(struct config *c, const char *name);
struct user_cfg *config_add_user(struct config *c, const char *login, const char *passcode, bool admin);
struct dest_cfg *config_add_dest(struct config *c, const char *name, enum dest_type type);
void dest_cfg_add_child(struct dest_cfg *d, const char *child);
/* A new bridge, initialised (bridge_spec_init) under this name. */
struct bridge_spec *config_add_bridge(struct config *c, const char *name);
/* Compiles the pattern; -1 with the regcomp message in err. */
struct type_rule *config_add_rule(struct config *c, const char *pattern, enum dest_type type,
                                  int line, char *err, size_t errlen);
void type_rule_add_child(struct type_rule *r, const char *child);

/* Type of a new destination named `name`: the first matching rule, else
 * the built-in prefixes (/queue/, /pubsub/, /command/, else topic).
 * When a rule matched, *rule points to it (for pubsub children). */
enum dest_type config_dest_type(const struct config *c, const char *name, const struct type_rule **rule);

/* Effective control socket path. */
const char *config_control_socket(const struct config *c, char *buf, size_t len);

/* Milliseconds from "250ms", "10s", "5m", "1h", "2d" or a plain number of ms. */
bool parse_duration_ms(const char *s, uint64_t *out);

#endif
