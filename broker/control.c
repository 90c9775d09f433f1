/* control.c: the control socket transport over cmd_exec(). */
#include "control.h"

#include <errno.h>
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

#include "broker.h"
#include "cmd.h"
#include "log.h"
#include "util.h"

#define CONTROL_MAX_LINE (64 * 1024)
/* An event listener that stops reading is cut off rather than buffered forever. */
#define CONTROL_MAX_PENDING (8u << 20)

struct ctl_client {
	TAILQ_ENTRY(ctl_client) link;
	struct control *ctl;
	struct bufferevent *bev;	/* owned */
	bool streaming;			/* ran `events` */
	bool closing;			/* close once the output drained */
	bool shutdown_after;		/* ran `shutdown`: stop the broker once the reply is out */
};

struct control {
	struct broker *b;
	struct evconnlistener *lev;	/* owned */
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	TAILQ_HEAD(, ctl_client) clients;
	int nstreaming;
};

static void client_free(struct ctl_client *cc)
{
	struct control *ctl = cc->ctl;
	if (cc->streaming)
		ctl->nstreaming--;
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
	if (cc->closing)
		client_free(cc);
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

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct ctl_client *cc = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	char *line;
	size_t n;

	while (!cc->closing && (line = evbuffer_readln(in, &n, EVBUFFER_EOL_CRLF))) {
		struct cmd_ctx ctx = { cc->ctl->b, true, "control socket" };
		struct cmd_reply r;
		if (cc->streaming) {
			free(line);	/* an event stream takes no more commands */
			continue;
		}
		cmd_reply_init(&r);
		cmd_exec_line(&ctx, line, &r);
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
	if (!cc->closing && evbuffer_get_length(in) > CONTROL_MAX_LINE) {
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
	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		client_free(arg);
}

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct control *ctl = arg;
	struct ctl_client *cc = xcalloc(1, sizeof *cc);
	(void)lev;
	(void)sa;
	(void)salen;
	cc->ctl = ctl;
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
	log_info("control socket %s", path);
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

bool control_has_listeners(struct broker *b)
{
	return b->control && b->control->nstreaming > 0;
}

void control_broadcast(struct broker *b, const char *json, size_t len)
{
	struct ctl_client *cc, *next;
	if (!control_has_listeners(b))
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
