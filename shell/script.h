/* script.h: cutting text into commands.
 *
 * `mqsh -c "a; b"`, lines read from a file and lines typed at the prompt
 * all go through here, so that ';' and '#' mean the same everywhere. The
 * scan follows cmdline_split()'s quoting (common/cmdline.h): 'single'
 * quotes are literal, "double" quotes and bare words take a backslash
 * escape. A ';' or a newline outside quotes ends a command; a '#' that
 * starts a word outside quotes comments out the rest of its line. */
#ifndef MQSH_SCRIPT_H
#define MQSH_SCRIPT_H

#include <stddef.h>

/* Splits text into commands, each trimmed of surrounding blanks, empty
 * ones (and comments) dropped. Quoting is kept as written: each command
 * still goes through cmdline_split(), which reports an unterminated quote
 * (the scan just treats the rest of the text as quoted). Returns a
 * NULL-terminated array (script_free() releases it) and the count in *n. */
char **script_split(const char *text, size_t *n);
void script_free(char **cmds);

/* Offset in text where its last command starts: what follows the last
 * ';' or newline outside quotes. For completion, which sees a whole line. */
size_t script_last_offset(const char *text);

#endif
