/* cmdline.c: splitting command lines shell-style, and quoting words back. */
#include "common/cmdline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmdline_split(const char *line, char ***argvp, char *err, size_t errlen)
{
	size_t len = strlen(line);
	/* Words are never longer than the line: one block holds the pointer
	 * array and every word. */
	char **argv = xmalloc(sizeof(char *) * (CMDLINE_MAX_ARGS + 1) + len + CMDLINE_MAX_ARGS + 1);
	char *w = (char *)(argv + CMDLINE_MAX_ARGS + 1);
	const char *p = line;
	int argc = 0;

	for (;;) {
		char quote = 0;
		while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
			p++;
		if (!*p)
			break;
		if (argc == CMDLINE_MAX_ARGS) {
			snprintf(err, errlen, "too many words (limit %d)", CMDLINE_MAX_ARGS);
			free(argv);
			return -1;
		}
		argv[argc++] = w;
		for (; *p; p++) {
			if (quote) {
				if (*p == quote) {
					quote = 0;
				} else if (*p == '\\' && quote == '"' && p[1]) {
					*w++ = *++p;
				} else {
					*w++ = *p;
				}
				continue;
			}
			if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
				break;
			if (*p == '\'' || *p == '"') {
				quote = *p;
			} else if (*p == '\\' && p[1]) {
				*w++ = *++p;
			} else {
				*w++ = *p;
			}
		}
		if (quote) {
			snprintf(err, errlen, "unterminated %s quote", quote == '"' ? "double" : "single");
			free(argv);
			return -1;
		}
		*w++ = 0;
	}
	argv[argc] = NULL;
	*argvp = argv;
	return argc;
}

void cmdline_quote(struct sbuf *out, const char *word)
{
	bool plain = *word != 0;
	for (const char *p = word; *p; p++)
		if (strchr(" \t\r\n'\"\\", *p))
			plain = false;
	if (plain) {
		sbuf_adds(out, word);
		return;
	}
	sbuf_addc(out, '"');
	for (const char *p = word; *p; p++) {
		if (*p == '"' || *p == '\\')
			sbuf_addc(out, '\\');
		sbuf_addc(out, *p);
	}
	sbuf_addc(out, '"');
}
