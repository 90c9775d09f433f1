/* test_client_scenario_track.c: what the scenario runner's checks rest
 * on. Stamps survive a round trip and reject what is not a stamp; a sink
 * counts each (producer, seq) whatever the order, folds complete prefixes
 * away without forgetting duplicates, and knows fan-out copies and
 * baselines; the checks name the first lost, duplicated or reordered
 * message; the report's totals compare each sink with the producers that
 * feed it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "scenario_int.h"

static const char broker_a, broker_b;	/* identities only */

static struct scn_source source(uint32_t id, uint64_t sent, const char *dest, const void *broker)
{
	struct scn_source s = { .id = id, .sent = sent, .dest = dest, .broker = broker, .group = "producers 1" };
	return s;
}

static void test_stamp_round_trip(void **state)
{
	/* What a producer formats, a consumer parses back exactly. */
	struct scn_stamp in = { 4000000000u, 17, 123456789012ull, 18446744073709551615ull }, out;
	char buf[SCN_STAMP_MAX];
	size_t n = scn_stamp_format(buf, &in);
	(void)state;
	assert_string_equal(buf, "4000000000.17.123456789012.18446744073709551615");
	assert_int_equal(n, strlen(buf));
	assert_true(scn_stamp_parse(buf, &out));
	assert_int_equal(out.run, in.run);
	assert_int_equal(out.producer, in.producer);
	assert_int_equal(out.seq, in.seq);
	assert_true(out.sent_ns == in.sent_ns);
	in = (struct scn_stamp){ 0, 1, 1, 0 };
	scn_stamp_format(buf, &in);
	assert_string_equal(buf, "0.1.1.0");
}

static void test_stamp_rejects_what_is_not_a_stamp(void **state)
{
	/* Foreign messages (another tool's, a previous run's garbage) must
	 * not be taken for ours: every malformed form is refused. */
	static const char *const bad[] = {
		NULL, "", "1.2.3", "1.2.3.4.5", "1..3.4", "a.2.3.4", "1.2.3.4 ", " 1.2.3.4", "1.0.3.4",
		"1.2.0.4", "4294967296.2.3.4", "1.4294967296.3.4", "1.2.18446744073709551616.4", "1.2.3.-4",
	};
	struct scn_stamp st;
	(void)state;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		if (scn_stamp_parse(bad[i], &st))
			fail_msg("accepted '%s'", bad[i] ? bad[i] : "(null)");
	assert_true(scn_stamp_parse("1.2.3.4", &st));
}

static void test_sink_in_order_keeps_no_window(void **state)
{
	/* A million messages in order cost no memory per message: the
	 * window folds into base as each one arrives. */
	struct scn_sink *k = scn_sink_new(&broker_a, "/queue/q", false, 1, "consumers 1");
	const struct scn_seqs *q;
	(void)state;
	for (uint64_t s = 1; s <= 1000000; s++)
		scn_sink_add(k, 1, s);
	q = scn_sink_get(k, 1);
	assert_int_equal(q->base, 1000001);
	assert_int_equal(q->len, 0);
	assert_true(q->cap <= 64);
	assert_int_equal(q->arrivals, 1000000);
	assert_int_equal(scn_sink_distinct(k, 1, 1, UINT64_MAX), 1000000);
	scn_sink_free(k);
}

static void test_sink_gap_then_fill(void **state)
{
	/* A message overtaken by later ones holds the window open until it
	 * arrives; then everything folds at once. */
	struct scn_sink *k = scn_sink_new(&broker_a, "/queue/q", false, 1, "consumers 1");
	struct scn_source src = source(1, 10, "/queue/q", &broker_a);
	const struct scn_seqs *q;
	(void)state;
	for (uint64_t s = 2; s <= 10; s++)
		scn_sink_add(k, 1, s);
	q = scn_sink_get(k, 1);
	assert_int_equal(q->base, 1);
	assert_int_equal(q->len, 10);
	assert_false(scn_sink_drained(k, &src));
	assert_int_equal(scn_sink_distinct(k, 1, 1, 10), 9);
	assert_int_equal(scn_sink_distinct(k, 1, 1, 1), 0);
	scn_sink_add(k, 1, 1);
	assert_int_equal(q->base, 11);
	assert_int_equal(q->len, 0);
	assert_true(scn_sink_drained(k, &src));
	scn_sink_free(k);
}

static void test_sink_duplicates_before_and_after_folding(void **state)
{
	/* A duplicate is counted whether it comes while its seq is still in
	 * the window or after the window moved past it, and the first one is
	 * named. */
	struct scn_sink *k = scn_sink_new(&broker_a, "/queue/q", false, 1, "consumers 1");
	struct scn_source src = source(1, 5, "/queue/q", &broker_a);
	struct scn_tally t = { 0 };
	char text[512];
	(void)state;
	scn_sink_add(k, 1, 3);
	scn_sink_add(k, 1, 3);	/* in the window */
	scn_sink_add(k, 1, 1);
	scn_sink_add(k, 1, 2);	/* folds 1..3 */
	scn_sink_add(k, 1, 1);	/* below base */
	scn_sink_add(k, 1, 4);
	scn_sink_add(k, 1, 5);
	scn_tally_add(&t, k, &src, SCN_ALL_SENT);
	assert_int_equal(t.expected, 5);
	assert_int_equal(t.arrived, 5);
	assert_int_equal(t.lost, 0);
	assert_int_equal(t.duplicated, 2);
	assert_int_equal(t.dup_seq, 3);
	assert_false(scn_check(SCN_EXACTLY_ONCE, &t, text, sizeof text));
	assert_string_equal(text, "not exactly once: 2 duplicated (first: producer 1 seq 3)");
	assert_true(scn_check(SCN_AT_LEAST_ONCE, &t, text, sizeof text));
	assert_string_equal(text, "at least once: 5 of 5 arrived (2 duplicated (first: producer 1 seq 3))");
	scn_sink_free(k);
}

static void test_sink_saturates_without_losing_count(void **state)
{
	/* 300 arrivals of one message: the byte counter saturates at 255,
	 * the excess is still counted. */
	struct scn_sink *k = scn_sink_new(&broker_a, "/queue/q", false, 1, "consumers 1");
	struct scn_source src = source(1, 2, "/queue/q", &broker_a);
	struct scn_tally t = { 0 };
	(void)state;
	for (int i = 0; i < 300; i++)
		scn_sink_add(k, 1, 2);
	scn_tally_add(&t, k, &src, SCN_ALL_SENT);
	assert_int_equal(t.duplicated, 299);
	assert_int_equal(t.lost, 1);
	scn_sink_add(k, 1, 1);
	memset(&t, 0, sizeof t);
	scn_tally_add(&t, k, &src, SCN_ALL_SENT);
	assert_int_equal(t.duplicated, 299);
	assert_int_equal(t.lost, 0);
	scn_sink_free(k);
}

static void test_sink_fanout_needs_every_copy(void **state)
{
	/* A fan-out group of 3 owes each message 3 times: 2 copies is one
	 * lost, 4 is one duplicated. */
	struct scn_sink *k = scn_sink_new(&broker_a, "/topic/t", true, 3, "consumers 2");
	struct scn_source src = source(4, 3, "/topic/t", &broker_a);
	struct scn_tally t = { 0 };
	char text[512];
	(void)state;
	scn_sink_open(k);
	for (int c = 0; c < 3; c++)
		scn_sink_add(k, 4, 1);
	for (int c = 0; c < 2; c++)
		scn_sink_add(k, 4, 2);
	for (int c = 0; c < 4; c++)
		scn_sink_add(k, 4, 3);
	scn_tally_add(&t, k, &src, SCN_ALL_SENT);
	assert_int_equal(t.expected, 9);
	assert_int_equal(t.arrived, 8);
	assert_int_equal(t.lost, 1);
	assert_int_equal(t.lost_seq, 2);
	assert_int_equal(t.duplicated, 1);
	assert_false(scn_sink_drained(k, &src));
	assert_false(scn_check(SCN_EXACTLY_ONCE, &t, text, sizeof text));
	assert_string_equal(text, "not exactly once: 1 of 9 lost (first: producer 4 seq 2, at consumers 2), "
	                          "1 duplicated (first: producer 4 seq 3)");
	scn_sink_free(k);
}

static void test_sink_baseline_owes_nothing_before_subscription(void **state)
{
	/* A topic subscriber is owed what was sent after it subscribed:
	 * seqs up to the baseline neither count as lost nor as received,
	 * and what arrived of them before the baseline was set is dropped. */
	struct scn_sink *k = scn_sink_new(&broker_a, "/topic/t", true, 1, "consumers 1");
	struct scn_source src = source(1, 10, "/topic/t", &broker_a);
	struct scn_tally t = { 0 };
	(void)state;
	scn_tally_add(&t, k, &src, SCN_ALL_SENT);
	assert_int_equal(t.expected, 0);	/* not subscribed yet: owed nothing */
	assert_false(scn_sink_drained(k, &src));
	scn_sink_add(k, 1, 3);			/* one that slipped in early */
	scn_sink_set_baseline(k, 1, 6);
	scn_sink_open(k);
	scn_sink_add(k, 1, 5);			/* still early: ignored */
	for (uint64_t s = 7; s <= 10; s++)
		scn_sink_add(k, 1, s);
	scn_tally_add(&t, k, &src, SCN_ALL_SENT);
	assert_int_equal(t.expected, 4);
	assert_int_equal(t.arrived, 4);
	assert_int_equal(t.lost, 0);
	assert_int_equal(t.duplicated, 0);
	assert_true(scn_sink_drained(k, &src));
	assert_int_equal(scn_sink_distinct(k, 1, 1, 10), 4);
	assert_int_equal(scn_sink_get(k, 1)->arrivals, 6);
	scn_sink_free(k);
}

static void test_tally_acked_only(void **state)
{
	/* kill -9: only messages whose RECEIPT arrived are owed. */
	struct scn_sink *k = scn_sink_new(&broker_a, "/queue/d", false, 1, "consumers 1");
	struct scn_source src = source(2, 200, "/queue/d", &broker_a);
	struct scn_tally t = { 0 };
	char text[512];
	(void)state;
	for (uint64_t s = 1; s <= 150; s++)
		scn_bits_set(&src.acked, s);
	for (uint64_t s = 1; s <= 120; s++)
		scn_sink_add(k, 2, s);
	for (uint64_t s = 161; s <= 200; s++)
		scn_sink_add(k, 2, s);	/* unacknowledged ones may come too */
	scn_tally_add(&t, k, &src, SCN_ACKED_ONLY);
	assert_int_equal(t.expected, 150);
	assert_int_equal(t.arrived, 120);
	assert_int_equal(t.lost, 30);
	assert_int_equal(t.lost_seq, 121);
	assert_false(scn_check(SCN_AT_LEAST_ONCE, &t, text, sizeof text));
	assert_string_equal(text, "not at least once: 30 of 150 lost (first: producer 2 seq 121, at consumers 1)");
	for (uint64_t s = 121; s <= 150; s++)
		scn_sink_add(k, 2, s);
	memset(&t, 0, sizeof t);
	scn_tally_add(&t, k, &src, SCN_ACKED_ONLY);
	assert_int_equal(t.lost, 0);
	assert_true(scn_check(SCN_AT_LEAST_ONCE, &t, text, sizeof text));
	scn_bits_fini(&src.acked);
	scn_sink_free(k);
}

static void test_order_per_connection(void **state)
{
	/* Each connection must see each producer's first deliveries in
	 * increasing order; producers are independent of each other. */
	struct scn_sink *k = scn_sink_new(&broker_a, "/queue/q", false, 1, "consumers 1");
	struct scn_order o = { 0 };
	struct scn_source p1 = source(1, 5, "/queue/q", &broker_a), p2 = source(2, 5, "/queue/q", &broker_a);
	struct scn_tally t = { 0 };
	char text[512];
	(void)state;
	assert_true(scn_order_check(&o, k, 1, 1));
	assert_true(scn_order_check(&o, k, 2, 4));
	assert_true(scn_order_check(&o, k, 1, 3));	/* a gap is not disorder */
	assert_false(scn_order_check(&o, k, 1, 2));
	assert_false(scn_order_check(&o, k, 1, 3));	/* nor is a repeat in order */
	assert_true(scn_order_check(&o, k, 2, 5));
	scn_tally_add(&t, k, &p1, SCN_ALL_SENT);
	scn_tally_add(&t, k, &p2, SCN_ALL_SENT);
	assert_int_equal(t.out_of_order, 2);
	assert_false(scn_check(SCN_IN_ORDER, &t, text, sizeof text));
	assert_string_equal(text, "out of order: 2 first deliveries came after a later one from the same producer "
	                          "(first: producer 1 seq 2)");
	scn_order_fini(&o);
	scn_sink_free(k);
}

static void test_exactly_once_holds(void **state)
{
	struct scn_sink *k = scn_sink_new(&broker_a, "/queue/q", false, 1, "consumers 1");
	struct scn_source src = source(1, 3, "/queue/q", &broker_a);
	struct scn_tally t = { 0 };
	char text[512];
	(void)state;
	for (uint64_t s = 3; s >= 1; s--)
		scn_sink_add(k, 1, s);
	scn_tally_add(&t, k, &src, SCN_ALL_SENT);
	assert_true(scn_check(SCN_EXACTLY_ONCE, &t, text, sizeof text));
	assert_string_equal(text, "exactly once: 3 of 3 arrived, none twice");
	scn_sink_free(k);
}

static void test_report_compares_each_sink_with_its_feeders(void **state)
{
	/* The report's lost/duplicated: a sink against producers of its own
	 * destination on its own broker, or that reached it (pubsub
	 * children); a producer nobody consumes from is not "lost". */
	struct scn_sink *queue = scn_sink_new(&broker_a, "/queue/q", false, 1, "consumers 1");
	struct scn_sink *child = scn_sink_new(&broker_a, "/queue/child", false, 1, "consumers 2");
	struct scn_sink *other = scn_sink_new(&broker_b, "/queue/q", false, 1, "consumers 3");
	struct scn_source to_q = source(1, 10, "/queue/q", &broker_a);
	struct scn_source to_pubsub = source(2, 10, "/pubsub/p", &broker_a);
	struct scn_source nobody = source(3, 10, "/queue/unread", &broker_a);
	struct scn_source *sources[] = { &to_q, &to_pubsub, &nobody };
	struct scn_sink *sinks[] = { queue, child, other };
	struct scn_report rep = { 0 };
	(void)state;
	for (uint64_t s = 1; s <= 8; s++)
		scn_sink_add(queue, 1, s);	/* 2 lost */
	scn_sink_add(queue, 1, 8);		/* 1 duplicated */
	for (uint64_t s = 1; s <= 9; s++)
		scn_sink_add(child, 2, s);	/* 1 lost */
	assert_true(scn_sink_fed_by(queue, &to_q));
	assert_false(scn_sink_fed_by(other, &to_q));	/* same name, other broker */
	assert_true(scn_sink_fed_by(child, &to_pubsub));
	assert_false(scn_sink_fed_by(queue, &to_pubsub));
	scn_report_tally(sources, 3, sinks, 3, &rep);
	assert_int_equal(rep.lost, 3);
	assert_int_equal(rep.duplicated, 1);
	scn_sink_free(queue);
	scn_sink_free(child);
	scn_sink_free(other);
}

static void test_report_latency_fields(void **state)
{
	/* The report's latency fields are the histogram's, in ms. */
	struct scn_hist *h = scn_hist_new();
	struct scn_report rep = { 0 };
	struct sbuf line;
	(void)state;
	for (int i = 0; i < 100; i++)
		scn_hist_record(h, 200 + (uint64_t)i);	/* ns */
	scn_hist_record(h, 2000000);			/* 2 ms */
	scn_report_latency(h, &rep);
	assert_int_equal(rep.latency_count, 101);
	assert_true(rep.latency_max_ms == 2.0);
	assert_true(rep.latency_p50_ms > 0.000249 && rep.latency_p50_ms < 0.000251);
	sbuf_init(&line);
	rep.sent = 10;
	rep.received = 9;
	rep.lost = 1;
	scn_report_line(&rep, &line);
	assert_non_null(strstr(line.buf, "sent=10 received=9 lost=1 duplicated=0 "));
	assert_non_null(strstr(line.buf, " latency_max_ms=2.000 "));
	sbuf_fini(&line);
	scn_hist_free(h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_stamp_round_trip),
		cmocka_unit_test(test_stamp_rejects_what_is_not_a_stamp),
		cmocka_unit_test(test_sink_in_order_keeps_no_window),
		cmocka_unit_test(test_sink_gap_then_fill),
		cmocka_unit_test(test_sink_duplicates_before_and_after_folding),
		cmocka_unit_test(test_sink_saturates_without_losing_count),
		cmocka_unit_test(test_sink_fanout_needs_every_copy),
		cmocka_unit_test(test_sink_baseline_owes_nothing_before_subscription),
		cmocka_unit_test(test_tally_acked_only),
		cmocka_unit_test(test_order_per_connection),
		cmocka_unit_test(test_exactly_once_holds),
		cmocka_unit_test(test_report_compares_each_sink_with_its_feeders),
		cmocka_unit_test(test_report_latency_fields),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
