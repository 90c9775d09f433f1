/* scenario_broker.c: the brokers a scenario talks to.
 *
 * An owned broker is a child process: mqbroker on 127.0.0.1, a port the
 * kernel picks (-p 0) the first time and the same port on every restart
 * (so that clients reconnect to it), its own data directory in a
 * temporary directory, and a connection file (-c) that says when it
 * listens and where its control socket is. An attached broker is an
 * address and, for mqbroker, a control socket; a peer broker (RabbitMQ,
 * ActiveMQ) has none, and admin commands on it fail with a clear message.
 *
 * Admin commands speak the control socket's wire format (docs/control.md)
 * with blocking calls: Lua waits for the reply anyway, and the event loop
 * is not running while Lua runs. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/json.h"
#include "scenario_int.h"

#define START_TIMEOUT_MS 20000	/* a sanitized broker can take a while */
#define STOP_TIMEOUT_MS 15000
#define ADMIN_TIMEOUT_S 10

const char *scn_broker_name(const struct scn_broker *b, char *buf, size_t len)
{
	snprintf(buf, len, "broker %u (%s:%u)", b->index, b->host ? b->host : "?", (unsigned)b->port);
	return buf;
}

static char *path_join(const char *dir, const char *name)
{
	struct sbuf s;
	sbuf_init(&s);
	sbuf_printf(&s, "%s/%s", dir, name);
	return sbuf_take(&s);
}

static int write_file(const char *path, const char *text, char *err, size_t errlen)
{
	FILE *f = fopen(path, "w");
	if (!f) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	fputs(text, f);
	if (fclose(f) != 0) {
		snprintf(err, errlen, "cannot write %s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

struct scn_broker *scn_broker_new_owned(struct scn_run *r, const char *exe, char **args,
                                        const char *config, char *err, size_t errlen)
{
	struct scn_broker *b;
	const char *tmpdir = getenv("TMPDIR");
	char *tmpl;
	size_t nargs = 0;

	if (!tmpdir || !*tmpdir)
		tmpdir = "/tmp";
	tmpl = path_join(tmpdir, "mqscenario-XXXXXX");
	if (!mkdtemp(tmpl)) {
		snprintf(err, errlen, "cannot make a temporary directory in %s: %s", tmpdir, strerror(errno));
		free(tmpl);
		return NULL;
	}
	b = xcalloc(1, sizeof *b);
	b->run = r;
	b->owned = true;
	b->ctl_fd = -1;
	b->tmp = tmpl;
	b->host = xstrdup("127.0.0.1");
	b->exe = xstrdup(exe);
	b->data_dir = path_join(tmpl, "data");
	b->conn_file = path_join(tmpl, "connection.json");
	b->log_path = path_join(tmpl, "broker.log");
	while (args && args[nargs])
		nargs++;
	b->args = xcalloc(nargs + 1, sizeof *b->args);
	for (size_t i = 0; i < nargs; i++)
		b->args[i] = xstrdup(args[i]);
	if (config) {
		/* A readable file is a path; text with a line break or an
		 * assignment is the configuration itself. */
		if (access(config, R_OK) == 0) {
			b->config = xstrdup(config);
		} else if (strchr(config, '\n') || strchr(config, '=')) {
			b->config = path_join(tmpl, "broker.lua");
			if (write_file(b->config, config, err, errlen) < 0) {
				scn_broker_free(b);
				return NULL;
			}
		} else {
			snprintf(err, errlen, "config: cannot read '%s': %s (give a path or the Lua text itself)",
			         config, strerror(errno));
			scn_broker_free(b);
			return NULL;
		}
	}
	return b;
}

struct scn_broker *scn_broker_new_attached(struct scn_run *r, const char *host, uint16_t port,
                                           const char *control_socket)
{
	struct scn_broker *b = xcalloc(1, sizeof *b);
	b->run = r;
	b->ctl_fd = -1;
	b->host = xstrdup(host && *host ? host : "127.0.0.1");
	b->port = port;
	b->control_socket = control_socket && *control_socket ? xstrdup(control_socket) : NULL;
	return b;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void scn_broker_free(struct scn_broker *b)
{
	char err[256];
	if (!b)
		return;
	if (b->pid > 0)
		scn_broker_stop(b, err, sizeof err);
	if (b->ctl_fd >= 0)
		close(b->ctl_fd);
	if (b->tmp) {
		if (getenv("MQ_SCENARIO_KEEP"))
			fprintf(stderr, "scenario: kept broker %u's directory %s (MQ_SCENARIO_KEEP)\n", b->index, b->tmp);
		else
			nftw(b->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
	for (size_t i = 0; b->args && b->args[i]; i++)
		free(b->args[i]);
	free(b->args);
	free(b->host);
	free(b->control_socket);
	free(b->login);
	free(b->passcode);
	free(b->vhost);
	free(b->exe);
	free(b->config);
	free(b->tmp);
	free(b->data_dir);
	free(b->conn_file);
	free(b->log_path);
	free(b);
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

static void describe_status(int st, char *buf, size_t len)
{
	if (WIFEXITED(st))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(st));
	else if (WIFSIGNALED(st))
		snprintf(buf, len, "was killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
	else
		snprintf(buf, len, "ended with wait status 0x%x", (unsigned)st);
}

void scn_broker_log_tail(const struct scn_broker *b, struct sbuf *out, int lines)
{
	FILE *f;
	long size, from;
	char *buf, *p;
	size_t n;
	int seen = 0;

	if (!b->log_path || !(f = fopen(b->log_path, "r")))
		return;
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	from = size > 16384 ? size - 16384 : 0;
	fseek(f, from, SEEK_SET);
	buf = xmalloc(16385);
	n = fread(buf, 1, 16384, f);
	buf[n] = 0;
	fclose(f);
	/* Back from the end to the start of the wanted line. */
	p = buf + n;
	if (p > buf && p[-1] == '\n')
		p--;
	while (p > buf) {
		if (p[-1] == '\n' && ++seen == lines)
			break;
		p--;
	}
	sbuf_adds(out, p);
	free(buf);
}

/* The broker's connection file: port and control socket. */
static int read_connection_file(struct scn_broker *b, char *err, size_t errlen)
{
	FILE *f = fopen(b->conn_file, "r");
	char buf[4096], why[128];
	size_t n;
	struct json *j;
	const char *ctl;
	double port;

	if (!f) {
		snprintf(err, errlen, "cannot read %s: %s", b->conn_file, strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	if (!(j = json_parse(buf, n, why, sizeof why))) {
		snprintf(err, errlen, "%s: %s", b->conn_file, why);
		return -1;
	}
	port = json_get_num(j, "port", 0);
	ctl = json_get_str(j, "control_socket");
	if (port < 1 || port > 65535) {
		snprintf(err, errlen, "%s: no usable port (got %g)", b->conn_file, port);
		json_free(j);
		return -1;
	}
	b->port = (uint16_t)port;
	free(b->control_socket);
	b->control_socket = ctl && *ctl ? xstrdup(ctl) : NULL;
	json_free(j);
	return 0;
}

int scn_broker_start(struct scn_broker *b, char *err, size_t errlen)
{
	char port[16], name[96];
	const char *fixed[] = { "-i", "127.0.0.1", "-p", port, "-c", b->conn_file, "--data-dir", b->data_dir,
	                        "-l", "2" };
	size_t nfixed = ARRAY_LEN(fixed), nargs = 0, k = 0;
	char **argv;
	pid_t parent = getpid(), pid;
	uint64_t deadline;
	int st;

	if (!b->owned) {
		snprintf(err, errlen, "%s is attached, not started by the scenario: it cannot be started",
		         scn_broker_name(b, name, sizeof name));
		return -1;
	}
	if (b->pid > 0) {
		snprintf(err, errlen, "%s is already running (pid %d)", scn_broker_name(b, name, sizeof name),
		         (int)b->pid);
		return -1;
	}
	/* The same port on a restart, so that clients find it again. */
	snprintf(port, sizeof port, "%u", (unsigned)b->port);
	unlink(b->conn_file);
	if (b->ctl_fd >= 0) {
		close(b->ctl_fd);
		b->ctl_fd = -1;
	}
	while (b->args[nargs])
		nargs++;
	argv = xcalloc(1 + nfixed + nargs + 3, sizeof *argv);
	argv[k++] = b->exe;
	for (size_t i = 0; i < nfixed; i++)
		argv[k++] = (char *)fixed[i];
	for (size_t i = 0; i < nargs; i++)
		argv[k++] = b->args[i];
	if (b->config) {
		argv[k++] = "-f";
		argv[k++] = b->config;
	}
	argv[k] = NULL;

	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "cannot start %s: fork: %s", b->exe, strerror(errno));
		free(argv);
		return -1;
	}
	if (pid == 0) {
		int fd;
		sigset_t none;
		/* Its own process group: Ctrl-C in mqsh is for the runner,
		 * which then stops the broker itself. And it dies with us. */
		setpgid(0, 0);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		fd = open(b->log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		fd = open("/dev/null", O_RDONLY);
		if (fd >= 0)
			dup2(fd, 0);
		/* The runner's client sockets must not live on in the broker:
		 * a connection we abort would otherwise stay open. */
		close_range(3, ~0U, 0);
		signal(SIGPIPE, SIG_DFL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(b->exe, argv);
		fprintf(stderr, "cannot execute %s: %s\n", b->exe, strerror(errno));
		_exit(127);
	}
	free(argv);
	b->pid = pid;
	b->killed = false;

	deadline = scn_now_ns() + (uint64_t)START_TIMEOUT_MS * 1000000u;
	for (;;) {
		if (access(b->conn_file, F_OK) == 0)
			break;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			char how[96];
			struct sbuf tail;
			describe_status(st, how, sizeof how);
			sbuf_init(&tail);
			scn_broker_log_tail(b, &tail, 10);
			snprintf(err, errlen, "%s %s before listening; its log ends:\n%s", b->exe, how, sbuf_str(&tail));
			sbuf_fini(&tail);
			b->pid = 0;
			return -1;
		}
		if (scn_now_ns() > deadline) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			b->pid = 0;
			snprintf(err, errlen, "%s did not write its connection file %s within %d ms (log: %s)", b->exe,
			         b->conn_file, START_TIMEOUT_MS, b->log_path);
			return -1;
		}
		sleep_ms(2);
	}
	if (read_connection_file(b, err, errlen) < 0) {
		kill(pid, SIGKILL);
		waitpid(pid, &st, 0);
		b->pid = 0;
		return -1;
	}
	return 0;
}

int scn_broker_stop(struct scn_broker *b, char *err, size_t errlen)
{
	uint64_t deadline;
	int st;
	char name[96], how[96];

	if (b->ctl_fd >= 0) {
		close(b->ctl_fd);
		b->ctl_fd = -1;
	}
	if (!b->owned || b->pid <= 0)
		return 0;
	kill(b->pid, SIGTERM);
	deadline = scn_now_ns() + (uint64_t)STOP_TIMEOUT_MS * 1000000u;
	for (;;) {
		pid_t w = waitpid(b->pid, &st, WNOHANG);
		if (w == b->pid)
			break;
		if (w < 0) {
			snprintf(err, errlen, "%s: waitpid: %s", scn_broker_name(b, name, sizeof name), strerror(errno));
			b->pid = 0;
			return -1;
		}
		if (scn_now_ns() > deadline) {
			kill(b->pid, SIGKILL);
			waitpid(b->pid, &st, 0);
			snprintf(err, errlen, "%s (pid %d) did not exit within %d ms of SIGTERM (log: %s)",
			         scn_broker_name(b, name, sizeof name), (int)b->pid, STOP_TIMEOUT_MS, b->log_path);
			b->pid = 0;
			return -1;
		}
		sleep_ms(2);
	}
	if (WIFEXITED(st) && WEXITSTATUS(st) == 0) {
		b->pid = 0;
		return 0;
	}
	describe_status(st, how, sizeof how);
	{
		struct sbuf tail;
		sbuf_init(&tail);
		scn_broker_log_tail(b, &tail, 20);
		snprintf(err, errlen, "%s (pid %d) %s after SIGTERM; its log ends:\n%s",
		         scn_broker_name(b, name, sizeof name), (int)b->pid, how, sbuf_str(&tail));
		sbuf_fini(&tail);
	}
	b->pid = 0;
	return -1;
}

void scn_broker_kill(struct scn_broker *b)
{
	int st;
	if (b->ctl_fd >= 0) {
		close(b->ctl_fd);
		b->ctl_fd = -1;
	}
	if (!b->owned || b->pid <= 0)
		return;
	b->killed = true;
	kill(b->pid, SIGKILL);
	waitpid(b->pid, &st, 0);
	b->pid = 0;
}

int scn_broker_check(struct scn_broker *b, char *err, size_t errlen)
{
	int st;
	char name[96], how[96];
	struct sbuf tail;

	if (!b->owned || b->pid <= 0 || waitpid(b->pid, &st, WNOHANG) != b->pid)
		return 0;
	describe_status(st, how, sizeof how);
	sbuf_init(&tail);
	scn_broker_log_tail(b, &tail, 20);
	snprintf(err, errlen, "%s (pid %d) %s on its own; its log ends:\n%s", scn_broker_name(b, name, sizeof name),
	         (int)b->pid, how, sbuf_str(&tail));
	sbuf_fini(&tail);
	b->pid = 0;
	return -1;
}

/* ---- admin ---- */

static int ctl_connect(struct scn_broker *b, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { ADMIN_TIMEOUT_S, 0 };
	int fd;

	if (strlen(b->control_socket) >= sizeof sa.sun_path) {
		snprintf(err, errlen, "control socket path %s is too long (limit %zu bytes)", b->control_socket,
		         sizeof sa.sun_path - 1);
		return -1;
	}
	strcpy(sa.sun_path, b->control_socket);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		snprintf(err, errlen, "cannot connect to the control socket %s: %s", b->control_socket,
		         strerror(errno));
		close(fd);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	b->ctl_fd = fd;
	return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* One request and its reply on an open connection: 0, -1 for an I/O
 * failure (worth one retry on a fresh connection), -2 for a bad reply. */
static int exchange(struct scn_broker *b, const char *line, struct sbuf *reply, char *err, size_t errlen)
{
	struct sbuf req;
	char buf[65536];
	size_t head = 0;
	unsigned long status = 0, length = 0;
	int rc;

	sbuf_init(&req);
	sbuf_printf(&req, "%s\n", line);
	rc = write_all(b->ctl_fd, req.buf, req.len);
	sbuf_fini(&req);
	if (rc < 0) {
		snprintf(err, errlen, "cannot send to the control socket %s: %s", b->control_socket, strerror(errno));
		return -1;
	}
	sbuf_reset(reply);
	for (;;) {
		ssize_t n;
		if (!head) {
			char *nl = reply->len ? memchr(reply->buf, '\n', reply->len) : NULL;
			if (nl) {
				char *end;
				head = (size_t)(nl - reply->buf) + 1;
				status = strtoul(reply->buf, &end, 10);
				length = strtoul(end, &end, 10);
				if (status < 100 || end != nl) {
					snprintf(err, errlen, "unexpected reply from the control socket %s: '%.*s'",
					         b->control_socket, (int)(nl - reply->buf), reply->buf);
					return -2;
				}
			}
		}
		if (head && reply->len >= head + length + 1)
			break;
		n = recv(b->ctl_fd, buf, sizeof buf, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "no reply from the control socket %s: %s", b->control_socket,
			         n == 0 ? "connection closed" : errno == EAGAIN ? "timed out" : strerror(errno));
			return -1;
		}
		sbuf_add(reply, buf, (size_t)n);
	}
	/* Keep only the JSON. */
	memmove(reply->buf, reply->buf + head, length);
	reply->len = length;
	reply->buf[length] = 0;
	return 0;
}

struct json *scn_broker_admin(struct scn_broker *b, const char *line, char *err, size_t errlen)
{
	struct sbuf reply;
	struct json *j = NULL;
	char why[256], name[96];
	int rc = -1;

	if (!b->control_socket) {
		snprintf(err, errlen, "%s has no control socket: admin commands need mqbroker's "
		         "(attach{ control_socket = PATH })", scn_broker_name(b, name, sizeof name));
		return NULL;
	}
	if (strchr(line, '\n')) {
		snprintf(err, errlen, "admin: one command per call, without line breaks");
		return NULL;
	}
	sbuf_init(&reply);
	/* A connection from before a restart is dead: try a fresh one once. */
	for (int attempt = 0; attempt < 2 && rc == -1; attempt++) {
		if (b->ctl_fd < 0 && ctl_connect(b, why, sizeof why) < 0)
			break;
		rc = exchange(b, line, &reply, why, sizeof why);
		if (rc < 0) {
			close(b->ctl_fd);
			b->ctl_fd = -1;
		}
	}
	if (rc == 0 && !(j = json_parse(reply.buf, reply.len, why, sizeof why)))
		snprintf(err, errlen, "admin '%s' on %s: the reply is not JSON: %s", line,
		         scn_broker_name(b, name, sizeof name), why);
	else if (rc != 0)
		snprintf(err, errlen, "admin '%s' on %s: %s", line, scn_broker_name(b, name, sizeof name), why);
	sbuf_fini(&reply);
	return j;
}
