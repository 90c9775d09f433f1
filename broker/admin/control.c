/* control.c: the control socket transport over cmd_exec(). */
#include "admin/control.h"

#include <errno.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include "core/auth.h"
#include "core/broker.h"
#include "core/events.h"
#include "common/cmdline.h"
#include "admin/cmd.h"
#include "common/log.h"
#include "common/util.h"

#define CONTROL_MAX_LINE (64 * 1024)
/* An event listener that stops reading is cut off rather than buffered forever. */
#define CONTROL_MAX_PENDING (8u << 20)

struct ctl_client {
	TAILQ_ENTRY(ctl_client) link;
	struct control *ctl;
	struct bufferevent *bev;	/* owned */
	bool tcp;			/* the admin port: must log in first */
	bool authed;			/* logged in as an admin (always true on the Unix socket) */
	char who[160];			/* for the log */
	bool streaming;			/* ran `events` */
	bool closing;			/* close once the output drained... */
	bool draining;			/* ...and the client's input ended: write side shut, discarding */
	bool shutdown_after;		/* ran `shutdown`: stop the broker once the reply is out */
	int failures;			/* failed logins on the admin port */
	struct principal p;		/* the admin port's login, for the checks of commands */
	struct auth_wait *login_wait;	/* a login whose password is being checked: nothing is read */
};

struct control {
	struct broker *b;
	struct evconnlistener *lev;	/* owned */
	struct evconnlistener *tcp;	/* owned; the admin port, or NULL */
	int tcp_port;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	TAILQ_HEAD(, ctl_client) clients;
	int nstreaming;
};

static void client_free(struct ctl_client *cc)
{
	struct control *ctl = cc->ctl;
	if (cc->streaming)
		ctl->nstreaming--;
	auth_wait_cancel(ctl->b, cc->login_wait);
	principal_fini(&cc->p);
	TAILQ_REMOVE(&ctl->clients, cc, link);
	bufferevent_free(cc->bev);
	free(cc);
}

static void deferred_shutdown(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	broker_shutdown(arg, "shutdown command");
}

static void write_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_client *cc = arg;
	(void)bev;
	if (cc->shutdown_after) {
		struct broker *b = cc->ctl->b;
		cc->shutdown_after = false;
		event_base_once(b->base, -1, EV_TIMEOUT, deferred_shutdown, b, NULL);
	}
	if (cc->closing && !cc->draining) {
		/* Closing with input unread would reset the connection and could
		 * destroy the reply in the client's buffer: shut our side, then
		 * read and discard until the client closes (2 s at most). */
		struct timeval t = { 2, 0 };
		cc->draining = true;
		shutdown(bufferevent_getfd(cc->bev), SHUT_WR);
		evbuffer_drain(bufferevent_get_input(cc->bev), evbuffer_get_length(bufferevent_get_input(cc->bev)));
		bufferevent_set_timeouts(cc->bev, &t, NULL);
		bufferevent_enable(cc->bev, EV_READ);
	}
}

static void reply(struct ctl_client *cc, struct cmd_reply *r)
{
	struct evbuffer *out = bufferevent_get_output(cc->bev);
	struct sbuf json;
	sbuf_init(&json);
	cmd_reply_json(r, &json);
	evbuffer_add_printf(out, "%d %zu\n", r->status, json.len);
	evbuffer_add(out, json.buf, json.len);
	evbuffer_add(out, "\n", 1);
	sbuf_fini(&json);
}

static void read_cb(struct bufferevent *bev, void *arg);

/* The verdict on a login: admin rights or not, the reply, and the cut-off
 * after three failures. */
static void login_result(struct ctl_client *cc, int rc, const char *why, struct cmd_reply *r)
{
	struct broker *b = cc->ctl->b;
	char err[400];
	if (rc < 0) {
		cmd_fail(r, CMD_FORBIDDEN, "%s", why);
	} else if (!auth_allow(b, &cc->p, AUTHZ_ADMIN, NULL, err, sizeof err)) {
		cmd_fail(r, CMD_FORBIDDEN, "%s", err);
	} else {
		char who[160];
		snprintf(who, sizeof who, "admin port %.80s login=%.60s", cc->who, cc->p.login);
		snprintf(cc->who, sizeof cc->who, "%s", who);
		cc->authed = true;
		r->status = CMD_OK;
		snprintf(r->message, sizeof r->message, "logged in as %s", cc->p.login);
	}
	if (!cc->authed && ++cc->failures >= 3) {
		cc->closing = true;
		bufferevent_disable(cc->bev, EV_READ);
	}
}

/* A login that waited for the verifier (or the peer's delay). */
static void login_done(int rc, const char *err, void *arg)
{
	struct ctl_client *cc = arg;
	struct cmd_reply r;
	cc->login_wait = NULL;
	cmd_reply_init(&r);
	login_result(cc, rc, err, &r);
	reply(cc, &r);
	cmd_reply_fini(&r);
	if (!cc->closing) {
		/* Lines that came after the login waited in the input. */
		bufferevent_enable(cc->bev, EV_READ);
		if (evbuffer_get_length(bufferevent_get_input(cc->bev)))
			read_cb(cc->bev, cc);
	}
}

/* The admin port's first line: login USER PASSCODE, for a user the
 * security rules call admin. Three wrong tries close the connection.
 * Returns false when the answer comes later (login_done). */
static bool login(struct ctl_client *cc, const char *line, struct cmd_reply *r)
{
	struct broker *b = cc->ctl->b;
	char **argv, err[400];
	int argc = cmdline_split(line, &argv, err, sizeof err), rc;
	if (argc < 0) {
		cmd_fail(r, CMD_SYNTAX, "%s", err);
		return true;
	}
	if (argc != 3 || strcmp(argv[0], "login") != 0) {
		cmd_fail(r, CMD_FORBIDDEN, "log in first: login USER PASSCODE");
		if (++cc->failures >= 3) {
			cc->closing = true;
			bufferevent_disable(cc->bev, EV_READ);
		}
		free(argv);
		return true;
	}
	rc = auth_check_user(b, &cc->p, argv[1], argv[2], login_done, cc, &cc->login_wait, err, sizeof err);
	free(argv);
	if (rc == AUTH_PENDING) {
		bufferevent_disable(cc->bev, EV_READ);
		return false;
	}
	login_result(cc, rc, err, r);
	return true;
}

/* One command line; takes `line`. */
static void handle_line(struct ctl_client *cc, char *line, size_t n)
{
	/* On the Unix socket no principal: its file permissions are the check. */
	struct cmd_ctx ctx = { cc->ctl->b, true, cc->who, cc->tcp ? &cc->p : NULL };
	struct cmd_reply r;
	if (cc->streaming) {
		free(line);	/* an event stream takes no more commands */
		return;
	}
	cmd_reply_init(&r);
	if (memchr(line, 0, n)) {	/* it would cut the line short unseen */
		cmd_fail(&r, CMD_SYNTAX, "the command line contains a NUL byte");
	} else if (!cc->authed) {
		if (!login(cc, line, &r)) {
			free(line);	/* answered by login_done */
			cmd_reply_fini(&r);
			return;
		}
	} else {
		cmd_exec_line(&ctx, line, &r);
	}
	free(line);
	reply(cc, &r);
	if (r.stream && r.status == CMD_OK) {
		cc->streaming = true;
		cc->ctl->nstreaming++;
	}
	if (r.shutdown)
		cc->shutdown_after = true;
	cmd_reply_fini(&r);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_client *cc = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t n;

	if (cc->draining) {
		evbuffer_drain(in, evbuffer_get_length(in));
		return;
	}
	while (!cc->closing && !cc->login_wait && (line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF)))
		handle_line(cc, line, n);
	if (!cc->closing && !cc->login_wait && evbuffer_get_length(in) > CONTROL_MAX_LINE) {
		struct cmd_reply r;
		cmd_reply_init(&r);
		cmd_fail(&r, CMD_SYNTAX, "command line too long: more than %d bytes", CONTROL_MAX_LINE);
		reply(cc, &r);
		cmd_reply_fini(&r);
		cc->closing = true;
		bufferevent_disable(bev, EV_READ);
	}
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct ctl_client *cc = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	/* A last command without its newline (printf stats | socat) is a
	 * command all the same. */
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && !cc->closing && !cc->streaming &&
	    !cc->login_wait && evbuffer_get_length(in) > 0 && evbuffer_get_length(in) <= CONTROL_MAX_LINE) {
		size_t n = evbuffer_get_length(in);
		char *line = xmalloc(n + 1);
		evbuffer_remove(in, line, n);
		line[n] = 0;
		if (n && line[n - 1] == '\r')
			line[--n] = 0;
		handle_line(cc, line, n);
	}
	/* A client that half-closes after its commands (printf ... | socat)
	 * still gets every reply: the end of its input closes the connection
	 * once the output has drained. An event stream never drains. */
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && !cc->streaming &&
	    evbuffer_get_length(bufferevent_get_output(bev)) > 0) {
		cc->closing = true;
		bufferevent_disable(bev, EV_READ);
		return;
	}
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		client_free(cc);
}

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct control *ctl = arg;
	struct ctl_client *cc = xcalloc(1, sizeof *cc);
	(void)salen;
	cc->ctl = ctl;
	cc->tcp = lev == ctl->tcp;
	cc->authed = !cc->tcp;
	principal_set_peer(&cc->p, sa);
	cc->p.vhost = ctl->b->default_vhost;
	if (cc->tcp && sa->sa_family == AF_INET) {
		char host[INET_ADDRSTRLEN];
		const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
		inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
		snprintf(cc->who, sizeof cc->who, "%s:%d", host, ntohs(in->sin_port));
	} else {
		snprintf(cc->who, sizeof cc->who, "%s", cc->tcp ? "admin port" : "control socket");
	}
	cc->bev = bufferevent_socket_new(ctl->b->base, fd, BEV_OPT_CLOSE_ON_FREE);
	bufferevent_setcb(cc->bev, read_cb, write_cb, event_cb, cc);
	bufferevent_enable(cc->bev, EV_READ | EV_WRITE);
	TAILQ_INSERT_TAIL(&ctl->clients, cc, link);
	ctl->b->last_activity_ms = mono_ms();
}

/* Is a live broker answering on this path? (A stale file from a crash is not.) */
static bool socket_alive(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool alive;
	if (fd < 0)
		return false;
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	alive = connect(fd, (struct sockaddr *)&sun, sizeof sun) == 0;
	close(fd);
	return alive;
}

/* The optional TCP admin port: the same protocol, after a login. It binds
 * where the first plain STOMP listener does. */
static int open_admin_port(struct broker *b, struct control *ctl, char *err, size_t errlen)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons((uint16_t)b->cfg.admin_port) };
	const char *addr = "0.0.0.0";
	for (size_t i = 0; i < b->cfg.nlisteners; i++)
		if (!b->cfg.listeners[i].tls && b->cfg.listeners[i].address && *b->cfg.listeners[i].address) {
			addr = b->cfg.listeners[i].address;
			break;
		}
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1) {
		snprintf(err, errlen, "admin port: '%s' is not an IPv4 address", addr);
		return -1;
	}
	ctl->tcp = evconnlistener_new_bind(b->base, accept_cb, ctl,
	                                   LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 16,
	                                   (struct sockaddr *)&sin, sizeof sin);
	if (!ctl->tcp) {
		snprintf(err, errlen, "cannot listen for admin commands on %s:%d: %s", addr, b->cfg.admin_port,
		         strerror(errno));
		return -1;
	}
	ctl->tcp_port = b->cfg.admin_port;
	log_info("admin port %s:%d (login needed)", addr, b->cfg.admin_port);
	return 0;
}

/* 0600 by default, as relayd makes its control socket; with
 * control_socket_group, 0660 and that group, so that operators in the
 * group run mqsh without root. A broker that is not root can only hand
 * the socket to a group it belongs to. */
static int socket_access(const char *path, const char *group, char *err, size_t errlen)
{
	struct group *gr;
	uint64_t gid;

	if (!group || !*group)
		return 0;
	if ((gr = getgrnam(group)))
		gid = gr->gr_gid;
	else if (!parse_u64(group, 0, UINT32_MAX - 1, &gid)) {
		snprintf(err, errlen, "control_socket_group: no group named '%s'", group);
		return -1;
	}
	if (chown(path, (uid_t)-1, (gid_t)gid) < 0) {
		snprintf(err, errlen, "cannot give the control socket %s to group '%s': %s (is the broker's user in it?)",
		         path, group, strerror(errno));
		return -1;
	}
	if (chmod(path, 0660) < 0) {
		snprintf(err, errlen, "cannot make the control socket %s group-writable: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

static bool has_listeners(struct broker *b);
static void broadcast(struct broker *b, const char *json, size_t len);

int control_open(struct broker *b, char *err, size_t errlen)
{
	struct control *ctl;
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	char buf[4096];
	const char *path = config_control_socket(&b->cfg, buf, sizeof buf);
	mode_t old;
	int fd;

	if (strlen(path) >= sizeof sun.sun_path) {
		snprintf(err, errlen, "control socket path too long (%zu bytes, limit %zu): %s; use --control-socket",
		         strlen(path), sizeof sun.sun_path - 1, path);
		return -1;
	}
	if (socket_alive(path)) {
		snprintf(err, errlen, "cannot open control socket %s: another broker is answering on it", path);
		return -1;
	}
	unlink(path);	/* stale, from a broker that did not stop cleanly */
	snprintf(sun.sun_path, sizeof sun.sun_path, "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create control socket: %s", strerror(errno));
		return -1;
	}
	/* Created 0600 from the start: no window where others could connect. */
	old = umask(0177);
	if (bind(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
		umask(old);
		snprintf(err, errlen, "cannot open control socket %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	umask(old);
	chmod(path, 0600);
	if (socket_access(path, b->cfg.control_socket_group, err, errlen) < 0) {
		close(fd);
		unlink(path);
		return -1;
	}
	if (listen(fd, 64) < 0) {
		snprintf(err, errlen, "cannot listen on control socket %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	ctl = xcalloc(1, sizeof *ctl);
	ctl->b = b;
	snprintf(ctl->path, sizeof ctl->path, "%s", path);
	TAILQ_INIT(&ctl->clients);
	ctl->lev = evconnlistener_new(b->base, accept_cb, ctl, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	b->control = ctl;
	{
		static const struct events_tap tap = { has_listeners, broadcast };
		events_add_tap(b, &tap);
	}
	log_info("control socket %s%s%s", path, b->cfg.control_socket_group && *b->cfg.control_socket_group ?
	         ", group " : "", b->cfg.control_socket_group ? b->cfg.control_socket_group : "");
	if (b->cfg.admin_port && open_admin_port(b, ctl, err, errlen) < 0)
		return -1;
	return 0;
}

void control_close(struct broker *b)
{
	struct control *ctl = b->control;
	struct ctl_client *cc, *next;
	if (!ctl || !ctl->lev)
		return;
	evconnlistener_free(ctl->lev);
	ctl->lev = NULL;
	if (ctl->tcp) {
		evconnlistener_free(ctl->tcp);
		ctl->tcp = NULL;
	}
	unlink(ctl->path);
	/* Replies already queued still go out; event streams end. */
	for (cc = TAILQ_FIRST(&ctl->clients); cc; cc = next) {
		next = TAILQ_NEXT(cc, link);
		cc->closing = true;
		bufferevent_disable(cc->bev, EV_READ);
		if (evbuffer_get_length(bufferevent_get_output(cc->bev)) == 0)
			client_free(cc);
	}
}

void control_free(struct broker *b)
{
	struct control *ctl = b->control;
	struct ctl_client *cc;
	if (!ctl)
		return;
	control_close(b);
	while ((cc = TAILQ_FIRST(&ctl->clients)))
		client_free(cc);
	free(ctl);
	b->control = NULL;
}

static bool has_listeners(struct broker *b)
{
	return b->control && b->control->nstreaming > 0;
}

static void broadcast(struct broker *b, const char *json, size_t len)
{
	struct ctl_client *cc, *next;
	if (!has_listeners(b))
		return;
	for (cc = TAILQ_FIRST(&b->control->clients); cc; cc = next) {
		struct evbuffer *out;
		next = TAILQ_NEXT(cc, link);
		if (!cc->streaming || cc->closing)
			continue;
		out = bufferevent_get_output(cc->bev);
		if (evbuffer_get_length(out) > CONTROL_MAX_PENDING) {
			log_warn("control socket: an event listener stopped reading (%zu bytes pending): dropped it",
			         evbuffer_get_length(out));
			cc->closing = true;
			bufferevent_disable(cc->bev, EV_READ);
			continue;
		}
		evbuffer_add(out, json, len);
		evbuffer_add(out, "\n", 1);
	}
}
