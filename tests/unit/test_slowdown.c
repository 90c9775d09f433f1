/* test_slowdown.c: the failed-login table: the delay curve, decay, how
 * peers are keyed, the bound on memory under many addresses, and the
 * table checked against a naive model through random churn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/slowdown.h"

static const struct slowdown_opts small = {
	.capacity = 64, .free_failures = 3, .base_ms = 250, .max_ms = 8000, .decay_ms = 60000,
};

static void test_delay_curve(void **state)
{
	/* No record, then free failures, then doubling from base to max. */
	static const uint64_t want[] = { 0, 0, 0, 250, 500, 1000, 2000, 4000, 8000, 8000, 8000 };
	struct slowdown *s = slowdown_new(&small);
	struct slowdown_stats st;
	(void)state;
	for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
		uint64_t d = slowdown_delay(s, "192.0.2.7:50122", 1000);
		if (d != want[i])
			fail_msg("after %zu failures: delay %llu ms, expected %llu", i, (unsigned long long)d,
			         (unsigned long long)want[i]);
		assert_int_equal(slowdown_failed(s, "192.0.2.7:50122", 1000), i + 1);
	}
	slowdown_get_stats(s, &st);
	assert_int_equal(st.failures, 11);
	assert_int_equal(st.delayed, 8);
	assert_int_equal(st.records, 1);
	/* another peer is untouched */
	assert_int_equal(slowdown_delay(s, "192.0.2.8:50122", 1000), 0);
	slowdown_free(s);
}

static void test_many_failures_do_not_overflow(void **state)
{
	/* a peer failing for ever stays at the ceiling */
	struct slowdown *s = slowdown_new(&small);
	(void)state;
	for (int i = 0; i < 100000; i++)
		slowdown_failed(s, "198.51.100.1", 5);
	assert_int_equal(slowdown_delay(s, "198.51.100.1", 5), 8000);
	slowdown_free(s);
}

static void test_failures_decay_with_quiet(void **state)
{
	/* One failure is forgotten per decay period without one; a new
	 * failure counts from what is left. A success changes nothing (there
	 * is no call for it). Expiry drops a record with nothing left. */
	struct slowdown *s = slowdown_new(&small);
	struct slowdown_stats st;
	const char *p = "203.0.113.9:1";
	(void)state;
	for (int i = 0; i < 6; i++)
		slowdown_failed(s, p, 0);
	assert_int_equal(slowdown_failures(s, p, 0), 6);
	assert_int_equal(slowdown_delay(s, p, 0), 2000);
	assert_int_equal(slowdown_failures(s, p, 59999), 6);
	assert_int_equal(slowdown_failures(s, p, 60000), 5);
	assert_int_equal(slowdown_delay(s, p, 60000), 1000);
	assert_int_equal(slowdown_failures(s, p, 180000), 3);
	assert_int_equal(slowdown_delay(s, p, 180000), 250);
	assert_int_equal(slowdown_delay(s, p, 240000), 0);
	assert_int_equal(slowdown_failed(s, p, 240000), 3);	/* 2 left + this one */
	slowdown_expire(s, 240000);
	slowdown_get_stats(s, &st);
	assert_int_equal(st.records, 1);
	slowdown_expire(s, 240000 + 3 * 60000);
	slowdown_get_stats(s, &st);
	assert_int_equal(st.records, 0);
	assert_int_equal(slowdown_failures(s, p, 240000), 0);
	slowdown_free(s);
}

static void test_peer_keys(void **state)
{
	/* The port never matters; an IPv6 peer is its /64; IPv4-mapped is
	 * IPv4; text that is no address gets a key no address has. */
	static const struct {
		const char *a, *b;
		bool same;
	} cases[] = {
		{ "192.0.2.7:50122", "192.0.2.7:1", true },
		{ "192.0.2.7:50122", "192.0.2.7", true },
		{ "192.0.2.7", "192.0.2.8", false },
		{ "[2001:db8::1]:5", "[2001:db8::2]:7", true },
		{ "[2001:db8::1]:5", "2001:db8::ffff:1", true },
		{ "[2001:db8::1]:5", "[2001:db8:0:1::1]:5", false },
		{ "[::ffff:192.0.2.7]:9", "192.0.2.7:50122", true },
		{ "[::ffff:192.0.2.7]:9", "192.0.2.8:50122", false },
		{ "unix", "unix", true },
		{ "unix", "0.0.0.0", false },
		{ "unix", "::", false },
		{ "unix", "somewhere", false },
	};
	(void)state;
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		struct slowdown_key ka, kb;
		slowdown_key(cases[i].a, &ka);
		slowdown_key(cases[i].b, &kb);
		if ((memcmp(&ka, &kb, sizeof ka) == 0) != cases[i].same)
			fail_msg("'%s' and '%s' should %sshare a key", cases[i].a, cases[i].b, cases[i].same ? "" : "not ");
	}
	{
		struct slowdown_key k;
		slowdown_key("unix", &k);
		assert_int_equal(k.b[0], 0xff);	/* ff00::/8: multicast, never a peer */
	}
}

static void test_bounded_under_many_addresses(void **state)
{
	/* 100,000 addresses fail once each (then a few more): the table never
	 * holds more than its capacity, the oldest go first, and the newest
	 * are all still there. */
	struct slowdown *s = slowdown_new(&small);
	struct slowdown_stats st;
	char peer[64];
	(void)state;
	for (unsigned i = 0; i < 100000; i++) {
		snprintf(peer, sizeof peer, "10.%u.%u.%u:4000", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		slowdown_failed(s, peer, i);
	}
	slowdown_get_stats(s, &st);
	assert_int_equal(st.records, 64);
	assert_int_equal(st.peak, 64);
	assert_int_equal(st.evicted, 100000 - 64);
	for (unsigned i = 100000 - 64; i < 100000; i++) {
		snprintf(peer, sizeof peer, "10.%u.%u.%u", (i >> 16) & 255, (i >> 8) & 255, i & 255);
		assert_int_equal(slowdown_failures(s, peer, 100000), 1);
	}
	assert_int_equal(slowdown_failures(s, "10.0.0.0", 100000), 0);
	/* a peer that keeps failing is kept: it is always the newest */
	for (unsigned i = 0; i < 1000; i++) {
		slowdown_failed(s, "192.0.2.1", 200000 + 2 * i);
		snprintf(peer, sizeof peer, "172.16.%u.%u", (i >> 8) & 255, i & 255);
		slowdown_failed(s, peer, 200000 + 2 * i + 1);
	}
	assert_int_equal(slowdown_failures(s, "192.0.2.1", 202000), 1000);
	slowdown_free(s);
}

/* ---- the table against a model ---- */

struct model_rec {
	unsigned addr;
	unsigned failures;
	uint64_t last;
	uint64_t seq;		/* order of the last failure, for eviction */
};

static unsigned model_eff(const struct model_rec *r, uint64_t now, uint64_t decay)
{
	uint64_t f = (now - r->last) / decay;
	return f >= r->failures ? 0 : r->failures - (unsigned)f;
}

static void test_matches_model_under_churn(void **state)
{
	/* Random failures from 300 addresses into a table of 50, with time
	 * moving and expiry now and then: after every step each address's
	 * count equals a naive model's (which keeps a list and evicts the
	 * record with the oldest last failure). This exercises the index's
	 * deletions far more than any hand-written case. */
	struct slowdown_opts o = small;
	struct model_rec m[50];
	size_t n = 0;
	uint64_t now = 0, seq = 0;
	struct slowdown *s;
	char peer[64];
	(void)state;
	o.capacity = 50;
	o.decay_ms = 1000;
	s = slowdown_new(&o);
	srand(7);
	for (int step = 0; step < 20000; step++) {
		unsigned a = (unsigned)rand() % 300;
		size_t i;
		now += (uint64_t)(rand() % 50);
		snprintf(peer, sizeof peer, "[2001:db8:%x::1]:1", a);
		if (rand() % 10 == 0) {
			slowdown_expire(s, now);
			for (i = 0; i < n;) {
				if (model_eff(&m[i], now, o.decay_ms) == 0)
					m[i] = m[--n];
				else
					i++;
			}
			continue;
		}
		for (i = 0; i < n && m[i].addr != a; i++)
			;
		if (i == n) {
			if (n == 50) {
				size_t old = 0;
				for (size_t j = 1; j < n; j++)
					if (m[j].seq < m[old].seq)
						old = j;
				m[old] = m[--n];
			}
			i = n++;
			m[i] = (struct model_rec){ a, 0, now, 0 };
		}
		m[i].failures = model_eff(&m[i], now, o.decay_ms) + 1;
		m[i].last = now;
		m[i].seq = ++seq;
		assert_int_equal(slowdown_failed(s, peer, now), m[i].failures);
		if (step % 97 == 0) {
			for (unsigned b = 0; b < 300; b++) {
				unsigned want = 0;
				for (size_t j = 0; j < n; j++)
					if (m[j].addr == b)
						want = model_eff(&m[j], now, o.decay_ms);
				snprintf(peer, sizeof peer, "2001:db8:%x::2", b);
				if (slowdown_failures(s, peer, now) != want)
					fail_msg("step %d: address %u: %u failures, the model says %u", step, b,
					         slowdown_failures(s, peer, now), want);
			}
		}
	}
	slowdown_free(s);
}

static void test_defaults(void **state)
{
	/* NULL options: 3 free failures, then 250 ms */
	struct slowdown *s = slowdown_new(NULL);
	(void)state;
	for (int i = 0; i < 3; i++)
		slowdown_failed(s, "192.0.2.1", 0);
	assert_int_equal(slowdown_delay(s, "192.0.2.1", 0), 250);
	slowdown_free(s);
	slowdown_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_delay_curve),
		cmocka_unit_test(test_many_failures_do_not_overflow),
		cmocka_unit_test(test_failures_decay_with_quiet),
		cmocka_unit_test(test_peer_keys),
		cmocka_unit_test(test_bounded_under_many_addresses),
		cmocka_unit_test(test_matches_model_under_churn),
		cmocka_unit_test(test_defaults),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
