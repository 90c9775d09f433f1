/* cmds.h: every command mqsh knows, and finding one from what was typed.
 *
 * The broker's commands come from its table (common/cmd_table.h through
 * cmd_table()), never from a list of our own; mqsh adds the few it runs
 * itself (publish, tail, run, quit, exit), described with the same
 * struct cmd_info so that help and completion treat both alike. `help`
 * and `events` are in the broker's table; mqsh runs them locally (help
 * also lists mqsh's own commands; events needs a connection of its own). */
#ifndef MQSH_CMDS_H
#define MQSH_CMDS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/cmd_info.h"

/* Set in cmd_info.flags of the commands mqsh runs itself. Above the
 * broker's CMD_* bits so that the two never collide. */
#define CMDS_LOCAL (1 << 8)

/* Every command: the broker's in table order, then mqsh's own. */
size_t cmds_count(void);
const struct cmd_info *cmds_at(size_t i);

/* The command named `word`, or the only one it is a prefix of (relayctl's
 * manners). NULL otherwise, with one line for people in err:
 * "unknown command 'lst' (try: list, help)" or
 * "ambiguous command 'p' (could be: pause, purge, publish)". */
const struct cmd_info *cmds_resolve(const char *word, char *err, size_t errlen);

/* The completion hint of argument `pos` (1 = first argument) from the
 * command's `complete` string, copied into buf: "dest", "client", ...;
 * "" when there is none. */
const char *cmds_hint(const struct cmd_info *c, int pos, char *buf, size_t len);

#endif
