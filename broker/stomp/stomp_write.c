/* stomp_write.c: the frames the broker sends (MESSAGE, RECEIPT, ERROR),
 * written with the codec's encoder (common/frame_write.h).
 *
 * MESSAGE is the hot one: a delivery is encoded in one pass, on the
 * stack when it is small and then added with one copy, or straight into
 * space reserved in the output buffer. What depends only on the
 * subscription (its id and destination, escaped for the connection's
 * version) is built once per subscription (sub->head); what depends only
 * on the message is built once per message for a topic's many
 * subscribers (msg->wire). Bodies of 4 KiB or more are not copied: the
 * output buffer references them and holds a message reference until the
 * socket has taken the bytes. */
#include "stomp/stomp.h"

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "common/frame_write.h"
#include "common/log.h"
#include "common/util.h"
#include "core/broker.h"
#include "core/dest.h"
#include "core/msg.h"
#include "core/sub.h"
#include "stomp/conn.h"

/* Bodies at least this large are handed to the socket by reference
 * instead of being copied into the output buffer. */
#define BODY_BY_REFERENCE 4096

/* "MESSAGE\nsubscription:..\ndestination:..\n", escaped for the
 * connection's version: the part of every MESSAGE that depends only on
 * the subscription. */
static void build_head(struct conn *c, struct sub *s)
{
	const char *dname = s->shown ? s->shown : s->dest->name;
	size_t sid_len = strlen(s->id), dname_len = strlen(dname);
	struct frame_writer w;
	s->head = xmalloc(32 + FW_HDR_BOUND(12, sid_len) + FW_HDR_BOUND(11, dname_len));
	fw_begin_mem(&w, s->head, c->version);
	fw_raw(&w, "MESSAGE\n", 8);
	fw_hdr(&w, "subscription", 12, s->id, sid_len);
	fw_hdr(&w, "destination", 11, dname, dname_len);
	s->head_len = (uint32_t)fw_end(&w);
}

/* A topic with many subscribers sends them the same frame but for the
 * head: the rest (message-id to the final NUL) is encoded once per
 * message and copied to each, instead of formatted for each. */
static const char *wire_tail(struct msg *m, enum stomp_version v, size_t *len)
{
	if (!m->wire || m->wire_version != v) {
		size_t hlen;
		const char *hdrs = msg_hdrs_for(m, v, &hlen);
		struct frame_writer w;
		free(m->wire);
		m->wire = xmalloc(96 + hlen + m->body_len);
		fw_begin_mem(&w, m->wire, v);
		fw_raw(&w, "message-id:", 11);
		fw_u64(&w, m->id);
		fw_raw(&w, "\ndelivery-count:1\n", 18);
		fw_raw(&w, hdrs, hlen);
		fw_raw(&w, "content-length:", 15);
		fw_u64(&w, m->body_len);
		fw_raw(&w, "\n\n", 2);
		fw_raw(&w, m->body, m->body_len);
		fw_char(&w, 0);
		m->wire_len = (uint32_t)fw_end(&w);
		m->wire_version = (uint8_t)v;
	}
	*len = m->wire_len;
	return m->wire;
}

static void counted(struct conn *c, size_t n)
{
	c->frames_out++;
	c->b->stats.frames_out++;
	c->bytes_out += n;
	c->b->stats.bytes_out += n;
	conn_wrote(c);
}

static void write_shared(struct conn *c, struct sub *s, struct msg *m)
{
	size_t tlen;
	const char *tail = wire_tail(m, c->version, &tlen);
	struct frame_writer w;
	char stackbuf[2048];
	size_t bound = s->head_len + 8 + FW_U64_MAX + tlen, n;
	if (bound <= sizeof stackbuf)
		fw_begin_mem(&w, stackbuf, c->version);
	else
		fw_begin(&w, conn_output(c), bound, c->version);
	fw_raw(&w, s->head, s->head_len);
	if (c->version >= STOMP_1_2 && s->opts.ack != ACK_AUTO) {
		fw_raw(&w, "ack:", 4);
		fw_u64(&w, m->id);
		fw_char(&w, '\n');
	}
	fw_raw(&w, tail, tlen);
	n = fw_end(&w);
	if (!w.out)
		evbuffer_add(conn_output(c), stackbuf, n);
	counted(c, n);
}

void stomp_write_message(struct conn *c, struct sub *s, struct msg *m, uint32_t deliveries)
{
	enum stomp_version v = c->version;
	size_t hlen, n, bound;
	const char *hdrs;
	bool inline_body = m->body_len < BODY_BY_REFERENCE;
	struct frame_writer w;
	char stackbuf[2048];

	if (!s->head)
		build_head(c, s);
	if (s->dest && s->dest->type == DEST_TOPIC && s->dest->nsubs > 1 && deliveries == 1 && inline_body &&
	    !(m->flags & MSG_RECOVERED)) {
		write_shared(c, s, m);
		return;
	}
	hdrs = msg_hdrs_for(m, v, &hlen);
	/* the head, our headers (ids are digits: never escaped), content-length */
	bound = s->head_len + 128 + 3 * FW_U64_MAX + hlen + (inline_body ? m->body_len + 1 : 0);
	/* A small frame is built on the stack and added in one copy: a
	 * reservation of its generous bound would often start a new chain
	 * and leave the last one's tail unused. */
	if (bound <= sizeof stackbuf)
		fw_begin_mem(&w, stackbuf, v);
	else
		fw_begin(&w, conn_output(c), bound, v);
	fw_raw(&w, s->head, s->head_len);
	fw_raw(&w, "message-id:", 11);
	fw_u64(&w, m->id);
	fw_char(&w, '\n');
	if (v >= STOMP_1_2 && s->opts.ack != ACK_AUTO) {
		fw_raw(&w, "ack:", 4);
		fw_u64(&w, m->id);
		fw_char(&w, '\n');
	}
	if (deliveries > 1 || (m->flags & MSG_RECOVERED))
		fw_raw(&w, "redelivered:true\n", 17);
	fw_raw(&w, "delivery-count:", 15);
	fw_u64(&w, deliveries);
	fw_char(&w, '\n');
	fw_raw(&w, hdrs, hlen);
	fw_raw(&w, "content-length:", 15);
	fw_u64(&w, m->body_len);
	fw_raw(&w, "\n\n", 2);
	if (inline_body) {
		fw_raw(&w, m->body, m->body_len);
		fw_char(&w, 0);
		n = fw_end(&w);
		if (!w.out)
			evbuffer_add(conn_output(c), stackbuf, n);
	} else {
		struct evbuffer *out = conn_output(c);
		n = fw_end(&w);
		if (!w.out)
			evbuffer_add(out, stackbuf, n);
		/* The output buffer holds a reference until the socket took the
		 * bytes: no copy of a large body, and no use after free. */
		msg_ref(m);
		if (evbuffer_add_reference(out, m->body, m->body_len, msg_unref_cb, m) < 0)
			msg_unref(m);
		evbuffer_add(out, "", 1);
		n += m->body_len + 1;
	}
	counted(c, n);
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
