/* scenario_link.c: a link a scenario can cut (docs/scenarios.md, "Links").
 *
 * A TCP relay on a loopback port of its own, to a broker's address: point
 * a bridge (or any client) at the link instead of at the broker, and the
 * scenario decides what the network does. Cut, the relay stops moving
 * bytes either way but keeps every connection open, as a pulled cable or
 * a dead switch would: only heart-beats can tell. Restored, bytes flow
 * again, on the connections still open and on new ones. Dropped, every
 * connection is closed at once (a reset). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "common/util.h"
#include "scenario_int.h"


struct relay {
	struct scn_link *link;
	struct relay *prev, *next;
	struct bufferevent *client;	/* owned: the one that connected to the link */
	struct bufferevent *server;	/* owned: to the target */
	bool server_up;
};

struct scn_link {
	struct scn_run *run;		/* borrowed */
	unsigned index;
	char *host;			/* owned: the target */
	uint16_t port;
	uint16_t listen_port;
	struct evconnlistener *lst;	/* owned */
	struct relay *relays;		/* owned, a list */
	bool cut;
	unsigned open;			/* relays now */
	uint64_t accepted, dropped_bytes, bytes;
};

static void relay_free(struct relay *r)
{
	struct scn_link *l = r->link;
	if (r->prev)
		r->prev->next = r->next;
	else
		l->relays = r->next;
	if (r->next)
		r->next->prev = r->prev;
	bufferevent_free(r->client);
	if (r->server)
		bufferevent_free(r->server);
	l->open--;
	free(r);
}

/* Moves what one side sent to the other, or drops it while cut. */
static void move(struct relay *r, struct bufferevent *from, struct bufferevent *to)
{
	struct evbuffer *in = bufferevent_get_input(from);
	size_t n = evbuffer_get_length(in);
	if (r->link->cut || !to || (to == r->server && !r->server_up)) {
		if (r->link->cut) {
			r->link->dropped_bytes += n;
			evbuffer_drain(in, n);
		}
		return;	/* before the server answers, bytes wait in the input */
	}
	r->link->bytes += n;
	bufferevent_write_buffer(to, in);
}

static void read_cb(struct bufferevent *bev, void *arg)
{
	struct relay *r = arg;
	move(r, bev, bev == r->client ? r->server : r->client);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct relay *r = arg;
	if (what & BEV_EVENT_CONNECTED) {
		r->server_up = true;
		move(r, r->client, r->server);	/* what the client sent meanwhile */
		return;
	}
	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
		relay_free(r);	/* either side gone: both go, as a connection would */
}

static void accept_cb(struct evconnlistener *lst, evutil_socket_t fd, struct sockaddr *sa, int salen, void *arg)
{
	struct scn_link *l = arg;
	struct relay *r = xcalloc(1, sizeof *r);
	struct sockaddr_in to;
	struct event_base *base = evconnlistener_get_base(lst);
	(void)sa;
	(void)salen;
	r->link = l;
	r->client = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
	r->server = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	r->next = l->relays;
	if (l->relays)
		l->relays->prev = r;
	l->relays = r;
	l->open++;
	l->accepted++;
	bufferevent_setcb(r->client, read_cb, NULL, event_cb, r);
	bufferevent_setcb(r->server, read_cb, NULL, event_cb, r);
	bufferevent_enable(r->client, EV_READ | EV_WRITE);
	bufferevent_enable(r->server, EV_READ | EV_WRITE);
	memset(&to, 0, sizeof to);
	to.sin_family = AF_INET;
	to.sin_port = htons(l->port);
	if (inet_pton(AF_INET, l->host, &to.sin_addr) != 1 ||
	    bufferevent_socket_connect(r->server, (struct sockaddr *)&to, sizeof to) < 0)
		relay_free(r);
}

struct scn_link *scn_link_new(struct scn_run *run, const char *host, uint16_t port, char *err, size_t errlen)
{
	struct scn_link *l = xcalloc(1, sizeof *l);
	struct sockaddr_in sin;
	socklen_t len = sizeof sin;
	struct in_addr a;
	if (inet_pton(AF_INET, host, &a) != 1) {
		snprintf(err, errlen, "link{}: host: expected an IPv4 address such as 127.0.0.1, got '%s'", host);
		free(l);
		return NULL;
	}
	memset(&sin, 0, sizeof sin);
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	l->lst = evconnlistener_new_bind(run->base, accept_cb, l, LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE, 64,
	                                 (struct sockaddr *)&sin, sizeof sin);
	if (!l->lst) {
		snprintf(err, errlen, "link{}: cannot listen on 127.0.0.1: %s", strerror(errno));
		free(l);
		return NULL;
	}
	getsockname(evconnlistener_get_fd(l->lst), (struct sockaddr *)&sin, &len);
	l->listen_port = ntohs(sin.sin_port);
	l->run = run;
	l->host = xstrdup(host);
	l->port = port;
	run->links = xrealloc(run->links, (run->nlinks + 1) * sizeof *run->links);
	run->links[run->nlinks++] = l;
	l->index = (unsigned)run->nlinks;
	return l;
}

void scn_link_cut(struct scn_link *l)
{
	l->cut = true;
}

void scn_link_restore(struct scn_link *l)
{
	l->cut = false;
	/* Bytes that arrived while cut were dropped; new ones flow. */
}

unsigned scn_link_drop(struct scn_link *l)
{
	unsigned n = 0;
	while (l->relays) {
		/* A reset, not a FIN: the peers see the connection fail. */
		struct linger lg = { 1, 0 };
		evutil_socket_t fd = bufferevent_getfd(l->relays->client);
		if (fd >= 0)
			setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
		relay_free(l->relays);
		n++;
	}
	return n;
}

void scn_link_get(const struct scn_link *l, struct scn_link_info *info)
{
	info->port = l->listen_port;
	info->target_host = l->host;
	info->target_port = l->port;
	info->cut = l->cut;
	info->connections = l->open;
	info->accepted = l->accepted;
	info->bytes = l->bytes;
	info->dropped_bytes = l->dropped_bytes;
	info->index = l->index;
}

void scn_link_free(struct scn_link *l)
{
	if (!l)
		return;
	while (l->relays)
		relay_free(l->relays);
	evconnlistener_free(l->lst);
	free(l->host);
	free(l);
}
