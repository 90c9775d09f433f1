/* test_verifier.c: password checks off the event loop: answers through a
 * real libevent loop and worker threads, the cache (hits, bounds, idle
 * expiry, a changed hash, forget), joined checks, cancellation, the
 * queue bound, and that the loop keeps turning while a hash runs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "common/passwd.h"
#include "auth/verifier.h"
#include "common/log.h"
#include "common/util.h"

#define FAST 1000	/* iterations for hashes the tests make: quick under ASan */

struct t {
	struct event_base *base;
	struct verifier *v;
};

struct answer {
	int calls;
	enum verify_status st;
	char hash[PASSWD_HASH_MAX];
	char err[256];
};

static void on_answer(enum verify_status st, void *arg)
{
	struct answer *a = arg;
	a->calls++;
	a->st = st;
}

static void on_hash(const char *hash, const char *err, void *arg)
{
	struct answer *a = arg;
	a->calls++;
	snprintf(a->hash, sizeof a->hash, "%s", hash ? hash : "");
	snprintf(a->err, sizeof a->err, "%s", err ? err : "");
}

static uint64_t fake_now;
static uint64_t fake_clock(void)
{
	return fake_now;
}

static struct t *start(const struct verifier_opts *o)
{
	struct t *t = xcalloc(1, sizeof *t);
	char err[256];
	t->base = event_base_new();
	assert_non_null(t->base);
	t->v = verifier_new(t->base, o, err, sizeof err);
	if (!t->v)
		fail_msg("verifier_new: %s", err);
	return t;
}

static void stop(struct t *t)
{
	verifier_free(t->v);
	event_base_free(t->base);
	free(t);
}

/* Runs the loop until *calls reaches want (or 30 s pass: a failure). */
static void run_until(struct t *t, const int *calls, int want)
{
	uint64_t end = mono_ms() + 30000;
	while (*calls < want) {
		if (mono_ms() > end)
			fail_msg("timed out waiting for %d callbacks (got %d)", want, *calls);
		event_base_loop(t->base, EVLOOP_ONCE);
	}
}

static void make_hash(const char *pw, unsigned iter, char *out)
{
	char err[256];
	if (passwd_hash(pw, strlen(pw), iter, out, PASSWD_HASH_MAX, err, sizeof err) < 0)
		fail_msg("passwd_hash: %s", err);
}

static void test_plain_passcodes_answer_at_once(void **state)
{
	/* an old configuration file's plain passcode needs no worker */
	struct t *t = start(NULL);
	struct verify_req *r = (void *)1;
	struct answer a = { 0 };
	(void)state;
	assert_int_equal(verifier_check(t->v, "guest", "guest", "guest", on_answer, &a, &r), VERIFY_OK);
	assert_null(r);
	assert_int_equal(verifier_check(t->v, "guest", "nope", "guest", on_answer, &a, &r), VERIFY_WRONG);
	assert_int_equal(verifier_check(t->v, "guest", "", "guest", on_answer, &a, &r), VERIFY_WRONG);
	assert_int_equal(a.calls, 0);
	stop(t);
}

static void test_malformed_stored_hash_is_an_error(void **state)
{
	struct t *t = start(NULL);
	struct verify_req *r;
	struct answer a = { 0 };
	(void)state;
	assert_int_equal(verifier_check(t->v, "u", "pw", "$pbkdf2-sha512$i=12$AAAA$BBBB", on_answer, &a, &r),
	                 VERIFY_ERROR);
	assert_int_equal(verifier_check(t->v, "u", "pw", "$2b$10$xyz", on_answer, &a, &r), VERIFY_ERROR);
	stop(t);
}

static void test_hash_verified_on_worker_then_cached(void **state)
{
	/* The first check is answered through the loop; the second comes
	 * from the cache at once. A wrong password is never cached. */
	struct t *t = start(NULL);
	struct verify_req *r;
	struct answer a = { 0 };
	struct verifier_stats st;
	char h[PASSWD_HASH_MAX];
	(void)state;
	make_hash("right", FAST, h);
	assert_int_equal(verifier_check(t->v, "alice", "right", h, on_answer, &a, &r), VERIFY_PENDING);
	assert_non_null(r);
	assert_int_equal(a.calls, 0);	/* never from inside verifier_check */
	run_until(t, &a.calls, 1);
	assert_int_equal(a.st, VERIFY_OK);
	assert_int_equal(verifier_check(t->v, "alice", "right", h, on_answer, &a, &r), VERIFY_OK);
	assert_null(r);

	memset(&a, 0, sizeof a);
	assert_int_equal(verifier_check(t->v, "alice", "wrong", h, on_answer, &a, &r), VERIFY_PENDING);
	run_until(t, &a.calls, 1);
	assert_int_equal(a.st, VERIFY_WRONG);
	memset(&a, 0, sizeof a);
	assert_int_equal(verifier_check(t->v, "alice", "wrong", h, on_answer, &a, &r), VERIFY_PENDING);
	run_until(t, &a.calls, 1);
	assert_int_equal(a.st, VERIFY_WRONG);

	/* the same password under another login is another entry */
	memset(&a, 0, sizeof a);
	assert_int_equal(verifier_check(t->v, "bob", "right", h, on_answer, &a, &r), VERIFY_PENDING);
	run_until(t, &a.calls, 1);
	assert_int_equal(a.st, VERIFY_OK);

	verifier_get_stats(t->v, &st);
	assert_int_equal(st.hits, 1);
	assert_int_equal(st.computed, 4);
	assert_int_equal(st.wrong, 2);
	assert_int_equal(st.cached, 2);
	stop(t);
}

static void test_login_password_boundary(void **state)
{
	/* ("ab", "c") and ("a", "bc") are different entries */
	struct t *t = start(NULL);
	struct verify_req *r;
	struct answer a = { 0 };
	char h[PASSWD_HASH_MAX];
	(void)state;
	make_hash("c", FAST, h);
	assert_int_equal(verifier_check(t->v, "ab", "c", h, on_answer, &a, &r), VERIFY_PENDING);
	run_until(t, &a.calls, 1);
	assert_int_equal(a.st, VERIFY_OK);
	memset(&a, 0, sizeof a);
	assert_int_equal(verifier_check(t->v, "a", "bc", h, on_answer, &a, &r), VERIFY_PENDING);
	run_until(t, &a.calls, 1);
	assert_int_equal(a.st, VERIFY_WRONG);
	stop(t);
}

static void test_changed_hash_stops_matching(void **state)
{
	/* After user passwd the stored hash differs: the old entry no longer
	 * answers, even for the old password (which the new hash refuses). */
	struct t *t = start(NULL);
	struct verify_req *r;
	struct answer a = { 0 };
	char h1[PASSWD_HASH_MAX], h2[PASSWD_HASH_MAX];
	(void)state;
	make_hash("old", FAST, h1);
	make_hash("new", FAST, h2);
	assert_int_equal(verifier_check(t->v, "alice", "old", h1, on_answer, &a, &r), VERIFY_PENDING);
	run_until(t, &a.calls, 1);
	assert_int_equal(verifier_check(t->v, "alice", "old", h1, on_answer, &a, &r), VERIFY_OK);
	memset(&a, 0, sizeof a);
	assert_int_equal(verifier_check(t->v, "alice", "old", h2, on_answer, &a, &r), VERIFY_PENDING);
	run_until(t, &a.calls, 1);
	assert_int_equal(a.st, VERIFY_WRONG);
	stop(t);
}

static void test_forget_drops_entries(void **state)
{
	struct t *t = start(NULL);
	struct verify_req *r;
	struct answer a = { 0 };
	struct verifier_stats st;
	char h[PASSWD_HASH_MAX];
	(void)state;
	make_hash("pw", FAST, h);
	verifier_check(t->v, "alice", "pw", h, on_answer, &a, &r);
	verifier_check(t->v, "bob", "pw", h, on_answer, &a, &r);
	run_until(t, &a.calls, 2);
	verifier_forget(t->v, "alice");
	verifier_get_stats(t->v, &st);
	assert_int_equal(st.cached, 1);
	assert_int_equal(verifier_check(t->v, "alice", "pw", h, on_answer, &a, &r), VERIFY_PENDING);
	assert_int_equal(verifier_check(t->v, "bob", "pw", h, on_answer, &a, &r), VERIFY_OK);
	run_until(t, &a.calls, 3);
	stop(t);
}

static void test_cache_is_bounded_lru(void **state)
{
	/* A cache of 4: six users verified, the two least recently used are
	 * gone, and a hit refreshes an entry. */
	struct verifier_opts o = { .cache_size = 4 };
	struct t *t = start(&o);
	struct verify_req *r;
	struct answer a = { 0 };
	struct verifier_stats st;
	char h[PASSWD_HASH_MAX], login[16];
	(void)state;
	make_hash("pw", FAST, h);
	for (int i = 0; i < 6; i++) {
		snprintf(login, sizeof login, "u%d", i);
		assert_int_equal(verifier_check(t->v, login, "pw", h, on_answer, &a, &r), VERIFY_PENDING);
		run_until(t, &a.calls, i + 1);
		if (i == 3)	/* touch u2: now u3 is older */
			assert_int_equal(verifier_check(t->v, "u2", "pw", h, on_answer, &a, &r), VERIFY_OK);
	}
	verifier_get_stats(t->v, &st);
	assert_int_equal(st.cached, 4);
	assert_int_equal(verifier_check(t->v, "u2", "pw", h, on_answer, &a, &r), VERIFY_OK);
	assert_int_equal(verifier_check(t->v, "u4", "pw", h, on_answer, &a, &r), VERIFY_OK);
	assert_int_equal(verifier_check(t->v, "u5", "pw", h, on_answer, &a, &r), VERIFY_OK);
	assert_int_equal(verifier_check(t->v, "u0", "pw", h, on_answer, &a, &r), VERIFY_PENDING);
	verifier_cancel(t->v, r);
	assert_int_equal(verifier_check(t->v, "u1", "pw", h, on_answer, &a, &r), VERIFY_PENDING);
	verifier_cancel(t->v, r);
	stop(t);
}

static void test_idle_entries_expire(void **state)
{
	/* an entry unused for cache_idle_ms is gone; use keeps it alive */
	struct verifier_opts o = { .cache_idle_ms = 1000, .clock_ms = fake_clock };
	struct t *t;
	struct verify_req *r;
	struct answer a = { 0 };
	char h[PASSWD_HASH_MAX];
	(void)state;
	fake_now = 5000;
	t = start(&o);
	make_hash("pw", FAST, h);
	verifier_check(t->v, "alice", "pw", h, on_answer, &a, &r);
	run_until(t, &a.calls, 1);
	fake_now += 999;
	assert_int_equal(verifier_check(t->v, "alice", "pw", h, on_answer, &a, &r), VERIFY_OK);
	fake_now += 999;
	assert_int_equal(verifier_check(t->v, "alice", "pw", h, on_answer, &a, &r), VERIFY_OK);
	fake_now += 1000;
	assert_int_equal(verifier_check(t->v, "alice", "pw", h, on_answer, &a, &r), VERIFY_PENDING);
	run_until(t, &a.calls, 2);
	stop(t);
}

static void test_storm_shares_one_hash(void **state)
{
	/* 2,000 logins with the same credentials arrive before the first
	 * hash is done: one computation, every one of them answered OK, and
	 * the next 2,000 come from the cache without a worker. */
	struct t *t = start(NULL);
	static struct verify_req *r[2000];
	struct answer a = { 0 };
	struct verifier_stats st;
	char h[PASSWD_HASH_MAX];
	int ok = 0;
	(void)state;
	make_hash("storm", 20000, h);
	for (int i = 0; i < 2000; i++)
		assert_int_equal(verifier_check(t->v, "agent", "storm", h, on_answer, &a, &r[i]), VERIFY_PENDING);
	run_until(t, &a.calls, 2000);
	assert_int_equal(a.st, VERIFY_OK);
	for (int i = 0; i < 2000; i++)
		ok += verifier_check(t->v, "agent", "storm", h, on_answer, &a, &r[i]) == VERIFY_OK;
	assert_int_equal(ok, 2000);
	verifier_get_stats(t->v, &st);
	assert_int_equal(st.computed, 1);
	assert_int_equal(st.joined, 1999);
	assert_int_equal(st.hits, 2000);
	stop(t);
}

struct ticker {
	struct event *ev;
	int ticks;
};

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	struct ticker *tk = arg;
	(void)fd;
	(void)what;
	tk->ticks++;
}

static void test_loop_turns_while_hashing(void **state)
{
	/* While a worker runs a costly verification (about 0.4 s at 420,000
	 * iterations), a 10 ms timer on the loop keeps firing: the loop is
	 * not the one doing the work. Checked by count, not by time, so a
	 * slow machine slows both sides alike. */
	struct t *t = start(NULL);
	struct verify_req *r;
	struct answer a = { 0 };
	struct ticker tk = { 0 };
	struct timeval ten = { 0, 10000 };
	char h[PASSWD_HASH_MAX];
	(void)state;
	make_hash("slow", 420000, h);
	tk.ev = event_new(t->base, -1, EV_PERSIST, on_tick, &tk);
	event_add(tk.ev, &ten);
	assert_int_equal(verifier_check(t->v, "alice", "slow", h, on_answer, &a, &r), VERIFY_PENDING);
	run_until(t, &a.calls, 1);
	assert_int_equal(a.st, VERIFY_OK);
	if (tk.ticks < 5)
		fail_msg("the loop turned %d times during the hash: it was blocked", tk.ticks);
	event_free(tk.ev);
	stop(t);
}

static void test_cancel_before_start_skips_the_work(void **state)
{
	/* One worker busy with a slow hash; a check queued behind it and then
	 * cancelled is never computed and never called back. */
	struct t *t = start(NULL);
	struct verify_req *r;
	struct answer slow = { 0 }, a = { 0 };
	struct verifier_stats st;
	char h[PASSWD_HASH_MAX];
	(void)state;
	make_hash("pw", FAST, h);
	verifier_hash(t->v, "x", 300000, on_hash, &slow);
	assert_int_equal(verifier_check(t->v, "alice", "pw", h, on_answer, &a, &r), VERIFY_PENDING);
	verifier_get_stats(t->v, &st);
	verifier_cancel(t->v, r);
	run_until(t, &slow.calls, 1);
	/* give a wrongly kept job its chance to come back */
	for (int i = 0; i < 20; i++)
		event_base_loop(t->base, EVLOOP_NONBLOCK);
	assert_int_equal(a.calls, 0);
	verifier_get_stats(t->v, &st);
	assert_int_equal(st.computed, 0);
	assert_int_equal(st.queued, 0);
	stop(t);
}

static void test_cancel_one_waiter_of_many(void **state)
{
	/* Three logins share a hash; the second goes away: the other two are
	 * answered, it is not. */
	struct t *t = start(NULL);
	struct verify_req *r1, *r2, *r3;
	struct answer a1 = { 0 }, a2 = { 0 }, a3 = { 0 };
	char h[PASSWD_HASH_MAX];
	(void)state;
	make_hash("pw", FAST, h);
	verifier_check(t->v, "alice", "pw", h, on_answer, &a1, &r1);
	verifier_check(t->v, "alice", "pw", h, on_answer, &a2, &r2);
	verifier_check(t->v, "alice", "pw", h, on_answer, &a3, &r3);
	verifier_cancel(t->v, r2);
	run_until(t, &a3.calls, 1);
	assert_int_equal(a1.calls, 1);
	assert_int_equal(a2.calls, 0);
	stop(t);
}

static void test_full_queue_refuses(void **state)
{
	/* max_queue 2 and one worker: of ten distinct logins at once, two or
	 * three are taken (the worker may already hold one), the rest are
	 * refused as busy, and the taken ones are all answered. */
	struct verifier_opts o = { .max_queue = 2, .threads = 1 };
	struct t *t = start(&o);
	struct verify_req *r;
	struct answer a = { 0 };
	struct verifier_stats st;
	char h[PASSWD_HASH_MAX], login[16];
	int pending = 0, busy = 0;
	(void)state;
	make_hash("pw", FAST, h);
	for (int i = 0; i < 10; i++) {
		snprintf(login, sizeof login, "u%d", i);
		switch (verifier_check(t->v, login, "pw", h, on_answer, &a, &r)) {
		case VERIFY_PENDING: pending++; break;
		case VERIFY_BUSY: busy++; break;
		default: fail_msg("unexpected status");
		}
	}
	assert_true(pending >= 2 && pending <= 3);
	assert_int_equal(pending + busy, 10);
	run_until(t, &a.calls, pending);
	verifier_get_stats(t->v, &st);
	assert_int_equal(st.busy, (uint64_t)busy);
	stop(t);
}

static void test_async_hash(void **state)
{
	/* verifier_hash makes a string that verifies the password */
	struct t *t = start(NULL);
	struct answer a = { 0 };
	char err[256];
	(void)state;
	verifier_hash(t->v, "new password", FAST, on_hash, &a);
	run_until(t, &a.calls, 1);
	assert_int_equal(passwd_verify(a.hash, "new password", 12, err, sizeof err), PASSWD_MATCH);
	memset(&a, 0, sizeof a);
	verifier_hash(t->v, "x", 5, on_hash, &a);	/* below the minimum */
	run_until(t, &a.calls, 1);
	assert_string_equal(a.hash, "");
	assert_non_null(strstr(a.err, "iteration count 5"));
	stop(t);
}

static void test_free_with_requests_outstanding(void **state)
{
	/* freeing with work queued and under way calls nobody back and leaks
	 * nothing (ASan watches) */
	struct t *t = start(NULL);
	struct verify_req *r;
	struct answer a = { 0 };
	char h[PASSWD_HASH_MAX];
	(void)state;
	make_hash("pw", FAST, h);
	verifier_hash(t->v, "x", 50000, on_hash, &a);
	for (int i = 0; i < 5; i++) {
		char login[8];
		snprintf(login, sizeof login, "u%d", i);
		verifier_check(t->v, login, "pw", h, on_answer, &a, &r);
	}
	stop(t);
	assert_int_equal(a.calls, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_plain_passcodes_answer_at_once),
		cmocka_unit_test(test_malformed_stored_hash_is_an_error),
		cmocka_unit_test(test_hash_verified_on_worker_then_cached),
		cmocka_unit_test(test_login_password_boundary),
		cmocka_unit_test(test_changed_hash_stops_matching),
		cmocka_unit_test(test_forget_drops_entries),
		cmocka_unit_test(test_cache_is_bounded_lru),
		cmocka_unit_test(test_idle_entries_expire),
		cmocka_unit_test(test_storm_shares_one_hash),
		cmocka_unit_test(test_loop_turns_while_hashing),
		cmocka_unit_test(test_cancel_before_start_skips_the_work),
		cmocka_unit_test(test_cancel_one_waiter_of_many),
		cmocka_unit_test(test_full_queue_refuses),
		cmocka_unit_test(test_async_hash),
		cmocka_unit_test(test_free_with_requests_outstanding),
	};
	log_set_level(LOG_NONE);	/* the malformed-hash case logs an error by design */
	return cmocka_run_group_tests(tests, NULL, NULL);
}
