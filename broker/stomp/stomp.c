/* stomp.c: one handler per client frame, and the server frame writers.
 *
 * Every refusal goes through conn_close() with a message that names what
 * was wrong and in which frame; the ERROR carries receipt-id when the
 * faulty frame asked for a receipt. */
#include "stomp/stomp.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#include "common/frame_write.h"
#include "core/auth.h"
#include "admin/cmd.h"
#include "common/cmdline.h"
#include "core/broker.h"
#include "stomp/conn.h"
#include "core/dest.h"
#include "common/log.h"
#include "core/msg.h"
#include "rules/router.h"
#include "core/sub.h"
#include "net/tls.h"
#include "stomp/txn.h"
#include "common/util.h"

/* Bodies at least this large are handed to the socket by reference
 * instead of being copied into the output buffer. */
#define BODY_BY_REFERENCE 4096

/* ---- writers ---- */

/* Appends "name:value\n", escaped for the connection's version. */
static char *put_hdr(char *w, enum stomp_version v, const char *name, size_t nlen,
                     const char *value, size_t vlen)
{
	memcpy(w, name, nlen);
	w += nlen;
	*w++ = ':';
	w += frame_escape(w, value, vlen, v);
	*w++ = '\n';
	return w;
}

/* The part of every MESSAGE that only depends on the subscription:
 * built once, escaped for the connection's version. */
static void build_prefix(struct conn *c, struct sub *s)
{
	const char *dname = s->shown ? s->shown : s->dest->name;
	size_t sid_len = strlen(s->id), dname_len = strlen(dname);
	char *w = s->prefix = xmalloc(64 + 2 * (sid_len + dname_len));
	memcpy(w, "MESSAGE\n", 8);
	w += 8;
	w = put_hdr(w, c->version, "subscription", 12, s->id, sid_len);
	w = put_hdr(w, c->version, "destination", 11, dname, dname_len);
	s->prefix_len = (uint32_t)(w - s->prefix);
}

static void write_one(struct conn *c, struct sub *s, struct msg *m, uint32_t deliveries);

/* A topic with many subscribers sends them the same frame but for the
 * subscription line: the rest (message-id to the final NUL) is built once
 * per message and copied to each, instead of formatted for each. */
static const char *fanout_tail(struct msg *m, enum stomp_version v, size_t *len)
{
	if (!m->fanout || m->fanout_version != v) {
		size_t hlen;
		const char *hdrs = msg_hdrs_for(m, v, &hlen);
		char *w;
		free(m->fanout);
		w = m->fanout = xmalloc(96 + hlen + m->body_len);
		memcpy(w, "message-id:", 11);
		w += 11;
		w += u64_to_dec(m->id, w);
		memcpy(w, "\ndelivery-count:1\n", 18);
		w += 18;
		memcpy(w, hdrs, hlen);
		w += hlen;
		memcpy(w, "content-length:", 15);
		w += 15;
		w += u64_to_dec(m->body_len, w);
		*w++ = '\n';
		*w++ = '\n';
		memcpy(w, m->body, m->body_len);
		w += m->body_len;
		*w++ = 0;
		m->fanout_len = (uint32_t)(w - m->fanout);
		m->fanout_version = (uint8_t)v;
	}
	*len = m->fanout_len;
	return m->fanout;
}

void stomp_write_message(struct conn *c, struct sub *s, struct msg *m, uint32_t deliveries)
{
	if (s->dest->type == DEST_TOPIC && s->dest->nsubs > 1 && deliveries == 1 &&
	    m->body_len < BODY_BY_REFERENCE && !(m->flags & MSG_RECOVERED)) {
		struct evbuffer *out = conn_output(c);
		size_t tlen;
		const char *tail = fanout_tail(m, c->version, &tlen);
		if (!s->prefix)
			build_prefix(c, s);
		evbuffer_add(out, s->prefix, s->prefix_len);
		if (c->version >= STOMP_1_2 && s->opts.ack != ACK_AUTO) {
			char line[40];
			size_t n = 4;
			memcpy(line, "ack:", 4);
			n += u64_to_dec(m->id, line + 4);
			line[n++] = '\n';
			evbuffer_add(out, line, n);
		}
		evbuffer_add(out, tail, tlen);
		c->frames_out++;
		c->b->stats.frames_out++;
		c->bytes_out += s->prefix_len + tlen;
		c->b->stats.bytes_out += s->prefix_len + tlen;
		conn_wrote(c);
		return;
	}
	write_one(c, s, m, deliveries);
}

static void write_one(struct conn *c, struct sub *s, struct msg *m, uint32_t deliveries)
{
	struct evbuffer *out = conn_output(c);
	enum stomp_version v = c->version;
	size_t hlen, total, n;
	const char *hdrs = msg_hdrs_for(m, v, &hlen);
	char idbuf[24];
	size_t idlen = u64_to_dec(m->id, idbuf);
	char stackbuf[2048], *buf, *w;
	bool inline_body = m->body_len < BODY_BY_REFERENCE;

	if (!s->prefix)
		build_prefix(c, s);
	/* prefix, our headers (ids are digits: never escaped), content-length */
	total = s->prefix_len + 160 + 2 * idlen + hlen + (inline_body ? m->body_len + 1 : 0);
	buf = total <= sizeof stackbuf ? stackbuf : xmalloc(total);
	w = buf;
	memcpy(w, s->prefix, s->prefix_len);
	w += s->prefix_len;
	memcpy(w, "message-id:", 11);
	memcpy(w + 11, idbuf, idlen);
	w += 11 + idlen;
	*w++ = '\n';
	if (v >= STOMP_1_2 && s->opts.ack != ACK_AUTO) {
		memcpy(w, "ack:", 4);
		memcpy(w + 4, idbuf, idlen);
		w += 4 + idlen;
		*w++ = '\n';
	}
	if (deliveries > 1 || (m->flags & MSG_RECOVERED)) {
		memcpy(w, "redelivered:true\n", 17);
		w += 17;
	}
	memcpy(w, "delivery-count:", 15);
	w += 15;
	w += u64_to_dec(deliveries, w);
	*w++ = '\n';
	memcpy(w, hdrs, hlen);
	w += hlen;
	memcpy(w, "content-length:", 15);
	w += 15;
	w += u64_to_dec(m->body_len, w);
	*w++ = '\n';
	*w++ = '\n';
	if (inline_body) {
		memcpy(w, m->body, m->body_len);
		w += m->body_len;
		*w++ = 0;
		n = (size_t)(w - buf);
		evbuffer_add(out, buf, n);
	} else {
		n = (size_t)(w - buf);
		evbuffer_add(out, buf, n);
		/* The output buffer holds a reference until the socket took the
		 * bytes: no copy of a large body, and no use after free. */
		msg_ref(m);
		if (evbuffer_add_reference(out, m->body, m->body_len, msg_unref_cb, m) < 0)
			msg_unref(m);
		evbuffer_add(out, "", 1);
		n += m->body_len + 1;
	}
	if (buf != stackbuf)
		free(buf);
	c->frames_out++;
	c->b->stats.frames_out++;
	c->bytes_out += n;
	c->b->stats.bytes_out += n;
	conn_wrote(c);
}

void stomp_write_receipt(struct conn *c, const char *receipt_id)
{
	struct evbuffer *out = conn_output(c);
	frame_put_cmd(out, CMD_RECEIPT);
	frame_put_header(out, c->version, "receipt-id", receipt_id);
	frame_put_body(out, NULL, 0, false);
	c->frames_out++;
	c->b->stats.frames_out++;
	c->b->stats.receipts++;
	conn_wrote(c);
}

void stomp_write_error(struct conn *c, const char *receipt_id, const char *message, const char *details)
{
	struct evbuffer *out = conn_output(c);
	const char *body = details ? details : message;
	frame_put_cmd(out, CMD_ERROR);
	frame_put_header(out, c->version, "message", message);
	if (receipt_id)
		frame_put_header(out, c->version, "receipt-id", receipt_id);
	frame_put_header(out, c->version, "content-type", "text/plain");
	frame_put_body(out, body, strlen(body), true);
	c->frames_out++;
	c->b->stats.frames_out++;
	c->b->stats.errors_sent++;
	log_info(CONN_FMT ": ERROR: %s", CONN_ARGS(c), message);
}

/* ---- helpers ---- */

static const char *cmd(const struct frame *f) { return frame_cmd_name(f->cmd); }

/* A header that must be there; closes the connection when it is not. */
static const char *required(struct conn *c, const struct frame *f, const char *name, const char *receipt)
{
	/* The known ones are already found; anything else is looked up. */
	const char *v = strcmp(name, "destination") == 0 ? frame_known(f, HDR_DESTINATION)
	              : strcmp(name, "transaction") == 0 ? frame_known(f, HDR_TRANSACTION)
	              : frame_get(f, name);
	if (!v || !*v) {
		conn_close(c, receipt, "%s frame has no %s header", cmd(f), name);
		return NULL;
	}
	return v;
}

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

/* ---- CONNECT / STOMP ---- */

static void handle_connect(struct conn *c, struct frame *f, const char *receipt)
{
	struct broker *b = c->b;
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
		conn_close(c, receipt, "%s frame on a connection that is already connected", cmd(f));
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
		           hb, cmd(f));
		return;
	}
	c->vhost = broker_vhost(b, host);
	if (strcmp(c->transport, "tls") == 0) {
		char cn[256];
		/* A verified certificate says who this is, whatever login the
		 * frame claims. */
		if (tls_peer_cn(c->bev, cn, sizeof cn)) {
			login = NULL;
			free(c->login);
			c->login = xstrdup(cn);
			c->cert_login = true;
			c->authenticated = true;
		}
	}
	if (login && *login) {
		free(c->login);
		c->login = xstrdup(login);
	}
	if (client_id && *client_id)
		c->client_id = xstrdup(client_id);
	if (auth_login(b, c, login, frame_get(f, "passcode"), err, sizeof err) < 0 ||
	    !auth_allow(b, c, AUTHZ_CONNECT, NULL, err, sizeof err)) {
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
		snprintf(session, sizeof session, "%" PRIu64, c->id);
		frame_put_header(out, STOMP_1_0, "session", session);
	}
	frame_put_header(out, STOMP_1_0, "server", "mqbroker/" MQ_VERSION);
	frame_put_body(out, NULL, 0, false);
	c->frames_out++;
	b->stats.frames_out++;
	c->state = CONN_OPEN;
	conn_set_heartbeat(c, send_ms, recv_ms);
	log_info(CONN_FMT ": connected: STOMP %d.%d vhost=%s heart-beat=%u,%u", CONN_ARGS(c),
	         c->version / 10, c->version % 10, c->vhost->name, send_ms, recv_ms);
	{
		char id[24];
		const char *fields[] = { "id", id, "peer", c->peer, "login", c->login ? c->login : "",
		                         "vhost", c->vhost->name, NULL };
		u64_to_dec(c->id, id);
		broker_event(b, "client-connected", fields);
	}
	conn_receipt(c, receipt, 0);
}

/* ---- SEND ---- */

int stomp_deliver(struct conn *c, struct msg *m, struct dest **dests, size_t ndests,
                  const char *receipt, uint64_t *seq)
{
	for (size_t i = 0; ndests > 1 && i < ndests; i++) {
		char err[320];
		if (dest_would_refuse(dests[i], m, err, sizeof err)) {
			c->b->stats.rejected++;
			conn_close(c, receipt, "%s", err);
			return -1;
		}
	}
	for (size_t i = 0; i < ndests; i++) {
		char err[320];
		if (dest_send(dests[i], m, seq, err, sizeof err) == SEND_REJECTED) {
			c->b->stats.rejected++;
			conn_close(c, receipt, "%s", err);
			return -1;
		}
	}
	return 0;
}

static void deferred_shutdown(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	broker_shutdown(arg, "shutdown command");
}

/* SEND /command/NAME: the body holds the arguments. The reply goes to the
 * reply-to destination as a JSON message, or rides on the RECEIPT as
 * status and message headers. A failed command is a reply, not an ERROR:
 * the admin connection stays open. */
static struct dest *send_target(struct conn *c, const char *name, bool *dropped, char *err, size_t errlen);
static bool is_local_temp(const char *name);

static void handle_command_send(struct conn *c, struct frame *f, const char *name, const char *receipt)
{
	struct broker *b = c->b;
	const char *reply_to = frame_known(f, HDR_REPLY_TO);
	char err[320], who[160], reply_err[400] = "";
	struct cmd_reply r;
	struct sbuf line;

	if (!auth_allow(b, c, AUTHZ_ADMIN, NULL, err, sizeof err)) {
		conn_close(c, receipt, "%s: %s", name, err);
		return;
	}
	if (memchr(f->body, 0, f->body_len)) {
		conn_close(c, receipt, "%s: the arguments in the body contain a NUL byte", name);
		return;
	}
	sbuf_init(&line);
	cmdline_quote(&line, name + strlen("/command/"));
	sbuf_addc(&line, ' ');
	sbuf_add(&line, f->body, f->body_len);
	snprintf(who, sizeof who, CONN_FMT, CONN_ARGS(c));
	{
		struct cmd_ctx ctx = { b, true, who };
		cmd_reply_init(&r);
		cmd_exec_line(&ctx, line.buf, &r);
	}
	sbuf_fini(&line);
	if (r.stream)
		cmd_fail(&r, CMD_BAD_ARG, "events: subscribe to /command/events to receive events");
	/* A command that closed its own connection (disconnect of itself)
	 * has released its temporary queues: none may be made again. */
	if (reply_to && *reply_to && (c->state == CONN_OPEN || !is_local_temp(reply_to))) {
		bool dropped;
		struct dest *d = send_target(c, reply_to, &dropped, err, sizeof err);
		const char *corr = frame_get(f, "correlation-id");
		if (!d && !dropped) {
			log_warn(CONN_FMT ": reply of %s to '%s' not sent: %s", CONN_ARGS(c), name, reply_to, err);
			snprintf(reply_err, sizeof reply_err, "%s", err);	/* told on the receipt too */
		}
		if (d) {
			struct sbuf json, hdrs;
			char st[16];
			struct msg *m;
			uint64_t seq = 0;
			sbuf_init(&json);
			sbuf_init(&hdrs);
			cmd_reply_json(&r, &json);
			snprintf(st, sizeof st, "%d", r.status);
			/* header lines in the 1.2 encoding messages keep */
			{
				char tmp[1200];
				size_t n = frame_escape(tmp, r.message, strlen(r.message), STOMP_1_2);
				sbuf_printf(&hdrs, "status:%s\n", st);
				sbuf_adds(&hdrs, "message:");
				sbuf_add(&hdrs, tmp, n);
				sbuf_adds(&hdrs, "\ncontent-type:application/json\n");
				if (corr) {
					n = frame_escape(tmp, corr, MIN(strlen(corr), 500), STOMP_1_2);
					sbuf_adds(&hdrs, "correlation-id:");
					sbuf_add(&hdrs, tmp, n);
					sbuf_addc(&hdrs, '\n');
				}
			}
			m = msg_from_parts(broker_next_msg_id(b), d->name, hdrs.buf, hdrs.len, json.buf, json.len);
			m->timestamp = wall_ms();
			dest_send(d, m, &seq, err, sizeof err);
			msg_unref(m);
			sbuf_fini(&json);
			sbuf_fini(&hdrs);
		}
	}
	if (receipt && c->state == CONN_OPEN) {
		struct evbuffer *out = conn_output(c);
		char status[16];
		snprintf(status, sizeof status, "%d", r.status);
		frame_put_cmd(out, CMD_RECEIPT);
		frame_put_header(out, c->version, "receipt-id", receipt);
		frame_put_header(out, c->version, "status", status);
		frame_put_header(out, c->version, "message", r.message);
		if (reply_err[0])
			frame_put_header(out, c->version, "reply-error", reply_err);
		frame_put_body(out, NULL, 0, false);
		c->frames_out++;
		b->stats.frames_out++;
		b->stats.receipts++;
		conn_wrote(c);
	}
	if (r.shutdown)
		event_base_once(b->base, -1, EV_TIMEOUT, deferred_shutdown, b, NULL);
	cmd_reply_fini(&r);
}

/* ---- temporary queues ----
 * A connection names its temporary queues /temp-queue/NAME; the broker
 * knows each as /temp-queue/c<connection id>.NAME, which is what a
 * reply-to header is rewritten to, so that a responder anywhere can send
 * there while the requester lives. */

#define TEMP_PREFIX "/temp-queue/"

static bool is_global_temp(const char *name)
{
	const char *p = name + strlen(TEMP_PREFIX);
	if (strncmp(name, TEMP_PREFIX, strlen(TEMP_PREFIX)) != 0 || *p != 'c' || !isdigit((unsigned char)p[1]))
		return false;
	for (p++; isdigit((unsigned char)*p); p++)
		;
	return *p == '.';
}

static bool is_local_temp(const char *name)
{
	return strncmp(name, TEMP_PREFIX, strlen(TEMP_PREFIX)) == 0 && name[strlen(TEMP_PREFIX)] &&
	       !is_global_temp(name);
}

/* /temp-queue/c<our id>.NAME: the broker's name for one of our own. */
static bool own_global_temp(const struct conn *c, const char *name)
{
	char prefix[48];
	int n = snprintf(prefix, sizeof prefix, TEMP_PREFIX "c%" PRIu64 ".", c->id);
	return strncmp(name, prefix, (size_t)n) == 0;
}

/* The connection's own queue for a local temporary name, created as needed. */
static struct dest *own_temp_queue(struct conn *c, const char *local, char *err, size_t errlen)
{
	char global[1200];
	struct dest *d;
	snprintf(global, sizeof global, TEMP_PREFIX "c%" PRIu64 ".%.1100s", c->id, local + strlen(TEMP_PREFIX));
	if ((d = strmap_get(&c->temp_queues, global)))
		return d;
	if (!(d = dest_create(c->vhost, global, DEST_QUEUE, NULL, err, errlen)))
		return NULL;
	d->owner = c;
	d->configured = false;
	strmap_put(&c->temp_queues, d->name, d);
	return d;
}

/* Where a SEND to `name` goes: temporary queue names are mapped to the
 * broker's, a topic nobody subscribes to is *dropped, and a bad name is
 * NULL with err. */
static struct dest *send_target(struct conn *c, const char *name, bool *dropped, char *err, size_t errlen)
{
	struct dest *d;
	*dropped = false;
	if (!dest_name_open(name, err, errlen))
		return NULL;
	if (is_local_temp(name))
		return own_temp_queue(c, name, err, errlen);
	if (is_global_temp(name)) {
		/* A reply to a requester that has gone: nobody will read it. */
		if (!(d = dest_find(c->vhost, name)))
			*dropped = true;
		return d;
	}
	return dest_for_send(c->vhost, name, dropped, err, errlen);
}

/* Runs route(msg). Returns false when the message goes no further
 * (dropped: receipt sent; refused: connection closed). */
static bool apply_route(struct conn *c, struct frame *f, const char *name, const char *receipt,
                        struct route_result *rr)
{
	struct broker *b = c->b;
	struct route_msg rm = {
		.destination = name,
		.hdrs = f->hdrs,
		.nhdrs = f->nhdrs,
		.body = f->body,
		.body_len = f->body_len,
		.login = c->login,
		.vhost = c->vhost->name,
		.conn_id = c->id,
	};
	switch (router_route(b->router, &rm, rr)) {
	case ROUTE_DELIVER:
	case ROUTE_REWRITE:
	case ROUTE_FANOUT:
		return true;
	case ROUTE_DROP:
		c->messages_in++;
		b->stats.messages_in++;
		b->stats.dropped++;
		conn_receipt(c, receipt, 0);
		return false;
	case ROUTE_REJECT:
		b->stats.rejected++;
		conn_close(c, receipt, "message to %s rejected: %s", name, rr->error);
		return false;
	case ROUTE_BUDGET:
	case ROUTE_NOMEM:
	case ROUTE_ERROR:
		/* The detail (file:line) is for the operator's log. */
		log_error(CONN_FMT ": route() failed for a message to %s: %s", CONN_ARGS(c), name, rr->error);
		b->stats.rejected++;
		conn_close(c, receipt, "message to %s rejected: the routing rule failed (%s)", name,
		           rr->outcome == ROUTE_BUDGET ? "out of instructions"
		           : rr->outcome == ROUTE_NOMEM ? "out of memory" : "script error");
		return false;
	}
	return false;
}

static void handle_send(struct conn *c, struct frame *f, const char *receipt)
{
	struct broker *b = c->b;
	const char *name = required(c, f, "destination", receipt);
	const char *txname = frame_known(f, HDR_TRANSACTION);
	struct txn *t = NULL;
	struct route_result rr;
	bool routed = false;
	const char *const *targets;
	size_t ntargets;
	struct dest *stack_dests[4], **dests = stack_dests;
	const char *stack_names[4], **names = stack_names;
	size_t ndests = 0;
	struct msg_edit stack_edits[8], *edits = stack_edits;
	size_t nedits = 0;
	struct msg *m = NULL;
	char err[320];
	uint64_t seq = 0;

	if (!name)
		return;
	if (txname && !(t = txn_find(c, txname))) {
		conn_close(c, receipt, "unknown transaction '%s' in SEND frame", txname);
		return;
	}
	if (config_dest_type(&b->cfg, name, NULL) == DEST_COMMAND) {
		if (t) {
			conn_close(c, receipt, "%s: admin commands cannot be part of a transaction", name);
			return;
		}
		handle_command_send(c, f, name, receipt);
		return;
	}
	if (!auth_allow(b, c, AUTHZ_SEND, name, err, sizeof err)) {
		conn_close(c, receipt, "%s", err);
		return;
	}
	targets = &name;
	ntargets = 1;
	if (router_has_route(b->router)) {
		routed = true;
		if (!apply_route(c, f, name, receipt, &rr))
			goto out;
		if (rr.ndests) {
			targets = (const char *const *)rr.dests;
			ntargets = rr.ndests;
		}
	}
	if (ntargets > ARRAY_LEN(stack_dests)) {
		dests = xmalloc(ntargets * sizeof *dests);
		names = xmalloc(ntargets * sizeof *names);
	}
	for (size_t i = 0; i < ntargets; i++) {
		bool dropped;
		struct dest *d = send_target(c, targets[i], &dropped, err, sizeof err);
		if (d) {
			dests[ndests] = d;
			names[ndests++] = d->name;
		} else if (dropped) {
			b->stats.dropped++;
		} else {
			conn_close(c, receipt, "cannot send to '%s': %s", targets[i], err);
			goto out;
		}
	}

	/* Header edits: the route's, then a local reply-to queue's real name. */
	if (routed && rr.nedits + 1 > ARRAY_LEN(stack_edits))
		edits = xmalloc((rr.nedits + 1) * sizeof *edits);
	for (size_t i = 0; routed && i < rr.nedits; i++)
		edits[nedits++] = (struct msg_edit){ rr.edits[i].name, rr.edits[i].value };
	{
		const char *reply_to = frame_known(f, HDR_REPLY_TO);
		if (reply_to && is_local_temp(reply_to)) {
			struct dest *tq = own_temp_queue(c, reply_to, err, sizeof err);
			if (!tq) {
				conn_close(c, receipt, "cannot create reply queue '%s': %s", reply_to, err);
				goto out;
			}
			edits[nedits++] = (struct msg_edit){ "reply-to", tq->name };
		}
	}
	m = msg_new(broker_next_msg_id(b), name, f, edits, nedits);
	m->timestamp = broker_now_ms(b);
	{
		struct msg_asks a;	/* assigned, not initialised: buf stays untouched per SEND */
		a.expires = frame_known(f, HDR_EXPIRES);
		a.ttl = frame_known(f, HDR_EXPIRATION);
		a.persistent = frame_known(f, HDR_PERSISTENT);
		if (!a.ttl)
			a.ttl = frame_known(f, HDR_X_MESSAGE_TTL);
		if (msg_apply_asks(m, &a, routed && rr.nedits, err, sizeof err) < 0) {
			conn_close(c, receipt, "%s in SEND frame", err);
			goto out;
		}
		if (a.persistent && strcmp(a.persistent, "true") == 0)
			m->flags |= MSG_PERSISTENT;
	}
	c->messages_in++;
	b->stats.messages_in++;

	if (t) {
		if (txn_add_send(c, t, m, names, ndests, err, sizeof err) < 0) {
			conn_close(c, receipt, "%s", err);
			goto out;
		}
	} else if (stomp_deliver(c, m, dests, ndests, receipt, &seq) < 0) {
		goto out;
	}
	conn_receipt(c, receipt, seq);
	/* Over the memory high-watermark: this producer waits, consumers drain. */
	if (broker_memory_blocked(b))
		conn_pause_reading(c, true);
out:
	msg_unref(m);
	if (dests != stack_dests) {
		free(dests);
		free(names);
	}
	if (edits != stack_edits)
		free(edits);
	if (routed)
		route_result_fini(&rr);
}

/* ---- SUBSCRIBE / UNSUBSCRIBE ---- */

static int parse_count(struct conn *c, const struct frame *f, const char *name, uint64_t max,
                       uint64_t *out, const char *receipt)
{
	const char *v = frame_get(f, name);
	int64_t n;
	if (!v)
		return 0;
	if (!parse_i64(v, -1, (int64_t)MIN(max, (uint64_t)INT64_MAX), &n)) {
		conn_close(c, receipt, "invalid %s '%s' in SUBSCRIBE frame: expected a number 0..%" PRIu64
		           " (0 or -1: unlimited)",
		           name, v, max);
		return -1;
	}
	*out = n < 0 ? 0 : (uint64_t)n;	/* -1 (Artemis, ActiveMQ) means unlimited */
	return 1;
}

/* Flow control and priority from our headers or the aliases other brokers use. */
static int parse_sub_opts(struct conn *c, const struct frame *f, struct sub_opts *o, const char *receipt)
{
	static const char *const count_names[] = { "max-unconfirmed-messages", "prefetch-count",
	                                           "activemq.prefetchSize" };
	static const char *const prio_names[] = { "consumer-priority", "activemq.priority", "x-priority" };
	const char *v;
	uint64_t n;
	int r;

	for (size_t i = 0; i < ARRAY_LEN(count_names); i++) {
		if ((r = parse_count(c, f, count_names[i], UINT32_MAX, &n, receipt)) < 0)
			return -1;
		if (r) {
			o->max_unacked = (uint32_t)n;
			break;
		}
	}
	if ((r = parse_count(c, f, "max-unconfirmed-bytes", UINT64_MAX, &n, receipt)) < 0)
		return -1;
	if (r)
		o->max_unacked_bytes = n;
	if ((v = frame_get(f, "consumer-window-size"))) {
		/* Artemis: a byte window; 0 means one message at a time. */
		int64_t w;
		if (!parse_i64(v, -1, INT64_MAX, &w)) {
			conn_close(c, receipt, "invalid consumer-window-size '%s' in SUBSCRIBE frame: expected a byte count", v);
			return -1;
		}
		if (w == 0)
			o->max_unacked = 1;
		else if (w > 0)
			o->max_unacked_bytes = (uint64_t)w;
	}
	if ((v = frame_get(f, "credit"))) {
		/* Apollo: "messages[,bytes]" */
		char a[24];
		const char *comma = strchr(v, ',');
		size_t len = comma ? (size_t)(comma - v) : strlen(v);
		uint64_t msgs, bytes = 0;
		if (len >= sizeof a || (memcpy(a, v, len), a[len] = 0, !parse_u64(a, 0, UINT32_MAX, &msgs)) ||
		    (comma && !parse_u64(comma + 1, 0, UINT64_MAX, &bytes))) {
			conn_close(c, receipt, "invalid credit '%s' in SUBSCRIBE frame: expected messages[,bytes]", v);
			return -1;
		}
		o->max_unacked = (uint32_t)msgs;
		if (comma)
			o->max_unacked_bytes = bytes;
	}
	for (size_t i = 0; i < ARRAY_LEN(prio_names); i++) {
		int64_t p;
		if (!(v = frame_get(f, prio_names[i])))
			continue;
		if (!parse_i64(v, -1000000, 1000000, &p)) {
			conn_close(c, receipt, "invalid %s '%s' in SUBSCRIBE frame: expected an integer", prio_names[i], v);
			return -1;
		}
		o->priority = (int)p;
		break;
	}
	return 0;
}

/* A durable topic subscription, by any broker's spelling: ActiveMQ's
 * activemq.subscriptionName, Artemis's durable-subscription-name, or
 * RabbitMQ's persistent:true (or durable:true) with the id as the name.
 * The key scopes the name by client-id (else login). */
static bool durable_name(struct conn *c, const struct frame *f, const char *id, char *key, size_t len)
{
	const char *name = frame_get(f, "activemq.subscriptionName");
	const char *v;
	if (!name)
		name = frame_get(f, "durable-subscription-name");
	if (!name && (((v = frame_known(f, HDR_PERSISTENT)) && strcmp(v, "true") == 0) ||
	              ((v = frame_get(f, "durable")) && strcmp(v, "true") == 0)))
		name = id;
	if (!name || !*name)
		return false;
	snprintf(key, len, "%s:%s", c->client_id ? c->client_id : c->login ? c->login : "", name);
	return true;
}

static void handle_subscribe(struct conn *c, struct frame *f, const char *receipt)
{
	struct broker *b = c->b;
	const char *name = required(c, f, "destination", receipt);
	const char *id = frame_known(f, HDR_ID);
	const char *ack = frame_known(f, HDR_ACK);
	struct sub_opts o = { .ack = ACK_AUTO };
	struct sub *s;
	struct dest *d;
	enum dest_type type;
	char err[320], durable_key[600];

	if (!name)
		return;
	if (!id || !*id) {
		if (c->version >= STOMP_1_1) {
			conn_close(c, receipt, "SUBSCRIBE frame has no id header");
			return;
		}
		id = name;	/* 1.0: the destination names the subscription */
	}
	if (ack && *ack) {
		if (strcmp(ack, "auto") == 0)
			o.ack = ACK_AUTO;
		else if (strcmp(ack, "client") == 0)
			o.ack = ACK_CLIENT;
		else if (strcmp(ack, "client-individual") == 0)
			o.ack = ACK_CLIENT_INDIVIDUAL;
		else {
			conn_close(c, receipt, "invalid ack '%s' in SUBSCRIBE frame: expected auto, client or client-individual", ack);
			return;
		}
	}
	if (parse_sub_opts(c, f, &o, receipt) < 0)
		return;

	if ((s = strmap_get(&c->subs, id))) {
		/* The same id again on the same destination changes flow
		 * control in place (the client library's configure). */
		const char *was = s->shown ? s->shown : s->dest->name;
		if (strcmp(was, name) != 0 || s->opts.ack != o.ack) {
			conn_close(c, receipt, "subscription id '%s' is already in use for %s", id, was);
			return;
		}
		sub_configure(s, &o);
		conn_receipt(c, receipt, 0);
		return;
	}
	if ((int)c->subs.count >= b->cfg.max_subscriptions) {
		conn_close(c, receipt, "too many subscriptions on this connection: %zu (limit %d)",
		           c->subs.count, b->cfg.max_subscriptions);
		return;
	}
	if (!dest_name_open(name, err, sizeof err)) {
		conn_close(c, receipt, "cannot subscribe to %s", err);
		return;
	}
	if (is_global_temp(name) && !own_global_temp(c, name)) {
		conn_close(c, receipt, "cannot subscribe to %s: that temporary queue belongs to another connection", name);
		return;
	}
	d = dest_find(c->vhost, name);
	type = d ? d->type : config_dest_type(&b->cfg, name, NULL);
	if (type == DEST_TOPIC && durable_name(c, f, id, durable_key, sizeof durable_key)) {
		if (!auth_allow(b, c, AUTHZ_SUBSCRIBE, name, err, sizeof err)) {
			conn_close(c, receipt, "%s", err);
			return;
		}
		if (!(d = dest_get(c->vhost, name, err, sizeof err)) ||
		    !(d = durable_get(d, durable_key, err, sizeof err))) {
			conn_close(c, receipt, "cannot subscribe durably to '%s': %s", name, err);
			return;
		}
		conn_receipt(c, receipt, 0);
		sub_new(c, d, id, &o, name);
		return;
	}
	if (is_local_temp(name) || is_global_temp(name)) {
		char local[1200];
		if (is_global_temp(name)) {	/* our own, checked above, by its broker-wide name */
			snprintf(local, sizeof local, TEMP_PREFIX "%.1100s", strchr(name + strlen(TEMP_PREFIX), '.') + 1);
			d = own_temp_queue(c, local, err, sizeof err);
		} else {
			d = own_temp_queue(c, name, err, sizeof err);
		}
		if (!d) {
			conn_close(c, receipt, "cannot subscribe to '%s': %s", name, err);
			return;
		}
		conn_receipt(c, receipt, 0);
		sub_new(c, d, id, &o, name);
		return;
	}
	if (type == DEST_PUBSUB) {
		conn_close(c, receipt, "cannot subscribe to pubsub %s: subscribe to one of its child queues", name);
		return;
	}
	if (type == DEST_COMMAND) {
		if (d != b->events_dest) {
			conn_close(c, receipt, "cannot subscribe to %s: of the command destinations only %s can be "
			           "subscribed to", name, b->events_dest->name);
			return;
		}
		if (!auth_allow(b, c, AUTHZ_ADMIN, NULL, err, sizeof err)) {
			conn_close(c, receipt, "%s: %s", name, err);
			return;
		}
		conn_receipt(c, receipt, 0);
		sub_new(c, d, id, &o, NULL);
		return;
	}
	if (!auth_allow(b, c, AUTHZ_SUBSCRIBE, name, err, sizeof err)) {
		conn_close(c, receipt, "%s", err);
		return;
	}
	if (!d && !(d = dest_get(c->vhost, name, err, sizeof err))) {
		conn_close(c, receipt, "cannot subscribe to '%s': %s", name, err);
		return;
	}
	/* Receipt first: messages already waiting follow it. */
	conn_receipt(c, receipt, 0);
	sub_new(c, d, id, &o, NULL);
}

static void handle_unsubscribe(struct conn *c, struct frame *f, const char *receipt)
{
	const char *id = frame_known(f, HDR_ID);
	struct sub *s;
	if ((!id || !*id) && c->version == STOMP_1_0)
		id = frame_known(f, HDR_DESTINATION);
	if (!id || !*id) {
		conn_close(c, receipt, "UNSUBSCRIBE frame has no id header");
		return;
	}
	if (!(s = strmap_get(&c->subs, id))) {
		conn_close(c, receipt, "unknown subscription '%s' in UNSUBSCRIBE frame", id);
		return;
	}
	{
		/* UNSUBSCRIBE carrying the durable headers ends the durable
		 * subscription itself; a plain one only detaches this consumer. */
		struct dest *d = s->dest;
		char key[600], err[256];
		bool end_durable = d->durable_topic && durable_name(c, f, id, key, sizeof key) &&
		                   durable_find(c->vhost, key) == d;
		sub_free(s);
		if (end_durable)
			dest_delete(d, true, err, sizeof err);
	}
	conn_receipt(c, receipt, 0);
}

/* ---- ACK / NACK ---- */

static void handle_ack(struct conn *c, struct frame *f, const char *receipt)
{
	bool nack = f->cmd == CMD_NACK;
	/* 1.2 names the ack header's value id, 1.0 and 1.1 use message-id;
	 * since ack equals message-id here, either works in every version. */
	const char *id = frame_known(f, HDR_ID);
	const char *sub_id = frame_known(f, HDR_SUBSCRIPTION);
	const char *txname = frame_known(f, HDR_TRANSACTION);
	struct delivery *d;
	struct txn *t = NULL;
	char err[320];

	if (!id || !*id)
		id = frame_known(f, HDR_MESSAGE_ID);
	if (!id || !*id) {
		conn_close(c, receipt, "%s frame has no id header", cmd(f));
		return;
	}
	if (sub_id && !strmap_get(&c->subs, sub_id)) {
		conn_close(c, receipt, "unknown subscription '%s' in %s frame", sub_id, cmd(f));
		return;
	}
	if (txname && !(t = txn_find(c, txname))) {
		if (!c->b->cfg.lenient_transactions) {
			conn_close(c, receipt, "unknown transaction '%s' in %s frame", txname, cmd(f));
			return;
		}
		/* stomp.py as DIRAC uses it puts the subscription id in the
		 * transaction header of every ACK: do the ACK, count it. */
		c->b->stats.lenient_acks++;
	}
	d = conn_find_delivery(c, id, sub_id);
	if (!d) {
		conn_close(c, receipt, "unknown message id '%s' in %s frame: not delivered on this connection, "
		           "already acknowledged, or from an auto-ack subscription", id, cmd(f));
		return;
	}
	if (t) {
		if (txn_add_ack(c, t, id, sub_id, nack, err, sizeof err) < 0) {
			conn_close(c, receipt, "%s", err);
			return;
		}
	} else if (nack) {
		sub_nack(d, d->sub->opts.ack == ACK_CLIENT);
	} else {
		sub_ack(d, d->sub->opts.ack == ACK_CLIENT);
	}
	conn_receipt(c, receipt, 0);
}

/* ---- transactions ---- */

static void handle_begin(struct conn *c, struct frame *f, const char *receipt)
{
	const char *name = required(c, f, "transaction", receipt);
	char err[320];
	if (!name)
		return;
	if (!txn_begin(c, name, err, sizeof err)) {
		conn_close(c, receipt, "%s in BEGIN frame", err);
		return;
	}
	conn_receipt(c, receipt, 0);
}

static void handle_commit_abort(struct conn *c, struct frame *f, const char *receipt)
{
	const char *name = required(c, f, "transaction", receipt);
	struct txn *t;
	uint64_t seq = 0;
	if (!name)
		return;
	if (!(t = txn_find(c, name))) {
		conn_close(c, receipt, "unknown transaction '%s' in %s frame", name, cmd(f));
		return;
	}
	if (f->cmd == CMD_COMMIT) {
		if (txn_commit(c, t, receipt, &seq) < 0)
			return;
	} else {
		txn_abort(c, t);
	}
	conn_receipt(c, receipt, seq);
}

/* ---- DISCONNECT and frames a client must not send ---- */

static void handle_disconnect(struct conn *c, struct frame *f, const char *receipt)
{
	(void)f;
	/* The RECEIPT goes out before the close, as the spec asks. */
	conn_receipt(c, receipt, 0);
	conn_close_quiet(c, "client sent DISCONNECT");
}

static void handle_server_frame(struct conn *c, struct frame *f, const char *receipt)
{
	conn_close(c, receipt, "unexpected %s frame: only a server sends it", cmd(f));
}

typedef void (*handler_fn)(struct conn *, struct frame *, const char *);

static const handler_fn handlers[CMD_COUNT] = {
	[CMD_CONNECT] = handle_connect,
	[CMD_STOMP] = handle_connect,
	[CMD_SEND] = handle_send,
	[CMD_SUBSCRIBE] = handle_subscribe,
	[CMD_UNSUBSCRIBE] = handle_unsubscribe,
	[CMD_ACK] = handle_ack,
	[CMD_NACK] = handle_ack,
	[CMD_BEGIN] = handle_begin,
	[CMD_COMMIT] = handle_commit_abort,
	[CMD_ABORT] = handle_commit_abort,
	[CMD_DISCONNECT] = handle_disconnect,
	[CMD_CONNECTED] = handle_server_frame,
	[CMD_MESSAGE] = handle_server_frame,
	[CMD_RECEIPT] = handle_server_frame,
	[CMD_ERROR] = handle_server_frame,
};

void stomp_handle(struct conn *c, struct frame *f)
{
	const char *receipt = frame_known(f, HDR_RECEIPT);
	if (receipt && !*receipt)
		receipt = NULL;
	if (c->state == CONN_HANDSHAKE && f->cmd != CMD_CONNECT && f->cmd != CMD_STOMP) {
		conn_close(c, receipt, "expected CONNECT or STOMP as the first frame, got %s", cmd(f));
		return;
	}
	if (log_enabled(LOG_DEBUG))
		log_debug(CONN_FMT ": %s frame, %u headers, %zu body bytes", CONN_ARGS(c), cmd(f), f->nhdrs,
		          f->body_len);
	handlers[f->cmd](c, f, receipt);
}

void stomp_release_temp_queues(struct conn *c)
{
	size_t it = 0;
	void *v;
	char err[256];
	while (c->temp_queues.count) {
		it = 0;
		if (!strmap_next(&c->temp_queues, &it, NULL, &v))
			break;
		struct dest *d = v;
		strmap_del(&c->temp_queues, d->name);
		d->owner = NULL;
		d->configured = false;
		dest_delete(d, true, err, sizeof err);
	}
}
