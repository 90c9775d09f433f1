/* listener.c: accept sockets and make bufferevents for them. */
#include "net/listener.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "core/broker.h"
#include "common/log.h"
#include "net/tls.h"
#include "net/ws.h"
#include "common/util.h"

#define PORT_SCAN_RANGE 100
/* Connections taken per loop turn: libevent's listener would accept every
 * waiting one in one callback (thousands, under a connection flood), and
 * every connected client would wait for all of them. */
#define ACCEPTS_PER_TURN 16

struct listener {
	struct listener *next;
	struct broker *b;
	listener_accept_fn accept;	/* the protocol that takes each connection */
	struct evconnlistener *lev;	/* owned */
	bool tls;
	bool ws;			/* STOMP over WebSocket: ws.c stands between */
	int accepted;			/* this turn */
	struct event *resume_ev;	/* re-enables the listener on the next turn */
	char host[64];			/* as bound, for the connection file */
	int port;
};

static void accept_cb(struct evconnlistener *lev, evutil_socket_t fd, struct sockaddr *sa,
                      int salen, void *arg)
{
	struct listener *l = arg;
	struct broker *b = l->b;
	struct bufferevent *bev;
	int one = 1;
	if (++l->accepted >= ACCEPTS_PER_TURN && !b->shutting_down) {
		/* libevent leaves its accept loop when the callback disables
		 * the listener; what is still waiting is taken next turn. */
		evconnlistener_disable(lev);
		event_active(l->resume_ev, 0, 0);
	}
	/* Frames are small and latency matters more than packet count: the
	 * output is already batched per loop turn. */
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (l->tls)
		bev = tls_accept_bev(b, fd);
	else
		bev = bufferevent_socket_new(b->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		log_error("cannot set up a connection from a new client on port %d", l->port);
		evutil_closesocket(fd);
		return;
	}
	if (l->ws)
		ws_accept(b, bev, sa, (socklen_t)salen, l->tls, l->accept);
	else
		l->accept(b, bev, sa, (socklen_t)salen, l->tls ? "tls" : "tcp");
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;
	(void)fd;
	(void)what;
	l->accepted = 0;
	if (!l->b->shutting_down)
		evconnlistener_enable(l->lev);
}

static void accept_error_cb(struct evconnlistener *lev, void *arg)
{
	struct listener *l = arg;
	int err = EVUTIL_SOCKET_ERROR();
	(void)lev;
	/* EMFILE and friends: log and keep going; libevent retries. */
	log_error("accept on port %d failed: %s", l->port, evutil_socket_error_to_string(err));
}

static struct listener *listener_new(struct broker *b, listener_accept_fn accept, struct evconnlistener *lev,
                                     int port)
{
	struct listener *l = xcalloc(1, sizeof *l);
	l->b = b;
	l->accept = accept;
	l->lev = lev;
	l->port = port;
	l->resume_ev = event_new(b->base, -1, 0, resume_cb, l);
	evconnlistener_set_cb(lev, accept_cb, l);
	evconnlistener_set_error_cb(lev, accept_error_cb);
	return l;
}

static struct evconnlistener *bind_one(struct broker *b, const char *host, int port, int *bound, int *err_out)
{
	struct sockaddr_storage ss;
	int sslen;
	struct evconnlistener *lev;

	if (!host || !*host || strcmp(host, "*") == 0)
		host = "0.0.0.0";
	memset(&ss, 0, sizeof ss);
	if (strchr(host, ':')) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons((uint16_t)port);
		if (inet_pton(AF_INET6, host, &in6->sin6_addr) != 1) {
			*err_out = EINVAL;
			return NULL;
		}
		sslen = sizeof *in6;
	} else {
		struct sockaddr_in *in = (struct sockaddr_in *)&ss;
		in->sin_family = AF_INET;
		in->sin_port = htons((uint16_t)port);
		if (inet_pton(AF_INET, host, &in->sin_addr) != 1) {
			*err_out = EINVAL;
			return NULL;
		}
		sslen = sizeof *in;
	}
	lev = evconnlistener_new_bind(b->base, NULL, NULL,
	                              LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC,
	                              1024, (struct sockaddr *)&ss, sslen);
	if (!lev) {
		*err_out = errno;
		return NULL;
	}
	*bound = port;
	if (port == 0) {
		struct sockaddr_storage got;
		socklen_t glen = sizeof got;
		if (getsockname(evconnlistener_get_fd(lev), (struct sockaddr *)&got, &glen) == 0)
			*bound = ntohs(got.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&got)->sin6_port
			                                          : ((struct sockaddr_in *)&got)->sin_port);
	}
	return lev;
}

static bool tls_port_configured(const struct config *cfg, int port)
{
	for (size_t i = 0; i < cfg->nlisteners; i++)
		if (cfg->listeners[i].tls && cfg->listeners[i].port == port)
			return true;
	return false;
}

/* The WebSocket listeners (ws_port, wss_port), on the address of the
 * first plain STOMP listener, as the TLS one is. */
static int open_websocket(struct broker *b, listener_accept_fn accept, struct listener **tail, char *err,
                          size_t errlen)
{
	const char *address = NULL;
	for (size_t i = 0; i < b->cfg.nlisteners; i++)
		if (!b->cfg.listeners[i].tls) {
			address = b->cfg.listeners[i].address;
			break;
		}
	for (int tls = 0; tls <= 1; tls++) {
		int port = tls ? b->cfg.wss_port : b->cfg.ws_port, bound = 0, e = 0;
		const char *what = tls ? "STOMP over secure WebSocket" : "STOMP over WebSocket";
		struct evconnlistener *lev;
		struct listener *l;
		if (!port)
			continue;
		if (tls && !b->tls) {
			snprintf(err, errlen, "wss_port %d asks for TLS but no certificate is configured (-k or tls_cert_key)",
			         port);
			return -1;
		}
		lev = bind_one(b, address, port, &bound, &e);
		if (!lev) {
			if (e == EINVAL)
				snprintf(err, errlen, "cannot listen on '%s': not an IPv4 or IPv6 address", address);
			else
				snprintf(err, errlen, "cannot listen for %s on %s:%d: %s (choose another port with %s)", what,
				         address ? address : "*", port, strerror(e),
				         tls ? "--wss-port or -o wss_port=N" : "--ws-port or -o ws_port=N");
			return -1;
		}
		l = listener_new(b, accept, lev, bound);
		l->tls = tls;
		l->ws = true;
		snprintf(l->host, sizeof l->host, "%s",
		         (!address || !*address || strcmp(address, "*") == 0) ? "0.0.0.0" : address);
		*tail = l;
		tail = &l->next;
		log_info("listening for %s on %s:%d", what, l->host, l->port);
	}
	return 0;
}

int listeners_open(struct broker *b, listener_accept_fn accept, char *err, size_t errlen)
{
	struct listener **tail = &b->listeners;
	bool first_plain = true;

	for (size_t i = 0; i < b->cfg.nlisteners; i++) {
		const struct listener_cfg *lc = &b->cfg.listeners[i];
		struct listener *l;
		struct evconnlistener *lev = NULL;
		int port = lc->port, bound = 0, e = 0;
		/* Scanning is for the default port only: an explicit -p or
		 * configured port is bound exactly or start-up fails. */
		bool scan = !lc->tls && first_plain && !b->cfg.port_given && port != 0;

		if (!lc->tls)
			first_plain = false;
		if (!lc->tls && b->cfg.nca_chains && !b->cfg.port_given) {
			/* -a asks every client for a certificate: the default plain
			 * port would let anyone in without one. */
			log_notice("not listening on the plain STOMP port %d: client certificates are required (-a); "
			           "open one explicitly with -p or listeners in the configuration", lc->port);
			continue;
		}
		if (lc->tls && !b->tls) {
			snprintf(err, errlen, "listener %s:%d asks for TLS but no certificate is configured (-k or tls_cert_key)",
			         lc->address ? lc->address : "*", lc->port);
			return -1;
		}
		for (int tries = 0; tries < (scan ? PORT_SCAN_RANGE : 1); tries++) {
			/* The scan steps over a TLS listener's port (61614 by
			 * default), which would otherwise fail to bind next. */
			if (scan && tls_port_configured(&b->cfg, port + tries)) {
				e = EADDRINUSE;
				continue;
			}
			lev = bind_one(b, lc->address, port + tries, &bound, &e);
			if (lev || e != EADDRINUSE)
				break;
		}
		if (!lev) {
			if (scan && e == EADDRINUSE)
				snprintf(err, errlen, "cannot listen on %s: ports %d to %d are all in use",
				         lc->address ? lc->address : "*", port, port + PORT_SCAN_RANGE - 1);
			else if (e == EINVAL)
				snprintf(err, errlen, "cannot listen on '%s': not an IPv4 or IPv6 address", lc->address);
			else if (lc->tls && e == EADDRINUSE)
				snprintf(err, errlen, "cannot listen for STOMP over TLS on %s:%d: %s (choose another "
				         "port with -o tls_port=N or tls.port)", lc->address ? lc->address : "*", port,
				         strerror(e));
			else
				snprintf(err, errlen, "cannot listen on %s:%d: %s", lc->address ? lc->address : "*",
				         port, strerror(e));
			return -1;
		}
		if (scan && bound != port)
			log_notice("port %d is in use: listening on port %d instead", port, bound);
		l = listener_new(b, accept, lev, bound);
		l->tls = lc->tls;
		snprintf(l->host, sizeof l->host, "%s",
		         (!lc->address || !*lc->address || strcmp(lc->address, "*") == 0) ? "0.0.0.0" : lc->address);
		*tail = l;
		tail = &l->next;
		log_info("listening for STOMP%s on %s:%d", l->tls ? " over TLS" : "", l->host, l->port);
	}
	return open_websocket(b, accept, tail, err, errlen);
}

void listeners_close(struct broker *b)
{
	for (struct listener *l = b->listeners; l; l = l->next)
		evconnlistener_disable(l->lev);
}

void listeners_free(struct broker *b)
{
	struct listener *l = b->listeners, *next;
	ws_free_all();
	for (; l; l = next) {
		next = l->next;
		evconnlistener_free(l->lev);
		event_free(l->resume_ev);
		free(l);
	}
	b->listeners = NULL;
}

const char *listeners_host(struct broker *b)
{
	static char name[256];
	struct listener *l = b->listeners;
	if (l && strcmp(l->host, "0.0.0.0") != 0)
		return l->host;
	/* Bound to every address: jobs on other machines reading the
	 * connection file need a name they can dial, as mqserver gives. */
	if (gethostname(name, sizeof name - 1) == 0 && name[0])
		return name;
	return "127.0.0.1";
}

int listeners_port(struct broker *b, bool tls)
{
	for (struct listener *l = b->listeners; l; l = l->next)
		if (l->tls == tls && !l->ws)
			return l->port;
	return 0;
}
