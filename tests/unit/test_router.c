/* test_router.c: the Lua configuration file, destination-type rules, the
 * sandbox and its limits, and the route(), authorize() and on_event()
 * contracts. Each test writes its own configuration to a temporary file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "common/log.h"
#include "rules/router.h"
#include "common/util.h"

/* ---- helpers ---- */

struct fx {
	struct config cfg;
	struct router *r;
	char path[256];		/* the configuration file */
	char dir[256];		/* a temporary directory, when a test needs one */
	char err[1024];
	struct route_result res;
};

static void write_file(const char *path, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

static void write_text(const char *path, const char *text)
{
	write_file(path, text, strlen(text));
}

/* A fresh file holding text: mkstemp, so tests never collide. */
static void make_file(struct fx *f, const char *text)
{
	int fd;
	snprintf(f->path, sizeof f->path, "/tmp/mqrouter-XXXXXX");
	fd = mkstemp(f->path);
	assert_true(fd >= 0);
	close(fd);
	write_file(f->path, text, strlen(text));
}

/* Loads text as a configuration into a fresh config; the router or NULL. */
static struct router *load(struct fx *f, const char *text)
{
	router_free(f->r);
	config_fini(&f->cfg);
	config_init(&f->cfg);
	if (f->path[0])
		unlink(f->path);
	make_file(f, text);
	f->err[0] = 0;
	f->r = router_load(f->path, &f->cfg, f->err, sizeof f->err);
	return f->r;
}

static struct router *load_ok(struct fx *f, const char *text)
{
	struct router *r = load(f, text);
	if (!r)
		fail_msg("unexpected load error: %s", f->err);
	return r;
}

/* Expects the load to fail with "<path>:<line>: <text>" somewhere in the error. */
static void load_fails(struct fx *f, const char *text, int line, const char *want)
{
	char expect[1024];
	assert_null(load(f, text));
	if (line > 0)
		snprintf(expect, sizeof expect, "%s:%d: %s", f->path, line, want);
	else
		snprintf(expect, sizeof expect, "%s", want);
	if (!strstr(f->err, expect))
		fail_msg("error text\n  got:  %s\n  want: %s", f->err, expect);
}

/* A sandbox that fails to stop a script shows up as a hang, and cmocka
 * has no timeouts: a watchdog turns it into a failure naming the test. */
#define WATCHDOG_S 30
static const char *running = "?";

static void watchdog(int sig)
{
	static const char msg[] = "test_router: timed out (a script was not stopped) in ";
	(void)sig;
	if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0 || write(STDERR_FILENO, running, strlen(running)) < 0 ||
	    write(STDERR_FILENO, "\n", 1) < 0)
		_exit(2);
	_exit(1);
}

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof *f);
	running = *state ? *state : "?";	/* the test's name, from T() */
	config_init(&f->cfg);
	*state = f;
	alarm(WATCHDOG_S);
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;
	alarm(0);
	route_result_fini(&f->res);
	router_free(f->r);
	config_fini(&f->cfg);
	if (f->path[0])
		unlink(f->path);
	if (f->dir[0]) {
		char cmd[512];
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
		assert_int_equal(system(cmd), 0);
	}
	free(f);
	return 0;
}

static const struct frame_hdr *hdrs_of(const char *const *kv, struct frame_hdr *out, unsigned *n)
{
	*n = 0;
	for (size_t i = 0; kv && kv[i]; i += 2, (*n)++) {
		out[*n].name = (char *)kv[i];
		out[*n].value = (char *)kv[i + 1];
		out[*n].name_len = (uint32_t)strlen(kv[i]);
		out[*n].value_len = (uint32_t)strlen(kv[i + 1]);
	}
	return out;
}

/* Routes a message to dest with the given headers (name, value, ..., NULL). */
static enum route_outcome route_msg(struct fx *f, const char *dest, const char *body, const char *const *kv)
{
	struct frame_hdr h[16];
	struct route_msg m = { 0 };
	m.destination = dest;
	m.hdrs = hdrs_of(kv, h, &m.nhdrs);
	m.body = body;
	m.body_len = body ? strlen(body) : 0;
	m.login = "alice";
	m.vhost = "/";
	m.conn_id = 17;
	route_result_fini(&f->res);
	return router_route(f->r, &m, &f->res);
}

static enum authz_result authz(struct fx *f, enum authz_action a, const char *login, const char *dest,
                               bool loopback, char *reason, size_t len)
{
	struct authz_req q = { 0 };
	q.login = login;
	q.action = a;
	q.destination = dest;
	q.vhost = "/";
	q.peer = loopback ? "127.0.0.1:5000" : "192.0.2.7:5000";
	q.loopback = loopback;
	q.authenticated = login != NULL;
	q.admin_user = login && strcmp(login, "operator") == 0;
	return router_authorize(f->r, &q, reason, len);
}

static struct router_stats stats(struct fx *f)
{
	struct router_stats st;
	router_get_stats(f->r, &st);
	return st;
}

/* ---- destination-type rules ---- */

static void test_rules_first_match_wins_prefixes_last(void **state)
{
	/* Rules are tried in order and the first match decides; the built-in
	 * prefixes only apply when no rule matched. */
	struct fx *f = *state;
	const struct type_rule *rule;
	load_ok(f, "types = {\n"
	           "  { '^/jobs/', 'queue' },\n"
	           "  { '^/jobs/urgent', 'topic' },\n"
	           "  { '^/queue/broadcast$', 'topic' },\n"
	           "  { '^/admin/', 'command' },\n"
	           "}\n");
	assert_int_equal(f->cfg.nrules, 4);
	assert_int_equal(config_dest_type(&f->cfg, "/jobs/urgent", &rule), DEST_QUEUE);
	assert_ptr_equal(rule, &f->cfg.rules[0]);
	assert_int_equal(config_dest_type(&f->cfg, "/queue/broadcast", &rule), DEST_TOPIC);
	assert_ptr_equal(rule, &f->cfg.rules[2]);
	assert_int_equal(config_dest_type(&f->cfg, "/queue/broadcast2", &rule), DEST_QUEUE);
	assert_null(rule);
	assert_int_equal(config_dest_type(&f->cfg, "/pubsub/x", NULL), DEST_PUBSUB);
	assert_int_equal(config_dest_type(&f->cfg, "/admin/x", NULL), DEST_COMMAND);
	assert_int_equal(config_dest_type(&f->cfg, "/elsewhere", NULL), DEST_TOPIC);
}

static void test_rules_are_posix_extended(void **state)
{
	/* Alternation, + and {n} work unescaped (ERE), and anchors matter. */
	struct fx *f = *state;
	load_ok(f, "types = { { pattern = '^/a/(b|c)+/[0-9]{2}$', type = 'queue' } }\n");
	assert_int_equal(config_dest_type(&f->cfg, "/a/bcb/42", NULL), DEST_QUEUE);
	assert_int_equal(config_dest_type(&f->cfg, "/a/d/42", NULL), DEST_TOPIC);
	assert_int_equal(config_dest_type(&f->cfg, "/a/b/420", NULL), DEST_TOPIC);
	assert_int_equal(config_dest_type(&f->cfg, "x/a/b/42", NULL), DEST_TOPIC);
}

static void test_rules_pubsub_children(void **state)
{
	/* A pubsub rule's children come back with the match; a configured
	 * pubsub that lists none inherits them; the rule records its line. */
	struct fx *f = *state;
	const struct type_rule *rule;
	load_ok(f, "-- a comment\n"
	           "types = {\n"
	           "  { '^/events/[a-z]+$', 'pubsub', children = { '/queue/audit', '/queue/archive' } },\n"
	           "}\n"
	           "destinations = { { '/events/login' } }\n");
	assert_int_equal(config_dest_type(&f->cfg, "/events/login", &rule), DEST_PUBSUB);
	assert_non_null(rule);
	assert_int_equal(rule->nchildren, 2);
	assert_string_equal(rule->children[0], "/queue/audit");
	assert_string_equal(rule->children[1], "/queue/archive");
	assert_int_equal(rule->line, 2);
	assert_int_equal(config_dest_type(&f->cfg, "/events/Login", NULL), DEST_TOPIC);
	assert_int_equal(f->cfg.ndests, 1);
	assert_int_equal(f->cfg.dests[0].type, DEST_PUBSUB);
	assert_int_equal(f->cfg.dests[0].nchildren, 2);
	assert_string_equal(f->cfg.dests[0].children[1], "/queue/archive");
}

/* ---- every shape of the file ---- */

static void test_scalar_options(void **state)
{
	/* Numbers, integral floats, sizes as text, booleans and enums all reach
	 * config_set(); the file's Lua limits apply after the load. */
	struct fx *f = *state;
	load_ok(f, "data_dir = '/srv/mq'\n"
	           "max_frame = '1MiB'\n"
	           "max_output = 65536\n"
	           "max_connections = 1e3\n"
	           "fsync = 'interval'\n"
	           "log_level = 3\n"
	           "lenient_transactions = false\n"
	           "persistent_server = 'yes'\n"
	           "lua_budget = 5000\n"
	           "function helper() end\n");
	assert_string_equal(f->cfg.data_dir, "/srv/mq");
	assert_int_equal(f->cfg.max_frame, 1 << 20);
	assert_int_equal(f->cfg.max_output, 65536);
	assert_int_equal(f->cfg.max_connections, 1000);
	assert_int_equal(f->cfg.fsync, FSYNC_INTERVAL);
	assert_int_equal(f->cfg.log_level, 3);
	assert_false(f->cfg.lenient_transactions);
	assert_true(f->cfg.persistent_server);
	assert_int_equal(f->cfg.lua_budget, 5000);
	assert_string_equal(f->cfg.path, f->path);
}

static void test_listeners(void **state)
{
	/* The file's listeners replace the built-in one. */
	struct fx *f = *state;
	load_ok(f, "listeners = {\n"
	           "  { address = '127.0.0.1', port = 61613 },\n"
	           "  { port = 61614, tls = true },\n"
	           "  { address = '*', port = 0 },\n"
	           "}\n");
	assert_int_equal(f->cfg.nlisteners, 3);
	assert_string_equal(f->cfg.listeners[0].address, "127.0.0.1");
	assert_int_equal(f->cfg.listeners[0].port, 61613);
	assert_false(f->cfg.listeners[0].tls);
	assert_null(f->cfg.listeners[1].address);
	assert_true(f->cfg.listeners[1].tls);
	assert_string_equal(f->cfg.listeners[2].address, "*");
	assert_int_equal(f->cfg.listeners[2].port, 0);
}

static void test_tls_table_expands_globs(void **state)
{
	/* ca_chains patterns become the files they match, in order. */
	struct fx *f = *state;
	char text[1024], p[300];
	snprintf(f->dir, sizeof f->dir, "/tmp/mqrouter-dir-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(p, sizeof p, "%s/b.pem", f->dir);
	write_text(p, "x");
	snprintf(p, sizeof p, "%s/a.pem", f->dir);
	write_text(p, "x");
	snprintf(p, sizeof p, "%s/one.crt", f->dir);
	write_text(p, "x");
	snprintf(text, sizeof text,
	         "tls = { cert_key = '/etc/mq/server.pem', port = 7000,\n"
	         "        ca_chains = { '%s/one.crt', '%s/*.pem' } }\n", f->dir, f->dir);
	load_ok(f, text);
	assert_string_equal(f->cfg.tls_cert_key, "/etc/mq/server.pem");
	assert_int_equal(f->cfg.tls_port, 7000);
	assert_int_equal(f->cfg.nca_chains, 3);
	assert_true(strstr(f->cfg.ca_chains[0], "/one.crt") != NULL);
	assert_true(strstr(f->cfg.ca_chains[1], "/a.pem") != NULL);
	assert_true(strstr(f->cfg.ca_chains[2], "/b.pem") != NULL);

	snprintf(text, sizeof text, "tls = { ca_chains = '%s/*.crt' }\n", f->dir);
	load_ok(f, text);
	assert_int_equal(f->cfg.nca_chains, 1);

	/* the flat twins work alone */
	load_ok(f, "tls_cert_key = 'k.pem'\ntls_port = 7001\n");
	assert_string_equal(f->cfg.tls_cert_key, "k.pem");
	assert_int_equal(f->cfg.tls_port, 7001);
}

static void test_vhosts_and_users(void **state)
{
	struct fx *f = *state;
	load_ok(f, "vhosts = { '/', 'dirac' }\n"
	           "users = {\n"
	           "  { login = 'guest', passcode = 'guest' },\n"
	           "  { login = 'op', passcode = '', admin = true },\n"
	           "  { login = 'cert-only' },\n"
	           "}\n");
	assert_int_equal(f->cfg.nvhosts, 2);
	assert_string_equal(f->cfg.vhosts[1].name, "dirac");
	assert_int_equal(f->cfg.nusers, 3);
	assert_string_equal(f->cfg.users[0].passcode, "guest");
	assert_false(f->cfg.users[0].admin);
	assert_string_equal(f->cfg.users[1].passcode, "");
	assert_true(f->cfg.users[1].admin);
	assert_null(f->cfg.users[2].passcode);
}

static void test_queue_defaults(void **state)
{
	struct fx *f = *state;
	load_ok(f, "queue_defaults = { persistent = true, max_length = 10, max_bytes = '1KiB',\n"
	           "  overflow = 'reject', ttl = '60s', max_deliveries = 5, dead_letter = '/queue/dead' }\n");
	assert_true(f->cfg.queue_defaults.persistent);
	assert_int_equal(f->cfg.queue_defaults.max_length, 10);
	assert_int_equal(f->cfg.queue_defaults.max_bytes, 1024);
	assert_int_equal(f->cfg.queue_defaults.overflow, OVERFLOW_REJECT);
	assert_int_equal(f->cfg.queue_defaults.ttl_ms, 60000);
	assert_int_equal(f->cfg.queue_defaults.max_deliveries, 5);
	assert_string_equal(f->cfg.queue_defaults.dead_letter, "/queue/dead");

	load_ok(f, "queue_defaults = { dead_letter = false, ttl = 250 }\n");
	assert_string_equal(f->cfg.queue_defaults.dead_letter, "");	/* drop */
	assert_int_equal(f->cfg.queue_defaults.ttl_ms, 250);
}

static void test_destinations(void **state)
{
	/* Queues copy queue_defaults then apply their own options; a pubsub
	 * keeps its children; a vhost must be configured; a missing type comes
	 * from the rules and prefixes. */
	struct fx *f = *state;
	load_ok(f, "vhosts = { 'dirac' }\n"
	           "queue_defaults = { max_deliveries = 3 }\n"
	           "types = { { '^/jobs/', 'queue' } }\n"
	           "destinations = {\n"
	           "  { '/queue/jobs', 'queue', persistent = true, max_length = 10000 },\n"
	           "  { '/pubsub/events', 'pubsub', children = { '/queue/audit' } },\n"
	           "  { '/topic/news', 'topic' },\n"
	           "  { name = '/queue/jobs', type = 'queue', vhost = 'dirac' },\n"
	           "  { '/jobs/batch' },\n"
	           "}\n");
	assert_int_equal(f->cfg.ndests, 5);
	assert_string_equal(f->cfg.dests[0].name, "/queue/jobs");
	assert_int_equal(f->cfg.dests[0].type, DEST_QUEUE);
	assert_true(f->cfg.dests[0].opts.persistent);
	assert_int_equal(f->cfg.dests[0].opts.max_length, 10000);
	assert_int_equal(f->cfg.dests[0].opts.max_deliveries, 3);
	assert_null(f->cfg.dests[0].vhost);
	assert_int_equal(f->cfg.dests[1].type, DEST_PUBSUB);
	assert_int_equal(f->cfg.dests[1].nchildren, 1);
	assert_string_equal(f->cfg.dests[1].children[0], "/queue/audit");
	assert_int_equal(f->cfg.dests[2].type, DEST_TOPIC);
	assert_string_equal(f->cfg.dests[3].vhost, "dirac");
	assert_int_equal(f->cfg.dests[4].type, DEST_QUEUE);
}

static void test_functions_are_flagged(void **state)
{
	/* Which of route, authorize and on_event exist is a C flag. */
	struct fx *f = *state;
	load_ok(f, "function route(msg) end\n");
	assert_true(router_has_route(f->r));
	assert_false(router_has_authorize(f->r));
	load_ok(f, "function authorize() return true end\n");
	assert_false(router_has_route(f->r));
	assert_true(router_has_authorize(f->r));
	load_ok(f, "max_frame = '1MiB'\n");
	assert_non_null(f->r);
	assert_false(router_has_route(f->r));
	assert_false(router_has_authorize(f->r));
	assert_false(router_has_route(NULL));
	assert_false(router_has_authorize(NULL));
}

/* ---- configuration errors: file, line, option, what was wrong ---- */

struct err_case {
	const char *text;
	int line;		/* 0: no line expected */
	const char *want;
};

static const struct err_case err_cases[] = {
	{ "max_fram = '1MiB'\n", 1, "unknown option 'max_fram' (did you mean max_frame?)" },
	{ "x = 1\nhelpers = {}\n", 1, "unknown option 'x' (not a broker option: make your own variables local)" },
	{ "-- c\nlisteners = {\n  { port = 61613 },\n  { port = \"abc\" },\n}\n", 2,
	  "listeners[2].port: expected an integer 0..65535, got \"abc\"" },
	{ "listeners = { { port = 70000 } }\n", 1, "listeners[1].port: expected an integer 0..65535, got 70000" },
	{ "listeners = { { address = '::1' } }\n", 1, "listeners[1]: port is missing" },
	{ "listeners = { port = 61613 }\n", 1, "listeners: expected a list of { address = ..., port = ..., tls = ... } tables, found the key 'port' (missing inner braces?)" },
	{ "listeners = { { prot = 1 } }\n", 1, "listeners[1]: unknown field 'prot' (known: address, port, tls)" },
	{ "listeners = { { port = 1, tls = 'yes' } }\n", 1, "listeners[1].tls: expected true or false, got \"yes\"" },
	{ "\n\nmax_frame = 'abc'\n", 3, "max_frame: expected a size such as 16MiB" },
	{ "max_frame = {}\n", 1, "max_frame: expected a size such as 16MiB or a number of bytes, got a table" },
	{ "max_connections = 1.5\n", 1, "max_connections: expected an integer 1..1000000, got '1.5'" },
	/* found by fuzz_config: a float past the range of an integer was
	 * converted before it was checked, undefined behaviour that clang's
	 * UBSan reports there (gcc's leaves float casts out) */
	{ "max_connections = 6.7e97\n", 1, "max_connections: expected an integer 1..1000000, got '6.6999999999999998e+97'" },
	{ "max_connections = -1e300\n", 1, "max_connections: expected an integer 1..1000000, got '-1.0000000000000001e+300'" },
	{ "fsync = 'sometimes'\n", 1, "fsync: expected always, interval or never, got 'sometimes'" },
	{ "log_level = 9\n", 1, "log_level: expected an integer 0..4, got '9'" },
	{ "data_dir = 5\n", 1, "data_dir: expected a string, got 5" },
	{ "lenient_transactions = 'maybe'\n", 1, "lenient_transactions: expected true or false, got 'maybe'" },
	{ "queue_defaults = {\n max_length = 'x' }\n", 1, "queue_defaults.max_length: expected a number of messages, got 'x'" },
	{ "queue_defaults = { colour = 'red' }\n", 1, "queue_defaults: unknown queue option 'colour'" },
	{ "queue_defaults = { ttl = {} }\n", 1, "queue_defaults.ttl: expected a string, number or boolean, got a table" },
	{ "destinations = {\n { '/queue/a', 'queue' },\n { '/topic/t', 'topic', max_length = 1 } }\n", 1,
	  "destinations[2].max_length: only queues take queue options ('/topic/t' is a topic)" },
	{ "destinations = { { '/queue/a', 'queu' } }\n", 1, "destinations[1].type: unknown destination type 'queu' (known: queue, topic, pubsub)" },
	{ "destinations = { { '/command/x' } }\n", 1, "destinations[1]: '/command/x' is a command destination" },
	{ "destinations = { { '/queue/a', vhost = 'dirac' } }\n", 1, "destinations[1].vhost: unknown virtual host 'dirac' (list it in vhosts)" },
	{ "destinations = { { '/queue/a' }, { '/queue/a' } }\n", 1, "destinations[2]: '/queue/a' is listed twice" },
	{ "destinations = { { '/queue/a', 'queue', children = { '/queue/b' } } }\n", 1, "destinations[1].children: only a pubsub has children ('/queue/a' is a queue)" },
	{ "destinations = { { '/pubsub/p', children = { '/topic/x' } } }\n", 1, "destinations[1].children[1]: '/topic/x' is not a queue (it would be a topic)" },
	{ "destinations = { { '/queue/a', name = '/queue/b' } }\n", 1, "destinations[1]: name given twice" },
	{ "destinations = { { '/queue/a', max_length = -1 } }\n", 1, "destinations[1].max_length: expected a number of messages, got '-1'" },
	{ "types = { { '(', 'queue' } }\n", 1, "types[1]: bad regular expression '('" },
	{ "types = { { '^/a', 'queue', children = { '/queue/x' } } }\n", 1, "types[1].children: only pubsub rules have children" },
	{ "types = { { '^/a' } }\n", 1, "types[1]: type is missing" },
	{ "types = { { '^/a', 'pubsub', children = { '/x' } } }\n", 1, "types[1].children[1]: '/x' is not a queue (it would be a topic)" },
	{ "destinations = { { '/pubsub/p', children = { '/temp-queue/x' } } }\n", 1, "destinations[1].children[1]: '/temp-queue/x' is a temporary queue" },
	{ "destinations = { { '/durable/x:y', 'queue' } }\n", 1, "destinations[1]: '/durable/x:y' cannot be configured" },
	{ "users = { { passcode = 'x' } }\n", 1, "users[1]: login is missing" },
	{ "users = { { login = 'a' }, { login = 'a' } }\n", 1, "users[2]: login 'a' is listed twice" },
	{ "users = { { login = 'a', passcode = 5 } }\n", 1, "users[1].passcode: expected a string, got 5" },
	{ "vhosts = { 'a', 7 }\n", 1, "vhosts[2]: expected a non-empty string, got 7" },
	{ "vhosts = 'a'\n", 1, "vhosts: expected a list of strings, got \"a\"" },
	{ "tls_cert_key = 'a.pem'\ntls = { cert_key = 'b.pem' }\n", 2, "tls.cert_key: tls_cert_key is set too; keep one of them" },
	{ "tls = { ca_chains = { '/nonexistent/mq/*.pem' } }\n", 1, "tls.ca_chains[1]: no file matches '/nonexistent/mq/*.pem'" },
	{ "tls = { certkey = 'a' }\n", 1, "tls: unknown field 'certkey' (known: cert_key, port, ca_chains)" },
	{ "route = 5\n", 1, "route: expected a function, got 5" },
	{ "x = = 1\n", 1, "unexpected symbol near '='" },
	{ "\nlocal t = nil\nlocal y = t.field\n", 3, "attempt to index a nil value (local 't')" },
	{ "error('no config for you')\n", 1, "no config for you" },
	{ "lua_memory = '1MiB'\nlocal t = {} for i = 1, 100000 do t[i] = ('x'):rep(64) .. i end\n", 0,
	  "" },	/* fine: the file's limits only apply after the load */
};

static void test_config_errors_name_file_line_option(void **state)
{
	/* Every configuration error reads "<file>:<line>: <option>: <what>";
	 * for a table spread over lines, the line where its assignment starts. */
	struct fx *f = *state;
	for (size_t i = 0; i < ARRAY_LEN(err_cases); i++) {
		if (!err_cases[i].want[0]) {
			load_ok(f, err_cases[i].text);
			continue;
		}
		load_fails(f, err_cases[i].text, err_cases[i].line, err_cases[i].want);
	}
}

/* Lua's own load errors that do not start with the file's name (a
 * binary chunk refused) are still told with it. */
static void test_load_error_names_the_file(void **state)
{
	struct fx *f = *state;
	char path[] = "/tmp/mq-router-bin-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "\x1bLua", 4), 4);
	close(fd);
	assert_null(router_load(path, &f->cfg, f->err, sizeof f->err));
	assert_non_null(strstr(f->err, path));
	assert_non_null(strstr(f->err, "binary chunk"));
	unlink(path);
}

static void test_missing_file(void **state)
{
	struct fx *f = *state;
	assert_null(router_load("/nonexistent/broker.lua", &f->cfg, f->err, sizeof f->err));
	assert_non_null(strstr(f->err, "cannot open /nonexistent/broker.lua"));
}

/* ---- sandbox ---- */

static const struct {
	const char *text;
	const char *want;
} load_escapes[] = {
	{ "io.open('/etc/passwd')\n", "attempt to index a nil value (global 'io')" },
	{ "os.execute('touch /tmp/mqrouter-pwned')\n", "attempt to call a nil value (field 'execute')" },
	{ "os.exit(1)\n", "attempt to call a nil value (field 'exit')" },
	{ "os.remove('/tmp/x')\n", "attempt to call a nil value (field 'remove')" },
	{ "debug.sethook(function() end, '', 1)\n", "attempt to index a nil value (global 'debug')" },
	{ "dofile('/etc/passwd')\n", "attempt to call a nil value (global 'dofile')" },
	{ "loadfile('/etc/passwd')\n", "attempt to call a nil value (global 'loadfile')" },
	{ "package.loadlib('libc.so.6', 'system')\n", "attempt to index a nil value (global 'package')" },
	{ "require('../../etc/passwd')\n", "require: module name '../../etc/passwd' is not allowed" },
	{ "require('/etc/passwd')\n", "is not allowed" },
	{ "require('nosuchmodule')\n", "require: module 'nosuchmodule' not found" },
	{ "collectgarbage('stop')\n", "collectgarbage: only 'count' is available in the sandbox" },
	{ "string.dump(function() end)\n", "attempt to call a nil value (field 'dump')" },
	{ "local f = ('').dump\nassert(f == nil)\ngetmetatable('').__index.dump(print)\n", "attempt to call a nil value (field 'dump')" },
	{ "setmetatable({}, { __gc = function() while true do end end })\n", "__gc metamethods are not available" },
	{ "load(function() return nil end)\n", "load: only a string chunk can be loaded" },
	{ "local f, e = load('\\27Lua\\84\\0')\nerror(e)\n", "attempt to load a binary chunk (mode is 't')" },
	{ "local f, e = load('\\27Lua\\84\\0', 'x', 'b')\nerror(e)\n", "attempt to load a binary chunk" },
	{ "setmetatable(_ENV, nil)\n", "cannot change a protected metatable" },
	{ "while true do end\n", "instruction budget of 1000000 exhausted" },
	{ "local s = 'x' while true do s = s .. s end\n", "Lua memory limit of 64.0 MiB reached" },
};

static void test_sandbox_escapes_at_load(void **state)
{
	/* Nothing outside the allow-list is reachable from the file itself. */
	struct fx *f = *state;
	for (size_t i = 0; i < ARRAY_LEN(load_escapes); i++)
		load_fails(f, load_escapes[i].text, 0, load_escapes[i].want);
	assert_int_equal(access("/tmp/mqrouter-pwned", F_OK), -1);
}

static void test_sandbox_allows_what_it_should(void **state)
{
	/* The allow-list is usable: string, table, math, utf8, os.time/clock/
	 * date/getenv, pcall, load of text into the sandbox, select, print. */
	struct fx *f = *state;
	load_ok(f, "assert(string.format('%05d', 42) == '00042')\n"
	           "assert(table.concat({ 'a', 'b' }, ',') == 'a,b')\n"
	           "assert(math.max(1, 2) == 2 and utf8.char(72) == 'H')\n"
	           "assert(type(os.time()) == 'number' and type(os.clock()) == 'number')\n"
	           "assert(type(os.date('%Y')) == 'string' and os.getenv('PATH'))\n"
	           "assert(pcall(error, 'x') == false)\n"
	           "assert(select('#', 1, 2) == 2 and collectgarbage('count') > 0)\n"
	           "local chunk = assert(load('return max_frame_value'))\n"
	           "assert(chunk() == nil)\n"
	           "assert(_G == _ENV and getmetatable(_ENV) == false)\n"
	           "print('loaded', 1)\n"
	           "max_frame = '1MiB'\n");
	assert_int_equal(f->cfg.max_frame, 1 << 20);
}

static void make_dir(struct fx *f)
{
	snprintf(f->dir, sizeof f->dir, "/tmp/mqrouter-dir-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
}

static void test_require_only_under_lua_dir(void **state)
{
	/* require() finds lua/<name>.lua beside the file, runs it once in the
	 * same sandbox, and finds nothing outside lua/. */
	struct fx *f = *state;
	char p[512];
	make_dir(f);
	snprintf(p, sizeof p, "%s/lua", f->dir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof p, "%s/lua/lib", f->dir);
	assert_int_equal(mkdir(p, 0700), 0);
	snprintf(p, sizeof p, "%s/lua/lib/dests.lua", f->dir);
	write_text(p, "count = (count or 0) + 1\n"
	              "return { jobs = '/queue/jobs', io = io }\n");
	snprintf(p, sizeof p, "%s/outside.lua", f->dir);
	write_text(p, "return 1\n");

	/* the configuration itself, in the directory */
	snprintf(f->path, sizeof f->path, "%.200s/broker.lua", f->dir);
	write_text(f->path, "local d = require 'lib.dests'\n"
	                    "assert(require('lib.dests') == d)\n"
	                    "assert(d.io == nil)\n"
	                    "destinations = { { d.jobs, 'queue' } }\n"
	                    "count = nil\n");
	f->r = router_load(f->path, &f->cfg, f->err, sizeof f->err);
	if (!f->r)
		fail_msg("%s", f->err);
	assert_int_equal(f->cfg.ndests, 1);
	assert_string_equal(f->cfg.dests[0].name, "/queue/jobs");
	router_free(f->r);
	f->r = NULL;

	write_text(f->path, "require 'outside'\n");
	assert_null(router_load(f->path, &f->cfg, f->err, sizeof f->err));
	assert_non_null(strstr(f->err, "require: module 'outside' not found"));
	f->path[0] = 0;		/* removed with the directory */
}

static void test_binary_chunk_file_refused(void **state)
{
	/* A precompiled file is refused before Lua looks at it. */
	struct fx *f = *state;
	const char bin[] = "\x1bLua\x54\x00\x19\x93\r\n\x1a\n\x04\x08\x08";
	snprintf(f->path, sizeof f->path, "/tmp/mqrouter-XXXXXX");
	close(mkstemp(f->path));
	write_file(f->path, bin, sizeof bin - 1);
	assert_null(router_load(f->path, &f->cfg, f->err, sizeof f->err));
	assert_non_null(strstr(f->err, "attempt to load a binary chunk (mode is 't')"));
}

static void test_endless_loop_is_stopped_fast(void **state)
{
	/* A route() that never returns is stopped by its budget within
	 * milliseconds, counted, and the next call runs normally. */
	struct fx *f = *state;
	uint64_t t0;
	load_ok(f, "function route(msg)\n"
	           "  if msg.destination == '/loop' then while true do end end\n"
	           "  return '/queue/ok'\n"
	           "end\n");
	t0 = mono_us();
	assert_int_equal(route_msg(f, "/loop", NULL, NULL), ROUTE_BUDGET);
	assert_true(mono_us() - t0 < 1000000);
	assert_non_null(strstr(f->res.error, ":2: instruction budget of 1000000 exhausted"));
	assert_int_equal(stats(f).budget_exceeded, 1);
	assert_int_equal(route_msg(f, "/other", NULL, NULL), ROUTE_REWRITE);
	assert_string_equal(f->res.dests[0], "/queue/ok");
}

static void test_endless_loop_inside_pcall_is_stopped(void **state)
{
	/* Catching the budget error does not help: pcall, xpcall and nested
	 * loops of them all end as ROUTE_BUDGET. */
	struct fx *f = *state;
	uint64_t t0 = mono_us();
	load_ok(f, "function route(msg)\n"
	           "  local d = msg.destination\n"
	           "  if d == '/a' then while true do pcall(function() while true do end end) end end\n"
	           "  if d == '/b' then for i = 1, math.huge do pcall(error, 'x') end end\n"
	           "  if d == '/c' then while true do xpcall(function() while true do end end,\n"
	           "                                         function(e) while true do end end) end end\n"
	           "  if d == '/d' then local ok = pcall(function() while true do end end) return '/queue/escaped' end\n"
	           "end\n");
	assert_int_equal(route_msg(f, "/a", NULL, NULL), ROUTE_BUDGET);
	assert_int_equal(route_msg(f, "/b", NULL, NULL), ROUTE_BUDGET);
	assert_int_equal(route_msg(f, "/c", NULL, NULL), ROUTE_BUDGET);
	assert_int_equal(route_msg(f, "/d", NULL, NULL), ROUTE_BUDGET);
	assert_int_equal(stats(f).budget_exceeded, 4);
	assert_true(mono_us() - t0 < 4000000);
	assert_int_equal(route_msg(f, "/e", NULL, NULL), ROUTE_DELIVER);
}

static void test_memory_bombs_end_as_nomem(void **state)
{
	/* string.rep, doubling concatenation and a growing table hit the
	 * ceiling and end as ROUTE_NOMEM, with or without pcall; the memory
	 * is given back and the next call works. */
	struct fx *f = *state;
	load_ok(f, "lua_budget = 1e9\n"
	           "lua_memory = '4MiB'\n"
	           "function route(msg)\n"
	           "  local d = msg.destination\n"
	           "  if d == '/rep' then local s = string.rep('x', 1 << 40) end\n"
	           "  if d == '/rep3' then local s = string.rep('x', (1 << 31) - 2) end\n"
	           "  if d == '/rep2' then local s = ('x'):rep(8 << 20) end\n"
	           "  if d == '/concat' then local s = 'x' while true do s = s .. s end end\n"
	           "  if d == '/table' then local t = {} for i = 1, 1e8 do t[i] = i end end\n"
	           "  if d == '/pcall' then pcall(function() local t = {} for i = 1, 1e8 do t[i] = {} end end) return '/queue/x' end\n"
	           "  if d == '/load' then local ok = load(('x = 1 '):rep(1e6)) return '/queue/x' end\n"
	           "end\n");
	/* Past INT_MAX string.rep refuses by itself, before allocating. */
	assert_int_equal(route_msg(f, "/rep", NULL, NULL), ROUTE_ERROR);
	assert_non_null(strstr(f->res.error, "resulting string too large"));
	assert_int_equal(route_msg(f, "/rep3", NULL, NULL), ROUTE_NOMEM);
	assert_non_null(strstr(f->res.error, "Lua memory limit of 4.0 MiB reached"));
	assert_int_equal(route_msg(f, "/rep2", NULL, NULL), ROUTE_NOMEM);
	assert_int_equal(route_msg(f, "/concat", NULL, NULL), ROUTE_NOMEM);
	assert_int_equal(route_msg(f, "/table", NULL, NULL), ROUTE_NOMEM);
	assert_int_equal(route_msg(f, "/pcall", NULL, NULL), ROUTE_NOMEM);
	assert_int_equal(route_msg(f, "/load", NULL, NULL), ROUTE_NOMEM);
	assert_int_equal(stats(f).memory_exceeded, 6);
	assert_int_equal(stats(f).errors, 1);
	assert_true(stats(f).memory_bytes < 1 << 20);
	assert_int_equal(route_msg(f, "/fine", NULL, NULL), ROUTE_DELIVER);
}

static void test_deep_recursion_is_contained(void **state)
{
	/* Unbounded recursion, in Lua and through C (pcall, metamethods), ends
	 * as an error of some kind, never a crash; the router keeps working. */
	struct fx *f = *state;
	enum route_outcome o;
	load_ok(f, "local function down(n) return down(n + 1) + 1 end\n"
	           "local function cdown() return select(2, pcall(cdown)) end\n"
	           "local mt = {} mt.__index = function(t, k) return t[k .. 'x'] end\n"
	           "function route(msg)\n"
	           "  local d = msg.destination\n"
	           "  if d == '/lua' then down(1) end\n"
	           "  if d == '/c' then error(cdown()) end\n"
	           "  if d == '/meta' then return setmetatable({}, mt).x end\n"
	           "  if d == '/tostring' then local t = setmetatable({}, { __tostring = function(s) return tostring(s) end }) return tostring(t) end\n"
	           "end\n");
	const char *const dests[] = { "/lua", "/c", "/meta", "/tostring" };
	for (size_t i = 0; i < ARRAY_LEN(dests); i++) {
		o = route_msg(f, dests[i], NULL, NULL);
		if (o != ROUTE_ERROR && o != ROUTE_NOMEM && o != ROUTE_BUDGET && o != ROUTE_REJECT)
			fail_msg("%s: outcome %d", dests[i], o);
	}
	assert_int_equal(route_msg(f, "/fine", NULL, NULL), ROUTE_DELIVER);
}

static void test_set_limits_applies(void **state)
{
	/* router_set_limits() (the command line overriding the file) changes
	 * the budget of the next call. */
	struct fx *f = *state;
	load_ok(f, "function route(msg) for i = 1, 100000 do end end\n");
	assert_int_equal(route_msg(f, "/a", NULL, NULL), ROUTE_DELIVER);
	router_set_limits(f->r, 1000, 0);
	assert_int_equal(route_msg(f, "/a", NULL, NULL), ROUTE_BUDGET);
	assert_non_null(strstr(f->res.error, "instruction budget of 1000 exhausted"));
	router_set_limits(f->r, 10000000, 0);
	assert_int_equal(route_msg(f, "/a", NULL, NULL), ROUTE_DELIVER);
}

/* ---- route() outcomes ---- */

static void test_route_outcomes(void **state)
{
	/* Nothing delivers, a string rewrites, a list fans out, false or an
	 * empty list drops (counted), error("text") rejects with that text. */
	struct fx *f = *state;
	load_ok(f, "function route(msg)\n"
	           "  local d = msg.destination\n"
	           "  if d == '/deliver' then return end\n"
	           "  if d == '/true' then return true end\n"
	           "  if d == '/rewrite' then return '/queue/other' end\n"
	           "  if d == '/fanout' then return { '/queue/a', '/queue/b', '/topic/c' } end\n"
	           "  if d == '/drop' then return false end\n"
	           "  if d == '/empty' then return {} end\n"
	           "  if d == '/reject' then error('no jobs on sundays') end\n"
	           "  if d == '/reject0' then error('plain', 0) end\n"
	           "end\n");
	assert_int_equal(route_msg(f, "/deliver", NULL, NULL), ROUTE_DELIVER);
	assert_int_equal(f->res.ndests, 0);
	assert_int_equal(route_msg(f, "/true", NULL, NULL), ROUTE_DELIVER);
	assert_int_equal(route_msg(f, "/rewrite", NULL, NULL), ROUTE_REWRITE);
	assert_int_equal(f->res.ndests, 1);
	assert_string_equal(f->res.dests[0], "/queue/other");
	assert_int_equal(route_msg(f, "/fanout", NULL, NULL), ROUTE_FANOUT);
	assert_int_equal(f->res.ndests, 3);
	assert_string_equal(f->res.dests[2], "/topic/c");
	assert_int_equal(route_msg(f, "/drop", NULL, NULL), ROUTE_DROP);
	assert_int_equal(route_msg(f, "/empty", NULL, NULL), ROUTE_DROP);
	assert_int_equal(stats(f).drops, 2);
	assert_int_equal(route_msg(f, "/reject", NULL, NULL), ROUTE_REJECT);
	/* The sender sees the script's text, not our file names. */
	assert_string_equal(f->res.error, "no jobs on sundays");
	assert_int_equal(route_msg(f, "/reject0", NULL, NULL), ROUTE_REJECT);
	assert_string_equal(f->res.error, "plain");
	assert_int_equal(stats(f).rejects, 2);
	assert_int_equal(stats(f).calls, 8);
	assert_int_equal(stats(f).errors, 0);
}

static void test_route_errors_carry_file_line(void **state)
{
	/* Runtime errors, errors that are not strings, and returns of the
	 * wrong type are ROUTE_ERROR with file:line, counted and logged. */
	struct fx *f = *state;
	char want[300];
	load_ok(f, "function route(msg)\n"
	           "  local d = msg.destination\n"
	           "  if d == '/nil' then local t = nil; return t.x end\n"
	           "  if d == '/table' then error({ code = 1 }) end\n"
	           "  if d == '/number' then return 42 end\n"
	           "  if d == '/badlist' then return { '/queue/a', 7 } end\n"
	           "  if d == '/nodest' then return '' end\n"
	           "  if d == '/caught' then local ok, e = pcall(error, 'inner') error('outer: ' .. e, 0) end\n"
	           "  if d == '/field' then return msg.destnation end\n"
	           "end\n");
	assert_int_equal(route_msg(f, "/nil", NULL, NULL), ROUTE_ERROR);
	snprintf(want, sizeof want, "%s:3: attempt to index a nil value (local 't')", f->path);
	assert_string_equal(f->res.error, want);
	assert_int_equal(route_msg(f, "/table", NULL, NULL), ROUTE_ERROR);
	assert_string_equal(f->res.error, "(error object is a table value)");
	assert_int_equal(route_msg(f, "/number", NULL, NULL), ROUTE_ERROR);
	snprintf(want, sizeof want, "%s:1: route() returned a number", f->path);
	assert_non_null(strstr(f->res.error, want));
	assert_int_equal(route_msg(f, "/badlist", NULL, NULL), ROUTE_ERROR);
	assert_non_null(strstr(f->res.error, "route() returned a list whose item 2 is number"));
	assert_int_equal(route_msg(f, "/nodest", NULL, NULL), ROUTE_ERROR);
	/* A rejection re-raised under another text is still a rejection. */
	assert_int_equal(route_msg(f, "/caught", NULL, NULL), ROUTE_REJECT);
	assert_non_null(strstr(f->res.error, "outer: "));
	assert_int_equal(route_msg(f, "/field", NULL, NULL), ROUTE_ERROR);
	assert_non_null(strstr(f->res.error, "msg has no field 'destnation'"));
	assert_int_equal(stats(f).errors, 6);
}

static void test_route_reads_message(void **state)
{
	/* destination, headers (first occurrence wins), login, vhost, conn_id. */
	struct fx *f = *state;
	const char *const h[] = { "priority", "high", "x-dup", "first", "x-dup", "second", NULL };
	load_ok(f, "function route(msg)\n"
	           "  return table.concat({ msg.destination, msg.headers.priority, msg.headers['x-dup'],\n"
	           "    tostring(msg.headers.missing), msg.login, msg.vhost, tostring(msg.conn_id) }, '|')\n"
	           "end\n");
	assert_int_equal(route_msg(f, "/queue/in", NULL, h), ROUTE_REWRITE);
	assert_string_equal(f->res.dests[0], "/queue/in|high|first|nil|alice|/|17");
}

static void test_route_header_edits(void **state)
{
	/* Assignments to msg.headers are recorded in order, seen by later
	 * reads and by pairs(); edits of broker headers are refused; edits
	 * are dropped with the message. */
	struct fx *f = *state;
	const char *const h[] = { "a", "1", "b", "2", NULL };
	load_ok(f, "function route(msg)\n"
	           "  local hd = msg.headers\n"
	           "  if msg.destination == '/dest' then hd.destination = '/x' end\n"
	           "  hd.c = 'three'\n"
	           "  hd.a = nil\n"
	           "  hd.n = 5\n"
	           "  hd.c = 'THREE'\n"
	           "  local seen = {}\n"
	           "  for k, v in pairs(hd) do seen[#seen + 1] = k .. '=' .. v end\n"
	           "  table.sort(seen)\n"
	           "  if msg.destination == '/drop' then return false end\n"
	           "  return '/q/' .. table.concat(seen, ',') .. '/' .. tostring(hd.a) .. '/' .. hd.c\n"
	           "end\n");
	assert_int_equal(route_msg(f, "/in", NULL, h), ROUTE_REWRITE);
	assert_string_equal(f->res.dests[0], "/q/b=2,c=THREE,n=5/nil/THREE");
	assert_int_equal(f->res.nedits, 4);
	assert_string_equal(f->res.edits[0].name, "c");
	assert_string_equal(f->res.edits[0].value, "three");
	assert_string_equal(f->res.edits[1].name, "a");
	assert_null(f->res.edits[1].value);
	assert_string_equal(f->res.edits[2].value, "5");
	assert_string_equal(f->res.edits[3].value, "THREE");

	assert_int_equal(route_msg(f, "/drop", NULL, h), ROUTE_DROP);
	assert_int_equal(f->res.nedits, 0);
	assert_int_equal(route_msg(f, "/dest", NULL, h), ROUTE_ERROR);
	assert_non_null(strstr(f->res.error, "'destination' is set by the broker"));
}

static void test_route_bad_header_edits(void **state)
{
	struct fx *f = *state;
	load_ok(f, "function route(msg)\n"
	           "  local d = msg.destination\n"
	           "  if d == '/colon' then msg.headers['a:b'] = 'x' end\n"
	           "  if d == '/newline' then msg.headers.a = 'x\\ny' end\n"
	           "  if d == '/table' then msg.headers.a = {} end\n"
	           "  if d == '/many' then for i = 1, 1000 do msg.headers['h' .. i] = 'v' end end\n"
	           "  if d == '/replace' then msg.headers = {} end\n"
	           "  if d == '/ro' then msg.login = 'root' end\n"
	           "end\n");
	assert_int_equal(route_msg(f, "/colon", NULL, NULL), ROUTE_ERROR);
	assert_non_null(strstr(f->res.error, "invalid header name 'a:b'"));
	assert_int_equal(route_msg(f, "/newline", NULL, NULL), ROUTE_ERROR);
	assert_int_equal(route_msg(f, "/table", NULL, NULL), ROUTE_ERROR);
	assert_int_equal(route_msg(f, "/many", NULL, NULL), ROUTE_ERROR);
	assert_non_null(strstr(f->res.error, "more than 256 header edits"));
	assert_int_equal(f->res.nedits, 0);
	assert_int_equal(route_msg(f, "/replace", NULL, NULL), ROUTE_ERROR);
	assert_int_equal(route_msg(f, "/ro", NULL, NULL), ROUTE_ERROR);
	assert_non_null(strstr(f->res.error, "msg.login is read-only"));
}

static void test_route_body_is_lazy(void **state)
{
	/* The body enters Lua only when read, once per call however often it
	 * is read, bytes intact (NUL included). */
	struct fx *f = *state;
	struct route_msg m = { 0 };
	const char body[] = "bin\0ary";
	load_ok(f, "function route(msg)\n"
	           "  if msg.destination ~= '/read' then return end\n"
	           "  local a, b = msg.body, msg.body\n"
	           "  assert(a == b)\n"
	           "  return '/len/' .. #a .. '/' .. (a:find('\\0', 1, true) or 0)\n"
	           "end\n");
	assert_int_equal(route_msg(f, "/skip", "a body nobody reads", NULL), ROUTE_DELIVER);
	assert_int_equal(stats(f).body_reads, 0);
	m.destination = "/read";
	m.body = body;
	m.body_len = sizeof body - 1;
	route_result_fini(&f->res);
	assert_int_equal(router_route(f->r, &m, &f->res), ROUTE_REWRITE);
	assert_string_equal(f->res.dests[0], "/len/7/4");
	assert_int_equal(stats(f).body_reads, 1);
	assert_int_equal(route_msg(f, "/skip", "x", NULL), ROUTE_DELIVER);
	assert_int_equal(stats(f).body_reads, 1);
}

static void test_msg_kept_past_its_call_is_dead(void **state)
{
	/* A script that keeps msg reaches nothing once the call is over: the
	 * broker's buffers behind it are gone by then. */
	struct fx *f = *state;
	char reason[256];
	load_ok(f, "local saved\n"
	           "function route(msg) saved = msg end\n"
	           "function authorize() return saved.destination ~= nil end\n");
	assert_int_equal(route_msg(f, "/a", "body", NULL), ROUTE_DELIVER);
	assert_int_equal(authz(f, AUTHZ_SEND, "alice", "/a", false, reason, sizeof reason), AUTHZ_DENY);
	assert_string_equal(reason, "authorization rule failed");
	assert_int_equal(stats(f).errors, 1);
}

static void test_no_route_no_call(void **state)
{
	/* Without route() nothing is called: a NULL router or one whose file
	 * defines none delivers as sent. */
	struct fx *f = *state;
	assert_int_equal(router_route(NULL, &(struct route_msg){ .destination = "/a" }, &f->res), ROUTE_DELIVER);
	load_ok(f, "function authorize() return true end\n");
	assert_int_equal(route_msg(f, "/a", NULL, NULL), ROUTE_DELIVER);
	assert_int_equal(stats(f).calls, 0);
	load_ok(f, "max_frame = 100000\n");
	assert_int_equal(route_msg(f, "/a", NULL, NULL), ROUTE_DELIVER);
	assert_int_equal(stats(f).calls, 0);
	assert_int_equal(stats(f).memory_bytes, 0);	/* no state kept for nothing */
}

/* ---- authorize() ---- */

static void test_authorize_outcomes(void **state)
{
	/* true allows; false denies with a default or the given reason;
	 * error() denies with its text; nothing or nonsense denies, logged. */
	struct fx *f = *state;
	char reason[256];
	load_ok(f, "function authorize(login, action, destination, info)\n"
	           "  if login == 'root' then error('no root here') end\n"
	           "  if login == 'silent' then return end\n"
	           "  if login == 'odd' then return 'yes' end\n"
	           "  if info.loopback then return true end\n"
	           "  if action == 'connect' then return login ~= nil end\n"
	           "  if action == 'admin' then return info.admin_user, 'admins only' end\n"
	           "  if action == 'subscribe' then return destination:sub(1, 7) == '/queue/' end\n"
	           "  return action == 'send' and info.peer == '192.0.2.7:5000' and info.vhost == '/'\n"
	           "     and info.authenticated and info.login == login and info.action == 'send'\n"
	           "     and info.destination == destination\n"
	           "end\n");
	assert_int_equal(authz(f, AUTHZ_CONNECT, NULL, NULL, true, reason, sizeof reason), AUTHZ_ALLOW);
	assert_int_equal(authz(f, AUTHZ_CONNECT, NULL, NULL, false, reason, sizeof reason), AUTHZ_DENY);
	assert_string_equal(reason, "not authorized to connect");
	assert_int_equal(authz(f, AUTHZ_CONNECT, "alice", NULL, false, reason, sizeof reason), AUTHZ_ALLOW);
	assert_int_equal(authz(f, AUTHZ_ADMIN, "alice", NULL, false, reason, sizeof reason), AUTHZ_DENY);
	assert_string_equal(reason, "admins only");
	assert_int_equal(authz(f, AUTHZ_ADMIN, "operator", NULL, false, reason, sizeof reason), AUTHZ_ALLOW);
	assert_int_equal(authz(f, AUTHZ_SUBSCRIBE, "alice", "/queue/x", false, reason, sizeof reason), AUTHZ_ALLOW);
	assert_int_equal(authz(f, AUTHZ_SUBSCRIBE, "alice", "/topic/x", false, reason, sizeof reason), AUTHZ_DENY);
	assert_string_equal(reason, "not authorized to subscribe to /topic/x");
	assert_int_equal(authz(f, AUTHZ_SEND, "alice", "/queue/x", false, reason, sizeof reason), AUTHZ_ALLOW);
	assert_int_equal(authz(f, AUTHZ_SEND, "root", "/queue/x", true, reason, sizeof reason), AUTHZ_DENY);
	assert_string_equal(reason, "no root here");
	assert_int_equal(authz(f, AUTHZ_SEND, "silent", "/queue/x", true, reason, sizeof reason), AUTHZ_DENY);
	assert_string_equal(reason, "not authorized to send to /queue/x");
	assert_int_equal(authz(f, AUTHZ_SEND, "odd", "/queue/x", true, reason, sizeof reason), AUTHZ_DENY);
	assert_int_equal(stats(f).errors, 2);
}

static void test_authorize_undefined_and_failing(void **state)
{
	struct fx *f = *state;
	char reason[256];
	assert_int_equal(router_authorize(NULL, &(struct authz_req){ 0 }, reason, sizeof reason), AUTHZ_NO_RULE);
	load_ok(f, "function route() end\n");
	assert_int_equal(authz(f, AUTHZ_CONNECT, "a", NULL, false, reason, sizeof reason), AUTHZ_NO_RULE);
	load_ok(f, "function authorize() while true do end end\n");
	assert_int_equal(authz(f, AUTHZ_CONNECT, "a", NULL, false, reason, sizeof reason), AUTHZ_DENY);
	assert_string_equal(reason, "authorization rule failed");
	assert_int_equal(stats(f).budget_exceeded, 1);
}

/* ---- on_event() ---- */

static void test_on_event(void **state)
{
	/* on_event(name, fields) sees the fields; its errors are only counted
	 * and logged. */
	struct fx *f = *state;
	const char *const fields[] = { "conn_id", "17", "peer", "127.0.0.1:5000", NULL };
	load_ok(f, "local last = '/none'\n"
	           "function on_event(name, fields)\n"
	           "  if name == 'boom' then error('event failed') end\n"
	           "  last = '/' .. name .. '/' .. fields.conn_id .. '/' .. fields.peer\n"
	           "end\n"
	           "function route() return last end\n");
	router_event(f->r, "connect", fields);
	assert_int_equal(route_msg(f, "/x", NULL, NULL), ROUTE_REWRITE);
	assert_string_equal(f->res.dests[0], "/connect/17/127.0.0.1:5000");
	router_event(f->r, "boom", NULL);
	assert_int_equal(stats(f).errors, 1);
	router_event(NULL, "connect", fields);
}

/* ---- logging ---- */

static void test_errors_are_logged_with_file_line(void **state)
{
	/* A script error is logged as "file:line: text", once per failure,
	 * and the flood of a rule failing on every message is cut short. */
	struct fx *f = *state;
	char tmp[] = "/tmp/mqrouter-log-XXXXXX", buf[8192], want[1024];
	int fd = mkstemp(tmp), saved = dup(STDERR_FILENO);
	ssize_t n;
	int lines = 0;
	load_ok(f, "function route(msg)\n  error({})\nend\n");
	log_set_level(LOG_ERROR);
	dup2(fd, STDERR_FILENO);
	for (int i = 0; i < 50; i++)
		route_msg(f, "/a", NULL, NULL);
	load_ok(f, "function route(msg)\n  local x = nil + 1\nend\n");
	route_msg(f, "/a", NULL, NULL);
	dup2(saved, STDERR_FILENO);
	close(saved);
	log_set_level(LOG_NONE);
	n = pread(fd, buf, sizeof buf - 1, 0);
	close(fd);
	unlink(tmp);
	assert_true(n > 0);
	buf[n] = 0;
	for (char *p = buf; (p = strstr(p, "(error object is a table value)")); p++)
		lines++;
	assert_int_equal(lines, 10);
	snprintf(want, sizeof want, "%s:2: attempt to perform arithmetic on a nil value (in route)", f->path);
	assert_non_null(strstr(buf, want));
}

/* ---- reload ---- */

static void test_reload_with_broken_file_keeps_old(void **state)
{
	/* A reload builds a new router and config; when the new file is broken
	 * router_load fails with file:line and the old router keeps working. */
	struct fx *f = *state;
	struct config next;
	struct router *nr;
	char err[1024];
	load_ok(f, "function route(msg) return '/queue/v1' end\n");
	write_text(f->path, "function route(msg)\n  return '/queue/v2'\nend\nlisteners = { { port = 'x' } }\n");
	config_init(&next);
	nr = router_load(f->path, &next, err, sizeof err);
	assert_null(nr);
	assert_non_null(strstr(err, ":4: listeners[1].port: expected an integer"));
	config_fini(&next);
	assert_int_equal(route_msg(f, "/a", NULL, NULL), ROUTE_REWRITE);
	assert_string_equal(f->res.dests[0], "/queue/v1");

	write_text(f->path, "function route(msg) return '/queue/v2' end\n");
	config_init(&next);
	nr = router_load(f->path, &next, err, sizeof err);
	assert_non_null(nr);
	router_free(f->r);
	f->r = nr;
	config_fini(&f->cfg);
	f->cfg = next;
	assert_int_equal(route_msg(f, "/a", NULL, NULL), ROUTE_REWRITE);
	assert_string_equal(f->res.dests[0], "/queue/v2");
}

/* ---- shipped files ---- */

static struct router *load_source_file(struct fx *f, const char *rel)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/%s", MQ_SOURCE_DIR, rel);
	router_free(f->r);
	config_fini(&f->cfg);
	config_init(&f->cfg);
	f->r = router_load(path, &f->cfg, f->err, sizeof f->err);
	if (!f->r)
		fail_msg("%s: %s", rel, f->err);
	return f->r;
}

static char *slurp(const char *rel)
{
	char path[1024];
	FILE *fp;
	long n;
	char *s;
	snprintf(path, sizeof path, "%s/%s", MQ_SOURCE_DIR, rel);
	fp = fopen(path, "r");
	assert_non_null(fp);
	fseek(fp, 0, SEEK_END);
	n = ftell(fp);
	rewind(fp);
	s = malloc((size_t)n + 1);
	assert_int_equal(fread(s, 1, (size_t)n, fp), (size_t)n);
	s[n] = 0;
	fclose(fp);
	return s;
}

static void test_broker_lua_is_the_defaults(void **state)
{
	/* lua/broker.lua loads as is, and what it sets is exactly the built-in
	 * default of every option: the example cannot drift from config.c. */
	struct fx *f = *state;
	struct config def;
	size_t n;
	const struct config_option *opts = config_options(&n);
	load_source_file(f, "lua/broker.lua");
	config_init(&def);
	for (size_t i = 0; i < n; i++) {
		char a[256], b[256];
		config_get(&f->cfg, &opts[i], a, sizeof a);
		config_get(&def, &opts[i], b, sizeof b);
		if (strcmp(a, b) != 0)
			fail_msg("lua/broker.lua sets %s = %s, the default is %s", opts[i].name, a, b);
	}
	assert_int_equal(f->cfg.nlisteners, def.nlisteners);
	assert_null(f->cfg.listeners[0].address);
	assert_int_equal(f->cfg.listeners[0].port, def.listeners[0].port);
	assert_int_equal(f->cfg.listeners[0].tls, def.listeners[0].tls);
	assert_int_equal(memcmp(&f->cfg.queue_defaults, &def.queue_defaults, offsetof(struct queue_opts, dead_letter)), 0);
	assert_null(f->cfg.queue_defaults.dead_letter);
	assert_int_equal(f->cfg.nvhosts + f->cfg.nusers + f->cfg.ndests + f->cfg.nrules + f->cfg.nca_chains, 0);
	assert_false(router_has_route(f->r));
	config_fini(&def);
}

static void test_every_option_is_documented(void **state)
{
	/* Each option of config.c's table appears in lua/broker.lua (as
	 * "name =", maybe commented out) and in docs/configuration.md. */
	size_t n;
	const struct config_option *opts = config_options(&n);
	char *lua = slurp("lua/broker.lua"), *doc = slurp("docs/configuration.md");
	static const char *const structured[] = {
		"listeners", "tls", "vhosts", "users", "queue_defaults", "types", "destinations",
		"route", "authorize", "on_event", "persistent", "max_length", "max_bytes", "overflow",
		"ttl", "max_deliveries", "dead_letter", "cert_key", "ca_chains",
	};
	const char *missing = NULL, *where = NULL;
	for (size_t i = 0; i < n + ARRAY_LEN(structured) && !missing; i++) {
		const char *name = i < n ? opts[i].name : structured[i - n];
		char want[128], fn[128];
		snprintf(want, sizeof want, "%s =", name);
		snprintf(fn, sizeof fn, "function %s(", name);
		if (!strstr(lua, want) && !strstr(lua, fn)) {
			missing = name;
			where = "lua/broker.lua";
		}
		snprintf(want, sizeof want, "`%s`", name);
		if (!strstr(doc, want)) {
			missing = name;
			where = "docs/configuration.md";
		}
	}
	free(lua);
	free(doc);
	if (missing)
		fail_msg("%s does not show %s", where, missing);
	(void)state;
}

static void test_example_content_routing(void **state)
{
	struct fx *f = *state;
	const char *const high[] = { "priority", "high", NULL };
	const char *const weird[] = { "priority", "whenever", NULL };
	const char *const site[] = { "priority", "low", "site", "cern", NULL };
	load_source_file(f, "lua/examples/content_routing.lua");
	assert_int_equal(route_msg(f, "/queue/jobs", NULL, high), ROUTE_REWRITE);
	assert_string_equal(f->res.dests[0], "/queue/jobs.high");
	assert_string_equal(f->res.edits[0].value, "priority");
	assert_int_equal(route_msg(f, "/queue/jobs", NULL, weird), ROUTE_REWRITE);
	assert_string_equal(f->res.dests[0], "/queue/jobs.normal");
	assert_int_equal(route_msg(f, "/queue/jobs", NULL, site), ROUTE_REWRITE);
	assert_string_equal(f->res.dests[0], "/queue/jobs.site.cern");
	assert_int_equal(route_msg(f, "/queue/other", NULL, high), ROUTE_DELIVER);
	assert_int_equal(f->cfg.ndests, 3);
}

static void test_example_fanout(void **state)
{
	struct fx *f = *state;
	const char *const big[] = { "amount", "25000", NULL };
	load_source_file(f, "lua/examples/fanout.lua");
	assert_int_equal(route_msg(f, "/queue/orders", NULL, big), ROUTE_FANOUT);
	assert_int_equal(f->res.ndests, 3);
	assert_string_equal(f->res.dests[2], "/queue/billing.review");
	assert_int_equal(route_msg(f, "/queue/orders", NULL, NULL), ROUTE_FANOUT);
	assert_int_equal(f->res.ndests, 2);
	assert_int_equal(config_dest_type(&f->cfg, "/events/login", NULL), DEST_PUBSUB);
	assert_int_equal(f->cfg.dests[4].nchildren, 2);
}

static void test_example_dead_letter(void **state)
{
	struct fx *f = *state;
	const char *const json[] = { "order-id", "7", "content-type", "application/json", NULL };
	const char *const xml[] = { "order-id", "7", "content-type", "text/xml", NULL };
	load_source_file(f, "lua/examples/dead_letter.lua");
	assert_int_equal(route_msg(f, "/queue/orders", "{ \"qty\": 1 }", json), ROUTE_DELIVER);
	assert_int_equal(route_msg(f, "/queue/orders", "<order/>", xml), ROUTE_REWRITE);
	assert_string_equal(f->res.dests[0], "/queue/DLQ.orders.invalid");
	assert_string_equal(f->res.edits[0].name, "x-dead-letter-reason");
	assert_string_equal(f->res.edits[0].value, "content-type is text/xml, expected application/json");
	assert_int_equal(route_msg(f, "/queue/orders", "not json", json), ROUTE_REWRITE);
	assert_string_equal(f->res.edits[0].value, "body is not a JSON object");
	assert_int_equal(stats(f).body_reads, 2);
	assert_int_equal(route_msg(f, "/queue/elsewhere", "x", NULL), ROUTE_DELIVER);
	assert_int_equal(stats(f).body_reads, 2);
	assert_string_equal(f->cfg.dests[0].opts.dead_letter, "/queue/DLQ.orders");
}

static void test_example_authorize(void **state)
{
	struct fx *f = *state;
	char reason[256];
	load_source_file(f, "lua/examples/authorize.lua");
	assert_int_equal(authz(f, AUTHZ_ADMIN, NULL, NULL, true, reason, sizeof reason), AUTHZ_ALLOW);
	assert_int_equal(authz(f, AUTHZ_CONNECT, NULL, NULL, false, reason, sizeof reason), AUTHZ_DENY);
	assert_non_null(strstr(reason, "log in first"));
	assert_int_equal(authz(f, AUTHZ_SEND, "pilot", "/queue/jobs.x", false, reason, sizeof reason), AUTHZ_ALLOW);
	assert_int_equal(authz(f, AUTHZ_SEND, "pilot", "/queue/secret", false, reason, sizeof reason), AUTHZ_DENY);
	assert_string_equal(reason, "pilot may not send /queue/secret");
	assert_int_equal(authz(f, AUTHZ_ADMIN, "pilot", NULL, false, reason, sizeof reason), AUTHZ_DENY);
	assert_int_equal(authz(f, AUTHZ_ADMIN, "operator", NULL, false, reason, sizeof reason), AUTHZ_ALLOW);
	assert_int_equal(f->cfg.nusers, 2);
	router_event(f->r, "connect", (const char *const[]){ "login", "pilot", NULL });
	assert_int_equal(stats(f).errors, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) { #name, name, setup, teardown, (void *)#name }
		T(test_rules_first_match_wins_prefixes_last),
		T(test_rules_are_posix_extended),
		T(test_rules_pubsub_children),
		T(test_scalar_options),
		T(test_listeners),
		T(test_tls_table_expands_globs),
		T(test_vhosts_and_users),
		T(test_queue_defaults),
		T(test_destinations),
		T(test_functions_are_flagged),
		T(test_config_errors_name_file_line_option),
		T(test_missing_file),
		T(test_load_error_names_the_file),
		T(test_sandbox_escapes_at_load),
		T(test_sandbox_allows_what_it_should),
		T(test_require_only_under_lua_dir),
		T(test_binary_chunk_file_refused),
		T(test_endless_loop_is_stopped_fast),
		T(test_endless_loop_inside_pcall_is_stopped),
		T(test_memory_bombs_end_as_nomem),
		T(test_deep_recursion_is_contained),
		T(test_set_limits_applies),
		T(test_route_outcomes),
		T(test_route_errors_carry_file_line),
		T(test_route_reads_message),
		T(test_route_header_edits),
		T(test_route_bad_header_edits),
		T(test_route_body_is_lazy),
		T(test_msg_kept_past_its_call_is_dead),
		T(test_no_route_no_call),
		T(test_authorize_outcomes),
		T(test_authorize_undefined_and_failing),
		T(test_on_event),
		T(test_errors_are_logged_with_file_line),
		T(test_reload_with_broken_file_keeps_old),
		T(test_broker_lua_is_the_defaults),
		T(test_every_option_is_documented),
		T(test_example_content_routing),
		T(test_example_fanout),
		T(test_example_dead_letter),
		T(test_example_authorize),
#undef T
	};
	/* Scripts fail on purpose here; their log lines would only be noise. */
	log_set_level(LOG_NONE);
	signal(SIGALRM, watchdog);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
