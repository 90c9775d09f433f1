/* test_client_mqsh_script.c: cutting `mqsh -c` text and script lines into
 * commands at ';' and newlines outside quotes, with '#' comments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

/* mqsh's sources are not a library: the test compiles the one it tests. */
#include "../../shell/script.c"

static void test_split_cases(void **state)
{
	/* Each input and the commands it must give, in order. */
	static const struct {
		const char *text;
		size_t n;
		const char *cmds[4];
	} cases[] = {
		{ "", 0, { NULL } },
		{ " ; ;; \n ", 0, { NULL } },
		{ "stats", 1, { "stats" } },
		{ "create queue /queue/a; list", 2, { "create queue /queue/a", "list" } },
		{ "  a  ;  b  ", 2, { "a", "b" } },
		{ "a\nb\r\nc", 3, { "a", "b", "c" } },
		{ "publish /q 'x; y'; stats", 2, { "publish /q 'x; y'", "stats" } },
		{ "publish /q \"x; y\"; stats", 2, { "publish /q \"x; y\"", "stats" } },
		{ "publish /q \"say \\\"a;b\\\"\"; stats", 2, { "publish /q \"say \\\"a;b\\\"\"", "stats" } },
		{ "publish /q x\\;y; stats", 2, { "publish /q x\\;y", "stats" } },
		{ "publish /q 'it\\'; stats", 2, { "publish /q 'it\\'", "stats" } },	/* no escapes in '' */
		{ "# only a comment", 0, { NULL } },
		{ "stats # why not", 1, { "stats" } },
		{ "stats # a; b\nlist", 2, { "stats", "list" } },	/* a comment runs to the line's end */
		{ "publish /q a#b", 1, { "publish /q a#b" } },	/* '#' inside a word is text */
		{ "publish /q '# not a comment'", 1, { "publish /q '# not a comment'" } },
		{ "publish /q \"open; quote", 1, { "publish /q \"open; quote" } },	/* cmdline_split reports it */
		{ "publish /q a\\ ", 1, { "publish /q a\\ " } },	/* an escaped blank is kept */
		{ "publish /q a\\\\ ; x", 2, { "publish /q a\\\\", "x" } },
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		size_t n;
		char **cmds = script_split(cases[i].text, &n);
		if (n != cases[i].n)
			fail_msg("'%s': %zu commands, expected %zu", cases[i].text, n, cases[i].n);
		for (size_t k = 0; k < n; k++)
			if (strcmp(cmds[k], cases[i].cmds[k]) != 0)
				fail_msg("'%s': command %zu is '%s', expected '%s'", cases[i].text, k, cmds[k], cases[i].cmds[k]);
		assert_null(cmds[n]);
		script_free(cmds);
	}
}

static void test_last_offset(void **state)
{
	/* Completion sees the whole line: the command being typed starts after
	 * the last separator outside quotes. */
	static const struct {
		const char *text;
		size_t off;
	} cases[] = {
		{ "", 0 },
		{ "show /q", 0 },
		{ "stats; show /q", 6 },
		{ "stats;show", 6 },
		{ "publish /q 'a;b' x", 0 },
		{ "a; b; c", 5 },
		{ "a\\; b", 0 },
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		if (script_last_offset(cases[i].text) != cases[i].off)
			fail_msg("'%s': offset %zu, expected %zu", cases[i].text, script_last_offset(cases[i].text),
			         cases[i].off);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_split_cases),
		cmocka_unit_test(test_last_offset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
