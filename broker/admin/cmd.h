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

#include "common/cmd_info.h"
#include "common/json.h"
#include "common/util.h"

struct broker;

struct cmd_reply {
	int status;
	char message[512];	/* one line for people */
	struct sbuf data;	/* JSON value, or empty */
	struct jw w;		/* writes into data */
	bool stream;		/* the transport should start streaming events */
	bool shutdown;		/* the transport should shut the broker down once the reply is out */
};

struct principal;

struct cmd_ctx {
	struct broker *b;
	bool admin;		/* may run CMD_WRITE commands */
	const char *who;	/* "control socket", "conn 7 login=alice": for the log */
	/* Who runs it, for the grants of commands that create and delete
	 * destinations (core/auth.h); NULL on the control socket, whose
	 * file permissions are the check. */
	const struct principal *principal;
};

void cmd_reply_init(struct cmd_reply *r);
void cmd_reply_fini(struct cmd_reply *r);
/* Sets status and message (printf-style). Returns status for tail calls. */
int cmd_fail(struct cmd_reply *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

void cmd_exec(struct cmd_ctx *ctx, int argc, char **argv, struct cmd_reply *r);
void cmd_exec_line(struct cmd_ctx *ctx, const char *line, struct cmd_reply *r);
/* {"status":200,"ok":true,"message":"...","data":...} */
void cmd_reply_json(const struct cmd_reply *r, struct sbuf *out);

#endif
