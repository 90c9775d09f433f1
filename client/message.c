/* message.c: received messages, their references, and ACK/NACK.
 *
 * The message on_message sees is borrowed: it points into the frame that
 * frame_parse decoded in the input buffer, so delivering costs no copy and
 * no allocation. mq_message_ref() is the only place that copies, into one
 * allocation holding the struct, the header table, the strings and the
 * body, for consumers that confirm later. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "client_int.h"
#include "common/util.h"

static const char *lookup(const struct frame_hdr *h, size_t n, const char *name)
{
	size_t len = strlen(name);
	for (size_t i = 0; i < n; i++)
		if (h[i].name_len == len && memcmp(h[i].name, name, len) == 0)
			return h[i].value;
	return NULL;
}

void client_message_fill(struct mq_message *m, struct frame_hdr *hdrs, size_t nhdrs)
{
	const char *v;
	m->hdrs = hdrs;
	m->nhdrs = nhdrs;
	m->dest = (v = lookup(hdrs, nhdrs, "destination")) ? v : "";
	m->sub = (v = lookup(hdrs, nhdrs, "subscription")) ? v : "";
	m->id = (v = lookup(hdrs, nhdrs, "message-id")) ? v : "";
	/* 1.2 acknowledges by the ack header; earlier versions by message-id. */
	m->ack = m->ver >= STOMP_1_2 && (v = lookup(hdrs, nhdrs, "ack")) ? v : m->id;
	v = lookup(hdrs, nhdrs, "redelivered");
	m->redelivered = v && strcmp(v, "true") == 0;
}

static struct mq_message *copy_message(const struct mq_message *m, bool with_body)
{
	size_t blen = with_body ? m->len : 0;
	size_t need = sizeof(struct mq_message) + m->nhdrs * sizeof(struct frame_hdr) + blen + 1;
	struct mq_message *c;
	struct frame_hdr *h;
	char *p;

	for (size_t i = 0; i < m->nhdrs; i++)
		need += m->hdrs[i].name_len + m->hdrs[i].value_len + 2;
	c = xmalloc(need);
	*c = *m;
	h = (struct frame_hdr *)(c + 1);
	p = (char *)(h + m->nhdrs);
	for (size_t i = 0; i < m->nhdrs; i++) {
		h[i].name = p;
		h[i].name_len = m->hdrs[i].name_len;
		memcpy(p, m->hdrs[i].name, h[i].name_len + 1);
		p += h[i].name_len + 1;
		h[i].value = p;
		h[i].value_len = m->hdrs[i].value_len;
		memcpy(p, m->hdrs[i].value, h[i].value_len + 1);
		p += h[i].value_len + 1;
	}
	if (blen)
		memcpy(p, m->body, blen);
	p[blen] = 0;
	c->body = p;
	c->len = blen;
	client_message_fill(c, h, m->nhdrs);
	c->refs = 1;
	c->copy = NULL;
	c->prev = NULL;
	c->next = NULL;
	return c;
}

/* A copy is on its session's list, so that freeing the session can
 * detach it. */
static void track(struct mq_message *c)
{
	if (c->s) {
		c->next = c->s->live;
		if (c->s->live)
			c->s->live->prev = c;
		c->s->live = c;
	}
}

struct mq_message *mq_message_ref(struct mq_message *m)
{
	struct mq_message *c;
	if (!m)
		return NULL;
	if (m->refs > 0) {
		m->refs++;
		return m;
	}
	if (m->copy) {
		m->copy->refs++;
		return m->copy;
	}
	c = copy_message(m, true);
	m->copy = c;
	track(c);
	return c;
}

struct mq_message *client_message_keep(struct mq_message *m)
{
	struct mq_message *c = copy_message(m, false);
	track(c);
	return c;
}

void mq_message_unref(struct mq_message *m)
{
	if (!m || m->refs == 0)
		return;	/* borrowed: the library owns it */
	assert(m->refs > 0);
	if (--m->refs > 0)
		return;
	if (m->s) {
		if (m->prev)
			m->prev->next = m->next;
		else
			m->s->live = m->next;
		if (m->next)
			m->next->prev = m->prev;
	}
	free(m);
}

void client_messages_detach_queue(struct mq_session *s, struct mq_queue *q)
{
	for (struct mq_message *m = s->live; m; m = m->next)
		if (m->q == q)
			m->q = NULL;
}

void client_messages_detach_session(struct mq_session *s)
{
	struct mq_message *m = s->live;
	while (m) {
		struct mq_message *next = m->next;
		m->s = NULL;
		m->q = NULL;
		m->prev = m->next = NULL;
		m = next;
	}
	s->live = NULL;
}

const char *mq_message_destination(const struct mq_message *m) { return m->dest; }
const char *mq_message_subscription(const struct mq_message *m) { return m->sub; }
const char *mq_message_id(const struct mq_message *m) { return m->id; }
const char *mq_message_ack_id(const struct mq_message *m) { return m->ack; }
bool mq_message_redelivered(const struct mq_message *m) { return m->redelivered; }
size_t mq_message_header_count(const struct mq_message *m) { return m->nhdrs; }

const char *mq_message_header(const struct mq_message *m, const char *name)
{
	return lookup(m->hdrs, m->nhdrs, name);
}

void mq_message_header_at(const struct mq_message *m, size_t i, const char **name, const char **value)
{
	if (i >= m->nhdrs) {
		*name = *value = NULL;
		return;
	}
	*name = m->hdrs[i].name;
	*value = m->hdrs[i].value;
}

const void *mq_message_body(const struct mq_message *m, size_t *len)
{
	if (len)
		*len = m->len;
	return m->body;
}

struct mq_queue *mq_message_queue(const struct mq_message *m)
{
	return m->q && !m->q->dead ? m->q : NULL;
}

/* ACK or NACK, after checking that the broker can still know the message. */
static int settle_message(struct mq_message *m, enum frame_cmd cmd, const char *tx)
{
	struct mq_message *canon = m->refs == 0 && m->copy ? m->copy : m;
	struct mq_session *s = m->s;
	const char *verb = cmd == CMD_ACK ? "confirm" : "reject";
	size_t bound;
	struct frame_writer w;

	if (!s)
		return -1;	/* the session is gone, and its error text with it */
	if (canon->settled) {
		client_set_err(s, "cannot %s message %s: it was already confirmed or rejected", verb, m->id);
		return -1;
	}
	if (m->ack_mode == MQ_ACK_AUTO) {
		if (cmd == CMD_ACK)
			return 0;	/* the broker forgot it when it sent it */
		client_set_err(s, "cannot reject message %s: subscription %s uses ack mode auto", m->id, m->sub);
		return -1;
	}
	if (cmd == CMD_NACK && m->ver < STOMP_1_1) {
		client_set_err(s, "cannot reject message %s: STOMP 1.0 has no NACK", m->id);
		return -1;
	}
	if (m->epoch != s->epoch) {
		client_set_err(s, "cannot %s message %s: it arrived on an earlier connection, "
		               "and the broker has taken it back (it will be delivered again)", verb, m->id);
		return MQ_ERR_STALE;
	}
	if (s->state != MQ_SESSION_CONNECTED) {
		client_set_err(s, "cannot %s message %s: session %s is %s", verb, m->id, s->addr,
		               mq_session_state_name(s->state));
		return -1;
	}
	if (!m->q || m->q->dead) {
		client_set_err(s, "cannot %s message %s: subscription %s is closed", verb, m->id, m->sub);
		return -1;
	}
	if (m->gen != m->q->gen) {
		client_set_err(s, "cannot %s message %s: subscription %s was reconfigured, paused or "
		               "suspended since it arrived, and the broker has taken it back "
		               "(it will be delivered again)", verb, m->id, m->sub);
		return MQ_ERR_STALE;
	}
	if (tx && !client_header_ok(s, verb, "transaction", tx, m->ver))
		return -1;
	if (m->ack_mode == MQ_ACK_CLIENT && m->seq <= m->q->settled_upto) {
		/* A later message's cumulative ACK or NACK covered it; naming
		 * it again would be an unknown id to the broker. */
		canon->settled = true;
		m->settled = true;
		return 0;
	}

	bound = 8 + FW_HDR_BOUND(12, strlen(m->ack)) + FW_HDR_BOUND(10, strlen(m->id)) +
	        FW_HDR_BOUND(12, strlen(m->sub)) + (tx ? FW_HDR_BOUND(11, strlen(tx)) : 0);
	fw_begin(&w, client_out(s), bound, m->ver);
	fw_str(&w, cmd == CMD_ACK ? "ACK\n" : "NACK\n");
	if (m->ver >= STOMP_1_2) {
		fw_hdrs(&w, "id", m->ack);
	} else {
		fw_hdrs(&w, "message-id", m->id);
		if (m->ver == STOMP_1_1)
			fw_hdrs(&w, "subscription", m->sub);
	}
	if (tx)
		fw_hdrs(&w, "transaction", tx);
	fw_raw(&w, "\n", 2);
	s->stats.bytes_out += fw_end(&w);
	s->stats.frames_out++;
	if (cmd == CMD_ACK)
		s->stats.confirmed++;
	else
		s->stats.rejected++;
	canon->settled = true;
	m->settled = true;
	if (m->ack_mode == MQ_ACK_CLIENT && m->seq > m->q->settled_upto)
		m->q->settled_upto = m->seq;
	client_check_high_water(s);
	return 0;
}

int mq_confirm(struct mq_message *m) { return settle_message(m, CMD_ACK, NULL); }
int mq_reject(struct mq_message *m) { return settle_message(m, CMD_NACK, NULL); }
int mq_confirm_tx(struct mq_message *m, const char *tx) { return settle_message(m, CMD_ACK, tx); }
int mq_reject_tx(struct mq_message *m, const char *tx) { return settle_message(m, CMD_NACK, tx); }
