/* stomp_session.c: CONNECT (and STOMP), which opens a session: protocol
 * version, heart-beats, virtual host, login; and DISCONNECT. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

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

void handle_connect(struct conn *c, struct frame *f, const char *receipt)
{
	struct broker *b = c->b;
	struct principal *who = &c->sink.who;
	const char *accept = frame_get(f, "accept-version");
	const char *host = frame_get(f, "host");
	const char *login = frame_get(f, "login");
	const char *hb = frame_get(f, "heart-beat");
	const char *client_id = frame_get(f, "client-id");
	uint64_t cx, cy;
	uint32_t send_ms = 0, recv_ms = 0;
	char err[320];
	struct evbuffer *out;
	/* Until CONNECTED goes out the client cannot know the version, so an
	 * ERROR before it is written unescaped, as 1.0. */
	enum stomp_version version;

	if (c->state != CONN_HANDSHAKE) {
		conn_close(c, receipt, "%s frame on a connection that is already connected", stomp_cmd(f));
		return;
	}
	if (!accept || !*accept) {
		version = STOMP_1_0;	/* no accept-version: a 1.0 client */
	} else if (version_offered(accept, "1.2")) {
		version = STOMP_1_2;
	} else if (version_offered(accept, "1.1")) {
		version = STOMP_1_1;
	} else if (version_offered(accept, "1.0")) {
		version = STOMP_1_0;
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
		return;
	}
	if (parse_heartbeat(hb, &cx, &cy) < 0) {
		conn_close(c, receipt, "invalid heart-beat '%s' in %s frame: expected two numbers, e.g. 10000,10000",
		           hb, stomp_cmd(f));
		return;
	}
	who->vhost = broker_vhost(b, host);
	if (strcmp(c->sink.transport, "tls") == 0) {
		char cn[256];
		/* A verified certificate says who this is, whatever login the
		 * frame claims. */
		if (tls_peer_cn(c->bev, cn, sizeof cn)) {
			login = NULL;
			principal_set_login(who, cn);
			who->cert_login = true;
			who->authenticated = true;
		}
	}
	if (login && *login)
		principal_set_login(who, login);
	if (client_id && *client_id)
		c->sink.client_id = xstrdup(client_id);
	if (auth_login(b, who, login, frame_get(f, "passcode"), err, sizeof err) < 0 ||
	    !auth_allow(b, who, AUTHZ_CONNECT, NULL, err, sizeof err)) {
		b->stats.connections_refused++;
		conn_close(c, receipt, "%s", err);
		return;
	}

	/* Heart-beats: we agree to what the client asks, no faster than our
	 * minimum. We send every max(cy, min) and expect every max(cx, min). */
	if (version >= STOMP_1_1) {
		uint32_t min = (uint32_t)b->cfg.heartbeat_min_ms;
		if (cy)
			send_ms = (uint32_t)MAX(cy, min);
		if (cx)
			recv_ms = (uint32_t)MAX(cx, min);
	}

	c->version = version;
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
	conn_receipt(c, receipt, 0);
}

void handle_disconnect(struct conn *c, struct frame *f, const char *receipt)
{
	(void)f;
	/* The RECEIPT goes out before the close, as the spec asks (after
	 * every receipt still waiting for the journal). */
	conn_receipt(c, receipt, 0);
	conn_close_quiet(c, "client sent DISCONNECT");
}
