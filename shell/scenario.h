/* scenario.h: the scenario runner behind `mqsh run FILE.lua`.
 *
 * A scenario is a Lua script under scenarios/ that describes brokers,
 * producers, consumers, admin actions and faults, and checks the outcome.
 * The load itself runs in C on an event loop (producers and consumers are
 * state machines over the client library); Lua only describes and checks.
 * docs/scenarios.md documents the Lua API. */
#ifndef MQ_SCENARIO_H
#define MQ_SCENARIO_H

#include <signal.h>
#include <stdbool.h>

struct scenario_opts {
	const char *mqbroker;		/* the broker binary for scenarios that start one;
					 * NULL = next to mqsh, then $PATH */
	const char *control_socket;	/* mqsh's broker, for scenarios that attach to it; may be NULL */
	bool json;			/* print the report as JSON too */
	bool progress;			/* a progress line on stderr (mqsh sets it on a terminal) */
	volatile sig_atomic_t *interrupted;	/* set by mqsh's SIGINT handler: stop and report */
};

/* Runs the file. 0 when every check held, 1 when a check failed (its
 * message printed), 2 when the script itself is wrong (syntax, a bad
 * argument to the API) or the broker could not be started. */
int scenario_run(const char *path, const struct scenario_opts *o);

#endif
