/* cmd.h: the admin commands, one table, every way in.
 *
 * The control socket, /command/ destinations over STOMP and the HTTP API
 * are thin adapters over cmd_exec(): it checks the argument counts and
 * permissions from cmd_table.h, runs the handler, and leaves a reply with
 * a status, one line of text and JSON data. Handlers never print. */
#ifndef MQ_CMD_H
#define MQ_CMD_H

#include <stdbool.h>
#include <stddef.h>

#include "json.h"
#include "util.h"

struct broker;

enum cmd_flags {
	CMD_READ = 1 << 0,	/* looks only: open to every admin client */
	CMD_WRITE = 1 << 1,	/* changes state: needs admin rights */
	CMD_STREAM = 1 << 2,	/* turns the connection into an event stream */
	CMD_DANGER = 1 << 3,	/* stops or disrupts the broker */
};

/* Status families, numbered like HTTP so that the HTTP API uses them as is. */
enum cmd_status {
	CMD_OK = 200,
	CMD_SYNTAX = 400,	/* quoting, too few or too many words */
	CMD_FORBIDDEN = 403,	/* not permitted */
	CMD_NOT_FOUND = 404,	/* no such destination or client */
	CMD_NO_COMMAND = 405,	/* no such command */
	CMD_CONFLICT = 409,	/* exists with another type, has subscribers... */
	CMD_BAD_ARG = 422,	/* a value that makes no sense */
	CMD_INTERNAL = 500,
};

struct cmd_reply {
	int status;
	char message[512];	/* one line for people */
	struct sbuf data;	/* JSON value, or empty */
	struct jw w;		/* writes into data */
	bool stream;		/* the transport should start streaming events */
	bool shutdown;		/* the transport should shut the broker down once the reply is out */
};

struct cmd_ctx {
	struct broker *b;
	bool admin;		/* may run CMD_WRITE commands */
	const char *who;	/* "control socket", "conn 7 login=alice": for the log */
};

struct cmd_info {
	const char *name;
	const char *usage;
	const char *help;
	int min_args, max_args;
	int flags;
	const char *complete;
};

void cmd_reply_init(struct cmd_reply *r);
void cmd_reply_fini(struct cmd_reply *r);
/* Sets status and message (printf-style). Returns status for tail calls. */
int cmd_fail(struct cmd_reply *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

void cmd_exec(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r);
void cmd_exec_line(struct cmd_ctx *ctx, const char *line, struct cmd_reply *r);
/* {"status":200,"ok":true,"message":"...","data":...} */
void cmd_reply_json(const struct cmd_reply *r, struct sbuf *out);

/* The table, for help and completion. */
const struct cmd_info *cmd_table(size_t *n);
const struct cmd_info *cmd_lookup(const char *name);

/* Name of a status family: "ok", "syntax", ... */
const char *cmd_status_name(int status);

#endif
