/* main.c: the mqbroker program: options, wiring, the event loop.
 *
 * The command line follows Houdini PDG's mqserver letter for letter (-i -p
 * -n -l -c -g -w -t -m -k -a -r -s), plus our own long options. Options
 * given on the command line override the configuration file, on start-up
 * and on every reload. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "auth/passwd_cli.h"
#include "core/broker.h"
#include "server/server.h"
#include "stomp/conn.h"
#include "config/config.h"
#include "admin/control.h"
#include "http/http.h"
#include "net/listener.h"
#include "common/log.h"
#include "rules/router.h"
#include "net/tls.h"
#include "common/util.h"

/* What the command line said, kept so that a reload can apply it again on
 * top of the freshly loaded file. */
struct cli {
	const char *config_path;
	const char *address;		/* -i */
	const char *port;		/* -p */
	const char *ca_list;		/* -a, comma-separated */
	bool http_any_port;		/* -w 0 ... */
	char ca_sep;
	struct { const char *name, *value; } set[64];
	int nset;
};

static void usage(FILE *out)
{
	size_t n;
	const struct config_option *opts = config_options(&n);
	fprintf(out,
	        "usage: mqbroker [options]\n"
	        "\n"
	        "A STOMP 1.0/1.1/1.2 message broker.\n"
	        "\n"
	        "  -i IP              address to listen on (default: all; '*' means all)\n"
	        "  -p PORT            STOMP port (default: 61613, or the first free port above it)\n"
	        "  -n N               maximum client connections (default: 1024)\n"
	        "  -l LEVEL           log level: 0 none, 1 errors, 2 warnings, 3 all, 4 debug (default: 1)\n"
	        "  -c FILE            write a JSON connection file once listening (default: none)\n"
	        "  -g FILE            send all logging to FILE (default: stderr)\n"
	        "  -w PORT MAXCONN URLPATH\n"
	        "                     also serve HTTP at http://IP:PORT/URLPATH (default: off)\n"
	        "  -t SECONDS         shut down after SECONDS without network activity (default: never)\n"
	        "  -m N               maximum events handled per loop iteration (default: 50)\n"
	        "  -k FILE            TLS certificate and private key, one PEM file; STOMP over TLS on\n"
	        "                     port 61614 (env MQBROKER_CERT_KEY, PDG_MQ_SERVER_CERT_KEY)\n"
	        "  -a LIST            require client certificates verified by these CA chains:\n"
	        "                     comma-separated files, globs allowed (env MQBROKER_CA_CHAINS,\n"
	        "                     PDG_MQ_SERVER_CA_CHAINS, colon-separated)\n"
	        "  -r                 round-robin topic messages among connections sharing a client-id\n"
	        "  -s                 persistent server: no remote shutdown, no idle timeout\n"
	        "  -f, --config FILE  configuration file in Lua (default: built-in defaults)\n"
	        "      --data-dir DIR journal, lock file and control socket (default: see below)\n"
	        "      --control-socket PATH\n"
	        "                     admin socket for mqsh (default: DATA_DIR/mqbroker.sock)\n"
	        "      --ws-port PORT STOMP over WebSocket on PORT (default: off; docs/websocket.md)\n"
	        "      --wss-port PORT\n"
	        "                     STOMP over secure WebSocket (TLS, needs -k) on PORT (default: off)\n"
	        "  -o NAME=VALUE      set any configuration option (listed below)\n"
	        "      --hash-password [--iterations N]\n"
	        "                     print a password hash for the configuration file and exit\n"
	        "                     (the password from the terminal, asked twice, or standard input)\n"
	        "  -V, --version      print the version and exit\n"
	        "  -h, --help         print this help and exit\n"
	        "\n"
	        "Configuration options (-o NAME=VALUE, or NAME = VALUE in the Lua file):\n");
	for (size_t i = 0; i < n; i++) {
		/* A default written "(none)" in the table is a description, not a value. */
		const char *d = opts[i].dflt;
		char kind[64];
		int len = (int)strlen(d);
		if (d[0] == '(' && len > 1 && d[len - 1] == ')')
			d++, len -= 2;
		else if (len == 0)
			d = "\"\"", len = 2;
		config_option_kind(&opts[i], kind, sizeof kind);
		fprintf(out, "  %-24s %s, default: %.*s\n  %-24s %s\n", opts[i].name, kind, len, d, "", opts[i].help);
	}
	fprintf(out, "\nSee docs/operations.md and docs/configuration.md.\n");
}

static int set(struct config *c, const char *name, const char *value, char *err, size_t errlen)
{
	char why[256];
	if (config_set(c, name, value, why, sizeof why) < 0) {
		snprintf(err, errlen, "%s", why);
		return -1;
	}
	return 0;
}

/* Applies the command line on top of c. */
static int apply_cli(struct config *c, const struct cli *cli, char *err, size_t errlen)
{
	const char *env;
	struct listener_cfg *plain = NULL;

	for (int i = 0; i < cli->nset; i++)
		if (set(c, cli->set[i].name, cli->set[i].value, err, errlen) < 0)
			return -1;
	c->http_any_port = cli->http_any_port;
	if (c->http_path) {
		/* URLPATH without leading or trailing slashes, wherever it came from */
		char *p = c->http_path, *start = p + strspn(p, "/");
		size_t len = strlen(start);
		while (len && start[len - 1] == '/')
			len--;
		memmove(p, start, len);
		p[len] = 0;
	}
	for (size_t i = 0; i < c->nlisteners; i++) {
		if (!c->listeners[i].tls) {
			plain = &c->listeners[i];
			break;
		}
	}
	if (!plain && (cli->address || cli->port))
		plain = config_add_listener(c, NULL, 61613, false);
	if (cli->address && plain) {
		free(plain->address);
		plain->address = strcmp(cli->address, "*") == 0 ? NULL : xstrdup(cli->address);
	}
	if (cli->port && plain) {
		uint64_t p;
		if (!parse_u64(cli->port, 0, 65535, &p)) {
			snprintf(err, errlen, "-p: expected a port number 0..65535, got '%s'", cli->port);
			return -1;
		}
		plain->port = (int)p;
		c->port_given = true;
	}
	/* TLS material from the environment, for drop-in use where mqserver ran. */
	if (!c->tls_cert_key && ((env = getenv("MQBROKER_CERT_KEY")) || (env = getenv("PDG_MQ_SERVER_CERT_KEY"))) &&
	    *env)
		c->tls_cert_key = xstrdup(env);
	{
		const char *list = cli->ca_list;
		char sep = cli->ca_sep;
		if (!list && ((env = getenv("MQBROKER_CA_CHAINS")) || (env = getenv("PDG_MQ_SERVER_CA_CHAINS"))) && *env) {
			list = env;
			sep = ':';
		}
		if (list) {
			char why[512];
			for (size_t i = 0; i < c->nca_chains; i++)
				free(c->ca_chains[i]);
			free(c->ca_chains);
			c->ca_chains = NULL;
			c->nca_chains = 0;
			if (tls_expand_ca_list(list, sep, &c->ca_chains, &c->nca_chains, why, sizeof why) < 0) {
				snprintf(err, errlen, "-a: %s", why);
				return -1;
			}
		}
	}
	if (c->tls_cert_key && *c->tls_cert_key) {
		bool have_tls = false;
		for (size_t i = 0; i < c->nlisteners; i++)
			have_tls |= c->listeners[i].tls;
		if (!have_tls)
			config_add_listener(c, plain ? plain->address : NULL, c->tls_port, true);
	}
	return 0;
}

static struct cli cli;	/* kept for reloads */

/* Once logging is set up a start-up failure is logged, once; with -l 0 it
 * still reaches stderr (which -g has pointed at the log file). */
static void start_failed(const char *err)
{
	if (log_get_level() >= LOG_ERROR)
		log_error("cannot start: %s", err);
	else
		fprintf(stderr, "mqbroker: cannot start: %s\n", err);
}

/* The configuration from scratch: built-in defaults, the file (and its
 * rules, in a new router), then the command line on top. */
static int load_config(struct config *cfg, struct router **router, char *err, size_t errlen)
{
	config_init(cfg);
	*router = NULL;
	if (cli.config_path) {
		*router = router_load(cli.config_path, cfg, err, errlen);
		if (!*router) {
			config_fini(cfg);
			return -1;
		}
		free(cfg->path);
		cfg->path = xstrdup(cli.config_path);
	}
	if (apply_cli(cfg, &cli, err, errlen) < 0) {
		router_free(*router);
		*router = NULL;
		config_fini(cfg);
		return -1;
	}
	router_set_limits(*router, cfg->lua_budget, cfg->lua_memory);
	return 0;
}

static int parse_args(int argc, char **argv, struct cli *out, struct config *unused)
{
	enum { OPT_DATA_DIR = 256, OPT_CONTROL_SOCKET, OPT_WS_PORT, OPT_WSS_PORT };
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'f' },
		{ "data-dir", required_argument, NULL, OPT_DATA_DIR },
		{ "control-socket", required_argument, NULL, OPT_CONTROL_SOCKET },
		{ "ws-port", required_argument, NULL, OPT_WS_PORT },
		{ "wss-port", required_argument, NULL, OPT_WSS_PORT },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	char *eq;

#define SET(N, V)                                                           \
	do {                                                                        \
		if (out->nset == (int)ARRAY_LEN(out->set)) {                        \
			fprintf(stderr, "mqbroker: too many options\n");            \
			return -1;                                                  \
		}                                                                   \
		out->set[out->nset].name = (N);                                     \
		out->set[out->nset++].value = (V);                                  \
	} while (0)

	while ((ch = getopt_long(argc, argv, "i:p:n:l:c:g:w:t:m:k:a:rsf:o:Vh", longopts, NULL)) != -1) {
		switch (ch) {
		case 'i': out->address = optarg; break;
		case 'p': out->port = optarg; break;
		case 'n': SET("max_connections", optarg); break;
		case 'l': SET("log_level", optarg); break;
		case 'c': SET("connection_file", optarg); break;
		case 'g': SET("log_file", optarg); break;
		case 'w':
			/* -w PORT MAXCONN URLPATH: three words, as mqserver takes them */
			if (optind + 1 >= argc || argv[optind][0] == '-') {
				fprintf(stderr, "mqbroker: -w needs three arguments: PORT MAXCONN URLPATH\n");
				return -1;
			}
			/* -w 0, like -p 0: HTTP on a port the kernel chooses (the
			 * connection file tells it), where http_port = 0 means none */
			out->http_any_port = strcmp(optarg, "0") == 0;
			SET("http_port", optarg);
			SET("http_max_connections", argv[optind]);
			SET("http_path", argv[optind + 1]);
			optind += 2;
			break;
		case 't': SET("idle_timeout", optarg); break;
		case 'm': SET("max_events", optarg); break;
		case 'k': SET("tls_cert_key", optarg); break;
		case 'a':
			out->ca_list = optarg;
			out->ca_sep = ',';
			break;
		case 'r': SET("round_robin", "true"); break;
		case 's': SET("persistent_server", "true"); break;
		case 'f': out->config_path = optarg; break;
		case OPT_DATA_DIR: SET("data_dir", optarg); break;
		case OPT_CONTROL_SOCKET: SET("control_socket", optarg); break;
		case OPT_WS_PORT: SET("ws_port", optarg); break;
		case OPT_WSS_PORT: SET("wss_port", optarg); break;
		case 'o':
			eq = strchr(optarg, '=');
			if (!eq) {
				fprintf(stderr, "mqbroker: -o expects NAME=VALUE, got '%s'\n", optarg);
				return -1;
			}
			/* a copy of the name: argv stays as typed, for ps */
			SET(xstrndup(optarg, (size_t)(eq - optarg)), eq + 1);
			break;
		case 'V':
			printf("mqbroker %s\n", MQ_VERSION);
			exit(0);
		case 'h':
			usage(stdout);
			exit(0);
		default:
			fprintf(stderr, "Try 'mqbroker --help'.\n");
			return -1;
		}
	}
#undef SET
	if (optind < argc) {
		fprintf(stderr, "mqbroker: unexpected argument '%s'\nTry 'mqbroker --help'.\n", argv[optind]);
		return -1;
	}
	(void)unused;
	return 0;
}

/* The STOMP listeners' protocol: a connection per accepted socket. */
static void accept_stomp(struct broker *b, struct bufferevent *bev, const struct sockaddr *sa, socklen_t salen,
                         const char *transport)
{
	conn_new(b, bev, sa, salen, transport);
}

/* ---- systemd readiness (Type=notify) ----
 * Under systemd's Type=notify the unit is "started" once the broker says
 * so: one datagram "READY=1" to the socket NOTIFY_SOCKET names (a path, or
 * '@' for the abstract namespace), per sd_notify(3). These lines are the
 * whole protocol, so the broker does not link libsystemd for it. Without
 * the variable (not under systemd) nothing happens. */
static void notify_ready(void)
{
	static const char msg[] = "READY=1";
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	size_t len = path ? strlen(path) : 0;
	int fd;

	if (!path || (path[0] != '/' && path[0] != '@') || len < 2 || len >= sizeof sun.sun_path)
		return;
	memcpy(sun.sun_path, path, len);
	if (path[0] == '@')
		sun.sun_path[0] = 0;
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || sendto(fd, msg, sizeof msg - 1, MSG_NOSIGNAL, (struct sockaddr *)&sun,
	                     (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)) < 0)
		log_warn_sys("cannot tell systemd that the broker is ready (NOTIFY_SOCKET=%s)", path);
	if (fd >= 0)
		close(fd);
}

int main(int argc, char **argv)
{
	struct config cfg;
	struct router *router;
	struct broker *b;
	char err[1024];
	int rc;

	log_set_ident("mqbroker");
	if (passwd_cli_wanted(argc, argv))
		return passwd_cli_main(argc, argv);
	/* Bodies come and go all the time: keep freed memory around instead
	 * of giving it back to the kernel after every large message (a brk
	 * pair per 64 KiB message otherwise). */
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	mallopt(M_MMAP_THRESHOLD, 32 << 20);
	if (parse_args(argc, argv, &cli, NULL) < 0)
		return 2;
	if (load_config(&cfg, &router, err, sizeof err) < 0) {
		fprintf(stderr, "mqbroker: %s\n", err);
		return 2;
	}
	log_set_level(cfg.log_level);
	if (cfg.log_file && *cfg.log_file && log_open_file(cfg.log_file, err, sizeof err) < 0) {
		fprintf(stderr, "mqbroker: %s\n", err);
		config_fini(&cfg);
		return 1;
	}

	b = broker_new(&cfg, router, err, sizeof err);
	if (!b) {
		start_failed(err);
		return 1;
	}
	b->load_config = load_config;
	if (b->cfg.tls_cert_key && *b->cfg.tls_cert_key) {
		b->tls = tls_ctx_new(&b->cfg, err, sizeof err);
		if (!b->tls)
			goto fail;
	}
	if (listeners_open(b, accept_stomp, err, sizeof err) < 0 || control_open(b, err, sizeof err) < 0 ||
	    http_open(b, err, sizeof err) < 0)
		goto fail;
	if (broker_write_connection_file(b, err, sizeof err) < 0)
		goto fail;
	log_info("mqbroker %s ready (pid %d, data directory %s)", MQ_VERSION, (int)getpid(), b->cfg.data_dir);
	notify_ready();

	rc = broker_run(b);
	if (b->cfg.connection_file && *b->cfg.connection_file)
		unlink(b->cfg.connection_file);
	log_info("stopped%s%s", b->shutdown_reason[0] ? ": " : "", b->shutdown_reason);
	broker_free(b);
	log_close();
	return rc < 0 ? 1 : 0;
fail:
	start_failed(err);
	broker_free(b);
	return 1;
}
