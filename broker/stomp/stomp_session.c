/* stomp_session.c: CONNECT (and STOMP), which opens a session: protocol
 * version, heart-beats, virtual host, login; and DISCONNECT. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/frame_write.h"
#include "common/util.h"
#include "core/auth.h"
#include "core/broker.h"
#include "core/msg.h"
#include "net/tls.h"
#include "stomp/conn.h"
#include "stomp/handlers.h"

static bool version_offered(const char *list, const char *v)
{
	size_t n = strlen(v);
	const char *p = list;
	while (p && *p) {
		while (*p == ' ' || *p == ',')
			p++;
		if (strncmp(p, v, n) == 0 && (p[n] == 0 || p[n] == ',' || p[n] == ' '))
			return true;
		p = strchr(p, ',');
	}
	return false;
}

/* "cx,cy" from the client; 0,0 when absent. -1 when malformed. */
static int parse_heartbeat(const char *s, uint64_t *cx, uint64_t *cy)
{
	char a[24], *comma;
	*cx = *cy = 0;
	if (!s)
		return 0;
	comma = strchr(s, ',');
	if (!comma || (size_t)(comma - s) >= sizeof a)
		return -1;
	memcpy(a, s, (size_t)(comma - s));
	a[comma - s] = 0;
	if (!parse_u64(a, 0, UINT32_MAX, cx) || !parse_u64(comma + 1, 0, UINT32_MAX, cy))
		return -1;
	return 0;
}

/* A CONNECT whose login is being checked (auth.h): what the answer needs.
 * The connection reads nothing meanwhile. */
struct connect_wait {
	struct auth_wait *auth;		/* the check under way */
	enum stomp_version version;
	uint64_t cx, cy;		/* the client's heart-beat */
	char *receipt;			/* owned */
	char *host;			/* owned; NULL without the header */
};

static void connect_wait_free(struct connect_wait *cw)
{
	if (!cw)
		return;
	free(cw->receipt);
	free(cw->host);
	free(cw);
}

/* The login is settled: the virtual host, the right to connect, CONNECTED. */
static void finish_connect(struct conn *c, struct connect_wait *cw, int rc, const char *why)
{
	struct broker *b = c->b;
	struct principal *who = &c->sink.who;
	uint32_t send_ms = 0, recv_ms = 0;
	char err[400];
	struct evbuffer *out;
	struct vhost *vh;

	if (rc < 0) {
		b->stats.connections_refused++;
		conn_close(c, cw->receipt, "%s", why);
		return;
	}
	if (!(vh = auth_connect_vhost(b, cw->host, err, sizeof err))) {
		b->stats.connections_refused++;
		conn_close(c, cw->receipt, "%s", err);
		return;
	}
	who->vhost = vh;
	if (!auth_allow(b, who, AUTHZ_CONNECT, NULL, err, sizeof err)) {
		b->stats.connections_refused++;
		conn_close(c, cw->receipt, "%s", err);
		return;
	}

	/* Heart-beats: we agree to what the client asks, no faster than our
	 * minimum. We send every max(cy, min) and expect every max(cx, min). */
	if (cw->version >= STOMP_1_1) {
		uint32_t min = (uint32_t)b->cfg.heartbeat_min_ms;
		if (cw->cy)
			send_ms = (uint32_t)MAX(cw->cy, min);
		if (cw->cx)
			recv_ms = (uint32_t)MAX(cw->cx, min);
	}

	c->version = cw->version;
	out = conn_output(c);
	frame_put_cmd(out, CMD_CONNECTED);
	if (c->version >= STOMP_1_1) {
		char hbv[48];
		frame_put_header(out, STOMP_1_0, "version", c->version == STOMP_1_2 ? "1.2" : "1.1");
		snprintf(hbv, sizeof hbv, "%u,%u", send_ms, recv_ms);
		frame_put_header(out, STOMP_1_0, "heart-beat", hbv);
	}
	{
		char session[32];
		snprintf(session, sizeof session, "%" PRIu64, c->sink.id);
		frame_put_header(out, STOMP_1_0, "session", session);
	}
	frame_put_header(out, STOMP_1_0, "server", "mqbroker/" MQ_VERSION);
	/* For bridges: a forwarder does not send a message back to a broker
	 * its mq-via header names (docs/bridges.md). */
	frame_put_header(out, STOMP_1_0, "broker-id", b->id);
	frame_put_body(out, NULL, 0, false);
	c->frames_out++;
	b->stats.frames_out++;
	conn_opened(c);
	conn_set_heartbeat(c, send_ms, recv_ms);
	log_info(CONN_FMT ": connected: STOMP %d.%d vhost=%s heart-beat=%u,%u", CONN_ARGS(c),
	         c->version / 10, c->version % 10, who->vhost->name, send_ms, recv_ms);
	{
		char id[24];
		const char *fields[] = { "id", id, "peer", who->peer, "login", who->login ? who->login : "",
		                         "vhost", who->vhost->name, NULL };
		u64_to_dec(c->sink.id, id);
		broker_event(b, "client-connected", fields);
	}
	conn_receipt(c, cw->receipt, 0);
}

/* The verifier (or the peer's delay) answered a login that waited. */
static void login_done(int rc, const char *err, void *arg)
{
	struct conn *c = arg;
	struct connect_wait *cw = c->connect_wait;
	cw->auth = NULL;
	c->connect_wait = NULL;
	finish_connect(c, cw, rc, err);
	connect_wait_free(cw);
	if (c->state == CONN_OPEN) {
		/* Frames the client sent after its CONNECT wait in the input. */
		bufferevent_enable(c->bev, EV_READ);
		if (evbuffer_get_length(bufferevent_get_input(c->bev)))
			bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
	}
}

void stomp_connect_abandon(struct conn *c)
{
	struct connect_wait *cw = c->connect_wait;
	if (!cw)
		return;
	auth_wait_cancel(c->b, cw->auth);
	c->connect_wait = NULL;
	connect_wait_free(cw);
}

void handle_connect(struct conn *c, struct frame *f, const char *receipt)
{
	struct broker *b = c->b;
	struct principal *who = &c->sink.who;
	const char *accept = frame_get(f, "accept-version");
	const char *host = frame_get(f, "host");
	const char *login = frame_get(f, "login");
	const char *hb = frame_get(f, "heart-beat");
	const char *client_id = frame_get(f, "client-id");
	struct connect_wait *cw;
	char err[400];
	struct evbuffer *out;
	int rc;

	if (c->state != CONN_HANDSHAKE) {
		conn_close(c, receipt, "%s frame on a connection that is already connected", stomp_cmd(f));
		return;
	}
	cw = xcalloc(1, sizeof *cw);
	/* Until CONNECTED goes out the client cannot know the version, so an
	 * ERROR before it is written unescaped, as 1.0. */
	if (!accept || !*accept) {
		cw->version = STOMP_1_0;	/* no accept-version: a 1.0 client */
	} else if (version_offered(accept, "1.2")) {
		cw->version = STOMP_1_2;
	} else if (version_offered(accept, "1.1")) {
		cw->version = STOMP_1_1;
	} else if (version_offered(accept, "1.0")) {
		cw->version = STOMP_1_0;
	} else {
		out = conn_output(c);
		/* The ERROR lists what we speak, as the 1.1 and 1.2 specs ask. */
		frame_put_cmd(out, CMD_ERROR);
		frame_put_header(out, STOMP_1_0, "version", "1.0,1.1,1.2");
		snprintf(err, sizeof err, "no supported protocol version in accept-version '%s'; supported: 1.0,1.1,1.2",
		         accept);
		frame_put_header(out, STOMP_1_0, "message", err);
		frame_put_header(out, STOMP_1_0, "content-type", "text/plain");
		frame_put_body(out, err, strlen(err), true);
		b->stats.errors_sent++;
		conn_close_quiet(c, err);
		connect_wait_free(cw);
		return;
	}
	if (parse_heartbeat(hb, &cw->cx, &cw->cy) < 0) {
		conn_close(c, receipt, "invalid heart-beat '%s' in %s frame: expected two numbers, e.g. 10000,10000",
		           hb, stomp_cmd(f));
		connect_wait_free(cw);
		return;
	}
	cw->receipt = receipt ? xstrdup(receipt) : NULL;
	cw->host = host ? xstrdup(host) : NULL;
	if (strcmp(c->sink.transport, "tls") == 0) {
		char cn[256];
		/* A verified certificate says who this is, whatever login the
		 * frame claims. */
		if (tls_peer_cn(c->bev, cn, sizeof cn)) {
			login = NULL;
			principal_set_login(who, cn);
			who->cert_login = true;
		}
	}
	if (client_id && *client_id)
		c->sink.client_id = xstrdup(client_id);
	rc = auth_login(b, who, login, frame_get(f, "passcode"), login_done, c, &cw->auth, err, sizeof err);
	if (rc == AUTH_PENDING) {
		/* Nothing more is read until the answer: the frames after
		 * CONNECT must not run before it is accepted. */
		c->connect_wait = cw;
		bufferevent_disable(c->bev, EV_READ);
		return;
	}
	finish_connect(c, cw, rc, err);
	connect_wait_free(cw);
}

void handle_disconnect(struct conn *c, struct frame *f, const char *receipt)
{
	(void)f;
	/* The RECEIPT goes out before the close, as the spec asks (after
	 * every receipt still waiting for the journal). */
	conn_receipt(c, receipt, 0);
	conn_close_quiet(c, "client sent DISCONNECT");
}
