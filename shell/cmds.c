/* cmds.c: the broker's command table plus mqsh's own commands. */
#include "cmds.h"

#include <stdio.h>
#include <string.h>

#include "common/util.h"

/* Usage words in capitals are placeholders; lower case ones are typed as
 * is (completion reads them), so NAME=VALUE rather than header=value. */
static const struct cmd_info local[] = {
	{ "publish", "publish DEST BODY [NAME=VALUE ...]",
	  "Send BODY to DEST over STOMP, with the given headers, and wait for the broker's receipt.",
	  2, -1, CMD_WRITE | CMDS_LOCAL, "dest" },
	{ "tail", "tail DEST [COUNT] [selector=EXPR]",
	  "Subscribe to DEST and print each message as it arrives, until Ctrl-C or COUNT messages. "
	  "On a queue the messages printed are consumed. selector= takes only what a JMS selector matches.",
	  1, 3, CMD_READ | CMDS_LOCAL, "dest" },
	{ "browse", "browse QUEUE [COUNT] [selector=EXPR]",
	  "Print what QUEUE holds, in order, without consuming anything (at most COUNT messages; "
	  "selector= filters).",
	  1, 3, CMD_READ | CMDS_LOCAL, "dest" },
	{ "run", "run FILE.lua",
	  "Run a scenario script and report its checks.",
	  1, 1, CMD_WRITE | CMDS_LOCAL, "file" },
	{ "quit", "quit", "Leave mqsh (so do 'exit' and Ctrl-D).", 0, 0, CMDS_LOCAL, "" },
	{ "exit", "exit", "Leave mqsh (so do 'quit' and Ctrl-D).", 0, 0, CMDS_LOCAL, "" },
};

size_t cmds_count(void)
{
	size_t n;
	cmd_table(&n);
	return n + ARRAY_LEN(local);
}

const struct cmd_info *cmds_at(size_t i)
{
	size_t n;
	const struct cmd_info *t = cmd_table(&n);
	if (i < n)
		return &t[i];
	i -= n;
	return i < ARRAY_LEN(local) ? &local[i] : NULL;
}

/* Edit distance with transpositions, capped: only "close enough" matters. */
static size_t distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	size_t d[24][24];
	if (la >= 24 || lb >= 24)
		return 99;
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			size_t cost = a[i - 1] != b[j - 1];
			size_t v = MIN(d[i - 1][j] + 1, d[i][j - 1] + 1);
			v = MIN(v, d[i - 1][j - 1] + cost);
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
				v = MIN(v, d[i - 2][j - 2] + 1);
			d[i][j] = v;
		}
	}
	return d[la][lb];
}

const struct cmd_info *cmds_resolve(const char *word, char *err, size_t errlen)
{
	size_t n = cmds_count(), len = strlen(word), matches = 0;
	const struct cmd_info *match = NULL;
	struct sbuf list;

	for (size_t i = 0; i < n; i++)
		if (strcmp(cmds_at(i)->name, word) == 0)
			return cmds_at(i);
	sbuf_init(&list);
	for (size_t i = 0; len && i < n; i++) {
		const struct cmd_info *c = cmds_at(i);
		if (strncmp(c->name, word, len) == 0) {
			sbuf_printf(&list, "%s%s", matches ? ", " : "", c->name);
			match = c;
			matches++;
		}
	}
	if (matches == 1) {
		sbuf_fini(&list);
		return match;
	}
	if (matches > 1) {
		snprintf(err, errlen, "ambiguous command '%s' (could be: %s)", word, list.buf);
		sbuf_fini(&list);
		return NULL;
	}
	/* Nothing starts that way: offer what is one or two typos away. A
	 * short word is one typo from too much, so it gets one. */
	for (size_t i = 0; i < n; i++) {
		const struct cmd_info *c = cmds_at(i);
		if (strcmp(c->name, "help") != 0 && distance(word, c->name) <= (len <= 3 ? 1u : 2u))
			sbuf_printf(&list, "%s, ", c->name);
	}
	snprintf(err, errlen, "unknown command '%s' (try: %shelp)", word, sbuf_str(&list));
	sbuf_fini(&list);
	return NULL;
}

const char *cmds_hint(const struct cmd_info *c, int pos, char *buf, size_t len)
{
	const char *p = c->complete ? c->complete : "";
	buf[0] = 0;
	for (int i = 1; *p; i++) {
		size_t n;
		while (*p == ' ')
			p++;
		n = strcspn(p, " ");
		if (i == pos) {
			if (n >= len)
				n = len - 1;
			memcpy(buf, p, n);
			buf[n] = 0;
			return strcmp(buf, "-") == 0 ? (buf[0] = 0, buf) : buf;
		}
		p += n;
	}
	return buf;
}
