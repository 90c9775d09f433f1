/* test_client_mqsh_complete.c: finding commands from what was typed, and
 * Tab's candidates from the command table and a fake broker's `list`
 * replies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "../../shell/cmds.c"
#include "../../shell/complete.c"

/* What `list destinations` and `list clients` answer in the fake broker. */
static const char dests_json[] =
	"[{\"name\":\"/queue/zebra-jobs\",\"type\":\"queue\",\"vhost\":\"/\",\"depth\":0},"
	"{\"name\":\"/queue/zebra-done\",\"type\":\"queue\",\"vhost\":\"/\",\"depth\":2},"
	"{\"name\":\"/queue/alpha\",\"type\":\"queue\",\"vhost\":\"/\"},"
	"{\"name\":\"/queue/alpha\",\"type\":\"queue\",\"vhost\":\"other\"},"
	"{\"name\":\"/topic/zebra\",\"type\":\"topic\",\"vhost\":\"/\"},"
	"{\"name\":\"/pubsub/fan\",\"type\":\"pubsub\",\"vhost\":\"/\",\"children\":1}]";
static const char bridges_json[] =
	"[{\"name\":\"to-cluster\",\"direction\":\"out\"},{\"name\":\"from-site-b\",\"direction\":\"in\"}]";
static const char clients_json[] =
	"[{\"id\":7,\"peer\":\"127.0.0.1:5000\",\"login\":\"alice\"},{\"id\":12,\"peer\":\"127.0.0.1:5001\"}]";

struct fake {
	struct json *dests, *clients, *bridges;
	int fetches;
	char last[32];
};

static const struct json *fake_fetch(void *arg, const char *listing)
{
	struct fake *f = arg;
	f->fetches++;
	snprintf(f->last, sizeof f->last, "%s", listing);
	if (strcmp(listing, "destinations") == 0)
		return f->dests;
	if (strcmp(listing, "clients") == 0)
		return f->clients;
	if (strcmp(listing, "bridges") == 0)
		return f->bridges;
	return NULL;
}

static int setup(void **state)
{
	static struct fake f;
	char err[128];
	memset(&f, 0, sizeof f);
	f.dests = json_parse(dests_json, strlen(dests_json), err, sizeof err);
	f.clients = json_parse(clients_json, strlen(clients_json), err, sizeof err);
	f.bridges = json_parse(bridges_json, strlen(bridges_json), err, sizeof err);
	assert_non_null(f.bridges);
	assert_non_null(f.dests);
	assert_non_null(f.clients);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fake *f = *state;
	json_free(f->dests);
	json_free(f->clients);
	json_free(f->bridges);
	return 0;
}

/* The candidates joined by spaces, for comparing in one go. */
static void expect(struct fake *f, const char *before, const char *text, const char *want)
{
	struct complete_src src = { fake_fetch, f };
	struct complete_result res;
	struct sbuf got;
	sbuf_init(&got);
	complete_words(before, text, &src, &res);
	for (size_t i = 0; i < res.n; i++)
		sbuf_printf(&got, "%s%s", i ? " " : "", res.words[i]);
	if (strcmp(sbuf_str(&got), want) != 0)
		fail_msg("'%s' + '%s': got '%s', expected '%s'", before, text, sbuf_str(&got), want);
	complete_result_fini(&res);
	sbuf_fini(&got);
}

static void test_command_names(void **state)
{
	/* The first word completes to commands: the broker's and mqsh's own. */
	struct fake *f = *state;
	expect(f, "", "p", "pause permit publish purge");
	expect(f, "", "sh", "show shutdown");
	expect(f, "", "ta", "tail");
	expect(f, "", "zz", "");
	assert_int_equal(f->fetches, 0);	/* command names need no broker */
}

static void test_live_destination_names(void **state)
{
	/* dest positions offer every destination (once, though two virtual
	 * hosts have /queue/alpha); queue and pubsub positions only theirs. */
	struct fake *f = *state;
	expect(f, "show ", "/queue/zeb", "/queue/zebra-done /queue/zebra-jobs");
	expect(f, "show ", "", "/pubsub/fan /queue/alpha /queue/zebra-done /queue/zebra-jobs /topic/zebra bridge client");
	expect(f, "purge ", "/", "/queue/alpha /queue/zebra-done /queue/zebra-jobs");
	expect(f, "attach ", "", "/pubsub/fan");
	expect(f, "attach /pubsub/fan ", "/t", "/topic/zebra");
	expect(f, "tail ", "/topic", "/topic/zebra");
	expect(f, "publish ", "/pub", "/pubsub/fan");
	assert_string_equal(f->last, "destinations");
}

static void test_prefix_of_command_completes_its_arguments(void **state)
{
	/* An unambiguous prefix is the command: "pur" completes as purge. */
	struct fake *f = *state;
	expect(f, "pur ", "/queue/a", "/queue/alpha");
	expect(f, "p ", "/queue/a", "");	/* ambiguous: nothing */
}

static void test_client_ids(void **state)
{
	/* client positions offer the ids of `list clients`; show takes them
	 * after its literal word "client", and only there. */
	struct fake *f = *state;
	expect(f, "disconnect ", "", "12 7");
	expect(f, "show ", "cl", "client");
	expect(f, "show client ", "", "12 7");
	expect(f, "show /queue/alpha ", "", "");
	assert_string_equal(f->last, "clients");
}

static void test_words_from_the_table(void **state)
{
	/* kind, listing and command hints, and words the usages spell out. */
	struct fake *f = *state;
	expect(f, "create ", "", "pubsub queue topic");
	expect(f, "list ", "", "bridges clients destinations durables permissions pubsubs queues subscriptions topics users "
	                       "vhosts");
	/* bridge: its actions, then the names of the bridges there are */
	expect(f, "bridge ", "", "add delete pause resume");
	expect(f, "bridge pause ", "", "from-site-b to-cluster");
	expect(f, "bridge resume ", "to", "to-cluster");
	assert_string_equal(f->last, "bridges");
	expect(f, "list ", "q", "queues");
	expect(f, "help ", "pu", "publish purge");
	expect(f, "delete /queue/alpha ", "", "force vhost=");
	expect(f, "delete /queue/alpha force ", "", "vhost=");	/* given once is enough */
	expect(f, "create queue /queue/new ", "max-", "max-bytes= max-deliveries= max-length=");
	expect(f, "create queue /queue/new ", "overflow=", "overflow=drop-oldest overflow=reject");
	expect(f, "create queue /queue/new ", "dead-letter=", "dead-letter=none");
	expect(f, "create queue ", "", "");		/* NAME: free text */
	expect(f, "stats ", "", "");			/* takes nothing */
	expect(f, "loglevel ", "", "");
}

static void test_no_space_after_key(void **state)
{
	/* After "key=" a value follows: readline must not add a blank. */
	struct fake *f = *state;
	struct complete_src src = { fake_fetch, f };
	struct complete_result res;
	complete_words("create queue /queue/new ", "ttl", &src, &res);
	assert_int_equal(res.n, 1);
	assert_string_equal(res.words[0], "ttl=");
	assert_true(res.no_space);
	complete_result_fini(&res);
	complete_words("create ", "q", &src, &res);
	assert_false(res.no_space);
	complete_result_fini(&res);
}

static void test_files_and_quotes(void **state)
{
	/* run takes a file: readline's own file completion does it. Inside an
	 * open quote nothing is offered. No broker: no live names, no crash. */
	struct fake *f = *state;
	struct complete_src none = { NULL, NULL };
	struct complete_result res;
	complete_words("run ", "sce", &none, &res);
	assert_true(res.files);
	assert_int_equal(res.n, 0);
	complete_result_fini(&res);
	complete_words("publish /q \"open ", "x", &none, &res);
	assert_int_equal(res.n, 0);
	complete_result_fini(&res);
	complete_words("show ", "", &none, &res);
	assert_int_equal(res.n, 2);	/* only the literal words "bridge" and "client" */
	complete_result_fini(&res);
	(void)f;
}

static void test_resolve(void **state)
{
	/* Exact names, unambiguous prefixes, and one-line errors that say
	 * what was meant (relayctl's manners). */
	char err[256];
	(void)state;
	assert_string_equal(cmds_resolve("list", err, sizeof err)->name, "list");
	assert_string_equal(cmds_resolve("li", err, sizeof err)->name, "list");
	assert_string_equal(cmds_resolve("pub", err, sizeof err)->name, "publish");
	assert_string_equal(cmds_resolve("ex", err, sizeof err)->name, "exit");
	assert_string_equal(cmds_resolve("q", err, sizeof err)->name, "quit");
	assert_null(cmds_resolve("lst", err, sizeof err));
	assert_string_equal(err, "unknown command 'lst' (try: list, help)");
	assert_null(cmds_resolve("purg3", err, sizeof err));
	assert_string_equal(err, "unknown command 'purg3' (try: purge, help)");
	assert_null(cmds_resolve("xyzzy", err, sizeof err));
	assert_string_equal(err, "unknown command 'xyzzy' (try: help)");
	assert_null(cmds_resolve("pu", err, sizeof err));
	assert_string_equal(err, "ambiguous command 'pu' (could be: purge, publish)");
	assert_null(cmds_resolve("", err, sizeof err));
}

static void test_every_command_is_known_once(void **state)
{
	/* mqsh's own commands do not shadow the broker's, and the broker's
	 * all come from its table. */
	size_t n, nb;
	const struct cmd_info *t = cmd_table(&nb);
	(void)state;
	n = cmds_count();
	assert_true(n > nb);
	for (size_t i = 0; i < nb; i++)
		assert_ptr_equal(cmds_at(i), &t[i]);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			assert_string_not_equal(cmds_at(i)->name, cmds_at(j)->name);
	assert_null(cmds_at(n));
	for (size_t i = nb; i < n; i++)
		assert_true(cmds_at(i)->flags & CMDS_LOCAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_command_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_live_destination_names, setup, teardown),
		cmocka_unit_test_setup_teardown(test_prefix_of_command_completes_its_arguments, setup, teardown),
		cmocka_unit_test_setup_teardown(test_client_ids, setup, teardown),
		cmocka_unit_test_setup_teardown(test_words_from_the_table, setup, teardown),
		cmocka_unit_test_setup_teardown(test_no_space_after_key, setup, teardown),
		cmocka_unit_test_setup_teardown(test_files_and_quotes, setup, teardown),
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_every_command_is_known_once),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
