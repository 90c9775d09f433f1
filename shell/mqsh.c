/* mqsh.c: the mqsh program: options, finding the broker, and the three
 * ways commands come in (the prompt, -c, a script on stdin). */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/cmdline.h"
#include "ctl.h"
#include "dispatch.h"
#include "common/json.h"
#include "common/log.h"
#include "repl.h"
#include "script.h"
#include "stomp_cmds.h"
#include "common/util.h"

#define EXIT_USAGE 2
/* How long a broker may take to answer one command, and the STOMP side
 * to connect, subscribe or confirm a post. */
#define MQSH_TIMEOUT_MS 10000
/* Where the packaged broker's unit puts its control socket (docs/packaging.md). */
#define SYSTEM_SOCKET "/run/mqbroker/mqbroker.sock"
/* A connection file is a few hundred bytes; this is more than plenty. */
#define CONN_FILE_MAX (64 * 1024)

static void usage(FILE *out)
{
	fprintf(out,
	        "usage: mqsh [options] [COMMAND [ARG...]]\n"
	        "\n"
	        "The mqbroker admin console. Without a command it reads commands from\n"
	        "the terminal (with line editing, history and completion) or from stdin.\n"
	        "\n"
	        "  -S, --socket PATH    the broker's control socket\n"
	        "  -C, --connection-file FILE\n"
	        "                       the connection file the broker wrote (mqbroker -c FILE):\n"
	        "                       its control socket, STOMP host and ports\n"
	        "      --data-dir DIR   the broker's data directory: its socket is DIR/mqbroker.sock\n"
	        "                       (default: the broker's default data directory, else\n"
	        "                       " SYSTEM_SOCKET ", the system service's)\n"
	        "  -c COMMANDS          run COMMANDS, separated by ';', and exit; stops at the\n"
	        "                       first that fails\n"
	        "  -j, --json           print each reply as the broker's JSON\n"
	        "      --host HOST      STOMP host for publish and tail (default: from the\n"
	        "                       connection file, else 127.0.0.1)\n"
	        "      --port PORT      STOMP port (default: from the connection file, else 61613,\n"
	        "                       or 61614 with TLS)\n"
	        "      --tls            STOMP over TLS (also turned on by MQ_CLIENT_CERT_KEY,\n"
	        "                       MQ_CLIENT_CA_CHAIN, MQ_CLIENT_SERVER_NAME)\n"
	        "      --login USER, --passcode PASS\n"
	        "                       STOMP credentials for publish and tail\n"
	        "  -V, --version        print the version and exit\n"
	        "  -h, --help           print this help and exit\n"
	        "\n"
	        "Exit status: 0 when every command succeeded, 1 when one failed or no\n"
	        "broker answered, 2 for bad options (or a scenario that could not run),\n"
	        "130 when Ctrl-C interrupted a command. See docs/mqsh.md.\n");
}

/* What a connection file tells us. */
struct conn_info {
	char *control_socket;	/* owned */
	char *host;		/* owned */
	int port, tls_port;
};

static void conn_info_fini(struct conn_info *ci)
{
	free(ci->control_socket);
	free(ci->host);
	memset(ci, 0, sizeof *ci);
}

static int read_conn_file(const char *path, struct conn_info *ci, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	char *buf, perr[128];
	size_t n;
	struct json *j;

	if (!f) {
		snprintf(err, errlen, "cannot read connection file %s: %s", path, strerror(errno));
		return -1;
	}
	buf = xmalloc(CONN_FILE_MAX);
	n = fread(buf, 1, CONN_FILE_MAX, f);
	fclose(f);
	j = json_parse(buf, n, perr, sizeof perr);
	free(buf);
	if (!j || !json_get_str(j, "control_socket")) {
		snprintf(err, errlen, "connection file %s: %s", path,
		         j ? "no \"control_socket\": not one that mqbroker -c wrote" : perr);
		json_free(j);
		return -1;
	}
	ci->control_socket = xstrdup(json_get_str(j, "control_socket"));
	if (json_get_str(j, "host"))
		ci->host = xstrdup(json_get_str(j, "host"));
	ci->port = (int)json_get_num(j, "port", 0);
	ci->tls_port = (int)json_get_num(j, "tls_port", 0);
	json_free(j);
	return 0;
}

/* The broker's default data directory, worked out as it does
 * (broker/config/config.c default_data_dir), so that both agree without being told. */
static void default_data_dir(char *buf, size_t len)
{
	const char *state = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");
	if (geteuid() == 0)
		snprintf(buf, len, "/var/lib/mqbroker");
	else if (state && *state)
		snprintf(buf, len, "%s/mqbroker", state);
	else if (home && *home)
		snprintf(buf, len, "%s/.local/state/mqbroker", home);
	else
		snprintf(buf, len, "./mqbroker-data");
}

static bool color_ok(int fd)
{
	const char *term = getenv("TERM");
	const char *no = getenv("NO_COLOR");
	return isatty(fd) && !(no && *no) && !(term && strcmp(term, "dumb") == 0);
}

/* Runs the commands of one piece of text; stops at the first failure or
 * at Ctrl-C. Returns the exit status. */
static int run_text(struct mqsh *sh, const char *text, bool *quit)
{
	size_t n;
	char **cmds = script_split(text, &n);
	int rc = 0;

	for (size_t i = 0; i < n && !*quit; i++) {
		rc = dispatch_command(sh, cmds[i], quit);
		if (rc != 0)
			break;
		if (*repl_interrupt_flag()) {
			/* Ctrl-C ended a tail or events normally; it still ends the script. */
			break;
		}
	}
	script_free(cmds);
	return rc;
}

static int run_stdin(struct mqsh *sh)
{
	char *line = NULL, where[32];
	size_t cap = 0;
	ssize_t len;
	int lineno = 0, rc = 0;
	bool quit = false;

	while (!quit && (len = getline(&line, &cap, stdin)) >= 0) {
		lineno++;
		snprintf(where, sizeof where, "line %d", lineno);
		sh->where = where;
		rc = run_text(sh, line, &quit);
		if (rc != 0 || *repl_interrupt_flag())
			break;
	}
	sh->where = NULL;
	free(line);
	return rc;
}

static char *history_path(void)
{
	const char *home = getenv("HOME");
	struct sbuf b;
	if (!home || !*home)
		return NULL;
	sbuf_init(&b);
	sbuf_printf(&b, "%s/.mqsh_history", home);
	return sbuf_take(&b);
}

static void banner(struct mqsh *sh, const char *name)
{
	struct ctl_reply r;
	char err[256];
	const char *version = NULL;

	if (ctl_call(sh->ctl, "stats", &r, NULL, err, sizeof err) == 0) {
		version = json_get_str(r.data, "version");
		printf("Connected to mqbroker %s at %s. 'help' lists the commands; Ctrl-D leaves.\n",
		       version ? version : "?", name);
		ctl_reply_fini(&r);
	}
	fflush(stdout);
}

static int run_interactive(struct mqsh *sh, const char *name)
{
	char *hist = history_path();
	char prompt[512];
	bool quit = false;
	int rc = 0;

	snprintf(prompt, sizeof prompt, "mqsh %.400s> ", name);	/* a long socket path still leaves a prompt */
	repl_init(hist, dispatch_complete, sh);
	banner(sh, name);
	while (!quit) {
		char *line = repl_readline(prompt);
		if (!line) {
			fputc('\n', stdout);	/* Ctrl-D: leave the terminal's prompt on a line of its own */
			break;
		}
		repl_history_add(line);
		rc = run_text(sh, line, &quit);
		free(line);
	}
	repl_fini();
	free(hist);
	/* Leaving is not a failure; the last command's status is for scripts. */
	(void)rc;
	return 0;
}

enum { OPT_DATA_DIR = 256, OPT_HOST, OPT_PORT, OPT_TLS, OPT_LOGIN, OPT_PASSCODE };

/* Is the one command given `run` (mqsh run FILE, mqsh -c "run FILE")? */
static bool runs_scenario(const char *commands, int argc, char **argv)
{
	const char *first = argc > 0 ? argv[0] : commands;
	if (!first)
		return false;
	while (*first == ' ' || *first == '\t')
		first++;
	return strncmp(first, "run", 3) == 0 && (first[3] == 0 || first[3] == ' ' || first[3] == '\t') &&
	       (argc > 0 || !strchr(commands, ';'));
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 'S' },
		{ "connection-file", required_argument, NULL, 'C' },
		{ "data-dir", required_argument, NULL, OPT_DATA_DIR },
		{ "json", no_argument, NULL, 'j' },
		{ "host", required_argument, NULL, OPT_HOST },
		{ "port", required_argument, NULL, OPT_PORT },
		{ "tls", no_argument, NULL, OPT_TLS },
		{ "login", required_argument, NULL, OPT_LOGIN },
		{ "passcode", required_argument, NULL, OPT_PASSCODE },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *socket_opt = NULL, *conn_file = NULL, *data_dir = NULL, *commands = NULL;
	const char *host = NULL;
	uint64_t port = 0;
	struct conn_info ci = { 0 };
	struct mqsh sh;
	char path[PATH_MAX + 32], name[PATH_MAX + 64], err[PATH_MAX + 256];
	int opt, rc;
	bool quit = false;

	memset(&sh, 0, sizeof sh);
	log_set_ident("mqsh");
	/* Writes to a broker that went away are errors we report, not a signal that kills us. */
	signal(SIGPIPE, SIG_IGN);
	while ((opt = getopt_long(argc, argv, "+S:C:c:jVh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'S': socket_opt = optarg; break;
		case 'C': conn_file = optarg; break;
		case 'c': commands = optarg; break;
		case 'j': sh.json = true; break;
		case OPT_DATA_DIR: data_dir = optarg; break;
		case OPT_HOST: host = optarg; break;
		case OPT_PORT:
			if (!parse_u64(optarg, 1, 65535, &port)) {
				fprintf(stderr, "mqsh: --port: expected a port number 1..65535, got '%s'\n", optarg);
				return EXIT_USAGE;
			}
			break;
		case OPT_TLS: sh.stomp.tls = true; break;
		case OPT_LOGIN: sh.stomp.login = optarg; break;
		case OPT_PASSCODE: sh.stomp.passcode = optarg; break;
		case 'V': printf("mqsh %s\n", MQ_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return EXIT_USAGE;
		}
	}
	if (commands && optind < argc) {
		fprintf(stderr, "mqsh: give commands with -c or as arguments, not both\n");
		return EXIT_USAGE;
	}

	/* Finding the broker: -S, else the connection file, else the data
	 * directory, else the system service's socket. */
	if (conn_file && read_conn_file(conn_file, &ci, err, sizeof err) < 0) {
		fprintf(stderr, "mqsh: %s\n", err);
		return 1;
	}
	if (socket_opt) {
		snprintf(path, sizeof path, "%s", socket_opt);
	} else if (ci.control_socket) {
		snprintf(path, sizeof path, "%s", ci.control_socket);
	} else if (data_dir) {
		snprintf(path, sizeof path, "%s/mqbroker.sock", data_dir);
	} else {
		/* A broker of one's own, in the default data directory, else the
		 * system service's (whose data directory is not where its socket is). */
		char dir[PATH_MAX];
		struct stat st;
		default_data_dir(dir, sizeof dir);
		snprintf(path, sizeof path, "%s/mqbroker.sock", dir);
		if (stat(path, &st) < 0 && (stat(SYSTEM_SOCKET, &st) == 0 || errno != ENOENT))
			snprintf(path, sizeof path, "%s", SYSTEM_SOCKET);
	}
	sh.socket_path = path;
	sh.stomp.tls = sh.stomp.tls || stomp_cmds_tls_from_env();
	sh.stomp.host = host ? host : ci.host;
	sh.stomp.port = (uint16_t)(port ? port : (uint64_t)(sh.stomp.tls ? ci.tls_port : ci.port));
	sh.stomp.timeout_ms = MQSH_TIMEOUT_MS;
	sh.color = color_ok(STDOUT_FILENO);
	sh.err_color = color_ok(STDERR_FILENO);

	sh.ctl = ctl_open(path, MQSH_TIMEOUT_MS, err, sizeof err);
	if (!sh.ctl && runs_scenario(commands, argc - optind, argv + optind)) {
		/* Scenarios start the brokers they need. */
		sh.ctl = ctl_lazy(path, MQSH_TIMEOUT_MS);
	} else if (!sh.ctl) {
		fprintf(stderr, "mqsh: %s (is it running? try -S PATH)\n", err);
		conn_info_fini(&ci);
		return 1;
	}
	/* Only the socket given: the broker says where its STOMP clients
	 * connect (stats), for publish, tail and the prompt. */
	if (!sh.stomp.port && !ci.port) {
		struct ctl_reply r;
		char why[256];
		if (ctl_call(sh.ctl, "stats", &r, NULL, why, sizeof why) == 0 && r.status == 200 && r.data) {
			const char *h = json_get_str(r.data, "host");
			double p = json_get_num(r.data, sh.stomp.tls ? "tls_port" : "port", 0);
			if (h && !host) {
				free(ci.host);
				ci.host = xstrdup(strcmp(h, "0.0.0.0") ? h : "127.0.0.1");
				sh.stomp.host = ci.host;
			}
			if (p > 0 && p < 65536)
				sh.stomp.port = (uint16_t)p;
		}
		if (r.doc || r.json)
			ctl_reply_fini(&r);
	}
	/* The prompt names the broker: where its clients connect when we know it. */
	if (sh.stomp.host && sh.stomp.port)
		snprintf(name, sizeof name, "%s:%u", sh.stomp.host, (unsigned)sh.stomp.port);
	else
		snprintf(name, sizeof name, "%s", path);

	repl_signals_init(isatty(STDIN_FILENO) && !commands && optind == argc);
	if (commands) {
		rc = run_text(&sh, commands, &quit);
	} else if (optind < argc) {
		/* mqsh list queues: the arguments are one command, as words. */
		struct sbuf line;
		sbuf_init(&line);
		for (int i = optind; i < argc; i++) {
			if (i > optind)
				sbuf_addc(&line, ' ');
			cmdline_quote(&line, argv[i]);
		}
		rc = dispatch_command(&sh, line.buf, &quit);
		sbuf_fini(&line);
	} else if (isatty(STDIN_FILENO)) {
		sh.interactive = true;
		rc = run_interactive(&sh, name);
	} else {
		rc = run_stdin(&sh);
	}
	dispatch_fini(&sh);
	ctl_free(sh.ctl);
	conn_info_fini(&ci);
	return rc;
}
