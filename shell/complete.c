/* complete.c: completion candidates from the table, its usages and live names. */
#include "complete.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/cmdline.h"
#include "cmds.h"
#include "common/util.h"

#define MAX_TOKENS 24

/* One alternative of a usage string ("show NAME | show client ID" has two),
 * cut into positional arguments and options. Strings point into `buf`. */
struct usage_alt {
	char buf[512];
	struct {
		const char *text;	/* "NAME", "client", "queue|topic|pubsub" */
		bool literal;		/* typed as is: no capitals, not a range */
	} pos[MAX_TOKENS];
	int npos;
	const char *opt[MAX_TOKENS];	/* "force", "vhost=V", "overflow=drop-oldest|reject" */
	int nopt;
};

static bool is_literal(const char *s)
{
	if (!(*s >= 'a' && *s <= 'z'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-' || *s == '|' || *s == '='))
			return false;
	return true;
}

/* "force", "persistent", "vhost=V", "dead-letter=DEST|none": a word, or
 * a key=value whose key is a word; not a choice of words. */
static bool is_option(const char *s)
{
	const char *eq = strchr(s, '=');
	char key[128];
	if (!eq)
		return is_literal(s) && !strchr(s, '|');
	snprintf(key, sizeof key, "%.*s", (int)(eq - s), s);
	return is_literal(key) && !strchr(key, '|');
}

/* Parses one alternative. An optional group "[...]" is an option when it
 * is a lower-case word or key=value and offers no choice of words; a
 * choice ("[destinations|queues|...]") or a placeholder ("[COMMAND]") is
 * an optional positional argument. */
static void parse_alt(const char *text, size_t len, struct usage_alt *a)
{
	char *p, *save = NULL;
	bool first = true;

	a->npos = a->nopt = 0;
	if (len >= sizeof a->buf)
		len = sizeof a->buf - 1;
	memcpy(a->buf, text, len);
	a->buf[len] = 0;
	for (p = strtok_r(a->buf, " ", &save); p; p = strtok_r(NULL, " ", &save)) {
		if (first) {
			first = false;	/* the command's own name */
			continue;
		}
		if (*p == '[') {
			char *end = strchr(p, ']');
			p++;
			if (!end) {
				/* "[NAME=VALUE ...]": the group goes on over the next words */
				char *q;
				while ((q = strtok_r(NULL, " ", &save)) && !strchr(q, ']'))
					;
			} else {
				*end = 0;
			}
			if (is_option(p)) {
				if (a->nopt < MAX_TOKENS)
					a->opt[a->nopt++] = p;
				continue;
			}
		}
		if (a->npos < MAX_TOKENS) {
			a->pos[a->npos].text = p;
			a->pos[a->npos].literal = is_literal(p) && !strchr(p, '=');
			a->npos++;
		}
	}
}

/* Is word one of the '|'-separated choices? */
static bool is_choice(const char *choices, const char *word)
{
	size_t n = strlen(word);
	for (const char *p = choices; *p;) {
		size_t len = strcspn(p, "|");
		if (len == n && strncmp(p, word, n) == 0)
			return true;
		p += len;
		if (*p == '|')
			p++;
	}
	return false;
}

/* Do the words typed so far (argv[1..pos-1]) fit this alternative? */
static bool alt_fits(const struct usage_alt *a, char **argv, int pos)
{
	for (int i = 1; i < pos && i <= a->npos; i++)
		if (a->pos[i - 1].literal && !is_choice(a->pos[i - 1].text, argv[i]))
			return false;
	return true;
}

struct cands {
	struct complete_result *res;
	const char *text;
	size_t tlen;
};

static void add(struct cands *c, const char *word, size_t len)
{
	struct complete_result *r = c->res;
	if (len < c->tlen || strncmp(word, c->text, c->tlen) != 0)
		return;
	r->words = xrealloc(r->words, (r->n + 2) * sizeof *r->words);
	r->words[r->n++] = xstrndup(word, len);
	r->words[r->n] = NULL;
}

static void add_choices(struct cands *c, const char *prefix, const char *choices)
{
	for (const char *p = choices; *p;) {
		size_t len = strcspn(p, "|");
		char buf[256];
		int n = snprintf(buf, sizeof buf, "%s%.*s", prefix, (int)len, p);
		if (n > 0 && (size_t)n < sizeof buf && is_literal(buf))
			add(c, buf, (size_t)n);
		p += len;
		if (*p == '|')
			p++;
	}
}

/* Live names: the `field` of every row of `list LISTING`, rows filtered by type. */
static void add_live(struct cands *c, const struct complete_src *src, const char *listing,
                     const char *field, const char *type)
{
	const struct json *rows = src && src->fetch ? src->fetch(src->arg, listing) : NULL;
	if (!rows || rows->type != JSON_ARR)
		return;
	for (size_t i = 0; i < rows->len; i++) {
		const struct json *row = rows->items[i], *v = json_get(row, field);
		const char *t = json_get_str(row, "type");
		char num[32];
		if (type && (!t || strcmp(t, type) != 0))
			continue;
		if (v && v->type == JSON_STR) {
			add(c, v->str, strlen(v->str));
		} else if (v && v->type == JSON_NUM) {
			snprintf(num, sizeof num, "%.0f", v->num);
			add(c, num, strlen(num));
		}
	}
}

static void add_hint(struct cands *c, const char *hint, const struct complete_src *src)
{
	if (strcmp(hint, "kind") == 0) {
		add_choices(c, "", "queue|topic|pubsub");
	} else if (strcmp(hint, "dest") == 0) {
		add_live(c, src, "destinations", "name", NULL);
	} else if (strcmp(hint, "queue") == 0 || strcmp(hint, "topic") == 0 || strcmp(hint, "pubsub") == 0) {
		add_live(c, src, "destinations", "name", hint);
	} else if (strcmp(hint, "client") == 0) {
		add_live(c, src, "clients", "id", NULL);
	} else if (strcmp(hint, "bridge") == 0) {
		add_live(c, src, "bridges", "name", NULL);
	} else if (strcmp(hint, "durable") == 0) {
		add_live(c, src, "durables", "name", NULL);
	} else if (strcmp(hint, "user") == 0) {
		add_live(c, src, "users", "name", NULL);
	} else if (strcmp(hint, "vhost") == 0) {
		add_live(c, src, "vhosts", "name", NULL);
	} else if (strcmp(hint, "command") == 0) {
		for (size_t i = 0; i < cmds_count(); i++)
			add(c, cmds_at(i)->name, strlen(cmds_at(i)->name));
	} else if (strcmp(hint, "listing") == 0) {
		/* What `list` takes is written in its usage: read it there. */
		const struct cmd_info *list = cmd_lookup("list");
		struct usage_alt a;
		if (list) {
			parse_alt(list->usage, strlen(list->usage), &a);
			if (a.npos >= 1 && a.pos[0].literal)
				add_choices(c, "", a.pos[0].text);
		}
	} else if (strcmp(hint, "file") == 0) {
		c->res->files = true;
	}
}

/* Was this option (its key, up to '=') already given? */
static bool opt_given(const char *opt, char **argv, int argc)
{
	size_t klen = strcspn(opt, "=") + (strchr(opt, '=') ? 1 : 0);
	for (int i = 1; i < argc; i++)
		if (strncmp(argv[i], opt, klen) == 0 && (opt[klen - 1] == '=' || argv[i][klen] == 0))
			return true;
	return false;
}

static void add_option(struct cands *c, const char *opt)
{
	const char *eq = strchr(opt, '=');
	if (!eq) {
		add(c, opt, strlen(opt));
	} else if (strncmp(c->text, opt, (size_t)(eq - opt + 1)) == 0) {
		/* The key is typed: offer its values when they are words. */
		char key[128];
		snprintf(key, sizeof key, "%.*s", (int)(eq - opt + 1), opt);
		add_choices(c, key, eq + 1);
	} else {
		add(c, opt, (size_t)(eq - opt + 1));
	}
}

static void complete_args(struct cands *c, const struct cmd_info *cmd, char **argv, int pos,
                          const struct complete_src *src)
{
	struct usage_alt alts[4];
	int nalt = 0;
	bool hint_applies = false;
	char hint[32];

	for (const char *p = cmd->usage; *p && nalt < (int)ARRAY_LEN(alts);) {
		const char *bar = strstr(p, " | ");
		size_t len = bar ? (size_t)(bar - p) : strlen(p);
		parse_alt(p, len, &alts[nalt++]);
		p += len + (bar ? 3 : 0);
	}
	/* With one usage the hints speak for every position; with several
	 * (show NAME | show client ID) a hint holds only where an
	 * alternative that fits the words so far has that position. */
	for (int i = 0; i < nalt; i++) {
		if (!alt_fits(&alts[i], argv, pos))
			continue;
		if (nalt == 1 || alts[i].npos >= pos)
			hint_applies = true;
		if (alts[i].npos >= pos && alts[i].pos[pos - 1].literal)
			add_choices(c, "", alts[i].pos[pos - 1].text);
		if (pos > cmd->min_args)
			for (int j = 0; j < alts[i].nopt; j++)
				if (!opt_given(alts[i].opt[j], argv, pos))
					add_option(c, alts[i].opt[j]);
	}
	if (hint_applies)
		add_hint(c, cmds_hint(cmd, pos, hint, sizeof hint), src);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void complete_words(const char *before, const char *text, const struct complete_src *src,
                    struct complete_result *res)
{
	struct cands c = { res, text, strlen(text) };
	char **argv, err[256];
	int argc;

	memset(res, 0, sizeof *res);
	argc = cmdline_split(before, &argv, err, sizeof err);
	if (argc < 0)
		return;		/* inside an open quote: nothing sensible to offer */
	if (argc == 0) {
		add_hint(&c, "command", src);
	} else {
		const struct cmd_info *cmd = cmds_resolve(argv[0], err, sizeof err);
		if (cmd && (cmd->max_args < 0 || argc <= cmd->max_args))
			complete_args(&c, cmd, argv, argc, src);
	}
	free(argv);
	if (!res->n)
		return;
	qsort(res->words, res->n, sizeof *res->words, by_name);
	size_t out = 1;
	for (size_t i = 1; i < res->n; i++) {
		if (strcmp(res->words[i], res->words[out - 1]) == 0)
			free(res->words[i]);
		else
			res->words[out++] = res->words[i];
	}
	res->n = out;
	res->words[out] = NULL;
	res->no_space = true;
	for (size_t i = 0; i < res->n; i++)
		if (res->words[i][strlen(res->words[i]) - 1] != '=')
			res->no_space = false;
}

void complete_result_fini(struct complete_result *res)
{
	for (size_t i = 0; i < res->n; i++)
		free(res->words[i]);
	free(res->words);
	memset(res, 0, sizeof *res);
}
