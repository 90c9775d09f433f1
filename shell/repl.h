/* repl.h: the terminal side of mqsh: GNU readline behind a small shim
 * (lua.c's lua_readline idea), history in ~/.mqsh_history, completion,
 * and Ctrl-C.
 *
 * Ctrl-C sets a flag instead of killing mqsh. At the prompt it drops the
 * line being typed; while a command runs, the command watches the flag
 * (repl_interrupt_flag()) and stops. Readline runs through its callback
 * interface so that the prompt loop itself sees the signal; the blocking
 * readline() would only let us kill the process or ignore the key. */
#ifndef MQSH_REPL_H
#define MQSH_REPL_H

#include <signal.h>
#include <stdbool.h>

#include "complete.h"

/* Completion candidates for `text` when `before` (the command's text up
 * to the word being completed) precedes it. */
typedef void (*repl_complete_fn)(void *arg, const char *before, const char *text, struct complete_result *res);

/* SIGINT (and, for a terminal, SIGWINCH) handlers, for the whole run:
 * scripts also stop their running command, or themselves, on Ctrl-C. */
void repl_signals_init(bool terminal);
/* Set by SIGINT; whoever acts on it clears it. */
volatile sig_atomic_t *repl_interrupt_flag(void);

/* Line editing on the terminal. history_path may be NULL (no history);
 * failing to read or write it is silent: history is a convenience. */
void repl_init(const char *history_path, repl_complete_fn complete, void *arg);
/* The next line (malloc'd), or NULL at end of input (Ctrl-D). */
char *repl_readline(const char *prompt);
/* Adds a line to the history and appends it to the file at once, so that
 * a killed mqsh loses nothing. Blank lines and repeats are skipped. */
void repl_history_add(const char *line);
void repl_fini(void);

#endif
