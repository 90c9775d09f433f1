/* test_console_session.c: the web console's sessions: ids and tokens are
 * random and distinct, a session ends when idle, at its maximum age, or at
 * logout, being used keeps it alive (but not past its age), a full table
 * drops the least recently used, and tokens compare exactly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/console_session.h"

#define IDLE 1000
#define AGE 10000

static void test_ids_and_tokens_are_random_hex(void **state)
{
	/* 64 hex digits each, all different across sessions and from each other */
	struct console_sessions *t = console_sessions_new(100, IDLE, AGE);
	char seen[200][CONSOLE_SESSION_ID_LEN + 1];
	size_t n = 0;
	(void)state;
	for (int i = 0; i < 100; i++) {
		struct console_session *s = console_session_create(t, "alice", false, 0);
		assert_non_null(s);
		assert_int_equal(strlen(s->id), CONSOLE_SESSION_ID_LEN);
		assert_int_equal(strspn(s->id, "0123456789abcdef"), CONSOLE_SESSION_ID_LEN);
		assert_int_equal(strspn(s->token, "0123456789abcdef"), CONSOLE_SESSION_ID_LEN);
		snprintf(seen[n++], sizeof seen[0], "%s", s->id);
		snprintf(seen[n++], sizeof seen[0], "%s", s->token);
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			assert_string_not_equal(seen[i], seen[j]);
	assert_int_equal(console_sessions_count(t), 100);
	console_sessions_free(t);
}

static void test_found_by_id_with_its_user(void **state)
{
	struct console_sessions *t = console_sessions_new(8, IDLE, AGE);
	struct console_session *s = console_session_create(t, "root", true, 0);
	char id[CONSOLE_SESSION_ID_LEN + 1], wrong[CONSOLE_SESSION_ID_LEN + 1];
	(void)state;
	snprintf(id, sizeof id, "%s", s->id);
	s = console_session_find(t, id, 10);
	assert_non_null(s);
	assert_string_equal(s->login, "root");
	assert_true(s->admin);
	/* one digit off, a prefix, nothing: no session */
	snprintf(wrong, sizeof wrong, "%s", id);
	wrong[0] = wrong[0] == 'a' ? 'b' : 'a';
	assert_null(console_session_find(t, wrong, 10));
	wrong[CONSOLE_SESSION_ID_LEN - 1] = 0;
	assert_null(console_session_find(t, wrong, 10));
	assert_null(console_session_find(t, "", 10));
	assert_null(console_session_find(t, NULL, 10));
	console_sessions_free(t);
}

static void test_idle_sessions_expire_and_use_keeps_them(void **state)
{
	struct console_sessions *t = console_sessions_new(8, IDLE, AGE);
	char id[CONSOLE_SESSION_ID_LEN + 1];
	(void)state;
	snprintf(id, sizeof id, "%s", console_session_create(t, "a", false, 0)->id);
	/* used every 900 ms: alive well past the idle time */
	for (uint64_t now = 900; now < 5000; now += 900)
		assert_non_null(console_session_find(t, id, now));
	/* peeking does not count as use */
	assert_non_null(console_session_peek(t, id, 4500 + IDLE - 1));
	assert_null(console_session_peek(t, id, 4500 + IDLE));
	/* and it is gone for good, not only hidden */
	assert_int_equal(console_sessions_count(t), 0);
	assert_null(console_session_find(t, id, 4500));
	console_sessions_free(t);
}

static void test_sessions_end_at_their_maximum_age(void **state)
{
	struct console_sessions *t = console_sessions_new(8, IDLE, AGE);
	char id[CONSOLE_SESSION_ID_LEN + 1];
	uint64_t now;
	(void)state;
	snprintf(id, sizeof id, "%s", console_session_create(t, "a", false, 100)->id);
	for (now = 600; now < 100 + AGE; now += 500)
		assert_non_null(console_session_find(t, id, now));
	assert_null(console_session_find(t, id, 100 + AGE));
	console_sessions_free(t);
}

static void test_expire_sweeps_only_the_expired(void **state)
{
	struct console_sessions *t = console_sessions_new(500, IDLE, AGE);
	char keep[CONSOLE_SESSION_ID_LEN + 1];
	(void)state;
	/* more than one sweep batch */
	for (int i = 0; i < 300; i++)
		assert_non_null(console_session_create(t, "old", false, 0));
	snprintf(keep, sizeof keep, "%s", console_session_create(t, "new", false, 800)->id);
	assert_int_equal(console_sessions_expire(t, 1500), 300);
	assert_int_equal(console_sessions_count(t), 1);
	assert_string_equal(console_session_find(t, keep, 1500)->login, "new");
	console_sessions_free(t);
}

static void test_logout_ends_the_session(void **state)
{
	struct console_sessions *t = console_sessions_new(8, IDLE, AGE);
	char id[CONSOLE_SESSION_ID_LEN + 1];
	(void)state;
	snprintf(id, sizeof id, "%s", console_session_create(t, "a", false, 0)->id);
	assert_true(console_session_end(t, id));
	assert_null(console_session_find(t, id, 1));
	assert_false(console_session_end(t, id));
	assert_false(console_session_end(t, NULL));
	console_sessions_free(t);
}

static void test_a_full_table_drops_the_least_recently_used(void **state)
{
	struct console_sessions *t = console_sessions_new(3, IDLE, AGE);
	char ids[4][CONSOLE_SESSION_ID_LEN + 1];
	(void)state;
	for (int i = 0; i < 3; i++)
		snprintf(ids[i], sizeof ids[i], "%s", console_session_create(t, "u", false, (uint64_t)i * 10)->id);
	/* the oldest is used again: the second becomes the stalest */
	assert_non_null(console_session_find(t, ids[0], 50));
	snprintf(ids[3], sizeof ids[3], "%s", console_session_create(t, "u", false, 60)->id);
	assert_int_equal(console_sessions_count(t), 3);
	assert_non_null(console_session_find(t, ids[0], 70));
	assert_null(console_session_find(t, ids[1], 70));
	assert_non_null(console_session_find(t, ids[2], 70));
	assert_non_null(console_session_find(t, ids[3], 70));
	console_sessions_free(t);
}

static void test_tokens_compare_exactly(void **state)
{
	struct console_sessions *t = console_sessions_new(8, IDLE, AGE);
	struct console_session *s = console_session_create(t, "a", false, 0);
	struct console_session *other = console_session_create(t, "a", false, 0);
	char tok[CONSOLE_SESSION_ID_LEN + 2];
	(void)state;
	assert_true(console_session_token_ok(s, s->token));
	assert_false(console_session_token_ok(s, other->token));
	assert_false(console_session_token_ok(s, s->id));
	assert_false(console_session_token_ok(s, NULL));
	assert_false(console_session_token_ok(s, ""));
	assert_false(console_session_token_ok(NULL, s->token));
	snprintf(tok, sizeof tok, "%sx", s->token);
	assert_false(console_session_token_ok(s, tok));
	tok[CONSOLE_SESSION_ID_LEN - 1] = 0;
	assert_false(console_session_token_ok(s, tok));
	console_sessions_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_ids_and_tokens_are_random_hex),
		cmocka_unit_test(test_found_by_id_with_its_user),
		cmocka_unit_test(test_idle_sessions_expire_and_use_keeps_them),
		cmocka_unit_test(test_sessions_end_at_their_maximum_age),
		cmocka_unit_test(test_expire_sweeps_only_the_expired),
		cmocka_unit_test(test_logout_ends_the_session),
		cmocka_unit_test(test_a_full_table_drops_the_least_recently_used),
		cmocka_unit_test(test_tokens_compare_exactly),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
