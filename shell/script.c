/* script.c: cutting text into commands at ';' and newlines outside quotes. */
#include "script.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/util.h"

struct scan {
	const char *p;
	char quote;		/* the open quote character, or 0 */
	bool word_start;	/* the next byte would begin a word */
};

enum step { STEP_TEXT, STEP_END, STEP_COMMENT };

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

/* Advances over one byte (two for an escape): text, the end of a command
 * (';' or a newline), or a comment, skipped up to (not past) its newline. */
static enum step step(struct scan *s)
{
	char c = *s->p;

	if (s->quote) {
		if (c == s->quote)
			s->quote = 0;
		else if (c == '\\' && s->quote == '"' && s->p[1])
			s->p++;
		s->p++;
		return STEP_TEXT;
	}
	if (c == ';' || c == '\n') {
		s->p++;
		s->word_start = true;
		return STEP_END;
	}
	if (c == '#' && s->word_start) {
		while (*s->p && *s->p != '\n')
			s->p++;
		return STEP_COMMENT;
	}
	if (c == '\'' || c == '"')
		s->quote = c;
	else if (c == '\\' && s->p[1])
		s->p++;
	s->word_start = blank(c);
	s->p++;
	return STEP_TEXT;
}

/* A trailing blank is part of the command when a backslash escapes it. */
static bool escaped(const char *buf, size_t i)
{
	size_t n = 0;
	while (i > n && buf[i - n - 1] == '\\')
		n++;
	return n % 2 == 1;
}

/* Appends text[start, end) without its comments and surrounding blanks. */
static void add_cmd(char ***cmds, size_t *n, const char *start, const char *end)
{
	struct sbuf b;
	struct scan s = { start, 0, true };
	size_t from = 0;

	sbuf_init(&b);
	while (s.p < end) {
		const char *before = s.p;
		if (step(&s) == STEP_TEXT)
			sbuf_add(&b, before, (size_t)(s.p - before));
	}
	while (b.len && blank(b.buf[b.len - 1]) && !escaped(b.buf, b.len - 1))
		b.len--;
	while (from < b.len && blank(b.buf[from]))
		from++;
	if (from < b.len) {
		*cmds = xrealloc(*cmds, (*n + 2) * sizeof **cmds);
		(*cmds)[(*n)++] = xstrndup(b.buf + from, b.len - from);
		(*cmds)[*n] = NULL;
	}
	sbuf_fini(&b);
}

char **script_split(const char *text, size_t *n)
{
	char **cmds = xcalloc(1, sizeof *cmds);
	struct scan s = { text, 0, true };
	const char *start = text;

	*n = 0;
	while (*s.p) {
		if (step(&s) == STEP_END) {
			add_cmd(&cmds, n, start, s.p - 1);
			start = s.p;
		}
	}
	add_cmd(&cmds, n, start, s.p);
	return cmds;
}

void script_free(char **cmds)
{
	if (!cmds)
		return;
	for (char **c = cmds; *c; c++)
		free(*c);
	free(cmds);
}

size_t script_last_offset(const char *text)
{
	struct scan s = { text, 0, true };
	size_t last = 0;
	while (*s.p)
		if (step(&s) == STEP_END)
			last = (size_t)(s.p - text);
	return last;
}
