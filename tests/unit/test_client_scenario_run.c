/* test_client_scenario_run.c: scenario_run() end to end, as mqsh calls it,
 * against the real broker of this build (BUILD/bin/mqbroker, found from
 * this test's own path). The exit status says what happened: 0 every
 * check held, 1 a check failed (its file:line and message printed), 2 the
 * script is wrong or the broker could not start; and the report is one
 * line, plus JSON when asked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "scenario.h"
#include "common/util.h"

struct fx {
	char dir[64];		/* scratch directory for scripts and output */
	char mqbroker[PATH_MAX];
	char script[PATH_MAX];
	char *out, *err;	/* what the run printed */
	volatile sig_atomic_t interrupted;
	struct scenario_opts opts;
};

static int setup(void **state)
{
	struct fx *x = xcalloc(1, sizeof *x);
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	char *slash;
	assert_true(n > 0);
	self[n] = 0;
	slash = strrchr(self, '/');
	*slash = 0;	/* BUILD/tests */
	if (snprintf(x->mqbroker, sizeof x->mqbroker, "%s/../bin/mqbroker", self) >= (int)sizeof x->mqbroker ||
	    access(x->mqbroker, X_OK) != 0)
		fail_msg("no broker at %s: build it first", x->mqbroker);
	snprintf(x->dir, sizeof x->dir, "/tmp/test-scenario-XXXXXX");
	assert_non_null(mkdtemp(x->dir));
	x->opts.mqbroker = x->mqbroker;
	x->opts.interrupted = &x->interrupted;
	*state = x;
	return 0;
}

static int teardown(void **state)
{
	struct fx *x = *state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", x->dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", x->dir);
	free(x->out);
	free(x->err);
	free(x);
	return 0;
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	struct sbuf s;
	char buf[4096];
	size_t n;
	sbuf_init(&s);
	if (f) {
		while ((n = fread(buf, 1, sizeof buf, f)) > 0)
			sbuf_add(&s, buf, n);
		fclose(f);
	}
	sbuf_adds(&s, "");
	return sbuf_take(&s);
}

/* Writes the script and runs it with stdout and stderr captured. */
static int run(struct fx *x, const char *name, const char *lua)
{
	char out[PATH_MAX], err[PATH_MAX];
	int saved_out, saved_err, fd, rc;
	FILE *f;

	assert_true(snprintf(x->script, sizeof x->script, "%s/%s", x->dir, name) < (int)sizeof x->script);
	f = fopen(x->script, "w");
	assert_non_null(f);
	fputs(lua, f);
	fclose(f);
	snprintf(out, sizeof out, "%s/stdout", x->dir);
	snprintf(err, sizeof err, "%s/stderr", x->dir);
	fflush(stdout);
	fflush(stderr);
	saved_out = dup(1);
	saved_err = dup(2);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	dup2(fd, 1);
	close(fd);
	fd = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	dup2(fd, 2);
	close(fd);
	rc = scenario_run(x->script, &x->opts);
	fflush(stdout);
	fflush(stderr);
	dup2(saved_out, 1);
	dup2(saved_err, 2);
	close(saved_out);
	close(saved_err);
	free(x->out);
	free(x->err);
	x->out = slurp(out);
	x->err = slurp(err);
	return rc;
}

static void assert_contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("expected to find\n  %s\nin\n%s", needle, hay);
}

static const char queue_ok[] =
	"local b = broker{}\n"
	"local c = consumers{ broker = b, destination = '/queue/t', ack = 'client-individual' }\n"
	"expect(wait_for(function() return c.ready == 1 end, 10), 'subscribed')\n"
	"local p = producers{ broker = b, destination = '/queue/t', n = 2, count = 100, receipts = 10 }\n"
	"expect(run{ p, c, timeout = 20 })\n"
	"expect(exactly_once(p, c))\n"
	"expect(in_order(p, c))\n"
	"expect(p.acked == 100, 'acked ' .. p.acked)\n"
	"expect(b:stats().messages_in == 100, 'broker counted ' .. b:stats().messages_in)\n"
	"local r = report()\n"
	"expect(r.sent == 100 and r.received == 100 and r.lost == 0, 'report')\n"
	"print('latency p99', latency(99) > 0)\n";

static void test_run_passing_scenario_returns_0(void **state)
{
	/* Everything held: 0, and the report line with the same names as
	 * the JSON. */
	struct fx *x = *state;
	assert_int_equal(run(x, "ok.lua", queue_ok), 0);
	assert_contains(x->out, "latency p99\ttrue\n");
	assert_contains(x->out, "scenario ok.lua ok: sent=100 received=100 lost=0 duplicated=0 redelivered=0 ");
	assert_contains(x->out, " msgs_per_s=");
	assert_contains(x->out, " latency_p999_ms=");
	assert_string_equal(x->err, "");
}

static void test_run_json_report(void **state)
{
	/* With json, the last line of stdout is the report as one JSON
	 * object, with the groups. */
	struct fx *x = *state;
	struct json *j;
	const struct json *groups;
	char why[128];
	const char *last;
	x->opts.json = true;
	assert_int_equal(run(x, "ok.lua", queue_ok), 0);
	last = x->out + strlen(x->out) - 1;	/* the final newline */
	while (last > x->out && last[-1] != '\n')
		last--;
	j = json_parse(last, strlen(last), why, sizeof why);
	if (!j)
		fail_msg("not JSON: %s: %s", why, last);
	assert_string_equal(json_get_str(j, "status"), "ok");
	assert_true(json_get_num(j, "sent", -1) == 100);
	assert_true(json_get_num(j, "received", -1) == 100);
	assert_true(json_get_num(j, "lost", -1) == 0);
	assert_true(json_get_num(j, "duplicated", -1) == 0);
	assert_true(json_get_num(j, "acked", -1) == 100);
	assert_true(json_get_num(j, "msgs_per_s", -1) > 0);
	assert_true(json_get_num(j, "latency_p50_ms", -1) > 0);
	assert_true(json_get_num(j, "latency_p99_ms", -1) >= json_get_num(j, "latency_p50_ms", -1));
	assert_true(json_get_num(j, "latency_max_ms", -1) >= json_get_num(j, "latency_p999_ms", -1));
	groups = json_get(j, "consumers");
	assert_non_null(groups);
	assert_int_equal(groups->len, 1);
	assert_true(json_get_num(groups->items[0], "received", -1) == 100);
	assert_string_equal(json_get_str(groups->items[0], "destination"), "/queue/t");
	groups = json_get(j, "producers");
	assert_int_equal(groups->len, 1);
	assert_true(json_get_num(groups->items[0], "n", -1) == 2);
	json_free(j);
}

static void test_run_failed_check_returns_1_with_its_line(void **state)
{
	/* A check that does not hold: 1, and "scenario failed: FILE:LINE:
	 * message" with the checker's words. */
	struct fx *x = *state;
	char want[PATH_MAX + 256];
	assert_int_equal(run(x, "fail.lua",
	                     "local b = broker{}\n"
	                     "local c = consumers{ broker = b, destination = '/queue/elsewhere' }\n"
	                     "local p = producers{ broker = b, destination = '/queue/here', count = 20 }\n"
	                     "wait_for(function() return p.done end, 10)\n"
	                     "expect(exactly_once(p, c))\n"
	                     "print('not reached')\n"),
	                 1);
	assert_true(snprintf(want, sizeof want, "scenario failed: %s:5: not exactly once: 20 of 20 lost (first: "
	                     "producer 1 seq 1, at consumers 1)\n", x->script) < (int)sizeof want);
	assert_string_equal(x->err, want);
	assert_null(strstr(x->out, "not reached"));
	assert_contains(x->out, "scenario fail.lua failed: sent=20 received=0 ");
}

static void test_run_expect_message_and_pcall(void **state)
{
	/* expect's own message is printed; a script that pcall()s around a
	 * failed expect still fails. */
	struct fx *x = *state;
	char want[PATH_MAX + 64];
	assert_int_equal(run(x, "pcall.lua",
	                     "local ok = pcall(expect, 1 + 1 == 3, 'arithmetic is broken')\n"
	                     "print('caught', ok)\n"),
	                 1);
	assert_contains(x->out, "caught\tfalse\n");
	assert_true(snprintf(want, sizeof want, "scenario failed: %s:1: arithmetic is broken\n", x->script) <
	            (int)sizeof want);
	assert_string_equal(x->err, want);
}

static void test_run_script_errors_return_2(void **state)
{
	/* A wrong script is not a failed check: 2, and what is wrong. */
	struct fx *x = *state;
	assert_int_equal(run(x, "syntax.lua", "local b = broker{\n"), 2);
	assert_contains(x->err, "scenario error: ");
	assert_contains(x->err, "syntax.lua:");

	assert_int_equal(run(x, "typo.lua",
	                     "local b = broker{}\n"
	                     "producers{ broker = b, destination = '/queue/q', cout = 10 }\n"),
	                 2);
	assert_contains(x->err, "typo.lua:2: producers{}: unknown field 'cout' (known: broker, destination, n, count,");

	assert_int_equal(run(x, "value.lua",
	                     "local b = broker{}\n"
	                     "consumers{ broker = b, destination = '/queue/q', ack = 'sometimes' }\n"),
	                 2);
	assert_contains(x->err, "value.lua:2: consumers{}: ack: expected \"auto\", \"client\" or \"client-individual\", "
	                        "got \"sometimes\"");

	assert_int_equal(run(x, "count.lua",
	                     "local b = broker{}\n"
	                     "producers{ broker = b, destination = '/queue/q', n = 0, count = 1 }\n"),
	                 2);
	assert_contains(x->err, "count.lua:2: producers{}: n: expected an integer 1..100000, got 0");

	assert_int_equal(run(x, "missing.lua", "producers{ destination = '/queue/q', count = 1 }\n"), 2);
	assert_contains(x->err, "producers{}: broker: missing");
}

static void test_run_broker_that_cannot_start_returns_2(void **state)
{
	/* A broker that exits at once: 2, with its own words. */
	struct fx *x = *state;
	assert_int_equal(run(x, "args.lua", "broker{ args = { '--no-such-option' } }\n"), 2);
	assert_contains(x->err, "args.lua:1: broker{}: cannot start ");
	assert_contains(x->err, "exited with status 2 before listening");
	assert_contains(x->err, "no-such-option");
}

static void test_run_admin_on_a_peer_fails_clearly(void **state)
{
	/* attach{} to a broker without a control socket (RabbitMQ,
	 * ActiveMQ): admin says so instead of hanging or crashing. */
	struct fx *x = *state;
	assert_int_equal(run(x, "peer.lua",
	                     "local b = attach{ host = '127.0.0.1', port = 61999 }\n"
	                     "expect(b.port == 61999 and not b.owned)\n"
	                     "b:admin('stats')\n"),
	                 2);
	assert_contains(x->err, "peer.lua:3: broker 1 (127.0.0.1:61999) has no control socket: admin commands need "
	                        "mqbroker's");
}

static void test_run_admin_reply_is_a_table(void **state)
{
	/* b:admin returns status, ok, message and data; an error reply is a
	 * reply, not a script error. */
	struct fx *x = *state;
	assert_int_equal(run(x, "admin.lua",
	                     "local b = broker{}\n"
	                     "local r = b:admin('create queue /queue/a max-length=5')\n"
	                     "expect(r.ok and r.status == 200, r.message)\n"
	                     "expect(r.data.name == '/queue/a' and r.data.max_length == 5, 'data')\n"
	                     "local bad = b:admin('show /queue/nothing')\n"
	                     "expect(not bad.ok and bad.status == 404, 'status ' .. bad.status)\n"
	                     "expect(bad.message == 'no destination named /queue/nothing', bad.message)\n"
	                     "expect(type(b:stats().uptime_s) == 'number')\n"),
	                 0);
}

static void test_run_broker_death_fails_the_run(void **state)
{
	/* An owned broker that dies on its own (here: SIGKILL from outside,
	 * which no sanitizer intercepts) fails the run at the line that was
	 * waiting, naming the signal. */
	struct fx *x = *state;
	assert_int_equal(run(x, "death.lua",
	                     "local b = broker{}\n"
	                     "os.execute('kill -KILL ' .. b.pid)\n"
	                     "wait(5)\n"
	                     "print('not reached')\n"),
	                 1);
	assert_contains(x->err, "death.lua:3: broker 1 (127.0.0.1:");
	assert_contains(x->err, "was killed by signal 9 (Killed) on its own");
	assert_null(strstr(x->out, "not reached"));
}

static void test_run_kill_and_restart_keep_the_port(void **state)
{
	/* kill -9 and restart: the same port, so clients reconnect by
	 * themselves, and the run's checks go on. */
	struct fx *x = *state;
	assert_int_equal(run(x, "restart.lua",
	                     "local b = broker{}\n"
	                     "local port = b.port\n"
	                     "local c = consumers{ broker = b, destination = '/queue/r' }\n"
	                     "expect(wait_for(function() return c.ready == 1 end, 10))\n"
	                     "b:kill()\n"
	                     "expect(not b.running)\n"
	                     "expect(wait_for(function() return c.connected == 0 end, 5), 'noticed')\n"
	                     "b:restart()\n"
	                     "expect(b.port == port, 'port changed')\n"
	                     "expect(wait_for(function() return c.ready == 1 end, 10), 'resubscribed')\n"
	                     "expect(c.reconnects >= 1)\n"
	                     "local p = producers{ broker = b, destination = '/queue/r', count = 50 }\n"
	                     "expect(run{ p, c, timeout = 10 })\n"
	                     "expect(exactly_once(p, c))\n"),
	                 0);
}

static void test_run_interrupted_stops_and_reports(void **state)
{
	/* Ctrl-C in mqsh: the run stops at once, reports, and says so. */
	struct fx *x = *state;
	x->interrupted = 1;
	assert_int_equal(run(x, "intr.lua",
	                     "local b = broker{}\n"
	                     "wait(30)\n"),
	                 1);
	assert_contains(x->out, "scenario intr.lua interrupted: ");
	assert_contains(x->err, "intr.lua:2: interrupted");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_run_passing_scenario_returns_0, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_json_report, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_failed_check_returns_1_with_its_line, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_expect_message_and_pcall, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_script_errors_return_2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_broker_that_cannot_start_returns_2, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_admin_on_a_peer_fails_clearly, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_admin_reply_is_a_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_broker_death_fails_the_run, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_kill_and_restart_keep_the_port, setup, teardown),
		cmocka_unit_test_setup_teardown(test_run_interrupted_stops_and_reports, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
