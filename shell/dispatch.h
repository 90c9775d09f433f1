/* dispatch.h: running one command, whichever way it came in.
 *
 * A command line names a broker command (sent over the control socket
 * and its reply rendered), or one mqsh runs itself: help, quit/exit,
 * events (on a connection of its own), publish, tail and run. The same
 * path serves the prompt, -c and scripts read from stdin, so that a
 * command behaves the same in all three. */
#ifndef MQSH_DISPATCH_H
#define MQSH_DISPATCH_H

#include <stdbool.h>

#include "complete.h"
#include "ctl.h"
#include "stomp_cmds.h"

/* Exit statuses a command stands for, beyond 0 and a scenario's 1 and 2. */
#define DISPATCH_FAILED 1
#define DISPATCH_INTERRUPTED 130	/* 128 + SIGINT, as shells report it */

struct mqsh_cache {
	char listing[16];		/* "destinations", "clients"; "" unused */
	struct ctl_reply reply;		/* owned */
};

struct mqsh {
	const char *socket_path;	/* borrowed: the broker's control socket */
	struct ctl *ctl;		/* borrowed: connected to socket_path */
	struct stomp_target stomp;	/* for publish and tail */
	bool json;			/* --json: replies printed as the broker sent them */
	bool color;			/* stdout is a terminal that takes colours */
	bool err_color;			/* the same for stderr */
	bool interactive;		/* a person at the prompt: "error:" lines, summaries */
	const char *where;		/* names the command in script errors ("line 3"); may be NULL */
	bool fresh_line;		/* a line break already followed this command's "^C" */
	/* Live names for completion, fetched once per command line: readline
	 * asks twice for one double Tab, and a table of names does not
	 * change between two key presses. Emptied after every command. */
	struct mqsh_cache cache[2];
};

/* Runs one command (no ';' inside: see script.h). Returns 0 when it
 * succeeded; otherwise its error is printed (stderr, and stdout as JSON
 * with --json) and the return value is the exit status it stands for:
 * DISPATCH_FAILED, a scenario's 1 or 2, or DISPATCH_INTERRUPTED when
 * Ctrl-C stopped a command for which that is not the normal end (tail
 * and events end with Ctrl-C and return 0). quit/exit set *quit. */
int dispatch_command(struct mqsh *sh, const char *cmd, bool *quit);

/* repl_complete_fn for readline: candidates from the table and the live
 * names of the broker (arg is the struct mqsh). */
void dispatch_complete(void *arg, const char *before, const char *text, struct complete_result *res);

/* Frees the completion cache. */
void dispatch_fini(struct mqsh *sh);

#endif
