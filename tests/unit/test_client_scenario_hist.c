/* test_client_scenario_hist.c: the scenario runner's latency histogram.
 * Percentiles must be right to within the bucket resolution (1/128 of the
 * value), exact for small values and at the extremes, and merging two
 * histograms must equal recording everything into one. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "scenario_int.h"

static int setup(void **state)
{
	*state = scn_hist_new();
	return 0;
}

static int teardown(void **state)
{
	scn_hist_free(*state);
	return 0;
}

/* |got - want| <= want / 128 (+ 1 for rounding). */
static void assert_close(uint64_t got, uint64_t want)
{
	uint64_t tol = want / 128 + 1;
	uint64_t diff = got > want ? got - want : want - got;
	if (diff > tol)
		fail_msg("got %llu, expected %llu +- %llu", (unsigned long long)got, (unsigned long long)want,
		         (unsigned long long)tol);
}

static void test_hist_empty_reports_zero(void **state)
{
	/* An empty histogram has no percentile: 0, not garbage. */
	struct scn_hist *h = *state;
	assert_int_equal(scn_hist_percentile(h, 50), 0);
	assert_int_equal(scn_hist_percentile(h, 100), 0);
	assert_true(scn_hist_mean(h) == 0);
	assert_int_equal(h->count, 0);
}

static void test_hist_small_values_are_exact(void **state)
{
	/* Below 256 every value has its own bucket. */
	struct scn_hist *h = *state;
	for (uint64_t v = 1; v <= 200; v++)
		scn_hist_record(h, v);
	assert_int_equal(scn_hist_percentile(h, 50), 100);
	assert_int_equal(scn_hist_percentile(h, 99), 198);
	assert_int_equal(scn_hist_percentile(h, 0.5), 1);
	assert_int_equal(scn_hist_percentile(h, 100), 200);
	assert_int_equal(h->min, 1);
}

static void test_hist_uniform_percentiles_within_resolution(void **state)
{
	/* 1..1,000,000 ns uniformly: the value at p% is p% of a million. */
	struct scn_hist *h = *state;
	for (uint64_t v = 1; v <= 1000000; v++)
		scn_hist_record(h, v);
	assert_close(scn_hist_percentile(h, 50), 500000);
	assert_close(scn_hist_percentile(h, 99), 990000);
	assert_close(scn_hist_percentile(h, 99.9), 999000);
	assert_close(scn_hist_percentile(h, 10), 100000);
	assert_int_equal(scn_hist_percentile(h, 100), 1000000);
	assert_true(scn_hist_mean(h) > 500000 - 1 && scn_hist_mean(h) < 500000 + 1);
}

static void test_hist_tail_is_seen(void **state)
{
	/* 999 fast messages and one slow one: p99.9 is still fast, the max
	 * and p99.95 are the slow one. A sampled histogram would miss it. */
	struct scn_hist *h = *state;
	for (int i = 0; i < 999; i++)
		scn_hist_record(h, 50000);		/* 50 us */
	scn_hist_record(h, 80000000);			/* 80 ms */
	assert_close(scn_hist_percentile(h, 99.9), 50000);
	assert_close(scn_hist_percentile(h, 99.95), 80000000);
	assert_int_equal(scn_hist_percentile(h, 100), 80000000);
	assert_int_equal(h->max, 80000000);
}

static void test_hist_bucket_edges_and_huge_values(void **state)
{
	/* Values on both sides of the first power-of-two split, and values
	 * near the top of the range, land in buckets that report them back
	 * within the resolution and never outside [min, max]. */
	static const uint64_t values[] = { 255, 256, 257, 511, 512, 1000, (uint64_t)1 << 40,
		                           ((uint64_t)1 << 63) + 12345, UINT64_MAX };
	for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
		struct scn_hist *h = *state;
		scn_hist_reset(h);
		scn_hist_record(h, values[i]);
		scn_hist_record(h, values[i]);
		assert_close(scn_hist_percentile(h, 50), values[i]);
		assert_int_equal(scn_hist_percentile(h, 100), values[i]);
		assert_true(scn_hist_percentile(h, 1) >= h->min);
	}
}

static void test_hist_merge_equals_one_histogram(void **state)
{
	/* Per-group histograms merged give the run's percentiles. */
	struct scn_hist *all = *state, *a = scn_hist_new(), *b = scn_hist_new();
	srand(7);
	for (int i = 0; i < 100000; i++) {
		uint64_t v = (uint64_t)rand() % 5000000;
		scn_hist_record(all, v);
		scn_hist_record(i % 3 ? a : b, v);
	}
	scn_hist_merge(a, b);
	assert_int_equal(a->count, all->count);
	assert_int_equal(a->min, all->min);
	assert_int_equal(a->max, all->max);
	for (double p = 1; p <= 100; p += 7.5)
		assert_int_equal(scn_hist_percentile(a, p), scn_hist_percentile(all, p));
	scn_hist_free(a);
	scn_hist_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_hist_empty_reports_zero, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hist_small_values_are_exact, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hist_uniform_percentiles_within_resolution, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hist_tail_is_seen, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hist_bucket_edges_and_huge_values, setup, teardown),
		cmocka_unit_test_setup_teardown(test_hist_merge_equals_one_histogram, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
