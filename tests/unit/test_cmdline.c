/* test_cmdline.c: the admin command table and how a command line is read:
 * cmdline_split()/cmdline_quote() and the checks cmd_exec() makes from the
 * table before any handler runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/cmd.h"
#include "common/cmdline.h"
#include "common/util.h"

/* ---- the table ---- */

static void test_table_usage_starts_with_name(void **state)
{
	/* Every usage begins with its command's name followed by a space or
	 * its end: help and docs print it as the way to type the command. */
	size_t n;
	const struct cmd_info *t = cmd_table(&n);
	(void)state;
	assert_true(n > 0);
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(t[i].name);
		assert_non_null(t[i].usage);
		if (strncmp(t[i].usage, t[i].name, len) != 0 || (t[i].usage[len] != ' ' && t[i].usage[len] != 0))
			fail_msg("usage of '%s' does not start with its name: '%s'", t[i].name, t[i].usage);
	}
}

static void test_table_argument_counts_are_sane(void **state)
{
	/* min <= max (or max is -1, "any"); nobody requires a negative count. */
	size_t n;
	const struct cmd_info *t = cmd_table(&n);
	(void)state;
	for (size_t i = 0; i < n; i++) {
		if (t[i].min_args < 0)
			fail_msg("%s: min_args %d", t[i].name, t[i].min_args);
		if (t[i].max_args != -1 && t[i].max_args < t[i].min_args)
			fail_msg("%s: max_args %d < min_args %d", t[i].name, t[i].max_args, t[i].min_args);
	}
}

static void test_table_names_unique_and_help_present(void **state)
{
	/* Names are unique lower-case words, each with help text, and
	 * cmd_lookup finds each one as itself. */
	size_t n;
	const struct cmd_info *t = cmd_table(&n);
	(void)state;
	for (size_t i = 0; i < n; i++) {
		assert_true(strlen(t[i].help) > 10);
		for (const char *p = t[i].name; *p; p++)
			assert_true(*p >= 'a' && *p <= 'z');
		for (size_t j = i + 1; j < n; j++)
			assert_string_not_equal(t[i].name, t[j].name);
		assert_ptr_equal(cmd_lookup(t[i].name), &t[i]);
	}
	assert_null(cmd_lookup("frobnicate"));
}

/* The table read as the broker's dispatcher reads it, keeping the handler names. */
static const struct {
	const char *name;
	const char *handler;
} raw_table[] = {
#define CMD(name, usage, help, min, max, flags, complete, handler) { name, #handler },
#include "common/cmd_table.h"
#undef CMD
};

static void test_table_every_command_has_a_handler(void **state)
{
	/* Every entry names its handler, cmd_<name> by the house convention,
	 * and cmd_table() (what mqsh and help read) lists the same commands
	 * in the same order as the dispatcher's copy. */
	size_t n;
	const struct cmd_info *t = cmd_table(&n);
	char want[64];
	(void)state;
	assert_int_equal(n, ARRAY_LEN(raw_table));
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(t[i].name, raw_table[i].name);
		snprintf(want, sizeof want, "cmd_%s", raw_table[i].name);
		if (strcmp(raw_table[i].handler, want) != 0)
			fail_msg("%s: handler '%s', expected '%s'", raw_table[i].name, raw_table[i].handler, want);
	}
}

static int count_words(const char *s)
{
	int n = 0;
	while (*s) {
		while (*s == ' ')
			s++;
		if (!*s)
			break;
		n++;
		s += strcspn(s, " ");
	}
	return n;
}

static void test_table_complete_hints(void **state)
{
	/* A hint per argument position at most, each one that mqsh knows;
	 * commands that take any number of words still hint at most one per
	 * word the usage names. */
	static const char *const known[] = { "kind", "dest", "queue", "topic", "pubsub", "client",
	                                     "listing", "command", "durable", "user", "vhost", "bridge", "-" };
	size_t n;
	const struct cmd_info *t = cmd_table(&n);
	(void)state;
	for (size_t i = 0; i < n; i++) {
		const char *p = t[i].complete;
		int words;
		assert_non_null(p);
		words = count_words(p);
		if (t[i].max_args >= 0 && words > t[i].max_args)
			fail_msg("%s: %d complete hints for at most %d arguments", t[i].name, words, t[i].max_args);
		while (*p) {
			size_t len;
			bool ok = false;
			while (*p == ' ')
				p++;
			len = strcspn(p, " ");
			for (size_t k = 0; k < ARRAY_LEN(known); k++)
				if (strlen(known[k]) == len && strncmp(known[k], p, len) == 0)
					ok = true;
			if (len && !ok)
				fail_msg("%s: unknown complete hint '%.*s'", t[i].name, (int)len, p);
			p += len;
		}
	}
}

static void test_status_names(void **state)
{
	/* Every status family has a name; anything else is internal. */
	(void)state;
	assert_string_equal(cmd_status_name(200), "ok");
	assert_string_equal(cmd_status_name(400), "syntax");
	assert_string_equal(cmd_status_name(403), "not permitted");
	assert_string_equal(cmd_status_name(404), "not found");
	assert_string_equal(cmd_status_name(405), "unknown command");
	assert_string_equal(cmd_status_name(409), "conflict");
	assert_string_equal(cmd_status_name(422), "bad argument");
	assert_string_equal(cmd_status_name(500), "internal");
	assert_string_equal(cmd_status_name(123), "internal");
}

/* ---- the dispatcher's checks, before any handler ---- */

static struct cmd_reply run_line(const char *line, bool admin)
{
	struct cmd_ctx ctx = { NULL, admin, "test", NULL };
	struct cmd_reply r;
	cmd_reply_init(&r);
	cmd_exec_line(&ctx, line, &r);
	return r;
}

static void test_exec_checks_before_handlers(void **state)
{
	/* The table's counts, unknown names, prefixes and permissions are
	 * checked by the dispatcher, with one line naming the command and
	 * what it expected. No broker is needed: no handler runs. */
	static const struct {
		const char *line;
		bool admin;
		int status;
		const char *message;
	} cases[] = {
		{ "purge", true, 400, "purge: missing argument (usage: purge QUEUE [vhost=V])" },
		{ "purge a b c", true, 400, "purge: too many arguments (usage: purge QUEUE [vhost=V])" },
		{ "stats now", true, 400, "stats: too many arguments (usage: stats)" },
		{ "create queue", true, 400, "create: missing argument" },
		{ "frobnicate", true, 405, "unknown command 'frobnicate' (try: help)" },
		{ "", true, 400, "empty command (try: help)" },
		{ "   ", true, 400, "empty command (try: help)" },
		{ "p /queue/x", true, 405, "unknown command 'p' (try: help)" },	/* pause, purge */
		{ "pur", true, 400, "purge: missing argument" },			/* prefix of purge only */
		{ "purge /queue/x", false, 403, "purge: not permitted: admin rights needed" },
		{ "shutdown", false, 403, "shutdown: not permitted" },
		{ "create queue \"/queue/x", true, 400, "unterminated double quote" },
		{ "create queue '/queue/x", true, 400, "unterminated single quote" },
	};
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		struct cmd_reply r = run_line(cases[i].line, cases[i].admin);
		if (r.status != cases[i].status || !strstr(r.message, cases[i].message))
			fail_msg("'%s': expected %d '%s', got %d '%s'", cases[i].line, cases[i].status,
			         cases[i].message, r.status, r.message);
		cmd_reply_fini(&r);
	}
}

static void test_exec_help_needs_no_broker(void **state)
{
	/* help reads only the table: its reply lists every command, and
	 * `help NAME` gives the usage as the message. */
	size_t n;
	struct cmd_reply r = run_line("help", false);
	char err[128];
	struct json *j;
	(void)state;
	cmd_table(&n);
	assert_int_equal(r.status, 200);
	j = json_parse(r.data.buf, r.data.len, err, sizeof err);
	assert_non_null(j);
	assert_int_equal(j->type, JSON_ARR);
	assert_int_equal(j->len, n);
	assert_string_equal(json_get_str(j->items[0], "command"), "help");
	json_free(j);
	cmd_reply_fini(&r);
	r = run_line("help purge", false);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.message, "purge QUEUE [vhost=V]");
	cmd_reply_fini(&r);
	r = run_line("help nothing", false);
	assert_int_equal(r.status, 405);	/* the same as running the unknown command */
	cmd_reply_fini(&r);
}

/* ---- cmdline_split ---- */

static void test_split_quoting(void **state)
{
	/* Blanks separate; quotes group; a backslash escapes one byte outside
	 * quotes and inside double quotes, but not inside single quotes. */
	static const struct {
		const char *line;
		int argc;
		const char *words[6];
	} cases[] = {
		{ "", 0, { NULL } },
		{ " \t ", 0, { NULL } },
		{ "stats", 1, { "stats" } },
		{ "  list   queues  ", 2, { "list", "queues" } },
		{ "a\tb\r\nc", 3, { "a", "b", "c" } },
		{ "publish /q 'hello world'", 3, { "publish", "/q", "hello world" } },
		{ "publish /q \"hello world\"", 3, { "publish", "/q", "hello world" } },
		{ "x 'it''s'", 2, { "x", "its" } },
		{ "x \"it's\"", 2, { "x", "it's" } },
		{ "x 'say \"hi\"'", 2, { "x", "say \"hi\"" } },
		{ "x \"a \\\"b\\\" c\"", 2, { "x", "a \"b\" c" } },
		{ "x 'a\\nb'", 2, { "x", "a\\nb" } },		/* single quotes: backslash is literal */
		{ "x a\\ b", 2, { "x", "a b" } },
		{ "x a\\\\b", 2, { "x", "a\\b" } },
		{ "x ''", 2, { "x", "" } },
		{ "x \"\"", 2, { "x", "" } },
		{ "x a\"b c\"d", 2, { "x", "ab cd" } },	/* quotes join with what touches them */
		{ "x trailing\\", 2, { "x", "trailing\\" } },	/* a lone final backslash stays */
		{ "x #not-a-comment", 2, { "x", "#not-a-comment" } },
		{ "x a;b", 2, { "x", "a;b" } },		/* ';' is mqsh's business, not the broker's */
	};
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
		char **argv, err[128];
		int argc = cmdline_split(cases[i].line, &argv, err, sizeof err);
		if (argc != cases[i].argc)
			fail_msg("'%s': %d words, expected %d (%s)", cases[i].line, argc, cases[i].argc, argc < 0 ? err : "");
		for (int k = 0; k < argc; k++)
			if (strcmp(argv[k], cases[i].words[k]) != 0)
				fail_msg("'%s': word %d is '%s', expected '%s'", cases[i].line, k, argv[k], cases[i].words[k]);
		assert_null(argv[argc]);
		free(argv);
	}
}

static void test_split_errors(void **state)
{
	/* Unterminated quotes and too many words are refused with the reason. */
	char **argv, err[128];
	struct sbuf many;
	(void)state;
	assert_int_equal(cmdline_split("x \"open", &argv, err, sizeof err), -1);
	assert_string_equal(err, "unterminated double quote");
	assert_int_equal(cmdline_split("x 'open", &argv, err, sizeof err), -1);
	assert_string_equal(err, "unterminated single quote");
	assert_int_equal(cmdline_split("x \"esc\\\"", &argv, err, sizeof err), -1);
	sbuf_init(&many);
	for (int i = 0; i < CMDLINE_MAX_ARGS; i++)
		sbuf_adds(&many, "w ");
	assert_int_equal(cmdline_split(many.buf, &argv, err, sizeof err), CMDLINE_MAX_ARGS);
	free(argv);
	sbuf_adds(&many, "one-more");
	assert_int_equal(cmdline_split(many.buf, &argv, err, sizeof err), -1);
	assert_non_null(strstr(err, "too many words (limit 64)"));
	sbuf_fini(&many);
}

static void test_quote_round_trips(void **state)
{
	/* cmdline_quote() writes what cmdline_split() reads back as the same
	 * word; plain words stay unquoted. */
	static const char *const words[] = {
		"plain", "/queue/a.b-c", "two words", "", "it's", "say \"hi\"", "back\\slash", "tab\there",
		"new\nline", "'", "\"", "\\", "a;b", "#hash",
	};
	(void)state;
	for (size_t i = 0; i < ARRAY_LEN(words); i++) {
		struct sbuf line;
		char **argv, err[128];
		sbuf_init(&line);
		sbuf_adds(&line, "cmd ");
		cmdline_quote(&line, words[i]);
		assert_int_equal(cmdline_split(line.buf, &argv, err, sizeof err), 2);
		assert_string_equal(argv[1], words[i]);
		if (i < 2)
			assert_string_equal(line.buf + 4, words[i]);
		free(argv);
		sbuf_fini(&line);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table_usage_starts_with_name),
		cmocka_unit_test(test_table_argument_counts_are_sane),
		cmocka_unit_test(test_table_names_unique_and_help_present),
		cmocka_unit_test(test_table_every_command_has_a_handler),
		cmocka_unit_test(test_table_complete_hints),
		cmocka_unit_test(test_status_names),
		cmocka_unit_test(test_exec_checks_before_handlers),
		cmocka_unit_test(test_exec_help_needs_no_broker),
		cmocka_unit_test(test_split_quoting),
		cmocka_unit_test(test_split_errors),
		cmocka_unit_test(test_quote_round_trips),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
