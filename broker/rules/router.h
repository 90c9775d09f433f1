/* router.h: the Lua side of the broker. The only module that includes lua.h.
 *
 * router_load() runs a configuration file written in Lua in a sandbox,
 * fills a struct config from it (scalar options through config_set(), the
 * structured ones through the config_add_* helpers), and keeps the Lua
 * state alive for the functions the file defines: route(), authorize()
 * and the event hooks. A broker without a configuration file has no
 * router at all (NULL), and every function here accepts NULL and then
 * behaves as "no rule defined", so no Lua call is ever made for nothing.
 *
 * Reload builds a complete new router (and config) and the caller swaps it
 * in only on success; the old one stays in force otherwise. */
#ifndef MQ_ROUTER_H
#define MQ_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/config.h"
#include "common/frame.h"

struct router;

/* Loads `path` into cfg, which the caller prepared with config_init().
 * On error returns NULL with "FILE:LINE: option: what was wrong" in err;
 * cfg may then be partly filled and should be discarded. */
struct router *router_load(const char *path, struct config *cfg, char *err, size_t errlen);
void router_free(struct router *r);

/* Instruction budget per call and memory ceiling of the Lua state, for
 * settings made after the load (the command line overrides the file;
 * `config set lua_budget`). router_load() applies the values the file
 * left in cfg itself. 0 leaves a limit as it is. A ceiling below what the
 * state holds makes calls fail with ROUTE_NOMEM until it is raised. */
void router_set_limits(struct router *r, uint64_t budget, uint64_t memory);

/* ---- route(msg) ---- */

enum route_outcome {
	ROUTE_DELIVER,	/* returned nothing: deliver as sent (header edits may apply) */
	ROUTE_REWRITE,	/* returned another destination: dests[0] */
	ROUTE_FANOUT,	/* returned a list: dests[0..ndests) */
	ROUTE_DROP,	/* returned false: drop, counted */
	ROUTE_REJECT,	/* called error("..."): refuse with that text */
	ROUTE_BUDGET,	/* ran out of instructions: refuse */
	ROUTE_NOMEM,	/* hit the memory ceiling: refuse */
	ROUTE_ERROR,	/* any other script error: refuse, logged with file:line */
};

/* What the broker shows a route() call. All borrowed for the call. */
struct route_msg {
	const char *destination;
	const struct frame_hdr *hdrs;	/* as the producer sent them */
	unsigned nhdrs;
	const char *body;		/* reaches Lua only if the script reads msg.body */
	size_t body_len;
	const char *login;		/* NULL when the client gave none */
	const char *vhost;
	uint64_t conn_id;
};

struct route_hdr_edit {
	char *name;			/* owned */
	char *value;			/* owned; NULL = remove the header */
};

struct route_result {
	enum route_outcome outcome;
	char **dests;			/* owned */
	size_t ndests;
	struct route_hdr_edit *edits;	/* owned, in the order the script made them */
	size_t nedits;
	char error[512];		/* reason for REJECT, BUDGET, NOMEM, ERROR */
};

bool router_has_route(const struct router *r);
/* Calls route(msg). Never fails the broker: every outcome is in res,
 * which is overwritten (pass it through route_result_fini() between
 * calls). Header edits are kept only for DELIVER, REWRITE and FANOUT. */
enum route_outcome router_route(struct router *r, const struct route_msg *m, struct route_result *res);
void route_result_fini(struct route_result *res);

/* ---- authorize(login, action, destination) ---- */

/* configure: create or delete a destination, attach a pubsub's child
 * (an admin command, or a SEND or SUBSCRIBE that creates a queue). */
enum authz_action { AUTHZ_CONNECT, AUTHZ_SEND, AUTHZ_SUBSCRIBE, AUTHZ_ADMIN, AUTHZ_CONFIGURE };

enum authz_result {
	AUTHZ_ALLOW,
	AUTHZ_DENY,		/* reason says why (the script's text when it gave one) */
	AUTHZ_NO_RULE,		/* no authorize() defined: the broker's default applies */
};

struct authz_req {
	const char *login;		/* NULL when anonymous; a TLS certificate's CN when verified */
	enum authz_action action;
	const char *destination;	/* NULL for connect and admin */
	const char *vhost;
	const char *peer;		/* "127.0.0.1:5000" */
	bool loopback;			/* the peer is on a loopback address */
	bool authenticated;		/* passcode checked against users, or certificate verified */
	bool admin_user;		/* a configured user marked admin */
};

bool router_has_authorize(const struct router *r);
enum authz_result router_authorize(struct router *r, const struct authz_req *req,
                                   char *reason, size_t reasonlen);

/* ---- event hooks ---- */

/* Calls on_event(name, fields) if the file defines it; fields is a
 * NULL-terminated list of key, value strings. Errors are logged only. */
void router_event(struct router *r, const char *name, const char *const *fields);

/* ---- figures ---- */

struct router_stats {
	uint64_t calls;
	uint64_t errors;
	uint64_t budget_exceeded;
	uint64_t memory_exceeded;
	uint64_t drops;
	uint64_t rejects;
	uint64_t memory_bytes;		/* the Lua state's current allocation */
	uint64_t body_reads;		/* route() calls that read msg.body (copied it into Lua) */
};
void router_get_stats(const struct router *r, struct router_stats *st);

#endif
