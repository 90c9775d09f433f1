/* dispatch.c: one command: resolve its name, run it here or in the broker, show the outcome. */
#include "dispatch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/cmdline.h"
#include "cmds.h"
#include "common/passwd.h"
#include "password.h"
#include "render.h"
#include "repl.h"
#include "scenario.h"
#include "common/util.h"

#define RED "\033[31m"
#define PLAIN "\033[0m"

/* "try: a, b, c" lists at most this many names after a missing argument. */
#define FITS_MAX 8

static void print_sbuf(const struct sbuf *b)
{
	if (b->len)
		fwrite(b->buf, 1, b->len, stdout);
	fflush(stdout);
}

/* The terminal echoed "^C" where the cursor was: what follows a Ctrl-C
 * starts on a line of its own, once per command. */
static void fresh_line(struct mqsh *sh)
{
	if (sh->interactive && *repl_interrupt_flag() && !sh->fresh_line) {
		fputc('\n', stderr);
		sh->fresh_line = true;
	}
}

static void error_line(struct mqsh *sh, const char *msg)
{
	fresh_line(sh);
	if (sh->interactive)
		fprintf(stderr, "%serror:%s %s\n", sh->err_color ? RED : "", sh->err_color ? PLAIN : "", msg);
	else if (sh->where)
		fprintf(stderr, "mqsh: %s: %s\n", sh->where, msg);
	else
		fprintf(stderr, "mqsh: %s\n", msg);
	fflush(stderr);
}

/* A command failed before or without a broker reply: one line on stderr
 * and, for --json readers, a reply of the broker's shape on stdout. */
static int fail(struct mqsh *sh, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(struct mqsh *sh, int status, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (sh->json) {
		struct sbuf b;
		struct jw w;
		sbuf_init(&b);
		jw_init(&w, &b);
		jw_obj_begin(&w);
		jw_kint(&w, "status", status);
		jw_kbool(&w, "ok", false);
		jw_kstr(&w, "message", msg);
		jw_obj_end(&w);
		sbuf_addc(&b, '\n');
		print_sbuf(&b);
		sbuf_fini(&b);
	}
	error_line(sh, msg);
	return DISPATCH_FAILED;
}

static bool interrupted(void)
{
	return *repl_interrupt_flag() != 0;
}

/* After "missing argument", what would fit there (relayctl lists them). */
static void add_fits(struct mqsh *sh, struct sbuf *msg, char **argv, int argc)
{
	struct complete_result res;
	struct sbuf before;

	sbuf_init(&before);
	for (int i = 0; i < argc; i++) {
		cmdline_quote(&before, argv[i]);
		sbuf_addc(&before, ' ');
	}
	dispatch_complete(sh, sbuf_str(&before), "", &res);
	for (size_t i = 0; i < res.n && i < FITS_MAX; i++)
		sbuf_printf(msg, "%s%s", i ? ", " : "; try: ", res.words[i]);
	if (res.n > FITS_MAX)
		sbuf_adds(msg, ", ...");
	complete_result_fini(&res);
	sbuf_fini(&before);
}

/* Shows a reply, the broker's or one of ours in its shape. Tables come
 * before their message line ("3 destinations", like psql's row count),
 * objects after it (it is their title); commands that change something
 * show only the message, the rest is in --json. */
static int show_reply(struct mqsh *sh, const struct cmd_info *c, const struct ctl_reply *r, char **argv, int argc)
{
	struct sbuf out;

	if (sh->json) {
		fwrite(r->json, 1, r->len, stdout);
		fputc('\n', stdout);
		fflush(stdout);
	}
	if (r->status != CMD_OK) {
		struct sbuf msg;
		sbuf_init(&msg);
		sbuf_adds(&msg, r->message[0] ? r->message : cmd_status_name(r->status));
		if (r->status == CMD_SYNTAX && argc > 0 && strstr(r->message, "missing argument"))
			add_fits(sh, &msg, argv, argc);
		error_line(sh, msg.buf);
		sbuf_fini(&msg);
		return DISPATCH_FAILED;
	}
	if (sh->json)
		return 0;
	sbuf_init(&out);
	if (r->data && r->data->type == JSON_ARR) {
		render_data(&out, r->data, sh->color);
		if (r->message[0])
			sbuf_printf(&out, "%s\n", r->message);
	} else {
		if (r->message[0])
			sbuf_printf(&out, "%s\n", r->message);
		if (!(c->flags & CMD_WRITE))
			render_data(&out, r->data, sh->color);
	}
	print_sbuf(&out);
	sbuf_fini(&out);
	return 0;
}

/* Our own replies go through show_reply() as well: same output, same --json. */
static int show_local(struct mqsh *sh, const struct cmd_info *c, struct sbuf *json)
{
	struct ctl_reply r = { 0 };
	char err[128];
	int rc;

	r.json = json->buf;
	r.len = json->len;
	r.doc = json_parse(json->buf, json->len, err, sizeof err);
	if (!r.doc)
		return fail(sh, CMD_INTERNAL, "%s: cannot read our own reply: %s", c->name, err);
	r.status = (int)json_get_num(r.doc, "status", CMD_INTERNAL);
	r.message = json_get_str(r.doc, "message");
	if (!r.message)
		r.message = "";
	r.data = json_get(r.doc, "data");
	rc = show_reply(sh, c, &r, NULL, 0);
	json_free(r.doc);
	return rc;
}

static void reply_begin(struct jw *w, struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void reply_begin(struct jw *w, struct sbuf *b, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	jw_init(w, b);
	jw_obj_begin(w);
	jw_kint(w, "status", CMD_OK);
	jw_kbool(w, "ok", true);
	jw_kstr(w, "message", msg);
}

/* ---- commands run here ---- */

static int run_help(struct mqsh *sh, const struct cmd_info *c, int argc, char **argv)
{
	struct sbuf b;
	struct jw w;
	int rc;

	sbuf_init(&b);
	if (argc == 2) {
		char err[256];
		const struct cmd_info *h = cmds_resolve(argv[1], err, sizeof err);
		if (!h) {
			sbuf_fini(&b);
			return fail(sh, CMD_NOT_FOUND, "%s", err);
		}
		if (!sh->json) {
			printf("usage: %s\n  %s%s\n", h->usage, h->help,
			       h->flags & CMD_STREAM ? " In mqsh, Ctrl-C stops it." : "");
			fflush(stdout);
			sbuf_fini(&b);
			return 0;
		}
		reply_begin(&w, &b, "%s", h->usage);
		jw_key(&w, "data");
		jw_obj_begin(&w);
		jw_kstr(&w, "command", h->name);
		jw_kstr(&w, "usage", h->usage);
		jw_kstr(&w, "help", h->help);
		jw_kbool(&w, "local", (h->flags & CMDS_LOCAL) != 0);
		jw_obj_end(&w);
	} else {
		reply_begin(&w, &b, "%zu commands; help COMMAND shows one", cmds_count());
		jw_key(&w, "data");
		jw_arr_begin(&w);
		for (size_t i = 0; i < cmds_count(); i++) {
			const struct cmd_info *h = cmds_at(i);
			jw_obj_begin(&w);
			jw_kstr(&w, "command", h->name);
			jw_kstr(&w, "help", h->help);
			jw_obj_end(&w);
		}
		jw_arr_end(&w);
	}
	jw_obj_end(&w);
	rc = show_local(sh, c, &b);
	sbuf_fini(&b);
	return rc;
}

static void format_event(struct sbuf *out, const char *line, size_t len)
{
	char err[64];
	struct json *e = json_parse(line, len, err, sizeof err);
	const struct json *t;

	if (!e || e->type != JSON_OBJ) {
		sbuf_add(out, line, len);	/* not ours to judge: show it as it came */
		sbuf_addc(out, '\n');
		json_free(e);
		return;
	}
	t = json_get(e, "time_ms");
	if (t && t->type == JSON_NUM) {
		time_t sec = (time_t)(t->num / 1000);
		struct tm tm;
		char buf[32];
		localtime_r(&sec, &tm);
		strftime(buf, sizeof buf, "%H:%M:%S", &tm);
		sbuf_printf(out, "%s.%03d ", buf, (int)((uint64_t)t->num % 1000));
	}
	sbuf_adds(out, json_get_str(e, "event") ? json_get_str(e, "event") : "?");
	for (size_t i = 0; i < e->len; i++) {
		if (strcmp(e->keys[i], "event") == 0 || strcmp(e->keys[i], "time_ms") == 0)
			continue;
		sbuf_printf(out, " %s=", e->keys[i]);
		render_scalar(out, e->items[i]);
	}
	sbuf_addc(out, '\n');
	json_free(e);
}

/* `events` turns a connection into a stream for good: it gets its own,
 * and the one commands use stays as it was. */
static int run_events(struct mqsh *sh, const struct cmd_info *c)
{
	volatile sig_atomic_t *stop = repl_interrupt_flag();
	struct ctl *ev;
	struct ctl_reply r;
	struct sbuf line, out;
	char err[512];
	int rc, n;

	ev = ctl_open(sh->socket_path, 10000, err, sizeof err);
	if (!ev)
		return fail(sh, CMD_INTERNAL, "%s", err);
	if (ctl_call(ev, c->name, &r, stop, err, sizeof err) < 0) {
		ctl_free(ev);
		return interrupted() ? 0 : fail(sh, CMD_INTERNAL, "%s", err);
	}
	/* For people the broker's "one JSON object per line" is not what
	 * they will see: say what they will. */
	if (sh->json || r.status != CMD_OK) {
		rc = show_reply(sh, c, &r, NULL, 0);
	} else {
		fprintf(stderr, "streaming broker events until Ctrl-C\n");
		rc = 0;
	}
	ctl_reply_fini(&r);
	if (rc) {
		ctl_free(ev);
		return rc;
	}
	sbuf_init(&line);
	sbuf_init(&out);
	while ((n = ctl_read_line(ev, &line, stop, err, sizeof err)) > 0) {
		sbuf_reset(&out);
		if (sh->json) {
			sbuf_add(&out, line.buf, line.len);
			sbuf_addc(&out, '\n');
		} else {
			format_event(&out, line.buf, line.len);
		}
		print_sbuf(&out);
	}
	sbuf_fini(&out);
	sbuf_fini(&line);
	ctl_free(ev);
	if (n < 0 && interrupted())
		return 0;	/* Ctrl-C is how an event stream ends */
	if (n == 0)
		return fail(sh, CMD_INTERNAL, "events: the broker at %s closed the stream", sh->socket_path);
	return fail(sh, CMD_INTERNAL, "events: %s", err);
}

static int run_publish(struct mqsh *sh, const struct cmd_info *c, int argc, char **argv)
{
	struct sbuf b;
	struct jw w;
	char err[1024];
	int rc;

	if (stomp_cmds_publish(&sh->stomp, argv[1], argv[2], argv + 3, argc - 3, repl_interrupt_flag(),
	                       err, sizeof err) < 0)
		return fail(sh, strncmp(err, "publish: header", 15) == 0 ? CMD_BAD_ARG : CMD_INTERNAL, "%s", err);
	sbuf_init(&b);
	reply_begin(&w, &b, "published %zu byte%s to %s", strlen(argv[2]), strlen(argv[2]) == 1 ? "" : "s", argv[1]);
	jw_key(&w, "data");
	jw_obj_begin(&w);
	jw_kstr(&w, "destination", argv[1]);
	jw_kuint(&w, "bytes", strlen(argv[2]));
	jw_obj_end(&w);
	jw_obj_end(&w);
	rc = show_local(sh, c, &b);
	sbuf_fini(&b);
	return rc;
}

/* A topic keeps nothing for a subscriber that is not ready, so tail reads
 * it differently (stomp_cmds.h): ask the broker what dest is. */
static bool is_topic(struct mqsh *sh, const char *dest)
{
	struct sbuf line;
	struct ctl_reply r;
	char err[256];
	bool topic = strncmp(dest, "/topic/", 7) == 0;

	sbuf_init(&line);
	sbuf_adds(&line, "show ");
	cmdline_quote(&line, dest);
	if (ctl_call(sh->ctl, line.buf, &r, repl_interrupt_flag(), err, sizeof err) == 0) {
		const char *type = r.status == CMD_OK ? json_get_str(r.data, "type") : NULL;
		if (type)
			topic = strcmp(type, "topic") == 0;
		ctl_reply_fini(&r);
	}
	sbuf_fini(&line);
	return topic;
}

/* tail and browse: DEST [COUNT] [selector=EXPR], in either order after DEST. */
static int run_follow(struct mqsh *sh, int argc, char **argv, bool browse)
{
	const char *what = browse ? "browse" : "tail";
	struct stomp_tail_opts o = { .json = sh->json, .out = stdout, .stop = repl_interrupt_flag() };
	uint64_t got;
	char err[1024];

	for (int i = 2; i < argc; i++) {
		if (strncmp(argv[i], "selector=", 9) == 0)
			o.selector = argv[i] + 9;
		else if (!parse_u64(argv[i], 1, UINT64_MAX, &o.count))
			return fail(sh, CMD_BAD_ARG, "%s: COUNT: expected a number of messages (1 or more), got '%s'",
			            what, argv[i]);
	}
	if (!browse)
		o.topic = is_topic(sh, argv[1]);
	if (interrupted())
		return 0;
	if ((browse ? stomp_cmds_browse : stomp_cmds_tail)(&sh->stomp, argv[1], &o, &got, err, sizeof err) < 0)
		return interrupted() ? 0 : fail(sh, CMD_INTERNAL, "%s", err);
	if (sh->interactive) {
		fresh_line(sh);
		fprintf(stderr, "%s: %llu message%s from %s\n", what, (unsigned long long)got, got == 1 ? "" : "s",
		        argv[1]);
	}
	return 0;
}

static int run_scenario(struct mqsh *sh, char **argv)
{
	struct scenario_opts o = {
		.mqbroker = NULL,
		.control_socket = sh->socket_path,
		.json = sh->json,
		.progress = isatty(STDERR_FILENO),
		.interrupted = repl_interrupt_flag(),
	};
	int rc;

	rc = scenario_run(argv[1], &o);
	if (rc == 0)
		return 0;
	if (interrupted())
		fail(sh, CMD_INTERNAL, "run %s: interrupted", argv[1]);
	else
		fail(sh, CMD_INTERNAL, "run %s: %s", argv[1], rc == 1 ? "a check failed" : "the scenario could not run");
	/* The runner's own statuses are worth keeping: 2 means the script
	 * is wrong, not the broker. */
	return rc == 1 || rc == 2 ? rc : DISPATCH_FAILED;
}

/* ---- commands the broker runs ---- */

/* user add NAME and user passwd NAME without a password or 'certificate':
 * mqsh asks for the password. */
static bool needs_password(const struct cmd_info *c, int argc, char **argv)
{
	if (strcmp(c->name, "user") != 0 || argc < 3 ||
	    (strcmp(argv[1], "add") != 0 && strcmp(argv[1], "passwd") != 0))
		return false;
	for (int i = 3; i < argc; i++)
		if (strcmp(argv[i], "certificate") == 0 || strncmp(argv[i], "password=", 9) == 0)
			return false;
	return true;
}

static int run_remote(struct mqsh *sh, const struct cmd_info *c, int argc, char **argv)
{
	struct sbuf line;
	struct ctl_reply r;
	char err[1024];
	int rc;

	/* The full name, so that a prefix means what mqsh resolved it to
	 * ("pu" is not the broker's "purge" when mqsh also has "publish"). */
	sbuf_init(&line);
	sbuf_adds(&line, c->name);
	for (int i = 1; i < argc; i++) {
		sbuf_addc(&line, ' ');
		cmdline_quote(&line, argv[i]);
	}
	if (needs_password(c, argc, argv)) {
		/* The password stays here: the broker gets its hash. */
		char hash[PASSWD_HASH_MAX], who[300];
		snprintf(who, sizeof who, "%s", argv[2]);
		if (password_ask_hash(who, hash, sizeof hash, err, sizeof err) < 0) {
			sbuf_fini(&line);
			return fail(sh, CMD_BAD_ARG, "user %s %s: %s", argv[1], argv[2], err);
		}
		sbuf_printf(&line, " password=%s", hash);
	}
	rc = ctl_call(sh->ctl, line.buf, &r, repl_interrupt_flag(), err, sizeof err);
	sbuf_fini(&line);
	if (rc < 0 && interrupted())
		return fail(sh, CMD_INTERNAL, "%s: interrupted", c->name);
	if (rc < 0)
		return fail(sh, CMD_INTERNAL, "%s", err);
	argv[0] = (char *)c->name;
	rc = show_reply(sh, c, &r, argv, argc);
	ctl_reply_fini(&r);
	return rc;
}

static void cache_clear(struct mqsh *sh)
{
	for (size_t i = 0; i < ARRAY_LEN(sh->cache); i++) {
		ctl_reply_fini(&sh->cache[i].reply);
		sh->cache[i].listing[0] = 0;
	}
}

int dispatch_command(struct mqsh *sh, const char *cmd, bool *quit)
{
	const struct cmd_info *c;
	char **argv, err[512];
	int argc, nargs, rc;

	*repl_interrupt_flag() = 0;
	sh->fresh_line = false;
	cache_clear(sh);
	argc = cmdline_split(cmd, &argv, err, sizeof err);
	if (argc < 0)
		return fail(sh, CMD_SYNTAX, "%s", err);
	if (argc == 0) {
		free(argv);
		return 0;
	}
	if (!(c = cmds_resolve(argv[0], err, sizeof err))) {
		rc = fail(sh, CMD_NO_COMMAND, "%s", err);
		free(argv);
		return rc;
	}
	nargs = argc - 1;
	if ((c->flags & CMDS_LOCAL) && (nargs < c->min_args || (c->max_args >= 0 && nargs > c->max_args))) {
		/* Worded as the broker words it for its own commands. */
		struct sbuf msg;
		sbuf_init(&msg);
		sbuf_printf(&msg, "%s: %s (usage: %s)", c->name,
		            nargs < c->min_args ? "missing argument" : "too many arguments", c->usage);
		argv[0] = (char *)c->name;
		if (nargs < c->min_args)
			add_fits(sh, &msg, argv, argc);
		rc = fail(sh, CMD_SYNTAX, "%s", msg.buf);
		sbuf_fini(&msg);
		free(argv);
		return rc;
	}
	if (strcmp(c->name, "help") == 0 && nargs <= 1)
		rc = run_help(sh, c, argc, argv);
	else if (strcmp(c->name, "quit") == 0 || strcmp(c->name, "exit") == 0)
		*quit = true, rc = 0;
	else if ((c->flags & CMD_STREAM) && nargs == 0)
		rc = run_events(sh, c);
	else if (strcmp(c->name, "publish") == 0)
		rc = run_publish(sh, c, argc, argv);
	else if (strcmp(c->name, "tail") == 0)
		rc = run_follow(sh, argc, argv, false);
	else if (strcmp(c->name, "browse") == 0)
		rc = run_follow(sh, argc, argv, true);
	else if (strcmp(c->name, "run") == 0)
		rc = run_scenario(sh, argv);
	else
		rc = run_remote(sh, c, argc, argv);
	/* Ctrl-C is how tail and events end, and the scenario runner reports
	 * what it saw before stopping; anything else it cut short. */
	if (interrupted() && strcmp(c->name, "tail") != 0 && strcmp(c->name, "browse") != 0 && strcmp(c->name, "run") != 0 &&
	    !(c->flags & CMD_STREAM))
		rc = DISPATCH_INTERRUPTED;
	fresh_line(sh);
	free(argv);
	return rc;
}

/* ---- completion ---- */

static const struct json *fetch(void *arg, const char *listing)
{
	struct mqsh *sh = arg;
	struct mqsh_cache *slot = NULL;
	char line[64], err[256];

	for (size_t i = 0; i < ARRAY_LEN(sh->cache); i++) {
		if (strcmp(sh->cache[i].listing, listing) == 0)
			return sh->cache[i].reply.data;
		if (!slot && !sh->cache[i].listing[0])
			slot = &sh->cache[i];
	}
	if (!slot)
		return NULL;
	snprintf(line, sizeof line, "list %s", listing);
	/* Failing quietly is right here: Tab simply offers nothing. */
	if (ctl_call(sh->ctl, line, &slot->reply, NULL, err, sizeof err) < 0)
		return NULL;
	snprintf(slot->listing, sizeof slot->listing, "%s", listing);
	return slot->reply.status == CMD_OK ? slot->reply.data : NULL;
}

void dispatch_complete(void *arg, const char *before, const char *text, struct complete_result *res)
{
	struct complete_src src = { fetch, arg };
	complete_words(before, text, &src, res);
}

void dispatch_fini(struct mqsh *sh)
{
	cache_clear(sh);
}
