/* cmd_info.h: the admin command table as data (names, usage, help,
 * argument counts, flags): what the broker's dispatcher checks and what
 * mqsh's help and completion show, compiled from the one cmd_table.h. */
#ifndef MQ_CMD_INFO_H
#define MQ_CMD_INFO_H

#include <stddef.h>

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

struct cmd_info {
	const char *name;
	const char *usage;
	const char *help;
	int min_args, max_args;
	int flags;
	const char *complete;
};

/* The table, for help and completion. */
const struct cmd_info *cmd_table(size_t *n);
const struct cmd_info *cmd_lookup(const char *name);

/* Name of a status family: "ok", "syntax", ... */
const char *cmd_status_name(int status);

#endif
