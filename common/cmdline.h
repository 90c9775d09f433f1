/* cmdline.h: splitting an admin command line into words, shell-style, and
 * quoting words back. Shared by the broker (control socket, /command/,
 * HTTP) and mqsh, so that both read a line the same way. */
#ifndef MQ_CMDLINE_H
#define MQ_CMDLINE_H

#include <stddef.h>

#include "common/util.h"

#define CMDLINE_MAX_ARGS 64

/* Splits `line` into at most CMDLINE_MAX_ARGS words: whitespace separates,
 * 'single' and "double" quotes group, backslash escapes the next byte
 * (inside double quotes too). Returns the word count, with the words in a
 * single allocation *argv (free(*argv) releases all), or -1 with a reason
 * ("unterminated quote", "too many words"). */
int cmdline_split(const char *line, char ***argv, char *err, size_t errlen);
/* Appends word to out, quoted if it needs to be. */
void cmdline_quote(struct sbuf *out, const char *word);

#endif
